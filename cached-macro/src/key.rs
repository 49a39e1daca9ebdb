//! The key-template mini-language: `"product:<id>"`, `"user:<user.id>:<self.region>"`.
//!
//! A pure parser: text between `<` and `>` is a placeholder naming a parameter (or
//! `self`) and optional fields; everything else is literal text.

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
            let placeholder = parse_placeholder(inner)?;
            if let Some(Segment::Placeholder(previous)) = segments.last() {
                return Err(format!(
                    "placeholders `{}` and `{}` must be separated by text, e.g. `{}:{}`, or two \
                     different calls could share a key",
                    previous.text(),
                    placeholder.text(),
                    previous.text(),
                    placeholder.text(),
                ));
            }
            segments.push(Segment::Placeholder(placeholder));
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

    /// Characters of the text between placeholders: a value must escape them, or
    /// `("1:2", "3")` and `("1", "2:3")` would both render `pair:1:2:3`.
    pub(crate) fn separators(&self) -> String {
        let mut separators = String::new();
        let first = self.segments.iter().position(|s| matches!(s, Segment::Placeholder(_)));
        let last = self.segments.iter().rposition(|s| matches!(s, Segment::Placeholder(_)));
        if let (Some(first), Some(last)) = (first, last) {
            for segment in &self.segments[first..last] {
                if let Segment::Literal(text) = segment {
                    for c in text.chars() {
                        if !separators.contains(c) {
                            separators.push(c);
                        }
                    }
                }
            }
        }
        separators
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

fn parse_placeholder(inner: &str) -> Result<Placeholder, String> {
    if inner.trim().is_empty() {
        return Err("empty placeholder `<>` in key template; name a parameter, e.g. `<id>`".to_owned());
    }
    let mut parts = inner.split('.');
    let root = parts.next().unwrap_or_default();
    let fields: Vec<&str> = parts.collect();
    let root_ok = root == "self" || is_ident(root) && !root.starts_with(|c: char| c.is_ascii_digit());
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
    fn separators_are_the_text_between_placeholders() {
        assert_eq!(Template::parse("pair:<a>:<b>").unwrap().separators(), ":");
        assert_eq!(Template::parse("p:<a>-x-<b>/<c>").unwrap().separators(), "-x/");
        assert_eq!(Template::parse("product:<id>").unwrap().separators(), "");
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
        assert!(Template::parse("p:<a><b>").unwrap_err().contains("must be separated"));
        assert!(Template::parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn text_without_placeholders_is_one_literal() {
        assert_eq!(Template::parse("settings").unwrap().segments, vec![lit("settings")]);
    }
}
