//! `#[redis_cached]` on an `impl` block. A trait impl may hold only the trait's members,
//! so on `impl Trait for Type` it expands each method marked `#[redis_cached(...)]` in
//! place and puts their companions in an inherent `impl Type` beside it (same generics
//! and `where` clause), `pub(crate)`: visible across the crate, never new public API. An
//! inherent `impl` comes back as written: its methods' own attributes expand them.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ImplItem, ItemFn, ItemImpl, Meta, Visibility};

use super::cached_fn;
use super::companions::{self, follows};
use crate::check;

/// Expands `#[redis_cached] impl ...`. Arguments are an error, reported beside what the
/// methods' own attributes report.
pub(super) fn expand(args: TokenStream, mut block: ItemImpl) -> TokenStream {
    let mut errors = Vec::new();
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(
            &args,
            "`#[redis_cached]` on an `impl` block takes no arguments; give them to each method, \
             e.g. `#[redis_cached(key = \"...\", ttl = 300)]`",
        ));
    }
    if block.trait_.is_none() {
        let errors = crate::args::combine(errors).map(|error| error.to_compile_error());
        return quote!(#errors #block);
    }
    let vis: Visibility = syn::parse_quote!(pub(crate));
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
                companions.extend(companions::companions(&function, &plan, &vis));
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
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
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

/// `#[redis_cached(...)]`, however its path is written.
fn is_redis_cached(attribute: &syn::Attribute) -> bool {
    attribute
        .path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "redis_cached")
}
