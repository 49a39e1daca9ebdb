// A method: `cache = self.cache`, a `<self.field>` placeholder and a `<param.field>` path.

use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};

struct User {
    id: u64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    user_id: u64,
    region: String,
}

struct Profiles {
    cache: Cache,
    region: String,
}

impl Profiles {
    #[redis_cached(key = "profile:<user.id>:<self.region>", ttl = 60, cache = self.cache)]
    async fn profile(&self, user: &User) -> Profile {
        let _ = &user.name;
        Profile {
            user_id: user.id,
            region: self.region.clone(),
        }
    }
}

fn main() {
    let profiles = Profiles {
        cache: Cache::in_memory(),
        region: "eu".to_owned(),
    };
    let user = User {
        id: 42,
        name: "Ada".to_owned(),
    };
    assert_eq!(profiles.profile_key(&user), "{profile:42:eu}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let profile = profiles.profile(&user).await;
        assert_eq!(profile.user_id, 42);
        assert_eq!(profile.region, "eu");
        assert_eq!(profiles.profile(&user).await, profile);
        profiles.profile_invalidate(&user).await.unwrap();
    });
}
