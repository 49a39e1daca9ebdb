//! The companions of a cached fn `f`: `f_key` and `f_invalidate`, with the fn's
//! visibility (or the one given for a trait impl's), taking only the parameters the key
//! and `cache` use.

use proc_macro2::{TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{FnArg, GenericParam, Generics, ItemFn, Pat, Visibility, WherePredicate};

use super::{cache, render};
use crate::check::Plan;

/// `f_key` and `f_invalidate`, each `vis`.
pub(super) fn companions(function: &ItemFn, plan: &Plan, vis: &Visibility) -> TokenStream {
    let name = &function.sig.ident;
    let key_fn = format_ident!("{}_key", name);
    let invalidate_fn = format_ident!("{}_invalidate", name);
    let companion_attrs: Vec<_> = function.attrs.iter().filter(|a| follows(a)).collect();
    let render = render(&plan.template, &plan.key, &plan.sig, None);
    let (cache_let, cache_ref) = cache(plan.args.common.cache.as_ref());
    let key_doc = format!("The full Redis key under which `{name}` caches its result for these arguments.");
    let invalidate_doc = format!(
        "Deletes `{name}`'s cached result for these arguments and voids a load of it in flight.\n\n\
         # Errors\nWhen Redis did not confirm the delete; see `Cache::invalidate`."
    );

    // Companions take the receiver and only the parameters the key and `cache` use.
    let (companion_inputs, companion_generics) = companion_signature(function, plan);
    let (companion_impl, _, companion_where) = companion_generics.split_for_impl();
    let receiver = plan.sig.receiver.map(|span| quote_spanned!(span=> &self,));

    quote! {
        #[doc = #key_doc]
        #(#companion_attrs)*
        #[must_use]
        #vis fn #key_fn #companion_impl (#receiver #companion_inputs) -> ::redis_cached::__private::String #companion_where {
            let __redis_cached_key = #render;
            #cache_let
            ::redis_cached::__private::full_key(#cache_ref, &__redis_cached_key)
        }

        #[doc = #invalidate_doc]
        #(#companion_attrs)*
        #vis async fn #invalidate_fn #companion_impl (#receiver #companion_inputs)
            -> ::core::result::Result<(), ::redis_cached::Error> #companion_where
        {
            let __redis_cached_key = #render;
            #cache_let
            ::redis_cached::__private::invalidate(#cache_ref, &__redis_cached_key).await
        }
    }
}

/// Attributes that must follow an item to its companions: `cfg` and lint levels.
pub(super) fn follows(attr: &syn::Attribute) -> bool {
    ["cfg", "cfg_attr", "allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

/// Every identifier and lifetime name in `tokens`.
pub(super) fn names_in(tokens: TokenStream, out: &mut Vec<String>) {
    let mut after_quote = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                out.push(if after_quote { format!("'{name}") } else { name });
                after_quote = false;
            }
            TokenTree::Punct(punct) => after_quote = punct.as_char() == '\'',
            TokenTree::Group(group) => {
                names_in(group.stream(), out);
                after_quote = false;
            }
            TokenTree::Literal(_) => after_quote = false,
        }
    }
}

/// The companions' parameters (those the key and `cache` use, in signature order) and
/// the fn's generics cut down to the ones those parameters mention.
fn companion_signature(function: &ItemFn, plan: &Plan) -> (TokenStream, Generics) {
    let mut used: Vec<String> = plan.template.placeholders().map(|p| p.root.clone()).collect();
    if let Some(expr) = &plan.args.common.cache {
        names_in(expr.to_token_stream(), &mut used);
    }
    let mut inputs = TokenStream::new();
    let mut mentioned = Vec::new();
    for input in &function.sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        let Pat::Ident(pat) = &*typed.pat else { continue };
        if pat.subpat.is_some() || !used.iter().any(|u| pat.ident == u) {
            continue;
        }
        let ident = &pat.ident;
        let ty = &typed.ty;
        names_in(ty.to_token_stream(), &mut mentioned);
        inputs.extend(quote!(#ident: #ty,));
    }
    let (generics, _) = split_generics(&function.sig.generics, |param| mentioned.contains(&param_name(param)));
    (inputs, generics)
}

/// The name a generic parameter goes by: `T`, `N`, `'a`.
pub(super) fn param_name(param: &GenericParam) -> String {
    match param {
        GenericParam::Type(t) => t.ident.to_string(),
        GenericParam::Const(c) => c.ident.to_string(),
        GenericParam::Lifetime(l) => l.lifetime.to_string(),
    }
}

/// `generics` in two: the parameters `keep` keeps, with the `where` predicates that name
/// none of the others; and the others, with the predicates that name one of them.
pub(super) fn split_generics(generics: &Generics, keep: impl Fn(&GenericParam) -> bool) -> (Generics, Generics) {
    let others: Vec<String> = generics.params.iter().filter(|p| !keep(p)).map(param_name).collect();
    let names_another = |predicate: &WherePredicate| {
        let mut names = Vec::new();
        names_in(predicate.to_token_stream(), &mut names);
        names.iter().any(|n| others.contains(n))
    };
    let part = |kept: bool| {
        let mut part = generics.clone();
        part.params = generics.params.iter().filter(|p| keep(p) == kept).cloned().collect();
        if let Some(where_clause) = &mut part.where_clause {
            where_clause.predicates = where_clause
                .predicates
                .iter()
                .filter(|p| names_another(p) != kept)
                .cloned()
                .collect();
        }
        if part.params.is_empty() {
            part.lt_token = None;
            part.gt_token = None;
        }
        part
    };
    (part(true), part(false))
}
