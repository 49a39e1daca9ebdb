//! `#[redis_cached]` on an `impl` block. A trait impl may hold only the trait's members,
//! so on `impl Trait for Type` it expands each method marked `#[redis_cached(...)]` in
//! place and puts their companions in an inherent `impl Type` beside it (same generics
//! and `where` clause, less what only the trait names), `pub(crate)`: visible across the crate, never new public API. An
//! inherent `impl` comes back as written: its methods' own attributes expand them.
//! `companions = false` leaves the companions out: a type of another crate cannot have
//! an inherent `impl` here, and two trait impls may cache methods of one name.

use proc_macro2::TokenStream;
use quote::ToTokens;
use quote::quote;
use syn::{GenericParam, Generics, ImplItem, ItemFn, ItemImpl, Meta, Visibility};

use super::cached_fn;
use super::companions::{self, follows, names_in};
use crate::check;

/// Expands `#[redis_cached] impl ...` (or `#[redis_cached(companions = false)]`). A
/// wrong argument is an error, reported beside what the methods' own attributes report.
pub(super) fn expand(args: TokenStream, mut block: ItemImpl) -> TokenStream {
    let mut errors = Vec::new();
    let with_companions = match crate::args::parse_impl(args) {
        Ok(args) => args.companions,
        Err(error) => {
            errors.push(error);
            true
        }
    };
    if block.trait_.is_none() {
        let errors = crate::args::combine(errors).map(|error| error.to_compile_error());
        return quote!(#errors #block);
    }
    let vis: Visibility = syn::parse_quote!(pub(crate));
    let (inherent, moved) = split_generics(&block);
    let mut companions = TokenStream::new();
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(at) = method.attrs.iter().position(is_redis_cached) else {
            continue;
        };
        let attribute = method.attrs.remove(at);
        let args = match &attribute.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens.clone(),
            Meta::NameValue(_) => {
                errors.push(syn::Error::new_spanned(
                    &attribute,
                    "expected `#[redis_cached(key = \"...\", ttl = ...)]`",
                ));
                continue;
            }
        };
        let function = ItemFn {
            attrs: method.attrs.clone(),
            vis: method.vis.clone(),
            modifiers: method.modifiers.clone(),
            sig: method.sig.clone(),
            block: Box::new(method.block.clone()),
        };
        match check::plan(args, &function, Some(&attribute)) {
            Ok(plan) => {
                let mut own = function.clone();
                prepend(&mut own.sig.generics, &moved);
                if with_companions {
                    companions.extend(companions::companions(&own, &plan, &vis));
                }
                *item = ImplItem::Verbatim(cached_fn(&function, &plan));
            }
            Err(error) => errors.push(error),
        }
    }
    let errors = crate::args::combine(errors).map(|error| error.to_compile_error());
    if companions.is_empty() {
        return quote!(#errors #block);
    }
    let attrs = block.attrs.iter().filter(|a| follows(a));
    let (impl_generics, _, where_clause) = inherent.split_for_impl();
    let self_ty = &block.self_ty;
    quote! {
        #errors
        #block
        #(#attrs)*
        impl #impl_generics #self_ty #where_clause {
            #companions
        }
    }
}

/// The trait impl's generics split in two: those of the inherent impl (the lifetimes, the
/// type and const parameters its self type names, the `where` predicates on those), and
/// the rest, which only the trait names (`impl<T> Repo<T> for PgRepo`): an inherent impl
/// cannot have them (E0207), so they go on each companion that uses them.
fn split_generics(block: &ItemImpl) -> (Generics, Generics) {
    let mut in_self = Vec::new();
    names_in(block.self_ty.to_token_stream(), &mut in_self);
    companions::split_generics(&block.generics, |param| {
        matches!(param, GenericParam::Lifetime(_)) || in_self.contains(&companions::param_name(param))
    })
}

/// `extra`'s parameters (types and consts) after `generics`' own lifetimes and before
/// its other parameters, and its `where` predicates with theirs.
fn prepend(generics: &mut Generics, extra: &Generics) {
    if extra.params.is_empty() {
        return;
    }
    let (lifetimes, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut generics.params)
        .into_iter()
        .partition(|param| matches!(param, GenericParam::Lifetime(_)));
    generics.params = lifetimes
        .into_iter()
        .chain(extra.params.iter().cloned())
        .chain(rest)
        .collect();
    generics.lt_token.get_or_insert_with(Default::default);
    generics.gt_token.get_or_insert_with(Default::default);
    if let Some(extra_where) = &extra.where_clause {
        generics
            .make_where_clause()
            .predicates
            .extend(extra_where.predicates.iter().cloned());
    }
}

/// `#[redis_cached(...)]`, however its path is written.
fn is_redis_cached(attribute: &syn::Attribute) -> bool {
    attribute
        .path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "redis_cached")
}
