//! Announcements: what one cache tells every other cache on the same store, typed, with
//! one encoding. Redis carries them on a pub/sub channel (the scripts publish the bytes
//! given to them); the in-memory store hands them over directly. Either way they reach
//! the [`Listener`] the store was built with.

use std::fmt;

/// One message between caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Announcement {
    /// `key` was filled: its waiters read it.
    Filled { key: String },
    /// The lease of `key` was given up without a fill: its waiters ask again.
    Released { key: String },
    /// `key` was invalidated by the cache `origin`: loads of it running elsewhere are no
    /// longer shared with new callers, and waiters ask again.
    Deleted { origin: u64, key: String },
    /// A tag (its version key) was invalidated by the cache `origin`.
    TagBumped { origin: u64, tag_key: String },
}

/// Receives every announcement a store hears. Called on the store's own task: it must
/// not block.
pub(crate) trait Listener: fmt::Debug + Send + Sync {
    fn heard(&self, announcement: Announcement);
}

const FILLED: u8 = b'f';
const RELEASED: u8 = b'r';
const DELETED: u8 = b'd';
const TAG_BUMPED: u8 = b't';
/// The origin is written as 16 hex digits.
const ORIGIN_LEN: usize = 16;

impl Announcement {
    /// One kind byte, the origin (16 hex digits) where there is one, then the key.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, origin, key) = match self {
            Announcement::Filled { key } => (FILLED, None, key),
            Announcement::Released { key } => (RELEASED, None, key),
            Announcement::Deleted { origin, key } => (DELETED, Some(origin), key),
            Announcement::TagBumped { origin, tag_key } => (TAG_BUMPED, Some(origin), tag_key),
        };
        let mut out = Vec::with_capacity(1 + ORIGIN_LEN + key.len());
        out.push(kind);
        if let Some(origin) = origin {
            out.extend_from_slice(format!("{origin:016x}").as_bytes());
        }
        out.extend_from_slice(key.as_bytes());
        out
    }

    /// `None` for anything [`encode`](Self::encode) did not write.
    pub(crate) fn decode(payload: &[u8]) -> Option<Announcement> {
        let (&kind, rest) = payload.split_first()?;
        let key = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).ok();
        let with_origin = |rest: &[u8]| -> Option<(u64, String)> {
            let (origin, name) = rest.split_at_checked(ORIGIN_LEN)?;
            let origin = u64::from_str_radix(std::str::from_utf8(origin).ok()?, 16).ok()?;
            Some((origin, key(name)?))
        };
        match kind {
            FILLED => Some(Announcement::Filled { key: key(rest)? }),
            RELEASED => Some(Announcement::Released { key: key(rest)? }),
            DELETED => with_origin(rest).map(|(origin, key)| Announcement::Deleted { origin, key }),
            TAG_BUMPED => with_origin(rest).map(|(origin, tag_key)| Announcement::TagBumped { origin, tag_key }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip() {
        for announcement in [
            Announcement::Filled { key: "p:{a:1}".into() },
            Announcement::Released { key: "p:{a:1}".into() },
            Announcement::Deleted {
                origin: u64::MAX,
                key: "p:{a:1}".into(),
            },
            Announcement::TagBumped {
                origin: 7,
                tag_key: "p:tag:{c:1}".into(),
            },
        ] {
            assert_eq!(Announcement::decode(&announcement.encode()), Some(announcement));
        }
        assert_eq!(Announcement::decode(b"dshort"), None);
        assert_eq!(Announcement::decode(b"x"), None);
        assert_eq!(Announcement::decode(b""), None);
    }
}
