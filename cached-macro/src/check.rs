//! The checks on what an attribute was given, against the fn it is on: required
//! arguments, the key and tag templates and their placeholders, and arguments that only
//! make sense together or with some return types. Every error is reported at once; what
//! passes becomes a plan for `expand`.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Attribute, FnArg, Ident, ItemFn, LitStr, Pat, Type};

use crate::args::{self, Args, InvalidateArgs, suggest};
use crate::key::{Kind, Placeholder, Template};
use crate::sig::{self, Returns, Signature};

/// `#[redis_cached]` checked: what generation needs.
pub(crate) struct Plan {
    pub(crate) args: Args,
    pub(crate) key: LitStr,
    pub(crate) template: Template,
    /// Each tag with its parsed template.
    pub(crate) tags: Vec<(LitStr, Template)>,
    pub(crate) ttl_ms: u64,
    pub(crate) sig: Signature,
}

/// `#[redis_invalidate]` checked: its arguments, each key and tag with its parsed
/// template, the fn.
pub(crate) struct InvalidatePlan {
    pub(crate) args: InvalidateArgs,
    pub(crate) keys: Vec<(LitStr, Template)>,
    pub(crate) tags: Vec<(LitStr, Template)>,
    pub(crate) sig: Signature,
}

/// Parses and checks `#[redis_cached(args)] function`. `attribute` is the attribute when
/// it is not the one being expanded (on a method of an `impl` block that carries
/// `#[redis_cached]`): errors about the attribute as a whole go under it.
pub(crate) fn plan(args: TokenStream, function: &ItemFn, attribute: Option<&Attribute>) -> Result<Plan, syn::Error> {
    let (args, sig) = both(args::parse::<Args>(args), sig::check(function, "redis_cached"))?;
    let mut errors = Vec::new();
    required(&args, function, attribute, &mut errors);
    let name = &function.sig.ident;
    let result = Outcome::NotYet;
    let template = args.key.as_ref().and_then(|key| {
        templates(std::slice::from_ref(key), Kind::Key, (name, &result), &sig, &mut errors)
            .pop()
            .map(|(_, parsed)| parsed)
    });
    let tags = templates(
        args.common.tags.as_deref().unwrap_or_default(),
        Kind::Tag,
        (name, &result),
        &sig,
        &mut errors,
    );
    together(&args, &sig, function, &mut errors);
    if let Some(error) = args::combine(errors) {
        return Err(error);
    }
    let (Some(key), Some(template), Some(ttl)) = (args.key.clone(), template, args.ttl) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "internal error in `#[redis_cached]`; please report",
        ));
    };
    Ok(Plan {
        key,
        template,
        tags,
        ttl_ms: ttl.ms,
        sig,
        args,
    })
}

/// Parses and checks `#[redis_invalidate(args)] function`.
pub(crate) fn plan_invalidate(args: TokenStream, function: &ItemFn) -> Result<InvalidatePlan, syn::Error> {
    let (args, sig) = both(
        args::parse::<InvalidateArgs>(args),
        sig::check(function, "redis_invalidate"),
    )?;
    let mut errors = Vec::new();
    let name = &function.sig.ident;
    if args.keys.is_empty() {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("`#[redis_invalidate]` needs at least one `key`, e.g. `key = \"{name}:<id>\"`"),
        ));
    }
    let result = Outcome::of(function, &sig);
    let keys = templates(&args.keys, Kind::Key, (name, &result), &sig, &mut errors);
    let tags = templates(
        args.common.tags.as_deref().unwrap_or_default(),
        Kind::Tag,
        (name, &result),
        &sig,
        &mut errors,
    );
    match args::combine(errors) {
        Some(error) => Err(error),
        None => Ok(InvalidatePlan { args, keys, tags, sig }),
    }
}

/// The arguments and the fn's signature, or the errors of both.
fn both<A>(args: Result<A, syn::Error>, sig: Result<Signature, syn::Error>) -> Result<(A, Signature), syn::Error> {
    match (args, sig) {
        (Ok(args), Ok(sig)) => Ok((args, sig)),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            Err(error)
        }
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
    }
}

/// `key` and `ttl` are given, else an error with an example built from the fn.
fn required(args: &Args, function: &ItemFn, attribute: Option<&Attribute>, errors: &mut Vec<syn::Error>) {
    let message = match (&args.key, &args.ttl) {
        (None, None) => format!(
            "missing `key` and `ttl`; write e.g. `#[redis_cached(key = \"{}\", ttl = 300)]`",
            example_key(function)
        ),
        (None, Some(_)) => format!(
            "missing `key`; add one built from the parameters, e.g. `key = \"{}\"`",
            example_key(function)
        ),
        (Some(_), None) => {
            "missing `ttl`; every cached value needs one, e.g. `ttl = 300` (seconds) or `ttl = \"5m\"`".to_owned()
        }
        (Some(_), Some(_)) => return,
    };
    errors.push(match attribute {
        Some(attribute) => syn::Error::new_spanned(attribute, message),
        None => syn::Error::new(Span::call_site(), message),
    });
}

/// `name:<first parameter>`, or the fn's name when it has no named parameter.
fn example_key(function: &ItemFn) -> String {
    let name = &function.sig.ident;
    let first = function.sig.inputs.iter().find_map(|input| match input {
        FnArg::Typed(typed) => match &*typed.pat {
            Pat::Ident(p) => Some(p.ident.to_string()),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    });
    match first {
        Some(param) => format!("{name}:<{param}>"),
        None => name.to_string(),
    }
}

/// Arguments that need another one, or a return type with a `None`.
fn together(args: &Args, sig: &Signature, function: &ItemFn, errors: &mut Vec<syn::Error>) {
    if let (Some((span, _)), None) = (args.beta, args.refresh) {
        errors.push(syn::Error::new(
            span,
            "`beta` tunes `refresh = \"xfetch\"`; add it, or remove `beta`",
        ));
    }
    if let Some((span, _)) = &args.negative
        && !sig.returns.has_none()
    {
        let name = &function.sig.ident;
        let returned = match &function.sig.output {
            syn::ReturnType::Default => "`()`".to_owned(),
            syn::ReturnType::Type(_, ty) => format!("`{}`", tidy(ty)),
        };
        errors.push(syn::Error::new(
            *span,
            format!(
                "`negative` caches `None`, but `{name}` returns {returned}, which has no `None`; \
                 return `Option<T>` or `Result<Option<T>, E>`, or remove `negative`"
            ),
        ));
    }
}

/// What a `<return…>` placeholder can name in the templates of one attribute.
enum Outcome {
    /// Nothing yet: a cached fn's key and tags are needed before the call.
    NotYet,
    /// Nothing: the fn returns `()` or `Result<(), E>`, written as this.
    Unit(String),
    /// The value the fn succeeded with.
    Named,
}

impl Outcome {
    /// What `#[redis_invalidate]` on `function` can name.
    fn of(function: &ItemFn, sig: &Signature) -> Outcome {
        match &sig.returns {
            Returns::Plain(Type::Tuple(unit)) | Returns::Result(Type::Tuple(unit)) if unit.elems.is_empty() => {
                Outcome::Unit(match &function.sig.output {
                    syn::ReturnType::Default => "`()`".to_owned(),
                    syn::ReturnType::Type(..) => format!("`{}`", tidy(&sig.output)),
                })
            }
            _ => Outcome::Named,
        }
    }

    /// Whether `placeholder` may name the result here, else why not.
    fn allows(&self, placeholder: &Placeholder, kind: Kind, name: &str, sig: &Signature) -> Result<(), String> {
        let text = placeholder.text();
        let instead = match sig.params.iter().find_map(|p| p.ident.as_ref()) {
            Some(param) => format!("name a parameter instead, e.g. `<{param}>`"),
            None => "name a parameter instead".to_owned(),
        };
        let kind = kind.name();
        match self {
            Outcome::Named => Ok(()),
            Outcome::NotYet => Err(format!(
                "`{text}` cannot be in a `#[redis_cached]` {kind}: the {kind} is needed before the call, \
                 and the result only exists after it; {instead}"
            )),
            Outcome::Unit(returned) => Err(format!(
                "`{text}` names the value `{name}` returns, but it returns {returned}, which has no value to \
                 name; return the value the {kind} needs in place of `()`, or {instead}"
            )),
        }
    }
}

/// Parses key or tag templates, checks their grammar and their placeholders against the
/// fn `name` and what its result can name, recording every error; returns the ones that
/// parsed.
fn templates(
    literals: &[LitStr],
    kind: Kind,
    (name, result): (&Ident, &Outcome),
    sig: &Signature,
    errors: &mut Vec<syn::Error>,
) -> Vec<(LitStr, Template)> {
    let name = name.to_string();
    let mut parsed = Vec::new();
    for literal in literals {
        match Template::parse(&literal.value()) {
            Err(why) => errors.push(syn::Error::new(literal.span(), why)),
            Ok(template) => {
                for why in template.check(kind, &name) {
                    errors.push(syn::Error::new(literal.span(), why));
                }
                for placeholder in template.placeholders() {
                    let checked = if placeholder.is_return() {
                        result.allows(placeholder, kind, &name, sig)
                    } else {
                        check_placeholder(placeholder, sig, matches!(result, Outcome::Named))
                    };
                    if let Err(why) = checked {
                        errors.push(syn::Error::new(literal.span(), why));
                    }
                }
                parsed.push((literal.clone(), template));
            }
        }
    }
    parsed
}

/// A placeholder names a parameter of the fn, or `self` in a method; a typo may also be
/// of `return` when `named` (the result can be named).
fn check_placeholder(placeholder: &Placeholder, sig: &Signature, named: bool) -> Result<(), String> {
    if placeholder.root == "self" {
        return match sig.receiver {
            Some(_) => Ok(()),
            None => Err(format!(
                "`{}` needs a method with a `self` receiver",
                placeholder.text()
            )),
        };
    }
    if sig.param(&placeholder.root).is_some() {
        return Ok(());
    }
    let mut roots = sig.roots();
    if named {
        roots.push(Placeholder::RETURN.to_owned());
    }
    match suggest::closest_name(&placeholder.root, roots.iter().map(String::as_str)) {
        Some(root) => {
            let meant = Placeholder {
                root: root.to_owned(),
                fields: placeholder.fields.clone(),
            };
            Err(format!(
                "unknown placeholder `{}`; did you mean `{}`?",
                placeholder.text(),
                meant.text()
            ))
        }
        None => Err(format!(
            "unknown placeholder `{}`; a template can use {}",
            placeholder.text(),
            sig.names()
        )),
    }
}

/// A type as a user would write it, for messages.
fn tidy(tokens: &impl ToTokens) -> String {
    tokens
        .to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace(" >", ">")
        .replace("< ", "<")
        .replace(" ,", ",")
        .replace(" :: ", "::")
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn function(text: &str) -> ItemFn {
        syn::parse_str(text).unwrap()
    }

    fn cached_errors(args: TokenStream, function: &ItemFn) -> Vec<String> {
        plan(args, function, None)
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    fn invalidate_errors(args: TokenStream, function: &ItemFn) -> Vec<String> {
        plan_invalidate(args, function)
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn an_unknown_placeholder_close_to_a_parameter_is_suggested_in_keys_and_tags_of_both_attributes() {
        let f = function("async fn f(id: u64, locale: u32) -> u64 { id }");
        assert_eq!(
            cached_errors(
                quote!(key = "p:<product_id>", ttl = 1, tags = ["l:<lcoale>", "c:<category>"]),
                &f
            ),
            [
                "unknown placeholder `<product_id>`; did you mean `<id>`?",
                "unknown placeholder `<lcoale>`; did you mean `<locale>`?",
                "unknown placeholder `<category>`; a template can use parameters `id`, `locale`",
            ]
        );
        assert_eq!(
            invalidate_errors(quote!(key = "p:<product_id>", tags = ["l:<lcoale>"]), &f),
            [
                "unknown placeholder `<product_id>`; did you mean `<id>`?",
                "unknown placeholder `<lcoale>`; did you mean `<locale>`?",
            ]
        );
    }

    #[test]
    fn the_suggestion_keeps_the_fields_and_can_be_self() {
        let f = function("async fn f(&self, user: &User) -> u64 { 1 }");
        assert_eq!(
            cached_errors(quote!(key = "u:<usr.id>:<slef.region>", ttl = 1), &f),
            [
                "unknown placeholder `<usr.id>`; did you mean `<user.id>`?",
                "unknown placeholder `<slef.region>`; did you mean `<self.region>`?",
            ]
        );
    }

    #[test]
    fn the_result_can_be_named_only_by_redis_invalidate_on_a_fn_with_a_value() {
        let f = function("async fn f(id: u64) -> Result<Row, E> { todo!() }");
        assert_eq!(
            invalidate_errors(quote!(key = "p:<id>:<return.id>", tags = ["c:<return>"]), &f),
            Vec::<String>::new()
        );
        assert_eq!(
            cached_errors(quote!(key = "p:<return.id>", ttl = 1, tags = ["c:<return>"]), &f),
            [
                "`<return.id>` cannot be in a `#[redis_cached]` key: the key is needed before the call, and \
                 the result only exists after it; name a parameter instead, e.g. `<id>`",
                "`<return>` cannot be in a `#[redis_cached]` tag: the tag is needed before the call, and \
                 the result only exists after it; name a parameter instead, e.g. `<id>`",
            ]
        );
        for (f, returned) in [
            ("async fn f(id: u64) -> Result<(), E> { todo!() }", "`Result<(), E>`"),
            ("async fn f(id: u64) { }", "`()`"),
            ("async fn f(id: u64) -> () { }", "`()`"),
        ] {
            assert_eq!(
                invalidate_errors(quote!(key = "p:<return.id>"), &function(f)),
                [format!(
                    "`<return.id>` names the value `f` returns, but it returns {returned}, which has no value \
                     to name; return the value the key needs in place of `()`, or name a parameter instead, \
                     e.g. `<id>`"
                )],
                "{f}"
            );
        }
        let plain = function("async fn f() -> Option<Row> { None }");
        assert_eq!(
            invalidate_errors(quote!(key = "p:<return.id>"), &plain),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_misspelt_return_is_suggested_where_the_result_can_be_named() {
        let f = function("async fn f(id: u64) -> Result<Row, E> { todo!() }");
        assert_eq!(
            invalidate_errors(quote!(key = "p:<retrun.id>"), &f),
            ["unknown placeholder `<retrun.id>`; did you mean `<return.id>`?"]
        );
        assert_eq!(
            cached_errors(quote!(key = "p:<retrun.id>", ttl = 1), &f),
            ["unknown placeholder `<retrun.id>`; a template can use parameters `id`"]
        );
    }
}
