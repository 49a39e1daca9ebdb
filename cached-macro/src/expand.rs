//! Generates the cached fn and its companions. The only file that writes `quote!`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, Ident, ItemFn, Pat, WherePredicate};

use crate::args::CodecName;
use crate::check::{self, InvalidatePlan, Plan};
use crate::key::{Placeholder, Segment, Template};
use crate::sig::{self, Returns, Signature};

/// Expands `#[redis_cached(args)] function`. On any error, the function comes back
/// unchanged with the errors beside it, so callers get no second "cannot find" error.
pub(crate) fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(item, |function| {
        check::plan(args, function).map(|plan| generate(function, &plan))
    })
}

/// Parses the fn, then runs `expansion`; on any error the fn comes back unchanged with
/// the errors beside it.
fn expand(item: TokenStream, expansion: impl FnOnce(&ItemFn) -> Result<TokenStream, syn::Error>) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    match expansion(&function) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #function)
        }
    }
}

/// Expands `#[redis_invalidate(key = "...", ..., cache = ...)] function`: the keys are
/// rendered before the body runs (it may consume its arguments), and invalidated after
/// it returns, unless it returned `Err`. Errors come back as for `#[redis_cached]`.
pub(crate) fn redis_invalidate(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(item, |function| {
        check::plan_invalidate(args, function).map(|plan| generate_invalidate(function, &plan))
    })
}

fn generate_invalidate(function: &ItemFn, plan: &InvalidatePlan) -> TokenStream {
    let (args, keys, sig) = (&plan.args, &plan.keys, &plan.sig);
    let (key_count, tag_count) = (keys.len(), plan.tags.len());
    let attrs = &function.attrs;
    let vis = &function.vis;
    let signature = &function.sig;
    let name = signature.ident.to_string();
    let block = &function.block;
    let renders = keys.iter().map(|(key, template)| render(template, key, sig));
    let tag_renders = plan.tags.iter().map(|(tag, template)| render(template, tag, sig));
    // Resolved (and cloned: an `Arc` clone) before the body, which may consume `self`
    // or the argument the cache comes from.
    let cache_let = match &args.common.cache {
        Some(expr) => quote_spanned! {expr.span()=>
            let __redis_cached_cache = ::core::option::Option::Some(::core::clone::Clone::clone(
                ::redis_cached::__private::AsCache::as_cache(&(#expr)),
            ));
        },
        None => quote!(let __redis_cached_cache = ::redis_cached::__private::default_cache();),
    };
    let cache_ref = quote!(::core::option::Option::as_ref(&__redis_cached_cache));
    let output = match &signature.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let succeeded = match &sig.returns {
        Returns::Result(_) | Returns::ResultOption(_) => {
            quote!(::core::result::Result::is_ok(&__redis_cached_out))
        }
        Returns::Plain(_) | Returns::Option(_) => quote!(true),
    };
    quote! {
        #(#attrs)*
        #vis #signature {
            // Rendered first: the body may consume the arguments the keys use.
            let __redis_cached_keys: [::redis_cached::__private::String; #key_count] = [#(#renders),*];
            let __redis_cached_tags: [::redis_cached::__private::String; #tag_count] = [#(#tag_renders),*];
            #cache_let
            let __redis_cached_out: #output = async move {
                // Pins the block's type to the fn's, so `?` and `return` in the body work.
                #[allow(unreachable_code, clippy::diverging_sub_expression, reason = "a type hint, never run")]
                if false {
                    let __redis_cached_type: #output = loop {};
                    return __redis_cached_type;
                }
                #block
            }
            .await;
            if #succeeded {
                ::redis_cached::__private::invalidate_after(#cache_ref, #name, &__redis_cached_keys, &__redis_cached_tags)
                    .await;
            }
            __redis_cached_out
        }
    }
}

/// The cached fn, then its companions.
fn generate(function: &ItemFn, plan: &Plan) -> TokenStream {
    let cached = cached_fn(function, plan);
    let companions = companions(function, plan);
    quote!(#cached #companions)
}

/// The fn itself: its policy, key and tags, read through the cache around `f_uncached`.
fn cached_fn(function: &ItemFn, plan: &Plan) -> TokenStream {
    let vis = &function.vis;
    let sig = &function.sig;
    let name = &sig.ident;
    let uncached = format_ident!("{}_uncached", name);
    let (output, generics, where_clause) = (&sig.output, &sig.generics, &sig.generics.where_clause);
    let user_attrs = &function.attrs;
    let (cached_inputs, call_args) = named_inputs(sig);
    let has_impl_trait = sig
        .inputs
        .iter()
        .any(|i| matches!(i, FnArg::Typed(t) if sig::mentions_impl(&t.ty)));
    let turbofish = turbofish(generics, has_impl_trait);
    let callee = if plan.sig.receiver.is_some() {
        quote!(Self::#uncached)
    } else {
        quote!(#uncached)
    };
    let policy = policy(name, plan);
    let render = render(&plan.template, &plan.key, &plan.sig);
    let (cache_let, cache_ref) = cache(plan.args.common.cache.as_ref());
    let value_ty = plan.sig.returns.value();
    let span = value_ty.span();
    let entry = match &plan.sig.returns {
        Returns::Plain(_) => quote_spanned!(span=> ::redis_cached::__private::plain::<#value_ty>),
        Returns::Option(_) => quote_spanned!(span=> ::redis_cached::__private::option::<#value_ty>),
        Returns::Result(_) => quote_spanned!(span=> ::redis_cached::__private::result::<#value_ty, _>),
        Returns::ResultOption(_) => quote_spanned!(span=> ::redis_cached::__private::result_option::<#value_ty, _>),
    };
    // Spanned at the value type: a type that cannot be cached is reported there.
    let call = quote_spanned! {span=>
        #entry(
            #cache_ref,
            &__REDIS_CACHED_POLICY,
            &__redis_cached_key,
            &__redis_cached_tags,
            #callee #turbofish (#(#call_args),*),
        )
        .await
    };
    let tag_count = plan.tags.len();
    let tag_renders = plan
        .tags
        .iter()
        .map(|(tag, template)| self::render(template, tag, &plan.sig));
    let (asyncness, constness) = (&sig.asyncness, &sig.constness);
    quote! {
        #(#user_attrs)*
        #vis #constness #asyncness fn #name #generics (#cached_inputs) #output #where_clause {
            #policy
            let __redis_cached_key = #render;
            let __redis_cached_tags: [::redis_cached::__private::String; #tag_count] = [#(#tag_renders),*];
            #cache_let
            #call
        }
    }
}

/// The cached fn's parameters, each a plain name (patterns are renamed, attributes
/// dropped), and the arguments that pass them on to `f_uncached`.
fn named_inputs(sig: &syn::Signature) -> (TokenStream, Vec<TokenStream>) {
    let mut inputs = sig.inputs.clone();
    let mut call_args = Vec::new();
    for (index, input) in inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(receiver) => call_args.push(receiver.self_token.to_token_stream()),
            FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    Pat::Ident(p) if p.subpat.is_none() => p.ident.clone(),
                    _ => format_ident!("__redis_cached_arg{}", index),
                };
                *typed.pat = syn::parse_quote!(#ident);
                typed.attrs.clear();
                call_args.push(ident.to_token_stream());
            }
        }
    }
    (inputs.to_token_stream(), call_args)
}

/// `f_uncached` (the body as written), `f_key` and `f_invalidate`.
fn companions(function: &ItemFn, plan: &Plan) -> TokenStream {
    let vis = &function.vis;
    let sig = &function.sig;
    let name = &sig.ident;
    let uncached = format_ident!("{}_uncached", name);
    let key_fn = format_ident!("{}_key", name);
    let invalidate_fn = format_ident!("{}_invalidate", name);
    let (output, generics, where_clause) = (&sig.output, &sig.generics, &sig.generics.where_clause);
    let companion_attrs: Vec<_> = function.attrs.iter().filter(|a| is_companion_attr(a)).collect();
    let render = render(&plan.template, &plan.key, &plan.sig);
    let (cache_let, cache_ref) = cache(plan.args.common.cache.as_ref());
    let uncached_doc = format!("Runs [`{name}`](Self::{name})'s body without the cache.");
    let uncached_doc = if plan.sig.receiver.is_some() {
        uncached_doc
    } else {
        uncached_doc.replace("Self::", "")
    };
    let key_doc = format!("The full Redis key under which `{name}` caches its result for these arguments.");
    let invalidate_doc = format!(
        "Deletes `{name}`'s cached result for these arguments and voids a load of it in flight.\n\n\
         # Errors\nWhen Redis did not confirm the delete; see `Cache::invalidate`."
    );

    // Companions take the receiver and only the parameters the key and `cache` use.
    let (companion_inputs, companion_generics) = companion_signature(function, plan);
    let (companion_impl, _, companion_where) = companion_generics.split_for_impl();
    let receiver = plan.sig.receiver.map(|span| quote_spanned!(span=> &self,));
    let uncached_block = &function.block;
    let original_inputs = &sig.inputs;

    quote! {
        #[doc = #uncached_doc]
        #(#companion_attrs)*
        #vis async fn #uncached #generics (#original_inputs) #output #where_clause #uncached_block

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

/// Attributes that must follow the fn to its companions: `cfg` and lint levels.
fn is_companion_attr(attr: &syn::Attribute) -> bool {
    ["cfg", "cfg_attr", "allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

fn policy(name: &Ident, plan: &Plan) -> TokenStream {
    let function_name = name.to_string();
    let ttl = plan.ttl_ms;
    let mut chain = quote!(::redis_cached::__private::Policy::new(
        #function_name,
        ::redis_cached::__private::Duration::from_millis(#ttl)
    ));
    match &plan.args.lock {
        Some(Some(lease)) => {
            let ms = lease.ms;
            chain = quote!(#chain.lock(::redis_cached::__private::Duration::from_millis(#ms)));
        }
        Some(None) => chain = quote!(#chain.lock(::redis_cached::__private::DEFAULT_LEASE)),
        None => {}
    }
    match &plan.args.negative {
        Some((_, Some(negative))) => {
            let ms = negative.ms;
            chain = quote!(#chain.negative(::redis_cached::__private::Duration::from_millis(#ms)));
        }
        Some((_, None)) => chain = quote!(#chain.negative_default()),
        None => {}
    }
    if let Some(codec) = plan.args.codec {
        // A trait per codec, implemented only with the codec's feature: with it off, the
        // error names the feature.
        let codec = match codec {
            CodecName::Bincode => quote!(Bincode),
            CodecName::MsgPack => quote!(MsgPack),
            CodecName::Json => quote!(Json),
        };
        chain = quote!(#chain.codec(
            <::redis_cached::__private::codec::Enabled as ::redis_cached::__private::codec::#codec>::CODEC
        ));
    }
    if let Some(version) = plan.args.version {
        chain = quote!(#chain.version(#version));
    }
    if let Some(jitter) = plan.args.jitter {
        chain = quote!(#chain.jitter(#jitter));
    }
    if let Some(stale) = plan.args.stale {
        let ms = stale.ms;
        chain = quote!(#chain.stale(::redis_cached::__private::Duration::from_millis(#ms)));
    }
    if plan.args.refresh.is_some() {
        let beta = match plan.args.beta {
            Some((_, beta)) => quote!(#beta),
            None => quote!(::redis_cached::__private::DEFAULT_REFRESH_BETA),
        };
        chain = quote!(#chain.refresh_early(#beta));
    }
    quote! {
        static __REDIS_CACHED_POLICY: ::redis_cached::__private::Policy = #chain;
    }
}

/// An expression rendering the template into a `String` (no prefix, no hash tag).
fn render(template: &Template, key: &syn::LitStr, sig: &Signature) -> TokenStream {
    let capacity = template.literal_len();
    let pushes = template.segments.iter().map(|segment| match segment {
        Segment::Literal(text) => quote!(__redis_cached_builder.literal(#text);),
        Segment::Placeholder(placeholder) => {
            let (span, value) = placeholder_expr(placeholder, key, sig);
            quote_spanned!(span=> __redis_cached_builder.value(#value);)
        }
    });
    quote! {{
        let mut __redis_cached_builder = ::redis_cached::__private::KeyBuilder::new(#capacity);
        #(#pushes)*
        __redis_cached_builder.finish()
    }}
}

/// `&param.field`: the root spanned at the parameter's name (a missing `Display` is
/// reported there), the fields at the key literal (where a wrong field was written).
fn placeholder_expr(placeholder: &Placeholder, key: &syn::LitStr, sig: &Signature) -> (Span, TokenStream) {
    let span = if placeholder.root == "self" {
        sig.receiver.unwrap_or_else(Span::call_site)
    } else {
        sig.param(&placeholder.root)
            .and_then(|p| p.ident.as_ref())
            .map_or_else(|| key.span(), Ident::span)
    };
    let root = Ident::new(&placeholder.root, span);
    let key_span = key.span();
    let fields = placeholder.fields.iter().map(|field| {
        let member: syn::Member = match field.parse::<u32>() {
            Ok(index) => syn::Member::Unnamed(syn::Index { index, span: key_span }),
            Err(_) => syn::Member::Named(Ident::new(field, key_span)),
        };
        quote_spanned!(key_span=> .#member)
    });
    (span, quote_spanned!(span=> &#root #(#fields)*))
}

/// The `let` that resolves the cache, and the `Option<&Cache>` expression to pass.
fn cache(expr: Option<&syn::Expr>) -> (TokenStream, TokenStream) {
    match expr {
        Some(expr) => (
            quote_spanned! {expr.span()=>
                let __redis_cached_cache = ::redis_cached::__private::AsCache::as_cache(&(#expr));
            },
            quote!(::core::option::Option::Some(__redis_cached_cache)),
        ),
        None => (
            quote!(let __redis_cached_cache = ::redis_cached::__private::default_cache();),
            quote!(::core::option::Option::as_ref(&__redis_cached_cache)),
        ),
    }
}

/// `::<T, N>` for the fn's type and const parameters, when they may be named.
fn turbofish(generics: &syn::Generics, has_impl_trait: bool) -> TokenStream {
    let named: Vec<&Ident> = generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            GenericParam::Const(c) => Some(&c.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    if named.is_empty() || has_impl_trait {
        TokenStream::new()
    } else {
        quote!(::<#(#named),*>)
    }
}

/// Every identifier and lifetime name in `tokens`.
fn names_in(tokens: TokenStream, out: &mut Vec<String>) {
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
fn companion_signature(function: &ItemFn, plan: &Plan) -> (TokenStream, syn::Generics) {
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
    let mut generics = function.sig.generics.clone();
    let keep = |param: &GenericParam| match param {
        GenericParam::Type(t) => mentioned.contains(&t.ident.to_string()),
        GenericParam::Const(c) => mentioned.contains(&c.ident.to_string()),
        GenericParam::Lifetime(l) => mentioned.contains(&l.lifetime.to_string()),
    };
    let dropped: Vec<String> = generics
        .params
        .iter()
        .filter(|p| !keep(p))
        .map(|p| match p {
            GenericParam::Type(t) => t.ident.to_string(),
            GenericParam::Const(c) => c.ident.to_string(),
            GenericParam::Lifetime(l) => l.lifetime.to_string(),
        })
        .collect();
    generics.params = generics.params.into_iter().filter(|p| keep(p)).collect();
    if let Some(where_clause) = &mut generics.where_clause {
        where_clause.predicates = where_clause
            .predicates
            .iter()
            .filter(|predicate: &&WherePredicate| {
                let mut names = Vec::new();
                names_in(predicate.to_token_stream(), &mut names);
                !names.iter().any(|n| dropped.contains(n))
            })
            .cloned()
            .collect();
    }
    if generics.params.is_empty() {
        generics.lt_token = None;
        generics.gt_token = None;
    }
    (inputs, generics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        redis_cached(args, item).to_string()
    }

    #[test]
    fn expands_into_the_runtime_and_companions() {
        let out = expand(
            quote!(key = "product:<id>", ttl = 300, lock, negative),
            quote!(
                async fn get_product(db: &Db, id: u64) -> Result<Option<Product>, DbError> {
                    db.find(id).await
                }
            ),
        );
        for expected in [
            "__private :: result_option :: < Product , _ >",
            "get_product_uncached (db , id)",
            "fn get_product_key (id : u64 ,)",
            "fn get_product_invalidate (id : u64 ,)",
            ". lock (:: redis_cached :: __private :: DEFAULT_LEASE)",
            ". negative_default ()",
        ] {
            assert!(out.contains(expected), "missing `{expected}` in {out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn errors_keep_the_function() {
        let out = expand(
            quote!(ttl = 300),
            quote!(
                async fn get(id: u64) -> u8 {
                    1
                }
            ),
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("missing `key`"), "{out}");
        assert!(out.contains("async fn get (id : u64) -> u8"), "{out}");
    }

    #[test]
    fn companions_keep_only_the_generics_they_use() {
        let out = expand(
            quote!(key = "item:<id>", ttl = 60),
            quote!(
                async fn get<D: Db, K: Display>(db: &D, id: K) -> u8
                where
                    D: Send,
                {
                    1
                }
            ),
        );
        assert!(out.contains("fn get_key < K : Display > (id : K ,)"), "{out}");
    }
}
