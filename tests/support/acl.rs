//! The guide's least-privilege ACL lines (section "Least privilege" of
//! `docs/guide.md`), read from the guide itself so the tests run as exactly the user it
//! tells people to create.

/// What every line starts with; the rules follow.
const LINE_START: &str = "ACL SETUSER cache on >PASSWORD ";

/// The rules of the guide's ACL line for `deployment`: `"one server"` or `"cluster"`,
/// as its comment line above it says (`# one server…`, `# every node of a Redis Cluster`).
pub fn guide_rules(deployment: &str) -> String {
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/guide.md")).expect("read docs/guide.md");
    let lines: Vec<&str> = guide.lines().collect();
    for pair in lines.windows(2) {
        if let [comment, line] = pair
            && comment.starts_with("# ")
            && comment.contains(deployment)
            && let Some(rules) = line.strip_prefix(LINE_START)
        {
            return rules.to_owned();
        }
    }
    panic!("the guide has no ACL line for {deployment:?}")
}
