//! The attribute's arguments, parsed with their spans kept for error messages.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Lit, LitStr};

const VALID: &str =
    "`key`, `ttl`, `lock`, `negative`, `stale`, `refresh`, `beta`, `cache`, `codec`, `version`, `jitter`, `tags`";

/// A duration in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Millis {
    pub(crate) ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodecName {
    Bincode,
    MsgPack,
    Json,
}

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) key: Option<LitStr>,
    pub(crate) ttl: Option<Millis>,
    /// `lock` with its lease (`None`: the default lease).
    pub(crate) lock: Option<Option<Millis>>,
    /// `negative` with its span (for the "not an Option" error) and TTL.
    pub(crate) negative: Option<(Span, Option<Millis>)>,
    pub(crate) cache: Option<Expr>,
    pub(crate) codec: Option<CodecName>,
    pub(crate) version: Option<u32>,
    /// Percent of the ttl taken off at random.
    pub(crate) jitter: Option<u32>,
    /// `tags = ["...", ...]`: templates like the key's.
    pub(crate) tags: Option<Vec<LitStr>>,
    /// `stale = "1m"`: how long past the ttl a value stays servable.
    pub(crate) stale: Option<Millis>,
    /// `refresh = "xfetch"`, with its span for errors.
    pub(crate) refresh: Option<Span>,
    /// `beta = 1.0`, with its span.
    pub(crate) beta: Option<(Span, f64)>,
}

/// Parses the arguments; every error found is returned at once.
pub(crate) fn parse(tokens: TokenStream) -> Result<Args, syn::Error> {
    let mut args = Args::default();
    let mut errors: Vec<syn::Error> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let Some(name) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!("unknown argument; expected one of {VALID}")));
        };
        let span = meta.path.span_of_ident();
        match name.as_str() {
            "key" => {
                let key: LitStr = meta.value()?.parse()?;
                set_once(&mut args.key, key, span, "key", &mut errors);
            }
            "ttl" => {
                let ttl = duration(&meta, "ttl", &mut errors)?;
                if let Some(ttl) = ttl {
                    set_once(&mut args.ttl, ttl, span, "ttl", &mut errors);
                }
            }
            "lock" => {
                let lease = if meta.input.peek(syn::Token![=]) {
                    duration(&meta, "lock", &mut errors)?
                } else {
                    None
                };
                set_once(&mut args.lock, lease, span, "lock", &mut errors);
            }
            "negative" => {
                let ttl = if meta.input.peek(syn::Token![=]) {
                    duration(&meta, "negative", &mut errors)?
                } else {
                    None
                };
                set_once(&mut args.negative, (span, ttl), span, "negative", &mut errors);
            }
            "cache" => {
                let cache: Expr = meta.value()?.parse()?;
                set_once(&mut args.cache, cache, span, "cache", &mut errors);
            }
            "codec" => {
                let codec: LitStr = meta.value()?.parse()?;
                let name = match codec.value().as_str() {
                    "bincode" => Some(CodecName::Bincode),
                    "msgpack" => Some(CodecName::MsgPack),
                    "json" => Some(CodecName::Json),
                    _ => {
                        errors.push(syn::Error::new(
                            codec.span(),
                            format!(
                                "unknown codec `{:?}`; expected `\"bincode\"`, `\"msgpack\"` or `\"json\"`",
                                codec.value()
                            ),
                        ));
                        None
                    }
                };
                if let Some(name) = name {
                    set_once(&mut args.codec, name, span, "codec", &mut errors);
                }
            }
            "version" => {
                let version: syn::LitInt = meta.value()?.parse()?;
                match version.base10_parse::<u32>() {
                    Ok(v) => set_once(&mut args.version, v, span, "version", &mut errors),
                    Err(_) => errors.push(syn::Error::new(
                        version.span(),
                        "`version` must be a whole number from 0 to 4294967295",
                    )),
                }
            }
            "tags" => {
                let tags = tag_list(&meta, &mut errors)?;
                set_once(&mut args.tags, tags, span, "tags", &mut errors);
            }
            "stale" => {
                if let Some(window) = duration(&meta, "stale", &mut errors)? {
                    set_once(&mut args.stale, window, span, "stale", &mut errors);
                }
            }
            "refresh" => {
                let mode: LitStr = meta.value()?.parse()?;
                if mode.value() == "xfetch" {
                    set_once(&mut args.refresh, span, span, "refresh", &mut errors);
                } else {
                    errors.push(syn::Error::new(
                        mode.span(),
                        "unknown refresh; the one there is: `refresh = \"xfetch\"` (refresh-ahead)",
                    ));
                }
            }
            "beta" => {
                let lit: Lit = meta.value()?.parse()?;
                let beta = match &lit {
                    Lit::Float(float) => float.base10_parse::<f64>().ok(),
                    Lit::Int(int) => int.base10_parse::<f64>().ok(),
                    _ => None,
                };
                match beta {
                    Some(beta) if beta.is_finite() && beta >= 0.0 => {
                        set_once(&mut args.beta, (span, beta), span, "beta", &mut errors);
                    }
                    _ => errors.push(syn::Error::new(
                        lit.span(),
                        "`beta` is a number from 0, e.g. `beta = 1.0`",
                    )),
                }
            }
            "jitter" => {
                let lit: Lit = meta.value()?.parse()?;
                let percent = match &lit {
                    Lit::Int(int) if int.base10_digits() == "0" => Some(0),
                    Lit::Str(text) => text
                        .value()
                        .strip_suffix('%')
                        .and_then(|n| n.trim().parse::<u32>().ok()),
                    _ => None,
                };
                match percent {
                    Some(percent @ 0..=50) => set_once(&mut args.jitter, percent, span, "jitter", &mut errors),
                    _ => errors.push(syn::Error::new(
                        lit.span(),
                        "`jitter` takes a percentage from `\"0%\"` to `\"50%\"`, such as `jitter = \"10%\"`, \
                         or `jitter = 0` to turn it off",
                    )),
                }
            }
            _ => {
                // Skip a value if there is one, so later arguments are still checked.
                if meta.input.peek(syn::Token![=]) {
                    let _: Expr = meta.value()?.parse()?;
                }
                errors.push(syn::Error::new(
                    span,
                    format!("unknown argument `{name}`; expected one of {VALID}"),
                ));
            }
        }
        Ok(())
    });
    parser.parse2(tokens)?;
    match combine(errors) {
        Some(error) => Err(error),
        None => Ok(args),
    }
}

trait SpanOfIdent {
    fn span_of_ident(&self) -> Span;
}

impl SpanOfIdent for syn::Path {
    fn span_of_ident(&self) -> Span {
        self.segments.last().map_or_else(Span::call_site, |s| s.ident.span())
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, span: Span, name: &str, errors: &mut Vec<syn::Error>) {
    if slot.is_some() {
        errors.push(syn::Error::new(
            span,
            format!("duplicate argument `{name}`; give it once"),
        ));
    } else {
        *slot = Some(value);
    }
}

/// The arguments of `#[redis_invalidate]`.
#[derive(Default)]
pub(crate) struct InvalidateArgs {
    /// Every `key = "..."`, in order.
    pub(crate) keys: Vec<LitStr>,
    pub(crate) tags: Option<Vec<LitStr>>,
    pub(crate) cache: Option<Expr>,
}

const VALID_INVALIDATE: &str = "`key` (one or more), `tags` and `cache`";

/// Parses `#[redis_invalidate]`'s arguments; every error found is returned at once.
pub(crate) fn parse_invalidate(tokens: TokenStream) -> Result<InvalidateArgs, syn::Error> {
    let mut args = InvalidateArgs::default();
    let mut errors: Vec<syn::Error> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let Some(name) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!("unknown argument; expected {VALID_INVALIDATE}")));
        };
        let span = meta.path.span_of_ident();
        match name.as_str() {
            "key" => args.keys.push(meta.value()?.parse()?),
            "tags" => {
                let tags = tag_list(&meta, &mut errors)?;
                set_once(&mut args.tags, tags, span, "tags", &mut errors);
            }
            "cache" => {
                let cache: Expr = meta.value()?.parse()?;
                set_once(&mut args.cache, cache, span, "cache", &mut errors);
            }
            _ => {
                if meta.input.peek(syn::Token![=]) {
                    let _: Expr = meta.value()?.parse()?;
                }
                errors.push(syn::Error::new(
                    span,
                    format!("unknown argument `{name}`; expected {VALID_INVALIDATE}"),
                ));
            }
        }
        Ok(())
    });
    parser.parse2(tokens)?;
    match combine(errors) {
        Some(error) => Err(error),
        None => Ok(args),
    }
}

/// `tags = ["catalog", "category:<id>"]`: string literals only; others are recorded.
fn tag_list(meta: &ParseNestedMeta<'_>, errors: &mut Vec<syn::Error>) -> syn::Result<Vec<LitStr>> {
    let list: syn::ExprArray = meta.value()?.parse()?;
    let mut tags = Vec::new();
    for element in list.elems {
        match element {
            Expr::Lit(syn::ExprLit { lit: Lit::Str(tag), .. }) => tags.push(tag),
            other => errors.push(syn::Error::new_spanned(
                other,
                "a tag is a string with optional placeholders, e.g. `\"category:<id>\"`",
            )),
        }
    }
    Ok(tags)
}

/// The longest duration accepted, in ms: 100 years, the runtime's `MAX_DURATION`. Redis
/// rejects an expiry that overflows its clock, which would silently disable caching.
const MAX_MS: u64 = 100 * 365 * 86_400_000;

/// `300` (seconds) or `"5m"` (ms, s, m, h, d). A bad value is recorded and `None` returned.
fn duration(meta: &ParseNestedMeta<'_>, name: &str, errors: &mut Vec<syn::Error>) -> syn::Result<Option<Millis>> {
    let lit: Lit = meta.value()?.parse()?;
    let parsed = match &lit {
        Lit::Int(int) => int.base10_parse::<u64>().ok().and_then(|s| s.checked_mul(1000)),
        Lit::Str(text) => parse_duration(&text.value()),
        _ => None,
    };
    match parsed {
        Some(0) => {
            errors.push(syn::Error::new(
                lit.span(),
                format!("`{name}` must be longer than zero"),
            ));
            Ok(None)
        }
        Some(ms) if ms > MAX_MS => {
            errors.push(syn::Error::new(
                lit.span(),
                format!("`{name}` is longer than the 100 years a cache entry may live; write at most `\"36500d\"`"),
            ));
            Ok(None)
        }
        Some(ms) => Ok(Some(Millis { ms })),
        None => {
            errors.push(syn::Error::new(
                lit.span(),
                format!(
                    "invalid duration for `{name}`; write whole seconds (`{name} = 300`) or a number \
                     with a unit: `\"250ms\"`, `\"90s\"`, `\"5m\"`, `\"1h\"`, `\"7d\"`"
                ),
            ));
            Ok(None)
        }
    }
}

/// `"250ms"`, `"90s"`, `"5m"`, `"1h"`, `"7d"` into milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

pub(crate) fn combine(errors: impl IntoIterator<Item = syn::Error>) -> Option<syn::Error> {
    errors.into_iter().reduce(|mut all, next| {
        all.combine(next);
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("90s"), Some(90_000));
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("7d"), Some(604_800_000));
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5 weeks"), None);
    }

    #[test]
    fn parses_every_argument() {
        let args = parse(quote!(
            key = "p:<id>",
            ttl = "5m",
            lock = "3s",
            negative,
            cache = self.cache,
            codec = "json",
            version = 4
        ))
        .unwrap();
        assert_eq!(args.key.unwrap().value(), "p:<id>");
        assert_eq!(args.ttl.unwrap().ms, 300_000);
        assert_eq!(args.lock.unwrap().unwrap().ms, 3_000);
        assert!(args.negative.unwrap().1.is_none());
        assert!(args.cache.is_some());
        assert_eq!(args.codec, Some(CodecName::Json));
        assert_eq!(args.version, Some(4));
    }

    #[test]
    fn reports_every_error_at_once() {
        let Err(error) = parse(quote!(ttl = 5, ttl = 6, colour = "red", lock = "0s")) else {
            panic!("errors expected")
        };
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("duplicate argument `ttl`"));
        assert!(messages[1].contains("unknown argument `colour`"));
        assert!(messages[2].contains("longer than zero"));
    }
}
