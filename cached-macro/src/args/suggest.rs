//! "Did you mean": the valid name closest to a mistyped one.

/// The candidate closest to `typed` (ignoring case), when it is close enough to be a
/// typo of it: at most a third of `typed`'s length in edits away, one edit at least. The
/// first of equally close candidates wins.
pub(crate) fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed = typed.to_lowercase();
    let limit = (typed.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (distance(&typed, candidate), candidate))
        .filter(|(edits, _)| *edits <= limit)
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, candidate)| candidate)
}

/// [`closest`], or else, for names of `_`-separated words, the candidate that starts or
/// ends `typed` at a `_`, or that `typed` starts or ends so (`product_id` and `id`, `user`
/// and `user_id`): the usual slip between a parameter's name and a placeholder. Of
/// several, the longest. Not for arguments, where `ttl_ms` is not `ttl`.
pub(crate) fn closest_name<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    closest(typed, candidates.iter().copied()).or_else(|| {
        let typed = typed.to_lowercase();
        candidates
            .iter()
            .filter(|candidate| shares_an_end(&typed, &candidate.to_lowercase()))
            .reduce(|longest, candidate| {
                if candidate.len() > longest.len() {
                    candidate
                } else {
                    longest
                }
            })
            .copied()
    })
}

/// Whether the shorter of `a` and `b` starts or ends the longer one at a `_`.
fn shares_an_end(a: &str, b: &str) -> bool {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    !short.is_empty()
        && (long.strip_suffix(short).is_some_and(|rest| rest.ends_with('_'))
            || long.strip_prefix(short).is_some_and(|rest| rest.starts_with('_')))
}

/// The edits (insert, delete or replace a character, swap two adjacent ones) that turn
/// `a` into `b`: the optimal string alignment distance.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Rows i - 2, i - 1 and i of the table of distances between prefixes of `a` and `b`.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let replace = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            current[j] = replace.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 12] = [
        "key", "ttl", "lock", "negative", "stale", "refresh", "beta", "cache", "codec", "version", "jitter", "tags",
    ];

    #[test]
    fn counts_each_kind_of_edit_once() {
        assert_eq!(distance("ttl", "ttl"), 0);
        assert_eq!(distance("tll", "ttl"), 1, "replace");
        assert_eq!(distance("negatve", "negative"), 1, "insert");
        assert_eq!(distance("keys", "key"), 1, "delete");
        assert_eq!(distance("vresion", "version"), 1, "swap");
        assert_eq!(distance("", "tags"), 4);
        assert_eq!(distance("expire", "stale"), 5);
    }

    #[test]
    fn suggests_the_argument_a_typo_was_meant_for() {
        for (typed, meant) in [
            ("tll", "ttl"),
            ("negatve", "negative"),
            ("tag", "tags"),
            ("keys", "key"),
            ("TTL", "ttl"),
            ("vresion", "version"),
            ("jiter", "jitter"),
            ("codecs", "codec"),
            ("refesh", "refresh"),
        ] {
            assert_eq!(closest(typed, NAMES), Some(meant), "{typed}");
        }
    }

    #[test]
    fn suggests_the_parameter_a_placeholder_was_meant_for() {
        let params = ["id", "locale", "user_id"];
        assert_eq!(closest_name("product_id", params), Some("id"), "ends with `_id`");
        assert_eq!(
            closest_name("locale_code", params),
            Some("locale"),
            "starts with `locale_`"
        );
        assert_eq!(closest_name("user", params), Some("user_id"), "starts `user_id`");
        assert_eq!(closest_name("lcoale", params), Some("locale"), "a typo first");
        assert_eq!(closest_name("old_user_id", params), Some("user_id"), "the longest");
        assert_eq!(closest_name("category", params), None);
        assert_eq!(closest_name("valid", params), None, "`id` ends it, but not at a `_`");
    }

    #[test]
    fn suggests_nothing_for_a_name_unlike_any_argument() {
        for typed in ["expire", "colour", "ttl_secs", "timeout", "x", "ab"] {
            assert_eq!(closest(typed, NAMES), None, "{typed}");
        }
        assert_eq!(closest("ttl", ["key", "tags", "cache"]), None);
    }
}
