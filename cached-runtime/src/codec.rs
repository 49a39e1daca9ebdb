//! The stored format: a short envelope header, then the codec's payload.
//!
//! ```text
//! byte 0   format (FORMAT_V1)
//! byte 1   kind (low 2 bits: value or negative) | codec << 2 | TAGGED (tag versions follow)
//! varint   the function's `version` (LEB128, 1 byte below 128)
//! [varint  number of tags, then 8 bytes (LE) per tag: the tag versions read before the load]
//! [varint  the load's duration in ms, for functions with `stale` or `refresh` (TIMED)]
//! rest     the codec payload (empty for a negative entry)
//! ```
//!
//! Decoding checks every header field before the payload; anything unexpected is a
//! miss, never a guess. A negative entry is told apart by its kind byte, so it can
//! never be confused with a value or with a payload that failed to decode.

use serde::{Serialize, de::DeserializeOwned};

const FORMAT_V1: u8 = 0xC1;
const KIND_VALUE: u8 = 1;
const KIND_NEGATIVE: u8 = 2;
/// Set in byte 1 when tag versions follow the function's version.
const TAGGED: u8 = 0x10;
/// Set in byte 1 when a soft expiry follows (the value may be served stale after it).
const TIMED: u8 = 0x20;

/// Room for the envelope's header (format, flags, version, tag versions, timing) on top
/// of the payload's decode limit, when judging a stored value's size.
pub(crate) const ENVELOPE_HEADER_ALLOWANCE: usize = 64 * 1024;

/// The largest payload a decode will accept or allocate for. A corrupt length prefix
/// can make a decoder try to allocate far more than the stored bytes; this caps it.
pub const DECODE_LIMIT: usize = 32 * 1024 * 1024;

/// How values are turned into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Codec {
    /// bincode 2 (compact, fast). It cannot read back some serde shapes:
    /// `skip_serializing_if`, internally tagged or untagged enums, `flatten`.
    /// Such values are detected when stored and never written.
    #[default]
    Bincode,
    /// MessagePack with field names (rmp-serde): reads back every serde shape and is
    /// readable from other languages.
    MsgPack,
    /// JSON (serde_json): human-readable in `redis-cli`.
    Json,
}

impl Codec {
    fn id(self) -> u8 {
        match self {
            Codec::Bincode => 1,
            Codec::MsgPack => 2,
            Codec::Json => 3,
        }
    }

    /// The name used in `codec = "..."`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::MsgPack => "msgpack",
            Codec::Json => "json",
        }
    }

    fn encode<T: Serialize>(self, value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Codec::Bincode => {
                let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
                bincode::serde::encode_into_std_write(value, out, config)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Codec::MsgPack => rmp_serde::encode::write_named(out, value).map_err(|e| e.to_string()),
            Codec::Json => serde_json::to_writer(out, value).map_err(|e| e.to_string()),
        }
    }

    fn decode<T: DeserializeOwned>(self, payload: &[u8]) -> Result<T, String> {
        if payload.len() > DECODE_LIMIT {
            return Err(format!("value of {} bytes exceeds the decode limit", payload.len()));
        }
        match self {
            Codec::Bincode => {
                let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
                match bincode::serde::decode_from_slice(payload, config) {
                    Ok((value, read)) if read == payload.len() => Ok(value),
                    Ok(_) => Err("trailing bytes after the value".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Codec::MsgPack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
            Codec::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
        }
    }
}

/// What `refresh` needs stored with a value: how long its load took (ms). When a value
/// goes stale is not stored: it is judged from how long the store still keeps it, by the
/// store's clock, so no process's clock (nor their skew) matters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) load_ms: u32,
}

/// How a read judges a value's freshness.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Freshness {
    /// How long the store keeps the entry from now (`PTTL`); `None`: never stale.
    pub(crate) remaining: Option<std::time::Duration>,
    /// The `stale` window: a value is stale in the last `stale_window` of `remaining`
    /// (the store keeps it for its ttl plus this window).
    pub(crate) stale_window: std::time::Duration,
    /// `refresh = "xfetch"`'s beta: refresh early with probability growing near expiry.
    pub(crate) early_beta: Option<f64>,
}

fn header(kind: u8, codec: Codec, version: u32, tags: &[u64], timing: Option<Timing>, out: &mut Vec<u8>) {
    out.push(FORMAT_V1);
    let tagged = if tags.is_empty() { 0 } else { TAGGED };
    let timed = if timing.is_some() { TIMED } else { 0 };
    out.push(kind | (codec.id() << 2) | tagged | timed);
    write_varint(version, out);
    if !tags.is_empty() {
        write_varint(u32::try_from(tags.len()).unwrap_or(u32::MAX), out);
        for tag in tags {
            out.extend_from_slice(&tag.to_le_bytes());
        }
    }
    if let Some(timing) = timing {
        write_varint(timing.load_ms, out);
    }
}

fn write_varint(mut v: u32, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

/// Why a loaded value is not stored.
#[derive(Debug)]
pub(crate) enum Unstorable {
    /// Its encoding is larger than [`DECODE_LIMIT`] (bytes).
    TooLarge(usize),
    /// The codec failed, or cannot decode what it encoded.
    NotReadBack(String),
}

/// Encodes a value, or says why it cannot be stored. A value the codec cannot read back
/// is refused here, so the cache never writes bytes it will not be able to read.
pub(crate) fn encode_value<T: Serialize + DeserializeOwned>(
    value: &T,
    codec: Codec,
    version: u32,
    tags: &[u64],
    timing: Option<Timing>,
) -> Result<Vec<u8>, Unstorable> {
    let mut out = Vec::with_capacity(64);
    header(KIND_VALUE, codec, version, tags, timing, &mut out);
    let start = out.len();
    codec.encode(value, &mut out).map_err(Unstorable::NotReadBack)?;
    if out.len() - start > DECODE_LIMIT {
        return Err(Unstorable::TooLarge(out.len() - start));
    }
    codec
        .decode::<T>(&out[start..])
        .map_err(|e| Unstorable::NotReadBack(format!("decoding failed: {e}")))?;
    Ok(out)
}

/// Encodes the "not found" sentinel of a negative entry.
pub(crate) fn encode_negative(codec: Codec, version: u32, tags: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    header(KIND_NEGATIVE, codec, version, tags, None, &mut out);
    out
}

/// What a stored entry turned out to be.
#[derive(Debug)]
pub(crate) enum Decoded<T> {
    Value(T),
    /// A fresh value that this read should refresh early (`refresh = "xfetch"`).
    Early(T),
    /// A value past its soft expiry (`stale`): servable while it is refreshed.
    Stale(T),
    Negative,
    /// Written by another codec or another `version` of the function: a plain miss.
    OtherFormat,
    /// Not a readable entry at all (garbage, truncated, oversized).
    Unreadable,
}

/// Reads an entry of the function with this codec and version, computed under `tags`
/// (the current versions of its tags; empty for an untagged function), judging its
/// freshness by `freshness`.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    codec: Codec,
    version: u32,
    tags: &[u64],
    freshness: Freshness,
) -> Decoded<T> {
    let [format, kind_codec, rest @ ..] = bytes else {
        return Decoded::Unreadable;
    };
    if *format != FORMAT_V1 || kind_codec & !(0b1111 | TAGGED | TIMED) != 0 {
        return Decoded::Unreadable;
    }
    let (kind, stored_codec, tagged) = (kind_codec & 0b11, (kind_codec >> 2) & 0b11, kind_codec & TAGGED != 0);
    let timed = kind_codec & TIMED != 0;
    let Some((stored_version, rest)) = read_varint(rest) else {
        return Decoded::Unreadable;
    };
    if !matches!(stored_codec, 1..=3) || !matches!(kind, KIND_VALUE | KIND_NEGATIVE) {
        return Decoded::Unreadable;
    }
    let (stored_tags, payload) = if tagged {
        let Some((count, rest)) = read_varint(rest) else {
            return Decoded::Unreadable;
        };
        let Some(len) = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .filter(|&n| n <= rest.len())
        else {
            return Decoded::Unreadable;
        };
        rest.split_at(len)
    } else {
        (&[][..], rest)
    };
    let (timing, payload) = if timed {
        let Some((load_ms, payload)) = read_varint(payload) else {
            return Decoded::Unreadable;
        };
        (Some(Timing { load_ms }), payload)
    } else {
        (None, payload)
    };
    if stored_codec != codec.id() || stored_version != version {
        return Decoded::OtherFormat;
    }
    // Computed under other tag versions: a tag was invalidated since (or never matched).
    if stored_tags.len() != tags.len() * 8
        || stored_tags
            .chunks_exact(8)
            .zip(tags)
            .any(|(stored, current)| stored != current.to_le_bytes())
    {
        return Decoded::OtherFormat;
    }
    match kind {
        KIND_NEGATIVE if payload.is_empty() => Decoded::Negative,
        KIND_VALUE => match codec.decode(payload) {
            Ok(value) => match timing {
                Some(_) if is_stale(freshness) => Decoded::Stale(value),
                Some(timing) if refresh_early(timing, freshness) => Decoded::Early(value),
                _ => Decoded::Value(value),
            },
            Err(_) => Decoded::Unreadable,
        },
        _ => Decoded::Unreadable,
    }
}

/// Within the last `stale_window` of the time the store keeps the value.
fn is_stale(freshness: Freshness) -> bool {
    !freshness.stale_window.is_zero() && freshness.remaining.is_some_and(|left| left <= freshness.stale_window)
}

/// XFetch (Vattani, Chierichetti and Lowenstein, VLDB 2015): refresh early when
/// `- load time * beta * ln(rand()) >= time to expiry`, more likely the closer the expiry
/// and the slower the load. The time to expiry is the store's remaining time less the
/// stale window.
fn refresh_early(timing: Timing, freshness: Freshness) -> bool {
    let (Some(beta), Some(remaining)) = (freshness.early_beta, freshness.remaining) else {
        return false;
    };
    let to_expiry = remaining.saturating_sub(freshness.stale_window);
    let draw = crate::lock::random_unit().max(f64::MIN_POSITIVE);
    let head_start = f64::from(timing.load_ms) * beta * -draw.ln();
    head_start >= to_expiry.as_secs_f64() * 1000.0
}

fn read_varint(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (i, byte) in bytes.iter().enumerate().take(5) {
        let low = u32::from(byte & 0x7f);
        value |= low.checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Product {
        id: u64,
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sparse {
        id: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    fn product() -> Product {
        Product {
            id: 7,
            name: "lamp".into(),
        }
    }

    #[test]
    fn every_codec_round_trips_a_value() {
        for codec in [Codec::Bincode, Codec::MsgPack, Codec::Json] {
            let bytes = encode_value(&product(), codec, 3, &[], None).unwrap();
            assert!(
                matches!(decode::<Product>(&bytes, codec, 3, &[], Freshness::default()), Decoded::Value(p) if p == product())
            );
        }
    }

    #[test]
    fn header_costs_three_bytes_below_version_128() {
        let bytes = encode_value(&product(), Codec::Json, 5, &[], None).unwrap();
        let payload = serde_json::to_vec(&product()).unwrap();
        assert_eq!(bytes.len(), payload.len() + 3);
    }

    #[test]
    fn another_codec_or_version_is_not_read() {
        let bytes = encode_value(&product(), Codec::MsgPack, 1, &[], None).unwrap();
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Json, 1, &[], Freshness::default()),
            Decoded::OtherFormat
        ));
        assert!(matches!(
            decode::<Product>(&bytes, Codec::MsgPack, 2, &[], Freshness::default()),
            Decoded::OtherFormat
        ));
    }

    #[test]
    fn negative_sentinel_is_never_a_value() {
        let bytes = encode_negative(Codec::Bincode, 0, &[]);
        assert!(matches!(
            decode::<Option<u8>>(&bytes, Codec::Bincode, 0, &[], Freshness::default()),
            Decoded::Negative
        ));
        // A value whose payload happens to be empty is still not negative.
        let unit = encode_value(&(), Codec::Bincode, 0, &[], None).unwrap();
        assert!(matches!(
            decode::<()>(&unit, Codec::Bincode, 0, &[], Freshness::default()),
            Decoded::Value(())
        ));
    }

    #[test]
    fn garbage_and_truncation_are_unreadable() {
        let bytes = encode_value(&product(), Codec::Bincode, 0, &[], None).unwrap();
        for cut in 0..bytes.len() {
            assert!(!matches!(
                decode::<Product>(&bytes[..cut], Codec::Bincode, 0, &[], Freshness::default()),
                Decoded::Value(_)
            ));
        }
        assert!(matches!(
            decode::<Product>(b"hello world", Codec::Bincode, 0, &[], Freshness::default()),
            Decoded::Unreadable
        ));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A header, then a bincode string length claiming ~2^60 bytes.
        let mut bytes = encode_negative(Codec::Bincode, 0, &[]);
        bytes[1] = KIND_VALUE | (Codec::Bincode.id() << 2);
        bytes.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        assert!(matches!(
            decode::<String>(&bytes, Codec::Bincode, 0, &[], Freshness::default()),
            Decoded::Unreadable
        ));
    }

    #[test]
    fn values_computed_under_other_tag_versions_are_not_read() {
        let bytes = encode_value(&product(), Codec::Bincode, 0, &[7, 9], None).unwrap();
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Bincode, 0, &[7, 9], Freshness::default()),
            Decoded::Value(_)
        ));
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Bincode, 0, &[7, 10], Freshness::default()),
            Decoded::OtherFormat
        ));
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Bincode, 0, &[7], Freshness::default()),
            Decoded::OtherFormat
        ));
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Bincode, 0, &[], Freshness::default()),
            Decoded::OtherFormat
        ));
        let untagged = encode_value(&product(), Codec::Bincode, 0, &[], None).unwrap();
        assert!(matches!(
            decode::<Product>(&untagged, Codec::Bincode, 0, &[7], Freshness::default()),
            Decoded::OtherFormat
        ));
        let negative = encode_negative(Codec::Bincode, 0, &[3]);
        assert!(matches!(
            decode::<Product>(&negative, Codec::Bincode, 0, &[3], Freshness::default()),
            Decoded::Negative
        ));
        assert!(matches!(
            decode::<Product>(&negative, Codec::Bincode, 0, &[4], Freshness::default()),
            Decoded::OtherFormat
        ));
    }

    #[test]
    fn a_value_in_the_last_stale_window_of_its_life_is_stale() {
        use std::time::Duration;
        let timing = Timing { load_ms: 5 };
        let bytes = encode_value(&product(), Codec::Json, 0, &[1], Some(timing)).unwrap();
        let at = |left_ms| Freshness {
            remaining: Some(Duration::from_millis(left_ms)),
            stale_window: Duration::from_millis(1_000),
            early_beta: None,
        };
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Json, 0, &[1], at(1_001)),
            Decoded::Value(_)
        ));
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Json, 0, &[1], at(1_000)),
            Decoded::Stale(_)
        ));
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Json, 0, &[2], at(1_001)),
            Decoded::OtherFormat
        ));
        // No expiry known: never stale.
        let forever = Freshness {
            remaining: None,
            ..at(0)
        };
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Json, 0, &[1], forever),
            Decoded::Value(_)
        ));
        // XFetch: far from expiry a zero beta never refreshes early; a huge one always does.
        let early = |beta| Freshness {
            remaining: Some(Duration::from_secs(60)),
            stale_window: Duration::ZERO,
            early_beta: Some(beta),
        };
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Json, 0, &[1], early(0.0)),
            Decoded::Value(_)
        ));
        assert!(matches!(
            decode::<Product>(&bytes, Codec::Json, 0, &[1], early(1e12)),
            Decoded::Early(_)
        ));
    }

    #[test]
    fn bincode_refuses_what_it_cannot_read_back() {
        let sparse = Sparse { id: 1, note: None };
        let Err(Unstorable::NotReadBack(err)) = encode_value(&sparse, Codec::Bincode, 0, &[], None) else {
            panic!("bincode cannot store this")
        };
        assert!(err.contains("decoding failed"), "{err}");
        assert!(encode_value(&sparse, Codec::MsgPack, 0, &[], None).is_ok());
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoder, for several value types.
        #[test]
        fn arbitrary_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            for codec in [Codec::Bincode, Codec::MsgPack, Codec::Json] {
                let _ = decode::<Product>(&bytes, codec, 0, &[], Freshness::default());
                let _ = decode::<String>(&bytes, codec, 0, &[], Freshness::default());
                let _ = decode::<Vec<u64>>(&bytes, codec, 0, &[], Freshness::default());
                let _ = decode::<Option<Vec<String>>>(&bytes, codec, 0, &[], Freshness::default());
            }
        }

        /// Arbitrary bytes behind every combination of header flags: no panic.
        #[test]
        fn arbitrary_bytes_behind_any_flags(flags in 0u8..64, rest in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut bytes = vec![FORMAT_V1, flags];
            bytes.extend(&rest);
            for codec in [Codec::Bincode, Codec::MsgPack, Codec::Json] {
                let freshness = Freshness {
                    remaining: Some(std::time::Duration::from_millis(5)),
                    stale_window: std::time::Duration::from_millis(10),
                    early_beta: Some(1.0),
                };
                let _ = decode::<Product>(&bytes, codec, 0, &[1, 2], freshness);
                let _ = decode::<Product>(&bytes, codec, 0, &[], Freshness::default());
            }
        }

        /// A well-formed header in front of arbitrary payload bytes: still no panic, and
        /// never a value unless the payload decodes in full.
        #[test]
        fn valid_header_with_arbitrary_payload(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            for codec in [Codec::Bincode, Codec::MsgPack, Codec::Json] {
                let mut bytes = Vec::new();
                header(KIND_VALUE, codec, 0, &[], None, &mut bytes);
                bytes.extend(&payload);
                let _ = decode::<Product>(&bytes, codec, 0, &[], Freshness::default());
                let _ = decode::<Vec<String>>(&bytes, codec, 0, &[], Freshness::default());
            }
        }

        /// Whatever a value is, what is stored decodes back to it.
        #[test]
        fn stored_values_read_back(id in proptest::num::u64::ANY, name in "\\PC{0,40}", version in 0u32..100_000) {
            let value = Product { id, name };
            for codec in [Codec::Bincode, Codec::MsgPack, Codec::Json] {
                let bytes = encode_value(&value, codec, version, &[], None).unwrap();
                proptest::prop_assert!(matches!(decode::<Product>(&bytes, codec, version, &[], Freshness::default()), Decoded::Value(v) if v == value));
            }
        }
    }
}
