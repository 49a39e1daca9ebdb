//! The key-template mini-language: `"product:<id>"`, `"user:<user.id>:<self.region>"`.
//!
//! A pure parser and checker: text between `<` and `>` is a placeholder naming a
//! parameter (or `self`, or `return`, the fn's result) and optional fields; everything
//! else is literal text. `check`
//! enforces the grammar that keeps every rendered key apart from every other, in every
//! template: a `:` in the text marks a value (it is followed by a placeholder, or by `{`
//! and one), the text after a value starts with a character values escape, and the
//! text has no `%`. The runtime's `key.rs` says why that is enough.

/// What a template names: the messages say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Key,
    Tag,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Tag => "tag",
        }
    }
}

/// Whether a rendered value keeps `c` as is: the runtime's `KeyBuilder` percent-encodes
/// every other character, so the two must agree.
fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Whether `key` has a Redis Cluster hash tag, by the rule the runtime and Redis apply.
fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .is_some_and(|open| key[open + 1..].find('}').is_some_and(|len| len > 0))
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// `<root.field.field>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder {
    pub(crate) root: String,
    pub(crate) fields: Vec<String>,
}

impl Placeholder {
    /// The root that names the fn's successful result: a keyword, so no parameter has it.
    pub(crate) const RETURN: &'static str = "return";

    /// Whether it names the fn's result rather than a parameter.
    pub(crate) fn is_return(&self) -> bool {
        self.root == Self::RETURN
    }

    pub(crate) fn text(&self) -> String {
        let mut text = format!("<{}", self.root);
        for field in &self.fields {
            text.push('.');
            text.push_str(field);
        }
        text.push('>');
        text
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) segments: Vec<Segment>,
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        if text.is_empty() {
            return Err("the key template is empty; write one like `\"product:<id>\"`".to_owned());
        }
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('>') else {
                return Err(format!(
                    "unclosed `<` in key template `{text}`; placeholders look like `<param>`"
                ));
            };
            let inner = &after[..close];
            segments.push(Segment::Placeholder(parse_placeholder(inner)?));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(Template { segments })
    }

    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Placeholder(p) => Some(p),
            Segment::Literal(_) => None,
        })
    }

    /// Whether a placeholder names the fn's result.
    pub(crate) fn names_return(&self) -> bool {
        self.placeholders().any(Placeholder::is_return)
    }

    /// The length of the literal text, a good first guess at the key's capacity.
    pub(crate) fn literal_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(text) => text.len(),
                Segment::Placeholder(_) => 8,
            })
            .sum()
    }
}

/// The grammar: what `check` enforces and `fixed` repairs.
impl Template {
    /// Checks the grammar that keeps rendered keys apart: one message per broken rule,
    /// each ending with the template written so that every rule holds. `name` (the fn's)
    /// starts a template that must not start with a placeholder.
    pub(crate) fn check(&self, kind: Kind, name: &str) -> Vec<String> {
        let violations = self.violations(kind);
        if violations.is_empty() {
            return Vec::new();
        }
        let (original, fixed) = (self.source(), self.fixed(kind, name).source());
        violations
            .iter()
            .map(|violation| format!("{}; write `{fixed}` instead of `{original}`", violation.message(kind)))
            .collect()
    }

    /// The template as written.
    fn source(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => text.clone(),
                Segment::Placeholder(p) => p.text(),
            })
            .collect()
    }

    fn violations(&self, kind: Kind) -> Vec<Violation> {
        let source = self.source();
        let mut found = Vec::new();
        if source.starts_with('{') {
            found.push(Violation::LeadingBrace);
        }
        if kind == Kind::Key && source.starts_with("tag:{") {
            found.push(Violation::TagNamespace);
        }
        if self
            .segments
            .iter()
            .filter_map(Segment::literal)
            .any(|text| text.contains('%'))
        {
            found.push(Violation::Percent);
        }
        for (i, segment) in self.segments.iter().enumerate() {
            let previous = i.checked_sub(1).map(|i| &self.segments[i]);
            match (segment, previous) {
                (Segment::Literal(text), _) => {
                    if self.has_stray_colon(i) && !found.contains(&Violation::StrayColon) {
                        found.push(Violation::StrayColon);
                    }
                    if let (Some(Segment::Placeholder(p)), Some(first)) = (previous, text.chars().next())
                        && (is_safe(first) || first == '{')
                    {
                        found.push(Violation::Glued(p.text(), first));
                    }
                }
                (Segment::Placeholder(_), Some(Segment::Literal(text)))
                    if text.ends_with(':') || text.ends_with(":{") || i == 1 && text == "{" => {}
                (Segment::Placeholder(p), _) => found.push(Violation::Unmarked(p.text())),
            }
        }
        if kind == Kind::Key && self.could_have_hash_tag() && self.ends_with_bare_value() {
            found.push(Violation::BareValueLast);
        }
        found
    }

    /// Whether the literal at `index` has a `:` not followed by a placeholder (or by `{`
    /// and one).
    fn has_stray_colon(&self, index: usize) -> bool {
        let Some(Segment::Literal(text)) = self.segments.get(index) else {
            return false;
        };
        let before_placeholder = matches!(self.segments.get(index + 1), Some(Segment::Placeholder(_)));
        text.match_indices(':')
            .any(|(at, _)| !(before_placeholder && matches!(&text[at + 1..], "" | "{")))
    }

    /// Whether some values give the rendered key a hash tag of its own (values add no
    /// braces, and make the tag's content empty only when they are empty).
    fn could_have_hash_tag(&self) -> bool {
        let probe: String = self
            .segments
            .iter()
            .map(|segment| segment.literal().unwrap_or("x"))
            .collect();
        has_hash_tag(&probe)
    }

    /// Whether the template ends with `:<placeholder>`, so a key can end with `:lease`.
    fn ends_with_bare_value(&self) -> bool {
        let [.., before, Segment::Placeholder(_)] = self.segments.as_slice() else {
            return matches!(self.segments.as_slice(), [Segment::Placeholder(_)]);
        };
        !matches!(before, Segment::Literal(text) if text.ends_with('{'))
    }

    /// The template with every rule repaired, for the suggestion; a valid one is kept.
    fn fixed(&self, kind: Kind, name: &str) -> Template {
        let mut segments = self.segments.clone();
        unwrap_leading_brace(&mut segments);
        if segments.is_empty() {
            segments.push(Segment::Literal(name.to_owned()));
        }
        let unwrapped = Template { segments };
        let mut fixed = Vec::with_capacity(unwrapped.segments.len() + 2);
        for (i, segment) in unwrapped.segments.iter().enumerate() {
            if let Segment::Literal(text) = segment {
                fixed.push(Segment::Literal(unwrapped.fixed_text(i, text)));
                continue;
            }
            let leading = fixed.len() == 1;
            match fixed.last_mut() {
                None => fixed.push(Segment::Literal(format!("{name}:"))),
                Some(Segment::Placeholder(_)) => fixed.push(Segment::Literal(":".to_owned())),
                Some(Segment::Literal(text)) => mark(text, leading, name),
            }
            fixed.push(segment.clone());
        }
        let mut fixed = Template { segments: fixed };
        if kind == Kind::Key {
            if let Some(Segment::Literal(text)) = fixed.segments.first_mut()
                && text == "tag:{"
            {
                "tags:{".clone_into(text);
            }
            if fixed.could_have_hash_tag() && fixed.ends_with_bare_value() {
                fixed.segments.push(Segment::Literal("/".to_owned()));
            }
        }
        fixed
    }

    /// The literal at `index` without `%` and stray `:`, starting with `/` if it follows
    /// a placeholder and would start with a character values keep, or `{`.
    fn fixed_text(&self, index: usize, text: &str) -> String {
        let before_placeholder = matches!(self.segments.get(index + 1), Some(Segment::Placeholder(_)));
        let mut fixed = String::with_capacity(text.len() + 1);
        for (at, c) in text.char_indices() {
            match c {
                '%' if index > 0 && at == 0 => fixed.push('/'),
                '%' => fixed.push('-'),
                ':' if !(before_placeholder && matches!(&text[at + 1..], "" | "{")) => fixed.push('/'),
                _ => fixed.push(c),
            }
        }
        if index > 0 && fixed.starts_with(|c: char| is_safe(c) || c == '{') {
            fixed.insert(0, '/');
        }
        fixed
    }
}

impl Segment {
    fn literal(&self) -> Option<&str> {
        match self {
            Segment::Literal(text) => Some(text),
            Segment::Placeholder(_) => None,
        }
    }
}

/// `{user}:<id>` becomes `user:<id>`: drops a leading `{` with the first `}` after it,
/// unless the `{` opens a placeholder's hash tag (`{<id>}`), which `mark` repairs.
fn unwrap_leading_brace(segments: &mut Vec<Segment>) {
    while let [Segment::Literal(first), rest @ ..] = segments.as_mut_slice()
        && first.starts_with('{')
        && !(first == "{" && matches!(rest.first(), Some(Segment::Placeholder(_))))
    {
        first.remove(0);
        let closing = std::iter::once(first)
            .chain(rest.iter_mut().filter_map(|segment| match segment {
                Segment::Literal(text) => Some(text),
                Segment::Placeholder(_) => None,
            }))
            .find_map(|text| text.find('}').map(|at| (text, at)));
        if let Some((text, at)) = closing {
            text.remove(at);
        }
        segments.retain(|segment| segment.literal() != Some(""));
    }
}

/// Ends the literal before a placeholder with the `:` that marks it.
fn mark(text: &mut String, leading: bool, name: &str) {
    if text.ends_with(':') || text.ends_with(":{") {
        return;
    }
    if leading && text == "{" {
        *text = format!("{name}:{{");
    } else if let Some(open) = text.strip_suffix('{') {
        *text = format!("{}:{{", open.trim_end());
    } else {
        let kept = text.trim_end().len();
        text.truncate(kept);
        text.push(':');
    }
}

/// One broken rule of the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Violation {
    /// A `:` not followed by a placeholder (or by `{` and one).
    StrayColon,
    /// A placeholder that does not follow `:` or `:{`.
    Unmarked(String),
    /// Text right after a placeholder that starts with this character: one values keep,
    /// or `{`.
    Glued(String, char),
    /// `%` in the text.
    Percent,
    /// The template starts with `{`.
    LeadingBrace,
    /// A key template starting with `tag:{`.
    TagNamespace,
    /// A key template with its own hash tag that ends with a placeholder.
    BareValueLast,
}

impl Violation {
    fn message(&self, kind: Kind) -> String {
        let kind = kind.name();
        match self {
            Violation::StrayColon => {
                format!("`:` in a {kind} template marks a value and must be followed by a placeholder")
            }
            Violation::Unmarked(placeholder) => {
                format!(
                    "`{placeholder}` must come right after a `:` (or `:{{`), which marks a value in a {kind} template"
                )
            }
            Violation::Glued(placeholder, '{') => {
                format!(
                    "the text right after `{placeholder}` cannot start with `{{`, or an empty value could pass for one after `:{{`"
                )
            }
            Violation::Glued(placeholder, first) => format!(
                "the text right after `{placeholder}` must start with a character values escape, such as `/`, \
                 not `{first}`, which a value could end with"
            ),
            Violation::Percent => {
                format!("`%` cannot be in a {kind} template's text: it starts an escape in values")
            }
            Violation::LeadingBrace => {
                format!("a {kind} template cannot start with `{{`: the cache adds the outer hash tag itself")
            }
            Violation::TagNamespace => {
                "a key template cannot start with `tag:{`, which the cache uses for tag versions".to_owned()
            }
            Violation::BareValueLast => "a key template with its own hash tag cannot end with a placeholder, or \
                                         the values `lease` and `fence` would name another key's lease and fence"
                .to_owned(),
        }
    }
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, String> {
    if inner.trim().is_empty() {
        return Err("empty placeholder `<>` in key template; name a parameter, e.g. `<id>`".to_owned());
    }
    let mut parts = inner.split('.');
    let root = parts.next().unwrap_or_default();
    let fields: Vec<&str> = parts.collect();
    let root_ok = root == "self"
        || root == Placeholder::RETURN
        || is_ident(root) && !root.starts_with(|c: char| c.is_ascii_digit());
    if !root_ok || !fields.iter().all(|field| is_ident(field)) {
        return Err(format!(
            "`<{inner}>` is not a placeholder; write a parameter name, optionally with fields: \
             `<param>` or `<param.field>`"
        ));
    }
    Ok(Placeholder {
        root: root.to_owned(),
        fields: fields.into_iter().map(str::to_owned).collect(),
    })
}

/// A Rust identifier (as `syn` parses it, so the expansion can name it) or a tuple index.
fn is_ident(text: &str) -> bool {
    syn::parse_str::<syn::Ident>(text).is_ok() || !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(text: &str) -> Segment {
        Segment::Literal(text.to_owned())
    }

    fn ph(root: &str, fields: &[&str]) -> Segment {
        Segment::Placeholder(Placeholder {
            root: root.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        })
    }

    #[test]
    fn parses_literals_and_placeholders() {
        let t = Template::parse("product:<id>").unwrap();
        assert_eq!(t.segments, vec![lit("product:"), ph("id", &[])]);
        let t = Template::parse("u:<user.id>:<self.region>:x").unwrap();
        assert_eq!(
            t.segments,
            vec![
                lit("u:"),
                ph("user", &["id"]),
                lit(":"),
                ph("self", &["region"]),
                lit(":x")
            ]
        );
        let t = Template::parse("pair:<p.0>").unwrap();
        assert_eq!(t.segments, vec![lit("pair:"), ph("p", &["0"])]);
    }

    #[test]
    fn return_is_a_root_naming_the_result() {
        let t = Template::parse("category:<return.before.category_id>").unwrap();
        assert_eq!(
            t.segments,
            vec![lit("category:"), ph("return", &["before", "category_id"])]
        );
        assert!(t.names_return());
        let t = Template::parse("product:<id>:<return>:<return.0>").unwrap();
        assert_eq!(
            t.segments,
            vec![
                lit("product:"),
                ph("id", &[]),
                lit(":"),
                ph("return", &[]),
                lit(":"),
                ph("return", &["0"])
            ]
        );
        assert!(t.names_return());
        assert!(!Template::parse("product:<id>").unwrap().names_return());
        assert!(
            !Template::parse("product:<returned>").unwrap().names_return(),
            "only the whole root"
        );
    }

    #[test]
    fn return_is_accepted_only_as_a_root() {
        for text in [
            "p:<self.return>",
            "p:<row.return>",
            "p:<return.return>",
            "p:<return.>",
            "p:<.return>",
        ] {
            assert!(
                Template::parse(text).unwrap_err().contains("is not a placeholder"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_template_naming_the_result_follows_the_same_rules() {
        assert!(errors("category:<return.category_id>", Kind::Tag).is_empty());
        assert!(
            errors("category<return.category_id>", Kind::Tag)[0]
                .ends_with("write `category:<return.category_id>` instead of `category<return.category_id>`")
        );
    }

    #[test]
    fn rejects_malformed_templates() {
        assert!(Template::parse("product:<id").unwrap_err().contains("unclosed `<`"));
        assert!(Template::parse("p:<>").unwrap_err().contains("empty placeholder"));
        assert!(Template::parse("p:<a b>").unwrap_err().contains("is not a placeholder"));
        assert!(
            Template::parse("p:<a.fn>")
                .unwrap_err()
                .contains("is not a placeholder"),
            "a keyword"
        );
        assert!(Template::parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn text_without_placeholders_is_one_literal() {
        assert_eq!(Template::parse("settings").unwrap().segments, vec![lit("settings")]);
    }

    fn errors(text: &str, kind: Kind) -> Vec<String> {
        Template::parse(text).unwrap().check(kind, "get")
    }

    #[test]
    fn accepts_templates_that_keep_keys_apart() {
        for text in [
            "product:<id>",
            "pair:<a>:<b>",
            "user:<id>/orders",
            "user:<id>/orders:<page>",
            "user:{<id>}",
            "user:{<id>}/orders",
            "order:<no>:{<user.id>}",
            "category-page:<c>",
            "settings",
            "u:<user.id>:<self.region>",
            "a b|c:<x>|y#z@w é",
            ":<id>",
        ] {
            assert_eq!(errors(text, Kind::Key), Vec::<String>::new(), "{text}");
            assert_eq!(errors(text, Kind::Tag), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn a_colon_must_mark_a_value() {
        assert_eq!(
            errors("user:<id>:orders", Kind::Key),
            [
                "`:` in a key template marks a value and must be followed by a placeholder; \
              write `user:<id>/orders` instead of `user:<id>:orders`"
            ]
        );
        assert_eq!(
            errors("app:settings", Kind::Tag),
            [
                "`:` in a tag template marks a value and must be followed by a placeholder; \
              write `app/settings` instead of `app:settings`"
            ]
        );
        assert!(errors("a:b:c:<x>", Kind::Key)[0].ends_with("write `a/b/c:<x>` instead of `a:b:c:<x>`"));
        assert!(errors("user:{x<id>}", Kind::Key)[0].starts_with("`:` in a key template marks"));
        assert!(errors("user:", Kind::Key)[0].ends_with("write `user/` instead of `user:`"));
    }

    #[test]
    fn a_placeholder_must_follow_a_colon() {
        assert_eq!(
            errors("v<id>", Kind::Key),
            [
                "`<id>` must come right after a `:` (or `:{`), which marks a value in a key template; \
              write `v:<id>` instead of `v<id>`"
            ]
        );
        assert!(errors("<id>", Kind::Key)[0].ends_with("write `get:<id>` instead of `<id>`"));
        assert!(errors("text <param>", Kind::Key)[0].ends_with("write `text:<param>` instead of `text <param>`"));
        assert!(errors("user{<id>}", Kind::Key)[0].ends_with("write `user:{<id>}` instead of `user{<id>}`"));
        let adjacent = errors("<a><b>", Kind::Key);
        assert_eq!(adjacent.len(), 2, "{adjacent:?}");
        assert!(adjacent[0].starts_with("`<a>` must come right after a `:`"));
        assert!(adjacent[1].starts_with("`<b>` must come right after a `:`"));
        assert!(adjacent[1].ends_with("write `get:<a>:<b>` instead of `<a><b>`"));
    }

    #[test]
    fn text_after_a_placeholder_must_start_with_a_character_values_escape() {
        assert_eq!(
            errors("user:<id>x", Kind::Key),
            [
                "the text right after `<id>` must start with a character values escape, such as `/`, not `x`, \
              which a value could end with; write `user:<id>/x` instead of `user:<id>x`"
            ]
        );
        assert!(errors("user:<id>-x", Kind::Key)[0].contains("not `-`"));
        assert_eq!(
            errors("user:<id>{x}", Kind::Key),
            [
                "the text right after `<id>` cannot start with `{`, or an empty value could pass for one after \
              `:{`; write `user:<id>/{x}` instead of `user:<id>{x}`"
            ]
        );
    }

    #[test]
    fn text_cannot_contain_percent() {
        assert_eq!(
            errors("a%b:<id>", Kind::Key),
            [
                "`%` cannot be in a key template's text: it starts an escape in values; \
              write `a-b:<id>` instead of `a%b:<id>`"
            ]
        );
        assert!(errors("user:<id>%x", Kind::Key)[0].ends_with("write `user:<id>/x` instead of `user:<id>%x`"));
    }

    #[test]
    fn a_template_cannot_start_with_a_brace() {
        assert_eq!(
            errors("{user:<id>}", Kind::Key),
            [
                "a key template cannot start with `{`: the cache adds the outer hash tag itself; \
              write `user:<id>` instead of `{user:<id>}`"
            ]
        );
        assert!(errors("{user}:<id>", Kind::Key)[0].ends_with("write `user:<id>` instead of `{user}:<id>`"));
        assert_eq!(
            errors("{<id>}", Kind::Tag),
            [
                "a tag template cannot start with `{`: the cache adds the outer hash tag itself; \
              write `get:{<id>}` instead of `{<id>}`"
            ]
        );
    }

    #[test]
    fn a_key_template_cannot_start_with_the_tag_namespace() {
        assert_eq!(
            errors("tag:{<id>}", Kind::Key),
            [
                "a key template cannot start with `tag:{`, which the cache uses for tag versions; \
              write `tags:{<id>}` instead of `tag:{<id>}`"
            ]
        );
        assert!(
            errors("tag:{<id>}", Kind::Tag).is_empty(),
            "tags live inside `tag:{{...}}`"
        );
        assert!(errors("tag:<id>", Kind::Key).is_empty());
    }

    #[test]
    fn a_key_template_with_its_own_hash_tag_cannot_end_with_a_placeholder() {
        assert_eq!(
            errors("user:{<id>}:<page>", Kind::Key),
            [
                "a key template with its own hash tag cannot end with a placeholder, or the values `lease` and \
              `fence` would name another key's lease and fence; write `user:{<id>}:<page>/` instead of \
              `user:{<id>}:<page>`"
            ]
        );
        assert!(!errors("a{b}:<x>", Kind::Key).is_empty());
        assert!(
            errors("user:{<id>}:<page>", Kind::Tag).is_empty(),
            "tags are always wrapped"
        );
        assert!(errors("a{}:<x>", Kind::Key).is_empty(), "`{{}}` is no hash tag");
    }

    #[test]
    fn every_broken_rule_is_reported_with_one_suggestion_that_fixes_them_all() {
        let all = errors("a%b:c<id>x", Kind::Key);
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(
            all.iter()
                .all(|e| e.ends_with("write `a-b/c:<id>/x` instead of `a%b:c<id>x`")),
            "{all:?}"
        );
    }

    /// Template text made of the pieces the rules are about.
    fn pieces() -> impl proptest::strategy::Strategy<Value = String> {
        let piece = proptest::sample::select(vec!["a", "tag", ":", "{", "}", "%", "/", " ", "-", "<x>", "<y.z>"]);
        proptest::collection::vec(piece, 1..8).prop_map(|pieces| pieces.concat())
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        /// The suggestion always satisfies every rule, and a valid template is its own.
        #[test]
        fn the_suggestion_is_always_a_valid_template(text in pieces()) {
            for kind in [Kind::Key, Kind::Tag] {
                let template = Template::parse(&text).unwrap();
                let fixed = template.fixed(kind, "get").source();
                let violations = Template::parse(&fixed).unwrap().violations(kind);
                proptest::prop_assert!(violations.is_empty(), "{} -> {}: {:?}", text, fixed, violations);
                if template.violations(kind).is_empty() {
                    proptest::prop_assert_eq!(&fixed, &text);
                }
            }
        }
    }
}
