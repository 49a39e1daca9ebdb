//! The docs list exactly the arguments in the tables: the `# Arguments` list of each
//! attribute in the `redis-cached` crate (one bullet per row, in the table's order, with
//! its doc line and default) and the guide's (`docs/guide.md`) `## Arguments` headings.

use super::{Args, Attribute, InvalidateArgs};

const FACADE: &str = include_str!("../../../src/lib.rs");
const GUIDE: &str = include_str!("../../../docs/guide.md");

/// The bullets of the `# Arguments` list in the docs of `pub use redis_cached_macro::{attribute};`,
/// each with its lines joined.
fn bullets(attribute: &str) -> Vec<String> {
    let item = format!("pub use redis_cached_macro::{attribute};");
    let end = FACADE
        .find(&item)
        .unwrap_or_else(|| panic!("no `{item}` in the facade"));
    let mut docs: Vec<&str> = FACADE[..end]
        .lines()
        .rev()
        .map_while(|line| line.trim_start().strip_prefix("///"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect();
    docs.reverse();
    let start = docs
        .iter()
        .position(|line| *line == "# Arguments")
        .unwrap_or_else(|| panic!("no `# Arguments` in the docs of `{attribute}`"));
    let mut bullets: Vec<String> = Vec::new();
    for line in &docs[start + 1..] {
        if let Some(bullet) = line.strip_prefix("- ") {
            bullets.push(bullet.to_owned());
        } else if let (Some(last), true) = (bullets.last_mut(), line.starts_with("  ")) {
            last.push(' ');
            last.push_str(line.trim());
        } else if !bullets.is_empty() {
            break;
        }
    }
    bullets
}

/// The argument names in `text`: the leading identifier of each code span.
fn names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for code in text.split('`').skip(1).step_by(2) {
        let name: String = code
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A bullet's head, before the first `: ` outside code: `lock` or `lock = "10s"`.
fn head(bullet: &str) -> &str {
    let mut in_code = false;
    for (at, c) in bullet.char_indices() {
        match c {
            '`' => in_code = !in_code,
            ':' if !in_code && bullet[at..].starts_with(": ") => return &bullet[..at],
            _ => {}
        }
    }
    bullet
}

fn table_names<A: Attribute>() -> Vec<String> {
    A::TABLE.iter().map(|spec| spec.name.to_owned()).collect()
}

/// Each bullet names one argument, in the table's order, states its doc line, and says
/// "Defaults to ..." as the table does, or "required".
fn check_bullets<A: Attribute>(attribute: &str) {
    let bullets = bullets(attribute);
    let named: Vec<String> = bullets
        .iter()
        .map(|bullet| match names(head(bullet)).as_slice() {
            [name] => name.clone(),
            other => panic!("a bullet of `{attribute}` names {other:?}, not one argument: {bullet}"),
        })
        .collect();
    assert_eq!(named, table_names::<A>(), "the arguments in the docs of `{attribute}`");
    for (spec, bullet) in A::TABLE.iter().zip(&bullets) {
        assert!(
            bullet.contains(spec.doc),
            "`{}`: the docs do not say {:?}: {bullet}",
            spec.name,
            spec.doc
        );
        match spec.default {
            Some(default) => {
                let says = format!("Defaults to {default}.");
                assert!(
                    bullet.contains(&says),
                    "`{}`: the docs do not say {says:?}: {bullet}",
                    spec.name
                );
            }
            None => assert!(
                head(bullet).contains("required"),
                "`{}` is required: {bullet}",
                spec.name
            ),
        }
    }
}

#[test]
fn the_redis_cached_docs_list_the_table() {
    check_bullets::<Args>("redis_cached");
}

#[test]
fn the_redis_invalidate_docs_list_the_table() {
    check_bullets::<InvalidateArgs>("redis_invalidate");
}

#[test]
fn the_guide_has_a_section_on_each_argument_of_redis_cached() {
    let start = GUIDE.find("\n## Arguments\n").expect("a `## Arguments` section");
    let section = &GUIDE[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |end| end + 1)];
    let mut named: Vec<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .flat_map(names)
        .collect();
    let mut expected = table_names::<Args>();
    named.sort();
    expected.sort();
    assert_eq!(named, expected);
}

#[test]
fn the_checks_read_the_docs_as_written() {
    assert_eq!(
        head("`lock` or `lock = \"10s\"`: one loader: per miss"),
        "`lock` or `lock = \"10s\"`"
    );
    assert_eq!(names("`ttl = 300` or `ttl = \"5m\"` (required)"), ["ttl"]);
    assert_eq!(names("`refresh = \"xfetch\"` (and `beta = 1.0`)"), ["refresh", "beta"]);
    assert!(names("Evict on write: `#[redis_invalidate]`").is_empty());
}
