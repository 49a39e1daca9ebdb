//! The stored format: a short envelope header, then the codec's payload. `FORMAT.md`
//! publishes it for readers in other languages; a test holds its examples to this code.
//!
//! ```text
//! byte 0   format (FORMAT_V2)
//! byte 1   kind (low 2 bits: value or negative) | codec << 2 | TAGGED (tag versions follow)
//!          | TIMED (timing follows)
//! varint   the function's `version` (LEB128, 1 byte below 128)
//! 4 bytes  (LE) the value type's fingerprint, see `fingerprint`
//! [varint  number of tags, then 8 bytes (LE) per tag: the tag versions read before the load]
//! [varint  the load's duration in ms, for functions with `stale` or `refresh` (TIMED)]
//! rest     the codec payload (empty for a negative entry); JSON ends with a `\n`
//! ```
//!
//! The header is 7 bytes for an untagged, untimed function below version 128.
//!
//! Decoding checks every header field before the payload; anything unexpected is a
//! miss, never a guess. A negative entry is told apart by its kind byte, so it can
//! never be confused with a value or with a payload that failed to decode. Another codec
//! or `version` is a plain miss (a rollout); the same codec and version with another
//! value type is a type clash (two functions share a key, or a generic function is used
//! at two types), a miss that is counted and logged. An entry of the previous format
//! (`FORMAT_V1`, without the fingerprint) is a plain miss.
//!
//! The payload must be consumed to its last byte, so a value cut short (or with bytes
//! appended) is unreadable, never a shorter value. bincode and MessagePack values are
//! self-delimiting for their type: the decoder knows where the value ends, so a cut value
//! always fails to decode, and a byte left over after it is an error. JSON is not (`123`
//! is a complete prefix of `123456`), so its payload ends with a `\n`, which compact JSON
//! never contains: a cut value has lost it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sync::lock;

/// The format before the value type's fingerprint: its entries are plain misses.
const FORMAT_V1: u8 = 0xC1;
const FORMAT_V2: u8 = 0xC2;
const KIND_VALUE: u8 = 1;
const KIND_NEGATIVE: u8 = 2;
/// Set in byte 1 when tag versions follow the function's version.
const TAGGED: u8 = 0x10;
/// Set in byte 1 when the load time follows (`stale` or `refresh`).
const TIMED: u8 = 0x20;

/// Room for the envelope's header (format, flags, version, tag versions, timing) on top
/// of the payload's decode limit, when judging a stored value's size.
pub(crate) const ENVELOPE_HEADER_ALLOWANCE: usize = 64 * 1024;

/// The largest payload a decode will accept or allocate for. A corrupt length prefix
/// can make a decoder try to allocate far more than the stored bytes; this caps it.
pub const DECODE_LIMIT: usize = 32 * 1024 * 1024;

/// How values are turned into bytes.
///
/// bincode is always there; the others each need their feature (on by default). A value
/// stored with a codec whose feature is off here is a miss, like any other codec's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Codec {
    /// bincode 2 (compact, fast). It cannot read back some serde shapes:
    /// `skip_serializing_if`, internally tagged or untagged enums, `flatten`.
    /// Such values are detected when stored and never written.
    #[default]
    Bincode,
    /// MessagePack with field names (rmp-serde): reads back every serde shape and is
    /// readable from other languages. Needs the `msgpack` feature.
    #[cfg(feature = "msgpack")]
    MsgPack,
    /// JSON (serde_json): human-readable in `redis-cli`. Needs the `json` feature.
    #[cfg(feature = "json")]
    Json,
}

impl Codec {
    fn id(self) -> u8 {
        match self {
            Codec::Bincode => 1,
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => 2,
            #[cfg(feature = "json")]
            Codec::Json => 3,
        }
    }

    /// The name used in `codec = "..."`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => "msgpack",
            #[cfg(feature = "json")]
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
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => rmp_serde::encode::write_named(out, value).map_err(|e| e.to_string()),
            #[cfg(feature = "json")]
            Codec::Json => {
                serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())?;
                out.push(JSON_END);
                Ok(())
            }
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
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => {
                let mut decoder = rmp_serde::Deserializer::from_read_ref(payload);
                let value = T::deserialize(&mut decoder).map_err(|e| e.to_string())?;
                if no_marker_left(&mut decoder) {
                    Ok(value)
                } else {
                    Err("trailing bytes after the value".to_owned())
                }
            }
            #[cfg(feature = "json")]
            Codec::Json => {
                // Without its end marker the value was cut; whitespace before it is not
                // what the encoder wrote (bytes were appended).
                let Some((&JSON_END, text)) = payload.split_last() else {
                    return Err("no end marker: the value is cut short".to_owned());
                };
                if text.last().is_some_and(u8::is_ascii_whitespace) {
                    return Err("trailing bytes after the value".to_owned());
                }
                let mut decoder = serde_json::Deserializer::from_slice(text);
                let value = T::deserialize(&mut decoder).map_err(|e| e.to_string())?;
                decoder.end().map_err(|e| e.to_string())?;
                Ok(value)
            }
        }
    }
}

/// True when a MessagePack decoder has no byte left after a value: the marker that starts
/// a value cannot be read. The decoder of a slice does not tell its position; the decoder
/// of a reader (`Deserializer::new`) would, but it copies every string and field name it
/// reads, which doubled the decode time.
#[cfg(feature = "msgpack")]
fn no_marker_left<'de>(decoder: &mut rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'de, [u8]>>) -> bool {
    use serde::Deserializer as _;
    use serde::de::Visitor;
    use std::io::ErrorKind;

    /// Sees the next marker, if any, and reads nothing after it.
    struct Marker;
    impl<'de> Visitor<'de> for Marker {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any value")
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
            Ok(())
        }
    }
    // The option's marker is read first: at the end of the slice that fails on its own.
    matches!(
        decoder.deserialize_option(Marker),
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) if e.kind() == ErrorKind::UnexpectedEof
    )
}

/// Ends a JSON payload. Compact JSON never contains a raw newline (strings escape it), and
/// every JSON reader accepts trailing whitespace.
#[cfg(feature = "json")]
const JSON_END: u8 = b'\n';

/// The fingerprint of a value type, stored in every entry (negative ones too): FNV-1a
/// (64-bit) of its [`std::any::type_name`], folded to 32 bits.
///
/// Type names are not guaranteed to be stable across compilers: a compiler that names a
/// type differently only turns the entries that older builds wrote into misses. Nor are
/// they guaranteed unique: two types that share a name (from two versions of one crate)
/// are not told apart by it.
pub(crate) fn fingerprint<T: ?Sized>() -> u32 {
    fingerprint_of(std::any::type_name::<T>())
}

const fn fingerprint_of(type_name: &str) -> u32 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = type_name.as_bytes();
    let mut hash = OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    (hash ^ (hash >> 32)) as u32
}

/// The name of every value type this process has stored, by fingerprint: what a type
/// clash's log names. Filled on encode (a miss); read only to log a clash.
static STORED_TYPES: Mutex<BTreeMap<u32, &'static str>> = Mutex::new(BTreeMap::new());

/// The fingerprint of `T`, remembering its name.
fn remember<T: ?Sized>() -> u32 {
    let name = std::any::type_name::<T>();
    let fingerprint = fingerprint_of(name);
    lock(&STORED_TYPES).entry(fingerprint).or_insert(name);
    fingerprint
}

/// The name of the type with this fingerprint, if this process has stored one.
pub(crate) fn stored_type_name(fingerprint: u32) -> Option<&'static str> {
    lock(&STORED_TYPES).get(&fingerprint).copied()
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

/// Where an entry comes from: the function's codec and version, and its value type.
#[derive(Debug, Clone, Copy)]
struct Origin {
    codec: Codec,
    version: u32,
    fingerprint: u32,
}

fn header(kind: u8, origin: Origin, tags: &[u64], timing: Option<Timing>, out: &mut Vec<u8>) {
    out.push(FORMAT_V2);
    let tagged = if tags.is_empty() { 0 } else { TAGGED };
    let timed = if timing.is_some() { TIMED } else { 0 };
    out.push(kind | (origin.codec.id() << 2) | tagged | timed);
    write_varint(origin.version, out);
    out.extend_from_slice(&origin.fingerprint.to_le_bytes());
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
    let origin = Origin {
        codec,
        version,
        fingerprint: remember::<T>(),
    };
    let mut out = Vec::with_capacity(64);
    header(KIND_VALUE, origin, tags, timing, &mut out);
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

/// Encodes the "not found" sentinel of a negative entry of a function returning `T`s:
/// a "not found" of one type is not one of another.
pub(crate) fn encode_negative<T>(codec: Codec, version: u32, tags: &[u64]) -> Vec<u8> {
    let origin = Origin {
        codec,
        version,
        fingerprint: remember::<T>(),
    };
    let mut out = Vec::with_capacity(8);
    header(KIND_NEGATIVE, origin, tags, None, &mut out);
    out
}

/// What a stored entry turned out to be.
#[derive(Debug)]
pub(crate) enum Decoded<T> {
    Value(T),
    /// A fresh value that this read should refresh early (`refresh = "xfetch"`).
    Early(T),
    /// A value in the last `stale` window of its life: servable while it is refreshed.
    Stale(T),
    Negative,
    /// Written by another codec or another `version` of the function, under other tag
    /// versions, or in the previous format: a plain miss.
    OtherFormat,
    /// Written with this codec and version for another value type (its fingerprint):
    /// two functions share the key, or a generic function is used at two types. A miss.
    OtherType {
        stored: u32,
    },
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
    if bytes.first() == Some(&FORMAT_V1) {
        return Decoded::OtherFormat;
    }
    let Some(Parts {
        head,
        stored_tags,
        timing,
        payload,
    }) = parts(bytes)
    else {
        return Decoded::Unreadable;
    };
    // Another codec or version first: a rollout, not a clash.
    if head.codec != codec.id() || head.version != version {
        return Decoded::OtherFormat;
    }
    if head.fingerprint != fingerprint::<T>() {
        return Decoded::OtherType {
            stored: head.fingerprint,
        };
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
    match head.kind {
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

/// How long the load of a stored value took (ms), as stored for `refresh`; `None` when
/// not stored, or not readable.
pub(crate) fn load_ms(bytes: &[u8]) -> Option<u32> {
    parts(bytes)?.timing.map(|timing| timing.load_ms)
}

/// A stored entry of the current format, split: its header, its tags' versions (8 bytes
/// each), its timing and its payload.
struct Parts<'a> {
    head: Head,
    stored_tags: &'a [u8],
    timing: Option<Timing>,
    payload: &'a [u8],
}

fn parts(bytes: &[u8]) -> Option<Parts<'_>> {
    let (head, rest) = read_head(bytes)?;
    let (stored_tags, payload) = if head.tagged {
        let (count, rest) = read_varint(rest)?;
        let len = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .filter(|&n| n <= rest.len())?;
        rest.split_at(len)
    } else {
        (&[][..], rest)
    };
    let (timing, payload) = if head.timed {
        let (load_ms, payload) = read_varint(payload)?;
        (Some(Timing { load_ms }), payload)
    } else {
        (None, payload)
    };
    Some(Parts {
        head,
        stored_tags,
        timing,
        payload,
    })
}

/// Within the last `stale_window` of the time the store keeps the value.
fn is_stale(freshness: Freshness) -> bool {
    !freshness.stale_window.is_zero() && freshness.remaining.is_some_and(|left| left <= freshness.stale_window)
}

/// The fixed-size start of a header.
struct Head {
    kind: u8,
    codec: u8,
    tagged: bool,
    timed: bool,
    version: u32,
    fingerprint: u32,
}

/// Reads the start of a header of the current format, up to the fingerprint; `None`
/// when it is not one.
fn read_head(bytes: &[u8]) -> Option<(Head, &[u8])> {
    let [FORMAT_V2, flags, rest @ ..] = bytes else {
        return None;
    };
    if flags & !(0b1111 | TAGGED | TIMED) != 0 {
        return None;
    }
    let (version, rest) = read_varint(rest)?;
    let (fingerprint, rest) = rest.split_first_chunk::<4>()?;
    let head = Head {
        kind: flags & 0b11,
        codec: (flags >> 2) & 0b11,
        tagged: flags & TAGGED != 0,
        timed: flags & TIMED != 0,
        version,
        fingerprint: u32::from_le_bytes(*fingerprint),
    };
    (matches!(head.codec, 1..=3) && matches!(head.kind, KIND_VALUE | KIND_NEGATIVE)).then_some((head, rest))
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
    let draw = crate::random::random_unit().max(f64::MIN_POSITIVE);
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

/// A stored value of a codec whose feature is off here (or of a codec this version does
/// not know) is a plain miss.
#[cfg(test)]
mod codecs_not_compiled_in {
    use super::*;

    #[test]
    fn a_value_of_any_other_codec_is_a_miss_never_a_panic() {
        for id in [2u8, 3] {
            let mut bytes = vec![FORMAT_V2, KIND_VALUE | (id << 2), 0];
            bytes.extend(fingerprint::<u64>().to_le_bytes());
            bytes.extend(b"\x07 anything\n");
            assert!(matches!(
                decode::<u64>(&bytes, Codec::Bincode, 0, &[], Freshness::default()),
                Decoded::OtherFormat
            ));
        }
    }
}

/// The envelope with every codec.
#[cfg(all(test, feature = "json", feature = "msgpack"))]
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

    /// What each codec writes for a value on its own, without the envelope.
    fn bare(value: &Product, codec: Codec) -> Vec<u8> {
        match codec {
            Codec::Bincode => bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap(),
            Codec::MsgPack => rmp_serde::to_vec_named(value).unwrap(),
            Codec::Json => serde_json::to_vec(value).unwrap(),
        }
    }

    #[test]
    fn the_envelope_costs_at_most_eight_bytes_below_version_128() {
        for codec in [Codec::Bincode, Codec::MsgPack, Codec::Json] {
            for version in [0, 5, 127] {
                let bytes = encode_value(&product(), codec, version, &[], None).unwrap();
                let overhead = bytes.len() - bare(&product(), codec).len();
                // The header is 7 bytes; JSON adds its end marker.
                let expected = if codec == Codec::Json { 8 } else { 7 };
                assert_eq!(overhead, expected, "{codec:?} version {version}");
                assert!(overhead <= 8);
            }
        }
        let negative = encode_negative::<Product>(Codec::Json, 127, &[]);
        assert_eq!(negative.len(), 7);
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
        let bytes = encode_negative::<Option<u8>>(Codec::Bincode, 0, &[]);
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
        let mut bytes = encode_negative::<String>(Codec::Bincode, 0, &[]);
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
        let negative = encode_negative::<Product>(Codec::Bincode, 0, &[3]);
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

    const CODECS: [Codec; 3] = [Codec::Bincode, Codec::MsgPack, Codec::Json];

    /// A value header of version 0 for `T`, then `payload`.
    fn with_header<T>(codec: Codec, payload: &[u8]) -> Vec<u8> {
        let origin = Origin {
            codec,
            version: 0,
            fingerprint: fingerprint::<T>(),
        };
        let mut bytes = Vec::new();
        header(KIND_VALUE, origin, &[], None, &mut bytes);
        bytes.extend(payload);
        bytes
    }

    #[test]
    fn a_value_of_another_type_is_not_read() {
        // The review case: bincode writes -3i64 as the varint 5, which reads as 5u64.
        let bare = bincode::serde::encode_to_vec(-3i64, bincode::config::standard()).unwrap();
        assert_eq!(Codec::Bincode.decode::<u64>(&bare), Ok(5), "the codec alone is fooled");
        for codec in CODECS {
            let bytes = encode_value(&-3i64, codec, 0, &[], None).unwrap();
            assert!(
                matches!(
                    decode::<u64>(&bytes, codec, 0, &[], Freshness::default()),
                    Decoded::OtherType { stored } if stored == fingerprint::<i64>()
                ),
                "{codec:?}"
            );
            assert!(matches!(
                decode::<i64>(&bytes, codec, 0, &[], Freshness::default()),
                Decoded::Value(-3)
            ));
        }
        // Tagged and timed entries carry it too.
        let timing = Timing { load_ms: 5 };
        let bytes = encode_value(&-3i64, Codec::Bincode, 0, &[4], Some(timing)).unwrap();
        assert!(matches!(
            decode::<u64>(&bytes, Codec::Bincode, 0, &[4], Freshness::default()),
            Decoded::OtherType { .. }
        ));
    }

    #[test]
    fn a_negative_entry_of_another_type_is_not_a_negative() {
        let bytes = encode_negative::<i64>(Codec::Bincode, 0, &[]);
        assert!(matches!(
            decode::<u64>(&bytes, Codec::Bincode, 0, &[], Freshness::default()),
            Decoded::OtherType { stored } if stored == fingerprint::<i64>()
        ));
        assert!(matches!(
            decode::<i64>(&bytes, Codec::Bincode, 0, &[], Freshness::default()),
            Decoded::Negative
        ));
    }

    #[test]
    fn another_codec_or_version_is_a_rollout_even_for_another_type() {
        let bytes = encode_value(&-3i64, Codec::Bincode, 1, &[], None).unwrap();
        assert!(matches!(
            decode::<u64>(&bytes, Codec::Bincode, 2, &[], Freshness::default()),
            Decoded::OtherFormat
        ));
        assert!(matches!(
            decode::<u64>(&bytes, Codec::MsgPack, 1, &[], Freshness::default()),
            Decoded::OtherFormat
        ));
    }

    #[test]
    fn entries_of_the_previous_format_are_plain_misses() {
        // Format 0xC1: format, kind and codec, version, then the payload; no fingerprint.
        let mut old = vec![FORMAT_V1, KIND_VALUE | (Codec::Bincode.id() << 2), 0];
        old.extend(bare(&product(), Codec::Bincode));
        for bytes in [&old[..], &old[..1], &[FORMAT_V1, 0xff][..]] {
            assert!(matches!(
                decode::<Product>(bytes, Codec::Bincode, 0, &[], Freshness::default()),
                Decoded::OtherFormat
            ));
        }
        // A header of the current format cut short is unreadable.
        let bytes = encode_value(&product(), Codec::Bincode, 0, &[], None).unwrap();
        for cut in 0..7 {
            assert!(matches!(
                decode::<Product>(&bytes[..cut], Codec::Bincode, 0, &[], Freshness::default()),
                Decoded::Unreadable
            ));
        }
    }

    #[test]
    fn the_fingerprint_is_fnv1a_64_of_the_type_name_folded_to_32_bits() {
        // FNV-1a 64 test vectors: "" is the offset basis, "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(fingerprint_of(""), 0xcbf2_9ce4 ^ 0x8422_2325);
        assert_eq!(fingerprint_of("a"), 0xaf63_dc4c ^ 0x8601_ec8c);
        assert_eq!(fingerprint_of("foobar"), 0x8594_4171 ^ 0xf739_67e8);
        assert_eq!(fingerprint::<u64>(), fingerprint_of("u64"));
        let bytes = encode_value(&1u64, Codec::Bincode, 0, &[], None).unwrap();
        assert_eq!(bytes[3..7], fingerprint_of("u64").to_le_bytes());
    }

    /// Bytes as FORMAT.md shows them: lowercase hex pairs, 16 to a line.
    fn hex_dump(bytes: &[u8]) -> String {
        let lines: Vec<String> = bytes
            .chunks(16)
            .map(|line| line.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
            .collect();
        lines.join("\n")
    }

    /// FORMAT.md publishes the format to readers in other languages; its worked examples
    /// are what the crate writes, byte for byte, so the format cannot change without it.
    #[test]
    fn the_examples_in_format_md_are_what_the_crate_writes() {
        let doc = include_str!("../../FORMAT.md");
        let lamp = Product {
            id: 42,
            name: "lamp".into(),
        };
        // The examples' value type is `shop::Product`: this one differs only in its name.
        let as_documented = |mut bytes: Vec<u8>| {
            assert_eq!(bytes[3..7], fingerprint::<Product>().to_le_bytes());
            bytes[3..7].copy_from_slice(&fingerprint_of("shop::Product").to_le_bytes());
            bytes
        };
        let loaded_in_200ms = Some(Timing { load_ms: 200 });
        let examples = [
            ("JSON value", encode_value(&lamp, Codec::Json, 1, &[], None)),
            ("MessagePack value", encode_value(&lamp, Codec::MsgPack, 1, &[], None)),
            ("negative entry", Ok(encode_negative::<Product>(Codec::Json, 1, &[]))),
            (
                "tagged, timed value",
                encode_value(&lamp, Codec::Json, 1, &[12_345], loaded_in_200ms),
            ),
        ];
        for (name, bytes) in examples {
            let dump = hex_dump(&as_documented(bytes.unwrap()));
            assert!(doc.contains(&dump), "FORMAT.md lacks the {name} example:\n{dump}");
        }
        assert!(doc.contains(&format!("{:#010x}", fingerprint_of("shop::Product"))));
    }

    #[test]
    fn stored_types_are_named_by_their_fingerprint() {
        struct NeverStored;
        encode_value(&-3i64, Codec::Json, 0, &[], None).unwrap();
        encode_negative::<Sparse>(Codec::Json, 0, &[]);
        assert_eq!(stored_type_name(fingerprint::<i64>()), Some("i64"));
        assert_eq!(
            stored_type_name(fingerprint::<Sparse>()),
            Some(std::any::type_name::<Sparse>())
        );
        assert_eq!(stored_type_name(fingerprint::<NeverStored>()), None);
    }

    #[test]
    fn a_cut_json_value_is_unreadable_not_shorter() {
        // The review case: `123456` cut to `123` is a complete JSON number.
        let bytes = encode_value(&123_456u64, Codec::Json, 0, &[], None).unwrap();
        assert!(bytes.ends_with(b"123456\n"));
        for cut in [bytes.len() - 1, bytes.len() - 4] {
            assert!(matches!(
                decode::<u64>(&bytes[..cut], Codec::Json, 0, &[], Freshness::default()),
                Decoded::Unreadable
            ));
        }
    }

    #[test]
    fn bytes_after_a_value_are_never_ignored() {
        // Whole values, the start of a map, an array or a string, a nil, a newline.
        let tails: [&[u8]; 9] = [
            b"\x01", b"\x81", b"\x91", b"\xa5", b"\xc0", b"\n", b" \n", b"1\n", b"\n\n",
        ];
        for codec in CODECS {
            let bytes = encode_value(&product(), codec, 0, &[], None).unwrap();
            for tail in tails {
                let extended = [&bytes[..], tail].concat();
                assert!(
                    matches!(
                        decode::<Product>(&extended, codec, 0, &[], Freshness::default()),
                        Decoded::Unreadable
                    ),
                    "{codec:?} {tail:?}"
                );
            }
        }
    }

    /// A generic value type, for fingerprints of its instantiations.
    struct Wrapper<T>(T);

    /// No two distinct types used anywhere in the test suite share a fingerprint, nor do
    /// many other common ones.
    #[test]
    fn distinct_types_have_distinct_fingerprints() {
        use std::collections::{BTreeSet, HashMap, HashSet};
        macro_rules! names {
            ($($t:ty),* $(,)?) => { vec![$(std::any::type_name::<$t>()),*] };
        }
        let mut names = names![
            u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, bool, char, (),
            String, &'static str, Box<str>, Vec<u8>, Vec<u16>, Vec<u32>, Vec<u64>, Vec<i32>, Vec<i64>,
            Vec<f64>, Vec<String>, Vec<Vec<u8>>, Vec<Product>, Vec<Option<u64>>,
            Option<u8>, Option<u32>, Option<u64>, Option<i64>, Option<f64>, Option<String>,
            Option<Product>, Option<Vec<String>>, Option<Option<u64>>,
            Result<u64, String>, Result<i64, String>, Result<String, String>, Result<Product, String>,
            Result<(), String>, Result<Option<Product>, String>,
            HashMap<String, u64>, HashMap<u64, String>, HashMap<String, String>, HashMap<String, i64>,
            HashMap<String, Vec<u64>>, HashMap<u64, Product>, BTreeMap<String, u64>, BTreeMap<u64, String>,
            HashSet<String>, HashSet<u64>, BTreeSet<u64>,
            (u64,), (u64, u64), (i64, u64), (u64, i64), (u32, u32), (String, u64), (u64, String),
            (String, String), (u64, String, bool), [u8; 4], [u8; 16], [u8; 32], [u64; 2],
            Product, Sparse, Box<Product>, Wrapper<u64>, Wrapper<i64>, Wrapper<String>,
            Wrapper<Product>, Wrapper<Option<u64>>, Wrapper<Wrapper<u64>>,
            serde_json::Value, std::time::Duration, std::time::SystemTime,
        ];
        // The value types of the integration tests, the example and the bench (other
        // crates), by the names `type_name` gives them.
        names.extend([
            "redis::behaviour::Product",
            "redis::behaviour::Sparse",
            "memory::behaviour::Product",
            "memory::behaviour::Sparse",
            "acl::behaviour::Product",
            "acl::behaviour::Sparse",
            "faults::behaviour::Product",
            "faults::behaviour::Sparse",
            "lints::Item",
            "soak::Item",
            "quickstart::Product",
            "bench::model::Product",
            "micro::Product",
            "format::Product",
        ]);
        let distinct: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), names.len(), "a type is listed twice");
        let mut seen = HashMap::new();
        for name in names {
            if let Some(other) = seen.insert(fingerprint_of(name), name) {
                panic!("`{name}` and `{other}` share a fingerprint");
            }
        }
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
            let mut bytes = vec![FORMAT_V2, flags, 0];
            bytes.extend(fingerprint::<Product>().to_le_bytes());
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
                let _ = decode::<Product>(&with_header::<Product>(codec, &payload), codec, 0, &[], Freshness::default());
                let _ = decode::<Vec<String>>(&with_header::<Vec<String>>(codec, &payload), codec, 0, &[], Freshness::default());
            }
        }

        /// A stored value cut short, or with bytes appended, is never read as a value,
        /// whatever the codec and the type.
        #[test]
        fn cut_or_extended_values_are_never_values(
            unsigned in proptest::num::u64::ANY,
            signed in proptest::num::i64::ANY,
            float in -1e300f64..1e300,
            text in "\\PC{0,40}",
            id in proptest::num::u64::ANY,
            numbers in proptest::collection::vec(proptest::num::u32::ANY, 0..16),
            maybe in proptest::option::of("\\PC{0,20}"),
            extra in proptest::collection::vec(proptest::num::u8::ANY, 1..16),
        ) {
            for codec in CODECS {
                never_a_value_when_cut_or_extended(&unsigned, codec, &extra)?;
                never_a_value_when_cut_or_extended(&signed, codec, &extra)?;
                never_a_value_when_cut_or_extended(&float, codec, &extra)?;
                never_a_value_when_cut_or_extended(&text, codec, &extra)?;
                never_a_value_when_cut_or_extended(&Product { id, name: text.clone() }, codec, &extra)?;
                never_a_value_when_cut_or_extended(&numbers, codec, &extra)?;
                never_a_value_when_cut_or_extended(&maybe, codec, &extra)?;
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

    /// Every strict prefix of `value`'s stored bytes, and the bytes with `extra` appended,
    /// decode as anything but a value; the bytes themselves decode as the value.
    fn never_a_value_when_cut_or_extended<T: Serialize + DeserializeOwned + std::fmt::Debug>(
        value: &T,
        codec: Codec,
        extra: &[u8],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let bytes = encode_value(value, codec, 0, &[], None).unwrap();
        let read = |bytes: &[u8]| decode::<T>(bytes, codec, 0, &[], Freshness::default());
        proptest::prop_assert!(matches!(read(&bytes), Decoded::Value(_)), "{codec:?} {value:?}");
        for cut in 0..bytes.len() {
            let decoded = read(&bytes[..cut]);
            proptest::prop_assert!(
                !matches!(decoded, Decoded::Value(_)),
                "{codec:?} {value:?} cut to {cut} bytes read as {decoded:?}"
            );
        }
        let mut extended = bytes.clone();
        extended.extend(extra);
        let decoded = read(&extended);
        proptest::prop_assert!(
            !matches!(decoded, Decoded::Value(_)),
            "{codec:?} {value:?} with {extra:?} appended read as {decoded:?}"
        );
        Ok(())
    }
}
