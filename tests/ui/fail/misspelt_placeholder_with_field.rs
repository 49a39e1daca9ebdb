use redis_cached::redis_cached;

struct User {
    id: u64,
}

#[redis_cached(key = "user:<usr.id>", ttl = 300)]
async fn user_score(user: &User) -> u64 {
    user.id
}

fn main() {}
