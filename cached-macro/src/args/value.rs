//! The values arguments take: durations, codecs, percentages, numbers. Each check takes
//! the literal as written and the argument's name, and returns the value or an error
//! under the literal.

use syn::{Expr, Lit, LitInt, LitStr};

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

/// How long a value read from Redis may be served from the near cache.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Near {
    /// `near = false`: never.
    Off,
    /// `near = "10s"`: for this long at most.
    Within(Millis),
}

/// How values are refreshed before their ttl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// `refresh = "xfetch"`: XFetch, one caller, with a probability.
    XFetch,
}

/// The longest duration accepted, in ms: 100 years, the runtime's `MAX_DURATION`. Redis
/// rejects an expiry that overflows its clock, which would silently disable caching.
const MAX_MS: u64 = 100 * 365 * 86_400_000;

/// `300` (whole seconds, as for every duration argument: `lock = 10` is a 10 s lease)
/// or `"5m"` (ms, s, m, h, d), longer than zero and at most `MAX_MS`.
pub(crate) fn duration(lit: Lit, name: &str) -> syn::Result<Millis> {
    let zero = format!("`{name}` must be longer than zero");
    duration_or(lit, name, &zero)
}

/// What `near` takes, said when it is given `true` or nothing.
pub(crate) const NEAR_TAKES: &str = "`near` takes a max age, e.g. `near = \"10s\"`, or `false` to opt out";

/// `near = "10s"` (or whole seconds, as every duration) or `near = false`.
pub(crate) fn near(lit: Lit, name: &str) -> syn::Result<Near> {
    match &lit {
        Lit::Bool(flag) if !flag.value => Ok(Near::Off),
        Lit::Bool(_) => Err(syn::Error::new(lit.span(), NEAR_TAKES)),
        _ => duration_or(
            lit,
            name,
            "`near` must be longer than zero; use `near = false` to keep values out of the near cache",
        )
        .map(Near::Within),
    }
}

/// A duration as `duration` reads it, with `zero` as the error for zero.
fn duration_or(lit: Lit, name: &str, zero: &str) -> syn::Result<Millis> {
    if let Lit::Str(text) = &lit {
        let number = text.value();
        let number = number.trim();
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "`{name} = \"{number}\"` has no unit; write `{name} = {number}` for seconds, or `{name} = \"{number}s\"`"
                ),
            ));
        }
    }
    let parsed = match &lit {
        Lit::Int(int) => int.base10_parse::<u64>().ok().and_then(|s| s.checked_mul(1000)),
        Lit::Str(text) => parse_duration(&text.value()),
        _ => None,
    };
    match parsed {
        Some(0) => Err(syn::Error::new(lit.span(), zero)),
        Some(ms) if ms > MAX_MS => Err(syn::Error::new(
            lit.span(),
            format!("`{name}` is longer than the 100 years a cache entry may live; write at most `\"36500d\"`"),
        )),
        Some(ms) => Ok(Millis { ms }),
        None => Err(syn::Error::new(
            lit.span(),
            format!(
                "invalid duration for `{name}`; write whole seconds (`{name} = 300`) or a number \
                 with a unit: `\"250ms\"`, `\"90s\"`, `\"5m\"`, `\"1h\"`, `\"7d\"`"
            ),
        )),
    }
}

/// `"250ms"`, `"90s"`, `"5m"`, `"1h"`, `"7d"` into milliseconds.
fn parse_duration(text: &str) -> Option<u64> {
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

/// `"bincode"`, `"msgpack"` or `"json"`.
pub(crate) fn codec(codec: LitStr, _: &str) -> syn::Result<CodecName> {
    match codec.value().as_str() {
        "bincode" => Ok(CodecName::Bincode),
        "msgpack" => Ok(CodecName::MsgPack),
        "json" => Ok(CodecName::Json),
        _ => Err(syn::Error::new(
            codec.span(),
            format!(
                "unknown codec `{:?}`; expected `\"bincode\"`, `\"msgpack\"` or `\"json\"`",
                codec.value()
            ),
        )),
    }
}

/// A `u32`.
pub(crate) fn version(version: LitInt, _: &str) -> syn::Result<u32> {
    version
        .base10_parse::<u32>()
        .map_err(|_| syn::Error::new(version.span(), "`version` must be a whole number from 0 to 4294967295"))
}

/// `"xfetch"`, the one there is.
pub(crate) fn refresh(mode: LitStr, _: &str) -> syn::Result<Refresh> {
    if mode.value() == "xfetch" {
        Ok(Refresh::XFetch)
    } else {
        Err(syn::Error::new(
            mode.span(),
            "unknown refresh; the one there is: `refresh = \"xfetch\"` (refresh-ahead)",
        ))
    }
}

/// A finite number from 0, with or without a fraction.
pub(crate) fn beta(lit: Lit, _: &str) -> syn::Result<f64> {
    let beta = match &lit {
        Lit::Float(float) => float.base10_parse::<f64>().ok(),
        Lit::Int(int) => int.base10_parse::<f64>().ok(),
        _ => None,
    };
    match beta {
        Some(beta) if beta.is_finite() && beta >= 0.0 => Ok(beta),
        _ => Err(syn::Error::new(
            lit.span(),
            "`beta` is a number from 0, e.g. `beta = 1.0`",
        )),
    }
}

/// `"0%"` to `"50%"`, or `0`.
pub(crate) fn jitter(lit: Lit, _: &str) -> syn::Result<u32> {
    let percent = match &lit {
        Lit::Int(int) if int.base10_digits() == "0" => Some(0),
        Lit::Str(text) => text
            .value()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<u32>().ok()),
        _ => None,
    };
    match percent {
        Some(percent @ 0..=50) => Ok(percent),
        _ => Err(syn::Error::new(
            lit.span(),
            "`jitter` takes a percentage from `\"0%\"` to `\"50%\"`, such as `jitter = \"10%\"`, \
             or `jitter = 0` to turn it off",
        )),
    }
}

/// One element of `tags = [...]`: a string literal, a template like the key's.
pub(crate) fn tag(element: Expr) -> syn::Result<LitStr> {
    match element {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(tag), .. }) => Ok(tag),
        other => Err(syn::Error::new_spanned(
            other,
            "a tag is a string with optional placeholders, e.g. `\"category:<id>\"`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn ms(text: &str, name: &str) -> Result<u64, String> {
        let lit: Lit = syn::parse_str(text).unwrap();
        duration(lit, name).map(|d| d.ms).map_err(|e| e.to_string())
    }

    #[test]
    fn a_number_in_a_string_needs_a_unit() {
        assert_eq!(
            ms("\"10\"", "lock"),
            Err("`lock = \"10\"` has no unit; write `lock = 10` for seconds, or `lock = \"10s\"`".to_owned())
        );
    }
}
