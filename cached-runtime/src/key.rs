//! Rendering keys: escaping placeholder values and adding the prefix and hash tag.
//!
//! A full key is `<prefix>{<rendered>}`: the braces are a Redis Cluster hash tag, so
//! the value, its lease (`<full key>:lease`) and its fence (`<full key>:fence`) always
//! share one slot. A template that already has a `{...}` tag keeps it and gets no second
//! one.
//!
//! # No value can forge another key
//! A value keeps the safe characters `A-Z a-z 0-9 _ . -` and writes every other UTF-8
//! byte as `%XX` (uppercase hex), `%` included. `#[redis_cached]` accepts a template
//! only when a `:` in its text is followed by a placeholder (or by `{` and a
//! placeholder), every placeholder follows such a `:` or `:{`, the text right after a
//! placeholder is empty or starts with a character outside the safe set other than `%`
//! and `{`, its text has no `%`, and it does not start with `{`.
//!
//! Split a rendered key at `:`: values contain none, and every `:` of the text marks a
//! value, so the first piece is the template's leading text and each later piece is an
//! optional `{`, one value (the longest run of safe characters and `%XX`, maybe empty),
//! then the text that follows the value, which starts with a character no value
//! contains, and not with `{` (or an empty value after `:` could not be told from one
//! after `:{`). A rendered key thus gives back its template's text and every value: two
//! templates, or one template with two lists of values, never render the same key
//! (templates that differ only in their placeholder names are the same template, on
//! purpose: a `#[redis_invalidate]` key names a `#[redis_cached]` one that way). A
//! rendered key never starts with `{`, so `full_key`'s braces can be told from a
//! template's own, and full keys are as distinct as rendered ones.
//!
//! The cache's own keys stay apart too. A full key with the added braces ends with `}`,
//! so it never ends with `:lease` or `:fence`; one with its own hash tag could only if
//! its template ended with a placeholder (the value `lease`), which the attribute
//! rejects for such templates. A tag version `<prefix>tag:{...}` would need a template
//! starting with `tag:{`, which the attribute rejects for keys.

use std::fmt::{self, Write};

/// Whether a value keeps `byte` as is; every other byte of a value is written `%XX`.
/// The attribute's template checks (`cached-macro/src/key.rs`) rely on this set.
fn is_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

/// A value a key placeholder can take: every `Display` type. Never implemented by hand;
/// [`KeyBuilder::value`] takes it so that a placeholder whose value has no `Display` is
/// reported in a key's words, under the key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a key placeholder's value",
    label = "a key placeholder's value must implement `Display`",
    note = "name a field of it that implements `Display` instead, as `<param.field>` or `<return.field>`, or a tuple field, as `<param.0>`"
)]
pub trait PlaceholderValue: fmt::Display {}

impl<T: fmt::Display + ?Sized> PlaceholderValue for T {}

/// Builds the rendered key of one call; the expansion of `#[redis_cached]` drives it.
///
/// Built by hand, keys stay apart from each other and from the attribute's when their
/// literal text follows the template rules of `#[redis_cached]`'s `key` argument: a `:`
/// (or `:{`) before every value and nowhere else, text after a value starting with a
/// character such as `/` or `}`, no `%`, no `{` first.
#[derive(Debug)]
pub struct KeyBuilder {
    key: String,
}

impl KeyBuilder {
    /// Starts a key; `capacity` is a first guess at its length in bytes.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            key: String::with_capacity(capacity),
        }
    }

    /// Appends template text as is.
    pub fn literal(&mut self, text: &str) {
        self.key.push_str(text);
    }

    /// Appends a placeholder value, rendered with `Display`: characters other than
    /// `A-Z a-z 0-9 _ . -` are percent-encoded byte by byte (`%3A` for `:`, `%C3%A9`
    /// for `é`).
    pub fn value<D: PlaceholderValue + ?Sized>(&mut self, value: &D) {
        let mut escaper = Escaper { out: &mut self.key };
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
}

impl Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut safe_from = 0;
        for (at, &byte) in s.as_bytes().iter().enumerate() {
            if !is_safe(byte) {
                // The bytes since the last escape are ASCII, so both ends are char boundaries.
                if safe_from < at {
                    self.out.push_str(&s[safe_from..at]);
                }
                self.out.push('%');
                self.out.push(char::from(HEX[usize::from(byte >> 4)]));
                self.out.push(char::from(HEX[usize::from(byte & 0x0F)]));
                safe_from = at + 1;
            }
        }
        self.out.push_str(&s[safe_from..]);
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
    use proptest::prelude::*;

    use super::*;

    fn escaped(value: &str) -> String {
        let mut k = KeyBuilder::new(8);
        k.value(value);
        k.finish()
    }

    #[test]
    fn ordinary_ids_stay_readable() {
        for id in ["42", "alice", "SKU_7.b-2", "67e55044-10b1-426f-9247-bb680e5fe0c8"] {
            assert_eq!(escaped(id), id);
        }
    }

    #[test]
    fn every_other_character_is_escaped_bytewise() {
        assert_eq!(escaped("a:b"), "a%3Ab");
        assert_eq!(escaped("50%"), "50%25");
        assert_eq!(escaped("{x}/y z"), "%7Bx%7D%2Fy%20z");
        assert_eq!(escaped("café"), "caf%C3%A9");
        assert_eq!(escaped("é€"), "%C3%A9%E2%82%AC");
    }

    /// Regression: `user:<name>` with `alice/avatar` rendered the key of
    /// `user:<id>/avatar` with `alice`.
    #[test]
    fn a_value_cannot_pass_for_the_text_of_another_template() {
        let mut name = KeyBuilder::new(16);
        name.literal("user:");
        name.value("alice/avatar");
        let mut avatar = KeyBuilder::new(16);
        avatar.literal("user:");
        avatar.value("alice");
        avatar.literal("/avatar");
        let (name, avatar) = (name.finish(), avatar.finish());
        assert_eq!(name, "user:alice%2Favatar");
        assert_eq!(avatar, "user:alice/avatar");
    }

    #[test]
    fn separators_in_values_cannot_forge_keys() {
        let pair = |a: &str, b: &str| {
            let mut k = KeyBuilder::new(16);
            k.literal("pair:");
            k.value(a);
            k.literal(":");
            k.value(b);
            k.finish()
        };
        assert_ne!(pair("1:2", "3"), pair("1", "2:3"));
        assert_eq!(pair("1:2", "3"), "pair:1%3A2:3");
    }

    #[test]
    fn values_cannot_add_a_hash_tag() {
        let mut k = KeyBuilder::new(16);
        k.literal("user:");
        k.value("{evil}");
        let rendered = k.finish();
        assert!(!has_hash_tag(&rendered));
        assert_eq!(full_key("app:", &rendered), "app:{user:%7Bevil%7D}");
    }

    #[test]
    fn user_hash_tag_is_kept() {
        assert_eq!(full_key("p:", "user:{42}/orders"), "p:user:{42}/orders");
        assert_eq!(full_key("p:", "odd:{}/x"), "p:{odd:{}/x}");
        assert_eq!(lease_key("p:{a}"), "p:{a}:lease");
        assert_eq!(fence_key("p:{a}"), "p:{a}:fence");
    }

    /// What the attribute's two key-only rules prevent: a template with its own hash tag
    /// ending in a placeholder renders another key's lease, and one starting with `tag:{`
    /// renders a tag version.
    #[test]
    fn the_key_only_rules_keep_the_caches_own_keys_apart() {
        assert_eq!(full_key("p:", "user:{1}:lease"), lease_key(&full_key("p:", "user:{1}")));
        assert_eq!(full_key("p:", "tag:{7}"), tag_key("p:", "7"));
    }

    /// Why the text after a placeholder cannot start with `{`: `a:<x>{b` with an empty
    /// value would render `a:{<x>` with `b`.
    #[test]
    fn text_after_a_value_cannot_start_with_a_brace() {
        let braced = Template {
            leading: "a".to_owned(),
            parts: vec![(true, String::new())],
        };
        let after = Template {
            leading: "a".to_owned(),
            parts: vec![(false, "{b".to_owned())],
        };
        assert_eq!(braced.render(&["b".to_owned()]), after.render(&[String::new()]));
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

    /// A template of the grammar `#[redis_cached]` enforces.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Template {
        /// The text before the first `:`.
        leading: String,
        /// Per placeholder: whether `:{` marks it (else `:`), and the text after its value.
        parts: Vec<(bool, String)>,
    }

    impl Template {
        fn render(&self, values: &[String]) -> String {
            let mut k = KeyBuilder::new(32);
            k.literal(&self.leading);
            for ((braced, after), value) in self.parts.iter().zip(values) {
                k.literal(if *braced { ":{" } else { ":" });
                k.value(value);
                k.literal(after);
            }
            k.finish()
        }

        /// The two rules the attribute adds for keys (tags are always wrapped).
        fn is_a_valid_key(&self) -> bool {
            let probe = self.render(&vec!["x".to_owned(); self.parts.len()]);
            let ends_with_bare_value = self
                .parts
                .last()
                .is_some_and(|(braced, after)| !braced && after.is_empty());
            let tag_namespace = self.leading == "tag" && self.parts.first().is_some_and(|(braced, _)| *braced);
            !(has_hash_tag(&probe) && ends_with_bare_value || tag_namespace)
        }
    }

    /// Reads a full key back into its template and values, as the module docs argue.
    fn parse_back(prefix: &str, full: &str) -> (Template, Vec<String>) {
        let rest = full.strip_prefix(prefix).unwrap();
        let rendered = match rest.strip_prefix('{') {
            Some(wrapped) => wrapped.strip_suffix('}').unwrap(),
            None => rest,
        };
        let mut pieces = rendered.split(':');
        let leading = pieces.next().unwrap().to_owned();
        let (mut parts, mut values) = (Vec::new(), Vec::new());
        for piece in pieces {
            let (braced, piece) = piece.strip_prefix('{').map_or((false, piece), |p| (true, p));
            let end = piece.find(|c: char| !(c.is_ascii() && is_safe(c as u8) || c == '%'));
            let (value, after) = piece.split_at(end.unwrap_or(piece.len()));
            values.push(unescape(value));
            parts.push((braced, after.to_owned()));
        }
        (Template { leading, parts }, values)
    }

    const PREFIX: &str = "app:";

    fn template() -> impl Strategy<Value = Template> {
        let leading = prop_oneof![
            "[a-z{}/ #é-]{0,4}".prop_map(|text| text.trim_start_matches('{').to_owned()),
            Just("tag".to_owned()),
        ];
        // Not `{` first: see `text_after_a_value_cannot_start_with_a_brace`.
        let after = prop_oneof![Just(String::new()), "[/|#}][a-z0-9_./{}-]{0,3}"];
        (leading, prop::collection::vec((any::<bool>(), after), 0..=3))
            .prop_map(|(leading, parts)| Template { leading, parts })
            .prop_filter("the attribute rejects it", Template::is_a_valid_key)
    }

    /// Values made to collide: empty, separators, braces, `%`, and the cache's own words.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a:%{}/ \\-é0-9_.]{0,5}",
            Just(String::new()),
            Just("lease".to_owned()),
            Just("fence".to_owned()),
            Just("tag".to_owned()),
            Just("%3A".to_owned()),
        ]
    }

    fn call() -> impl Strategy<Value = (Template, Vec<String>)> {
        template().prop_flat_map(|template| {
            let n = template.parts.len();
            (Just(template), prop::collection::vec(value(), n))
        })
    }

    proptest! {
        // Rendering is cheap: many cases, so rare shapes (empty values next to braces) come up.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn distinct_templates_or_values_render_distinct_full_keys(a in call(), b in call()) {
            let full_a = full_key(PREFIX, &a.0.render(&a.1));
            let full_b = full_key(PREFIX, &b.0.render(&b.1));
            if a != b {
                prop_assert_ne!(full_a, full_b);
            }
        }

        #[test]
        fn a_full_key_gives_back_its_template_and_values((template, values) in call()) {
            let full = full_key(PREFIX, &template.render(&values));
            prop_assert_eq!(parse_back(PREFIX, &full), (template, values));
        }

        #[test]
        fn full_keys_never_name_a_lease_a_fence_or_a_tag((template, values) in call()) {
            let full = full_key(PREFIX, &template.render(&values));
            prop_assert!(!full.ends_with(":lease") && !full.ends_with(":fence"), "{}", full);
            prop_assert!(!full.starts_with("app:tag:{"), "{}", full);
        }

        #[test]
        fn escaping_loses_nothing(value in "\\PC{0,24}") {
            let rendered = escaped(&value);
            prop_assert_eq!(unescape(&rendered), value);
            // Only safe bytes and `%XX` escapes.
            let bytes = rendered.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
                    prop_assert!(hex.len() == 2 && hex.iter().all(|h| matches!(h, b'0'..=b'9' | b'A'..=b'F')), "{}", rendered);
                    i += 3;
                } else {
                    prop_assert!(is_safe(bytes[i]), "unescaped byte in {}", rendered);
                    i += 1;
                }
            }
        }

        /// Untrusted values cannot leave the prefix's namespace or pick the hash slot.
        #[test]
        fn values_stay_inside_their_namespace_and_slot(value in "\\PC{0,24}") {
            let mut k = KeyBuilder::new(8);
            k.literal("user:");
            k.value(&value);
            let full = full_key("app:", &k.finish());
            prop_assert!(full.starts_with("app:{user:"), "left the namespace: {}", full);
            prop_assert!(full.ends_with('}'), "left the hash tag: {}", full);
            // The hash tag is exactly the wrapped key: one `{`, one `}`.
            prop_assert_eq!(full.matches('{').count(), 1);
            prop_assert_eq!(full.matches('}').count(), 1);
        }
    }
}
