//! Rendering keys: escaping placeholder values and adding the prefix and hash tag.
//!
//! A full key is `<prefix>{<rendered>}`: the braces are a Redis Cluster hash tag, so
//! the value, its lease (`<full key>:lease`) and its fence (`<full key>:fence`) always
//! share one slot. A template that
//! already has a `{...}` tag keeps it and gets no second one. Placeholder values are
//! percent-encoded where they could forge structure: `%`, `{`, `}`, `:`, whitespace,
//! control characters, and every character the template puts between placeholders.

use std::fmt::{self, Write};

/// Characters every placeholder value escapes, whatever the template.
const ALWAYS_ESCAPED: &[char] = &['%', '{', '}', ':'];

/// Builds the rendered key of one call; the expansion of `#[redis_cached]` drives it.
#[derive(Debug)]
pub struct KeyBuilder {
    key: String,
    separators: &'static str,
}

impl KeyBuilder {
    /// Starts a key of `capacity` bytes (a first guess) whose placeholder values also
    /// escape every char of `separators`. When a key has several values, pass the text
    /// between them as `separators`, or two different argument lists could build the
    /// same key (`("1:2", "3")` and `("1", "2:3")` around a `:` when `:` is not passed).
    #[must_use]
    pub fn new(capacity: usize, separators: &'static str) -> Self {
        Self {
            key: String::with_capacity(capacity),
            separators,
        }
    }

    /// Appends template text as is.
    pub fn literal(&mut self, text: &str) {
        self.key.push_str(text);
    }

    /// Appends a placeholder value, rendered with `Display` and escaped.
    pub fn value<D: fmt::Display + ?Sized>(&mut self, value: &D) {
        let mut escaper = Escaper {
            out: &mut self.key,
            separators: self.separators,
        };
        // ok: writing into a String never fails; a Display impl that errors only truncates.
        let _ = write!(escaper, "{value}");
    }

    /// The rendered key, without prefix or hash tag.
    #[must_use]
    pub fn finish(self) -> String {
        self.key
    }
}

struct Escaper<'a> {
    out: &'a mut String,
    separators: &'static str,
}

impl Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if ALWAYS_ESCAPED.contains(&c) || c.is_whitespace() || c.is_control() || self.separators.contains(c) {
                let mut utf8 = [0u8; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    write!(self.out, "%{byte:02X}")?;
                }
            } else {
                self.out.push(c);
            }
        }
        Ok(())
    }
}

/// Whether `key` has a Redis Cluster hash tag: a `{` followed later by a `}` with at
/// least one character between them (the rule Redis itself applies).
pub(crate) fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .is_some_and(|open| key[open + 1..].find('}').is_some_and(|len| len > 0))
}

/// `<prefix>{<rendered>}`, or `<prefix><rendered>` when the template carries a tag.
pub(crate) fn full_key(prefix: &str, rendered: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + rendered.len() + 2);
    key.push_str(prefix);
    if has_hash_tag(rendered) {
        key.push_str(rendered);
    } else {
        key.push('{');
        key.push_str(rendered);
        key.push('}');
    }
    key
}

/// The version key of a tag: `<prefix>tag:{<rendered tag>}`.
pub(crate) fn tag_key(prefix: &str, rendered: &str) -> String {
    format!("{prefix}tag:{{{rendered}}}")
}

/// The exclusive lease of a value (`lock`): same hash tag, so the same slot.
pub(crate) fn lease_key(full_key: &str) -> String {
    format!("{full_key}:lease")
}

/// The fence of a value's unlocked loads: same hash tag, so the same slot.
pub(crate) fn fence_key(full_key: &str) -> String {
    format!("{full_key}:fence")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str) -> String {
        let mut k = KeyBuilder::new(16, ":");
        k.literal("pair:");
        k.value(a);
        k.literal(":");
        k.value(b);
        k.finish()
    }

    #[test]
    fn separators_in_values_cannot_forge_keys() {
        assert_ne!(pair("1:2", "3"), pair("1", "2:3"));
        assert_eq!(pair("1:2", "3"), "pair:1%3A2:3");
    }

    #[test]
    fn values_cannot_add_a_hash_tag() {
        let mut k = KeyBuilder::new(16, "");
        k.literal("user:");
        k.value("{evil}");
        let rendered = k.finish();
        assert!(!has_hash_tag(&rendered));
        assert_eq!(full_key("app:", &rendered), "app:{user:%7Bevil%7D}");
    }

    #[test]
    fn template_separators_are_escaped_too() {
        let mut k = KeyBuilder::new(16, "-");
        k.value("a-b");
        k.literal("-");
        k.value(&7);
        assert_eq!(k.finish(), "a%2Db-7");
    }

    #[test]
    fn user_hash_tag_is_kept() {
        assert_eq!(full_key("p:", "user:{42}:orders"), "p:user:{42}:orders");
        assert_eq!(full_key("p:", "odd:{}:x"), "p:{odd:{}:x}");
        assert_eq!(lease_key("p:{a}"), "p:{a}:lease");
        assert_eq!(fence_key("p:{a}"), "p:{a}:fence");
    }

    #[test]
    fn non_ascii_is_escaped_bytewise_only_when_needed() {
        let mut k = KeyBuilder::new(16, "");
        k.value("café bar");
        assert_eq!(k.finish(), "café%20bar");
    }

    /// Reverses the escaping, to prove it loses nothing.
    fn unescape(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// A small alphabet full of separators, so a broken escaping would collide often.
    const HOSTILE: &str = "[a:%{}7 \\-é]{0,6}";

    proptest::proptest! {
        #[test]
        fn distinct_argument_pairs_render_distinct_keys(
            a1 in HOSTILE, b1 in HOSTILE, a2 in HOSTILE, b2 in HOSTILE,
        ) {
            if (a1.as_str(), b1.as_str()) != (a2.as_str(), b2.as_str()) {
                proptest::prop_assert_ne!(pair(&a1, &b1), pair(&a2, &b2));
            }
        }

        #[test]
        fn escaping_loses_nothing(value in "\\PC{0,24}", separators in "[:/|.-]{0,3}") {
            let separators: &'static str = Box::leak(separators.into_boxed_str());
            let mut k = KeyBuilder::new(8, separators);
            k.value(&value);
            let rendered = k.finish();
            proptest::prop_assert_eq!(unescape(&rendered), value);
            proptest::prop_assert!(!rendered.contains(['{', '}', ':']), "unescaped structure in {}", rendered);
            proptest::prop_assert!(!rendered.chars().any(|c| separators.contains(c)));
        }

        /// Untrusted values cannot leave the prefix's namespace or pick the hash slot.
        #[test]
        fn values_stay_inside_their_namespace_and_slot(value in "\\PC{0,24}") {
            let mut k = KeyBuilder::new(8, "");
            k.literal("user:");
            k.value(&value);
            let full = full_key("app:", &k.finish());
            proptest::prop_assert!(full.starts_with("app:{user:"), "left the namespace: {}", full);
            proptest::prop_assert!(full.ends_with('}'), "left the hash tag: {}", full);
            // The hash tag is exactly the wrapped key: one `{`, one `}`.
            proptest::prop_assert_eq!(full.matches('{').count(), 1);
            proptest::prop_assert_eq!(full.matches('}').count(), 1);
        }
    }
}
