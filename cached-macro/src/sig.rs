//! Checks on the annotated function, and what the expansion needs to know about it.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

/// What the function returns, and so what is cached.
#[derive(Clone)]
pub(crate) enum Returns {
    /// `-> T`
    Plain(Type),
    /// `-> Option<T>`
    Option(Type),
    /// `-> Result<T, E>` (or an alias whose last segment is `Result`)
    Result(Type),
    /// `-> Result<Option<T>, E>`
    ResultOption(Type),
}

impl Returns {
    /// The type that is stored.
    pub(crate) fn value(&self) -> &Type {
        match self {
            Returns::Plain(t) | Returns::Option(t) | Returns::Result(t) | Returns::ResultOption(t) => t,
        }
    }

    pub(crate) fn has_none(&self) -> bool {
        matches!(self, Returns::Option(_) | Returns::ResultOption(_))
    }
}

/// One typed parameter: its name, when the pattern is a plain identifier.
pub(crate) struct Param {
    pub(crate) ident: Option<Ident>,
}

pub(crate) struct Signature {
    /// The `self` token, for methods.
    pub(crate) receiver: Option<Span>,
    pub(crate) params: Vec<Param>,
    /// What the body produces: the return type of an `async fn`, or the `Output` of the
    /// boxed future of a fn `#[async_trait]` expanded.
    pub(crate) output: Type,
    pub(crate) returns: Returns,
    /// The fn is one `#[async_trait]` expanded: its body is the async block it boxes.
    pub(crate) boxed: bool,
}

impl Signature {
    pub(crate) fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.ident.as_ref().is_some_and(|i| i == name))
    }

    /// What a placeholder can start with: `self` in a method, then each named parameter.
    pub(crate) fn roots(&self) -> Vec<String> {
        let receiver = self.receiver.map(|_| "self".to_owned());
        let params = self
            .params
            .iter()
            .filter_map(|p| p.ident.as_ref())
            .map(ToString::to_string);
        receiver.into_iter().chain(params).collect()
    }

    pub(crate) fn names(&self) -> String {
        let names: Vec<String> = self.roots().iter().map(|name| format!("`{name}`")).collect();
        if names.is_empty() {
            "no parameters".to_owned()
        } else {
            format!("parameters {}", names.join(", "))
        }
    }
}

/// Checks `function` for the attribute `attribute` (named in the errors): an `async fn`,
/// or a fn `#[async_trait]` already expanded.
pub(crate) fn check(function: &ItemFn, attribute: &str) -> Result<Signature, syn::Error> {
    let sig = &function.sig;
    let boxed = crate::async_trait::recognise(function);
    let mut errors = Vec::new();
    if sig.asyncness.is_none() && boxed.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("`#[{attribute}]` needs an async fn; write `async fn {}`", sig.ident),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(
            variadic.span(),
            format!("`#[{attribute}]` cannot take a variadic fn"),
        ));
    }
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r.self_token.span),
            FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    Pat::Ident(p) if p.subpat.is_none() => Some(p.ident.clone()),
                    _ => None,
                };
                params.push(Param { ident });
            }
        }
    }
    let output: Type = match (&boxed, &sig.output) {
        (Some(boxed), _) => boxed.output.clone(),
        (None, ReturnType::Default) => syn::parse_quote!(()),
        (None, ReturnType::Type(_, ty)) => (**ty).clone(),
    };
    if mentions_impl(&output) {
        errors.push(syn::Error::new(
            output.span(),
            format!("`#[{attribute}]` needs a concrete return type, not `impl Trait`; name the type"),
        ));
    }
    if let Some(error) = crate::args::combine(errors) {
        return Err(error);
    }
    Ok(Signature {
        receiver,
        params,
        returns: classify(&output),
        output,
        boxed: boxed.is_some(),
    })
}

/// The spans of the first and the last token of `tokens`: generated code that starts at
/// one and ends at the other is reported under all of `tokens` (a span cannot be joined
/// on stable, but rustc joins an expression's first and last).
pub(crate) fn ends(tokens: &impl quote::ToTokens) -> (Span, Span) {
    let mut tokens = tokens.to_token_stream().into_iter();
    let first = tokens.next().map_or_else(Span::call_site, |token| token.span());
    let last = tokens.last().map_or(first, |token| token.span());
    (first, last)
}

/// Whether `ty` contains `impl Trait` anywhere.
fn mentions_impl(ty: &Type) -> bool {
    fn scan(tokens: proc_macro2::TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => scan(group.stream()),
            _ => false,
        })
    }
    scan(quote::ToTokens::to_token_stream(ty))
}

/// Reads the return shape from the last path segment (`Result`, `Option`), so aliases
/// such as `anyhow::Result<T>` and `io::Result<T>` are recognised.
fn classify(ty: &Type) -> Returns {
    if let Some(("Result", inner)) = last_segment(ty) {
        return match last_segment(&inner) {
            Some(("Option", value)) => Returns::ResultOption(value),
            _ => Returns::Result(inner),
        };
    }
    if let Some(("Option", value)) = last_segment(ty) {
        return Returns::Option(value);
    }
    Returns::Plain(ty.clone())
}

/// `Some((name, first type argument))` for `path::Name<T, ...>` with `Name` one of ours.
fn last_segment(ty: &Type) -> Option<(&'static str, Type)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    let name = match last.ident.to_string().as_str() {
        "Result" => "Result",
        "Option" => "Option",
        _ => return None,
    };
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let first = args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })?;
    Some((name, first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn shape(function: &str) -> (String, String) {
        let function: ItemFn = syn::parse_str(function).unwrap();
        let returns = check(&function, "redis_cached")
            .map_err(|e| e.to_string())
            .unwrap()
            .returns;
        let kind = match returns {
            Returns::Plain(_) => "plain",
            Returns::Option(_) => "option",
            Returns::Result(_) => "result",
            Returns::ResultOption(_) => "result_option",
        };
        (
            kind.to_owned(),
            returns.value().to_token_stream().to_string().replace(' ', ""),
        )
    }

    #[test]
    fn recognises_return_shapes_and_aliases() {
        assert_eq!(shape("async fn f() -> u8 {}"), ("plain".into(), "u8".into()));
        assert_eq!(shape("async fn f() -> Option<P> {}"), ("option".into(), "P".into()));
        assert_eq!(shape("async fn f() -> Result<P, E> {}"), ("result".into(), "P".into()));
        assert_eq!(shape("async fn f() -> io::Result<P> {}"), ("result".into(), "P".into()));
        assert_eq!(
            shape("async fn f() -> anyhow::Result<Option<Vec<P>>> {}"),
            ("result_option".into(), "Vec<P>".into())
        );
        assert_eq!(shape("async fn f() {}"), ("plain".into(), "()".into()));
    }

    #[test]
    fn takes_the_value_from_the_future_async_trait_boxes() {
        assert_eq!(
            shape(
                "fn f(&self) -> Pin<Box<dyn Future<Output = Option<P>> + Send + 'async_trait>> { \
                 Box::pin(async move { None }) }"
            ),
            ("option".into(), "P".into())
        );
    }

    #[test]
    fn requires_async() {
        let function: ItemFn = syn::parse_str("fn get() -> u8 { 1 }").unwrap();
        let error = check(&function, "redis_cached").err().unwrap().to_string();
        assert_eq!(error, "`#[redis_cached]` needs an async fn; write `async fn get`");
    }
}
