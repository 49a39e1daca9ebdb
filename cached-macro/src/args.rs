//! The attributes' arguments. Each attribute has one table: every argument with its
//! parser, its default and a line of docs. The table drives the parsing, the
//! unknown-argument error and the test that the docs list the same arguments. Spans are
//! kept for the errors.

#[cfg(test)]
mod docs;
pub(crate) mod suggest;
mod value;

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, Parser};
use syn::{Expr, LitStr};

pub(crate) use value::{CodecName, Millis, Near, Refresh};

/// The arguments of `#[redis_cached]`.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) key: Option<LitStr>,
    pub(crate) ttl: Option<Millis>,
    /// `lock` with its lease (`None`: the default lease).
    pub(crate) lock: Option<Option<Millis>>,
    /// `negative` with its span (for the "not an Option" error) and TTL.
    pub(crate) negative: Option<(Span, Option<Millis>)>,
    /// `stale = "1m"`: how long past the ttl a value stays servable.
    pub(crate) stale: Option<Millis>,
    pub(crate) refresh: Option<Refresh>,
    /// `beta = 1.0`, with its span.
    pub(crate) beta: Option<(Span, f64)>,
    /// `near = "10s"` or `near = false`: how long a value may be served from the near
    /// cache (`None`: the runtime's default).
    pub(crate) near: Option<Near>,
    pub(crate) codec: Option<CodecName>,
    pub(crate) version: Option<u32>,
    /// Percent of the ttl taken off at random.
    pub(crate) jitter: Option<u32>,
    pub(crate) common: Common,
}

/// The arguments of `#[redis_invalidate]`.
#[derive(Default)]
pub(crate) struct InvalidateArgs {
    /// Every `key = "..."`, in order.
    pub(crate) keys: Vec<LitStr>,
    pub(crate) common: Common,
}

/// What both attributes take besides their keys.
#[derive(Default)]
pub(crate) struct Common {
    /// `tags = ["...", ...]`: templates like the key's.
    pub(crate) tags: Option<Vec<LitStr>>,
    pub(crate) cache: Option<Expr>,
}

/// An attribute's arguments, parsed by its table.
pub(crate) trait Attribute: Default + 'static {
    /// Every argument, in the order the docs list them.
    const TABLE: &'static [Spec<Self>];

    /// The arguments both attributes take.
    fn common(&mut self) -> &mut Common;
}

/// One row of an argument table.
pub(crate) struct Spec<A> {
    /// As written in the attribute.
    pub(crate) name: &'static str,
    /// Parses the argument's value into the attribute's arguments.
    parse: fn(&mut A, &mut Arg<'_, '_>) -> syn::Result<()>,
    /// What happens without it, as the docs say it after "Defaults to"; `None` when it
    /// is required.
    #[cfg_attr(not(test), expect(dead_code, reason = "the docs test reads it"))]
    pub(crate) default: Option<&'static str>,
    /// What it does, as the docs say it.
    #[cfg_attr(not(test), expect(dead_code, reason = "the docs test reads it"))]
    pub(crate) doc: &'static str,
}

impl Attribute for Args {
    const TABLE: &'static [Spec<Self>] = &[
        Spec {
            name: "key",
            parse: |args, arg| arg.set_as_is(&mut args.key),
            default: None,
            doc: "the key template",
        },
        Spec {
            name: "ttl",
            parse: |args, arg| arg.set(&mut args.ttl, value::duration),
            default: None,
            doc: "how long a value is fresh, in whole seconds or with a unit",
        },
        Spec {
            name: "lock",
            parse: |args, arg| {
                let lease = arg.optional(value::duration)?;
                arg.set_once(&mut args.lock, lease);
                Ok(())
            },
            default: Some("no lock; `lock` alone takes a 10 s lease"),
            doc: "one loader in the whole deployment per miss, under a lease (in whole seconds or with a unit)",
        },
        Spec {
            name: "negative",
            parse: |args, arg| {
                let ttl = arg.optional(value::duration)?;
                let span = arg.span;
                arg.set_once(&mut args.negative, (span, ttl));
                Ok(())
            },
            default: Some("not caching `None`; `negative` alone caches it for the smaller of `ttl` and 60 s"),
            doc: "cache `None`, for a ttl in whole seconds or with a unit",
        },
        Spec {
            name: "stale",
            parse: |args, arg| arg.set(&mut args.stale, value::duration),
            default: Some("none"),
            doc: "past the ttl, serve the stale value for this window (in whole seconds or with a unit) \
                  while one caller refreshes it, or when the refresh fails",
        },
        Spec {
            name: "refresh",
            parse: |args, arg| arg.set(&mut args.refresh, value::refresh),
            default: Some("no early refresh"),
            doc: "refresh hot values early, in one caller, while the others keep the current value",
        },
        Spec {
            name: "beta",
            parse: |args, arg| {
                let span = arg.span;
                arg.set(&mut args.beta, |lit, name| {
                    value::beta(lit, name).map(|beta| (span, beta))
                })
            },
            default: Some("1.0"),
            doc: "how early `refresh` refreshes; larger is earlier",
        },
        Spec {
            name: "near",
            parse: |args, arg| {
                if arg.refuse_bare(value::NEAR_TAKES) {
                    return Ok(());
                }
                arg.set(&mut args.near, value::near)
            },
            default: Some("a 10 s max age"),
            doc: "the longest a value read from Redis is kept decoded in this process and served \
                  without a round trip (in whole seconds or with a unit), or `false` for never",
        },
        Spec::cache(),
        Spec {
            name: "codec",
            parse: |args, arg| arg.set(&mut args.codec, value::codec),
            default: Some("bincode"),
            doc: "the value codec",
        },
        Spec {
            name: "version",
            parse: |args, arg| arg.set(&mut args.version, value::version),
            default: Some("0"),
            doc: "values stored under another version are misses",
        },
        Spec {
            name: "jitter",
            parse: |args, arg| arg.set(&mut args.jitter, value::jitter),
            default: Some("5%"),
            doc: "a random share taken off each stored ttl, at most 50%",
        },
        Spec::tags("groups of values to invalidate at once with `Cache::invalidate_tag`"),
    ];

    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

impl Attribute for InvalidateArgs {
    const TABLE: &'static [Spec<Self>] = &[
        Spec {
            name: "key",
            parse: |args, arg| {
                args.keys.push(arg.value()?);
                Ok(())
            },
            default: None,
            doc: "a key to invalidate",
        },
        Spec::tags("tags to invalidate"),
        Spec::cache(),
    ];

    fn common(&mut self) -> &mut Common {
        &mut self.common
    }
}

/// The rows both attributes share.
impl<A: Attribute> Spec<A> {
    const fn tags(doc: &'static str) -> Self {
        Spec {
            name: "tags",
            parse: tags::<A>,
            default: Some("none"),
            doc,
        }
    }

    const fn cache() -> Self {
        Spec {
            name: "cache",
            parse: cache::<A>,
            default: Some("the installed one"),
            doc: "a `Cache`, `&Cache` or `Arc<Cache>` instead of the installed one",
        }
    }
}

/// `tags = ["catalog", "category:<id>"]`: string literals only; others are recorded and
/// the rest kept.
fn tags<A: Attribute>(args: &mut A, arg: &mut Arg<'_, '_>) -> syn::Result<()> {
    let list: syn::ExprArray = arg.value()?;
    let tags = list
        .elems
        .into_iter()
        .filter_map(|e| arg.record(value::tag(e)))
        .collect();
    arg.set_once(&mut args.common().tags, tags);
    Ok(())
}

/// `cache = EXPR`, checked by the compiler where the expansion uses it.
fn cache<A: Attribute>(args: &mut A, arg: &mut Arg<'_, '_>) -> syn::Result<()> {
    arg.set_as_is(&mut args.common().cache)
}

/// Parses an attribute's arguments by its table; every error found is returned at once.
/// The arguments of `#[redis_cached]` on an `impl` block: only `companions = false`,
/// which leaves out the inherent `impl` of `f_key` and `f_invalidate` (for a type of
/// another crate, or when two trait impls cache methods of one name).
pub(crate) struct ImplArgs {
    pub(crate) companions: bool,
}

/// Parses the arguments of `#[redis_cached]` on an `impl` block.
pub(crate) fn parse_impl(tokens: TokenStream) -> Result<ImplArgs, syn::Error> {
    let mut companions: Option<bool> = None;
    let parser = syn::meta::parser(|meta| {
        if !meta.path.is_ident("companions") {
            return Err(meta.error(
                "`#[redis_cached]` on an `impl` block takes only `companions = false`; give the \
                 caching arguments to each method, e.g. `#[redis_cached(key = \"...\", ttl = 300)]`",
            ));
        }
        let value = match meta.value()?.parse::<syn::Expr>()? {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Bool(value),
                ..
            }) => value.value,
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "`companions` is `true` or `false`; write `companions = false`",
                ));
            }
        };
        if companions.replace(value).is_some() {
            return Err(meta.error("duplicate `companions`"));
        }
        Ok(())
    });
    parser.parse2(tokens)?;
    Ok(ImplArgs {
        companions: companions.unwrap_or(true),
    })
}

pub(crate) fn parse<A: Attribute>(tokens: TokenStream) -> Result<A, syn::Error> {
    let mut args = A::default();
    let mut errors: Vec<syn::Error> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let Some(ident) = meta.path.get_ident() else {
            return Err(meta.error(format!("unknown argument; expected one of {}", expected::<A>())));
        };
        let span = ident.span();
        let Some(spec) = A::TABLE.iter().find(|spec| ident == spec.name) else {
            // Skip a value if there is one, so later arguments are still checked.
            if meta.input.peek(syn::Token![=]) {
                let _: Expr = meta.value()?.parse()?;
            }
            errors.push(syn::Error::new(span, unknown::<A>(&ident.to_string())));
            return Ok(());
        };
        let mut arg = Arg {
            meta: &meta,
            name: spec.name,
            span,
            errors: &mut errors,
        };
        (spec.parse)(&mut args, &mut arg)
    });
    parser.parse2(tokens)?;
    match combine(errors) {
        Some(error) => Err(error),
        None => Ok(args),
    }
}

/// "unknown argument `tll`; did you mean `ttl`? expected one of `key`, `ttl`, ...", with
/// the suggestion only when a name is close.
fn unknown<A: Attribute>(name: &str) -> String {
    match suggest::closest(name, A::TABLE.iter().map(|spec| spec.name)) {
        Some(close) => format!(
            "unknown argument `{name}`; did you mean `{close}`? expected one of {}",
            expected::<A>()
        ),
        None => format!("unknown argument `{name}`; expected one of {}", expected::<A>()),
    }
}

/// The table's names: "`key`, `ttl`, ...".
fn expected<A: Attribute>() -> String {
    let names: Vec<String> = A::TABLE.iter().map(|spec| format!("`{}`", spec.name)).collect();
    names.join(", ")
}

/// One argument being parsed: its tokens, its name and where it is, and the errors
/// found so far.
pub(crate) struct Arg<'a, 'm> {
    meta: &'a ParseNestedMeta<'m>,
    name: &'static str,
    span: Span,
    errors: &'a mut Vec<syn::Error>,
}

impl Arg<'_, '_> {
    /// The value after `=`.
    fn value<V: Parse>(&self) -> syn::Result<V> {
        self.meta.value()?.parse()
    }

    /// Stores `value` in `slot`, unless the argument was given before: then that is
    /// the error.
    fn set_once<V>(&mut self, slot: &mut Option<V>, value: V) {
        if slot.is_some() {
            self.errors.push(syn::Error::new(
                self.span,
                format!("duplicate argument `{}`; give it once", self.name),
            ));
        } else {
            *slot = Some(value);
        }
    }

    /// Parses the value and stores it once, as written.
    fn set_as_is<V: Parse>(&mut self, slot: &mut Option<V>) -> syn::Result<()> {
        self.set(slot, |value, _| Ok(value))
    }

    /// Parses the value as `L`, checks it with `check` (given the argument's name) and
    /// stores it once; a value the check refuses is recorded.
    fn set<L: Parse, V>(
        &mut self,
        slot: &mut Option<V>,
        check: impl FnOnce(L, &str) -> syn::Result<V>,
    ) -> syn::Result<()> {
        let literal: L = self.value()?;
        if let Some(value) = self.record(check(literal, self.name)) {
            self.set_once(slot, value);
        }
        Ok(())
    }

    /// `name` alone (`None`), or `name = value` checked with `check`; a value the check
    /// refuses is recorded, and is `None` too.
    fn optional<L: Parse, V>(&mut self, check: impl FnOnce(L, &str) -> syn::Result<V>) -> syn::Result<Option<V>> {
        if !self.meta.input.peek(syn::Token![=]) {
            return Ok(None);
        }
        let literal: L = self.value()?;
        Ok(self.record(check(literal, self.name)))
    }

    /// `name` alone, which this argument does not take: records `message` under it and
    /// returns `true`.
    fn refuse_bare(&mut self, message: &str) -> bool {
        let bare = !self.meta.input.peek(syn::Token![=]);
        if bare {
            self.errors.push(syn::Error::new(self.span, message));
        }
        bare
    }

    /// The value, or `None` with its error recorded.
    fn record<V>(&mut self, checked: syn::Result<V>) -> Option<V> {
        checked.map_err(|error| self.errors.push(error)).ok()
    }
}

/// Every error in one, reported together.
pub(crate) fn combine(errors: impl IntoIterator<Item = syn::Error>) -> Option<syn::Error> {
    errors.into_iter().reduce(|mut all, next| {
        all.combine(next);
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> TokenStream {
        text.parse().unwrap()
    }

    #[test]
    fn parses_every_argument() {
        let args: Args = parse(tokens(
            r#"key = "p:<id>", ttl = "5m", lock = "3s", negative, cache = self.cache, codec = "json", version = 4"#,
        ))
        .unwrap();
        assert_eq!(args.key.unwrap().value(), "p:<id>");
        assert_eq!(args.ttl.unwrap().ms, 300_000);
        assert_eq!(args.lock.unwrap().unwrap().ms, 3_000);
        assert!(args.negative.unwrap().1.is_none());
        assert!(args.common.cache.is_some());
        assert_eq!(args.codec, Some(CodecName::Json));
        assert_eq!(args.version, Some(4));
    }

    #[test]
    fn a_bare_number_is_whole_seconds_for_every_duration() {
        let args: Args = parse(tokens(
            r#"key = "p:<id>", ttl = 300, lock = 10, negative = 30, stale = 60"#,
        ))
        .unwrap();
        assert_eq!(args.ttl.unwrap().ms, 300_000);
        assert_eq!(args.lock.unwrap().unwrap().ms, 10_000);
        assert_eq!(args.negative.unwrap().1.unwrap().ms, 30_000);
        assert_eq!(args.stale.unwrap().ms, 60_000);
    }

    #[test]
    fn reports_every_error_at_once() {
        let Err(error) = parse::<Args>(tokens(r#"ttl = 5, ttl = 6, colour = "red", lock = "0s""#)) else {
            panic!("errors expected")
        };
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("duplicate argument `ttl`"));
        assert!(messages[1].contains("unknown argument `colour`"));
        assert!(messages[2].contains("longer than zero"));
    }

    fn near(text: &str) -> Result<Option<Near>, Vec<String>> {
        parse::<Args>(tokens(&format!(r#"key = "p:<id>", ttl = 60, {text}"#)))
            .map(|args| args.near)
            .map_err(|error| error.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn near_takes_a_max_age_or_false() {
        assert!(matches!(
            near(r#"near = "10s""#),
            Ok(Some(Near::Within(Millis { ms: 10_000 })))
        ));
        assert!(matches!(
            near("near = 30"),
            Ok(Some(Near::Within(Millis { ms: 30_000 })))
        ));
        assert!(matches!(near("near = false"), Ok(Some(Near::Off))));
        assert!(matches!(near(r#"version = 1"#), Ok(None)));
    }

    #[test]
    fn near_true_or_alone_says_what_to_write() {
        let takes = "`near` takes a max age, e.g. `near = \"10s\"`, or `false` to opt out";
        assert_eq!(near("near = true").unwrap_err(), [takes]);
        assert_eq!(near("near").unwrap_err(), [takes]);
        // Alone, it does not stop the arguments after it from being checked.
        assert_eq!(near("near, near = false, colour = 1").unwrap_err().len(), 2);
    }

    #[test]
    fn near_zero_points_at_false() {
        let zero = "`near` must be longer than zero; use `near = false` to keep values out of the near cache";
        assert_eq!(near(r#"near = "0s""#).unwrap_err(), [zero]);
        assert_eq!(near("near = 0").unwrap_err(), [zero]);
        assert_eq!(
            near(r#"near = "10s", near = false"#).unwrap_err(),
            ["duplicate argument `near`; give it once"]
        );
        assert_eq!(near("ttl = 0").unwrap_err(), ["`ttl` must be longer than zero"]);
    }

    #[test]
    fn both_attributes_parse_tags_and_cache_alike() {
        let text = r#"key = "a:<id>", tags = ["t:<id>", 7], cache = CACHE"#;
        let cached = parse::<Args>(tokens(text)).err().unwrap().to_string();
        let invalidate = parse::<InvalidateArgs>(tokens(text)).err().unwrap().to_string();
        assert_eq!(cached, invalidate);
        assert!(cached.starts_with("a tag is a string"), "{cached}");
    }

    #[test]
    fn redis_invalidate_takes_many_keys_and_redis_cached_one() {
        let text = r#"key = "a:<id>", key = "b:<id>""#;
        assert_eq!(parse::<InvalidateArgs>(tokens(text)).unwrap().keys.len(), 2);
        let error = parse::<Args>(tokens(text)).err().unwrap().to_string();
        assert_eq!(error, "duplicate argument `key`; give it once");
    }

    #[test]
    fn an_unknown_argument_close_to_one_in_the_table_is_suggested() {
        let error = parse::<Args>(tokens(r#"key = "a:<id>", tll = 300, negatve"#))
            .err()
            .unwrap();
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        let expected = "expected one of `key`, `ttl`, `lock`, `negative`, `stale`, `refresh`, `beta`, `near`, \
                        `cache`, `codec`, `version`, `jitter`, `tags`";
        assert_eq!(
            messages,
            [
                format!("unknown argument `tll`; did you mean `ttl`? {expected}"),
                format!("unknown argument `negatve`; did you mean `negative`? {expected}"),
            ]
        );
        let error = parse::<InvalidateArgs>(tokens(r#"keys = "a:<id>", tag = ["t"]"#))
            .err()
            .unwrap();
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "unknown argument `keys`; did you mean `key`? expected one of `key`, `tags`, `cache`",
                "unknown argument `tag`; did you mean `tags`? expected one of `key`, `tags`, `cache`",
            ]
        );
    }

    #[test]
    fn the_unknown_argument_error_lists_the_table() {
        let error = parse::<InvalidateArgs>(tokens("ttl = 300")).err().unwrap().to_string();
        assert_eq!(error, "unknown argument `ttl`; expected one of `key`, `tags`, `cache`");
    }
}
