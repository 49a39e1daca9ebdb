//! Generates the cached fn and its companions. The only module that writes `quote!`:
//! `companions` writes `f_key` and `f_invalidate`, `impl_block` the attribute on an
//! `impl` block.

mod companions;
mod impl_block;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{AttrStyle, Block, Ident, ItemFn, ItemImpl, TraitItemFn};

use crate::args::{CodecName, Near};
use crate::async_trait::Boxed;
use crate::check::{self, InvalidatePlan, Plan};
use crate::key::{Placeholder, Segment, Template};
use crate::sig::{self, Returns, Signature};

/// Expands `#[redis_cached(args)]` on a fn, or `#[redis_cached]` on an `impl` block. On
/// any error, the item comes back unchanged with the errors beside it, so callers get no
/// second "cannot find" error.
pub(crate) fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    if let Ok(block) = syn::parse2::<ItemImpl>(item.clone()) {
        return impl_block::expand(args, block);
    }
    expand(item, "redis_cached", |function| {
        check::plan(args, function, None).map(|plan| generate(function, &plan))
    })
}

/// Parses the fn, then runs `expansion`; on any error the fn comes back unchanged with
/// the errors beside it.
fn expand(
    item: TokenStream,
    attribute: &str,
    expansion: impl FnOnce(&ItemFn) -> Result<TokenStream, syn::Error>,
) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = declaration(&item, attribute).unwrap_or(error).to_compile_error();
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

/// The error for the attribute on a trait method with no body, which has nothing to
/// cache: it goes on the method in each `impl`.
fn declaration(item: &TokenStream, attribute: &str) -> Option<syn::Error> {
    let method: TraitItemFn = syn::parse2(item.clone()).ok()?;
    if method.default.is_some() {
        return None;
    }
    let name = &method.sig.ident;
    let message = if attribute == "redis_cached" {
        format!(
            "`#[redis_cached]` cannot go on a trait method without a body; put it on `{name}` in each \
             `impl` of the trait, and `#[redis_cached]` on that `impl` block for `{name}_key` and \
             `{name}_invalidate`"
        )
    } else {
        format!(
            "`#[{attribute}]` cannot go on a trait method without a body; put it on `{name}` in each \
             `impl` of the trait"
        )
    };
    Some(syn::Error::new(Span::call_site(), message))
}

/// Expands `#[redis_invalidate(key = "...", ..., cache = ...)] function`: the keys are
/// rendered before the body runs (it may consume its arguments), and invalidated after
/// it returns, unless it returned `Err`. A key or tag naming the result (`<return…>`) is
/// rendered after the body, from its value and from its parameters' values rendered
/// before. Errors come back as for `#[redis_cached]`.
pub(crate) fn redis_invalidate(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(item, "redis_invalidate", |function| {
        check::plan_invalidate(args, function).map(|plan| generate_invalidate(function, &plan))
    })
}

fn generate_invalidate(function: &ItemFn, plan: &InvalidatePlan) -> TokenStream {
    let sig = &plan.sig;
    let name = function.sig.ident.to_string();
    let (cache_let, cache_ref) = cache(plan.args.common.cache.as_ref());
    let output = &sig.output;
    let boxed = crate::async_trait::recognise(function);
    let body = body(function, boxed.as_ref(), output);
    let names_return = plan
        .keys
        .iter()
        .chain(&plan.tags)
        .any(|(_, template)| template.names_return());
    let invalidate = quote! {
        ::redis_cached::__private::invalidate_after(#cache_ref, #name, &__redis_cached_keys, &__redis_cached_tags)
            .await;
    };
    let statements = if names_return {
        after_result(plan, &body, &cache_let, &invalidate)
    } else {
        let (key_count, tag_count) = (plan.keys.len(), plan.tags.len());
        let renders = plan.keys.iter().map(|(key, template)| render(template, key, sig, None));
        let tag_renders = plan.tags.iter().map(|(tag, template)| render(template, tag, sig, None));
        let succeeded = match &sig.returns {
            Returns::Result(_) | Returns::ResultOption(_) => {
                quote!(::core::result::Result::is_ok(&__redis_cached_out))
            }
            Returns::Plain(_) | Returns::Option(_) => quote!(true),
        };
        quote! {
            // Rendered first: the body may consume the arguments the keys use.
            let __redis_cached_keys: [::redis_cached::__private::String; #key_count] = [#(#renders),*];
            let __redis_cached_tags: [::redis_cached::__private::String; #tag_count] = [#(#tag_renders),*];
            #cache_let
            let __redis_cached_out: #output = #body.await;
            if #succeeded {
                #invalidate
            }
            __redis_cached_out
        }
    };
    in_place(function, boxed.as_ref(), statements)
}

/// The statements of a `#[redis_invalidate]` fn some of whose keys or tags name its
/// result: each parameter value a template uses is rendered before the body (which may
/// consume it), the keys and tags after it succeeded, from `__redis_cached_return` (the
/// `Ok` value, or the value) and those renderings, and the borrow of the result ends
/// before the invalidation is awaited.
fn after_result(
    plan: &InvalidatePlan,
    body: &TokenStream,
    cache_let: &TokenStream,
    invalidate: &TokenStream,
) -> TokenStream {
    let (sig, output) = (&plan.sig, &plan.sig.output);
    let mut early = Vec::new();
    let renders: Vec<TokenStream> = plan
        .keys
        .iter()
        .map(|(key, template)| render(template, key, sig, Some(&mut early)))
        .collect();
    let tag_renders: Vec<TokenStream> = plan
        .tags
        .iter()
        .map(|(tag, template)| render(template, tag, sig, Some(&mut early)))
        .collect();
    let early_count = early.len();
    // Rendered first: the body may consume the arguments the keys use.
    let early_let = (early_count > 0)
        .then(|| quote!(let __redis_cached_early: [::redis_cached::__private::String; #early_count] = [#(#early),*];));
    let (key_count, tag_count) = (renders.len(), tag_renders.len());
    let rendered_ty = quote! {
        ([::redis_cached::__private::String; #key_count], [::redis_cached::__private::String; #tag_count])
    };
    let rendered = quote!(([#(#renders),*], [#(#tag_renders),*]));
    let (rendered_let, run) = match &sig.returns {
        Returns::Result(_) | Returns::ResultOption(_) => (
            quote! {
                let __redis_cached_rendered: ::core::option::Option<#rendered_ty> = ::core::option::Option::map(
                    ::core::result::Result::ok(::core::result::Result::as_ref(&__redis_cached_out)),
                    |__redis_cached_return| #rendered,
                );
            },
            quote! {
                if let ::core::option::Option::Some((__redis_cached_keys, __redis_cached_tags)) = __redis_cached_rendered {
                    #invalidate
                }
            },
        ),
        Returns::Plain(_) | Returns::Option(_) => (
            quote! {
                let (__redis_cached_keys, __redis_cached_tags): #rendered_ty = {
                    let __redis_cached_return = &__redis_cached_out;
                    #rendered
                };
            },
            invalidate.clone(),
        ),
    };
    quote! {
        #early_let
        #cache_let
        let __redis_cached_out: #output = #body.await;
        #rendered_let
        #run
        __redis_cached_out
    }
}

/// The cached fn, then its companions. A fn `#[async_trait]` expanded is in a trait impl
/// (or a trait), where items that are not the trait's members cannot go: it gets none.
fn generate(function: &ItemFn, plan: &Plan) -> TokenStream {
    let cached = cached_fn(function, plan);
    if plan.sig.boxed {
        return cached;
    }
    let companions = companions::companions(function, plan, &function.vis);
    quote!(#cached #companions)
}

/// The fn itself: its policy, key and tags, read through the cache around its own body.
fn cached_fn(function: &ItemFn, plan: &Plan) -> TokenStream {
    let name = &function.sig.ident;
    let policy = policy(name, plan);
    let render = render(&plan.template, &plan.key, &plan.sig, None);
    let (cache_let, cache_ref) = cache(plan.args.common.cache.as_ref());
    let value_ty = plan.sig.returns.value();
    // A type that cannot be cached is one error under the whole value type: the call
    // starts at its first token and ends at its last, and rustc joins the two.
    let (first, last) = sig::ends(value_ty);
    let entry = match &plan.sig.returns {
        Returns::Plain(_) => quote_spanned!(first=> ::redis_cached::__private::plain::<#value_ty>),
        Returns::Option(_) => quote_spanned!(first=> ::redis_cached::__private::option::<#value_ty>),
        Returns::Result(_) => quote_spanned!(first=> ::redis_cached::__private::result::<#value_ty, _>),
        Returns::ResultOption(_) => quote_spanned!(first=> ::redis_cached::__private::result_option::<#value_ty, _>),
    };
    let boxed = crate::async_trait::recognise(function);
    let body = body(function, boxed.as_ref(), &plan.sig.output);
    let mut arguments = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote_spanned! {first=>
            #cache_ref,
            &__REDIS_CACHED_POLICY,
            &__redis_cached_key,
            &__redis_cached_tags,
            #body,
        },
    );
    arguments.set_span(last);
    let (dot, await_token) = (quote_spanned!(first=> .), quote_spanned!(last=> await));
    let call = quote!(#entry #arguments #dot #await_token);
    let tag_count = plan.tags.len();
    let tag_renders = plan
        .tags
        .iter()
        .map(|(tag, template)| self::render(template, tag, &plan.sig, None));
    in_place(
        function,
        boxed.as_ref(),
        quote! {
            #policy
            let __redis_cached_key = #render;
            let __redis_cached_tags: [::redis_cached::__private::String; #tag_count] = [#(#tag_renders),*];
            #cache_let
            #call
        },
    )
}

/// The fn's own body as a future: an `async move` block in the same fn (so `self`,
/// generics and `where` just work), its type pinned to `output` (tracing's "fake return
/// edge"), so `?` and `return` in the body work.
fn body(function: &ItemFn, boxed: Option<&Boxed<'_>>, output: &syn::Type) -> TokenStream {
    let block: &Block = boxed.map_or(&function.block, |boxed| &boxed.future.block);
    // At the return type, so a body of the wrong type is reported against it.
    let span = match &function.sig.output {
        syn::ReturnType::Default => function.sig.ident.span(),
        syn::ReturnType::Type(..) => output.span(),
    };
    let type_hint = quote_spanned! {span=>
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            reason = "a type hint, never run"
        )]
        if false {
            let __redis_cached_type: #output = loop {};
            return __redis_cached_type;
        }
    };
    quote! {
        async move {
            #type_hint
            #block
        }
    }
}

/// The fn as written with `body` in place of its block: of an `async fn`, the whole
/// block; of a fn `#[async_trait]` expanded, the async block it boxes.
fn in_place(function: &ItemFn, boxed: Option<&Boxed<'_>>, body: TokenStream) -> TokenStream {
    let outer = function.attrs.iter().filter(|a| matches!(a.style, AttrStyle::Outer));
    let inner = function.attrs.iter().filter(|a| matches!(a.style, AttrStyle::Inner(_)));
    let (vis, defaultness, sig) = (&function.vis, &function.modifiers.defaultness, &function.sig);
    let body = match boxed {
        None => body,
        Some(boxed) => {
            let (before, pin) = (boxed.before, boxed.pin);
            let (future_attrs, capture) = (&boxed.future.attrs, &boxed.future.capture);
            quote!(#(#before)* #pin(#(#future_attrs)* async #capture { #body }))
        }
    };
    quote! {
        #(#outer)*
        #vis #defaultness #sig {
            #(#inner)*
            #body
        }
    }
}

fn policy(name: &Ident, plan: &Plan) -> TokenStream {
    let function_name = name.to_string();
    let ttl = plan.ttl_ms;
    let template = plan.key.value();
    let mut chain = quote!(::redis_cached::__private::Policy::new(
        #function_name,
        ::redis_cached::__private::Duration::from_millis(#ttl)
    ).key_template(#template));
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
    match plan.args.near {
        Some(Near::Within(max_age)) => {
            let ms = max_age.ms;
            chain = quote!(#chain.near(::redis_cached::__private::Duration::from_millis(#ms)));
        }
        Some(Near::Off) => chain = quote!(#chain.no_near()),
        None => {}
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

/// An expression rendering the template into a `String` (no prefix, no hash tag). With
/// `early`, each parameter value is rendered on its own into `early` (to run before the
/// body) and the template takes it from `__redis_cached_early`; `<return…>` is read from
/// `__redis_cached_return`.
fn render(
    template: &Template,
    key: &syn::LitStr,
    sig: &Signature,
    mut early: Option<&mut Vec<TokenStream>>,
) -> TokenStream {
    let capacity = template.literal_len();
    let pushes: Vec<TokenStream> = template
        .segments
        .iter()
        .map(|segment| match (segment, early.as_deref_mut()) {
            (Segment::Literal(text), _) => quote!(__redis_cached_builder.literal(#text);),
            (Segment::Placeholder(placeholder), Some(early)) if !placeholder.is_return() => {
                let piece = render_one(push(placeholder, key, sig));
                let index = proc_macro2::Literal::usize_unsuffixed(early.len());
                early.push(piece);
                quote!(__redis_cached_builder.literal(&__redis_cached_early[#index]);)
            }
            (Segment::Placeholder(placeholder), _) => push(placeholder, key, sig),
        })
        .collect();
    quote! {{
        let mut __redis_cached_builder = ::redis_cached::__private::KeyBuilder::new(#capacity);
        #(#pushes)*
        __redis_cached_builder.finish()
    }}
}

/// An expression rendering one placeholder value alone (escaped, as in a key).
fn render_one(push: TokenStream) -> TokenStream {
    quote! {{
        let mut __redis_cached_builder = ::redis_cached::__private::KeyBuilder::new(8);
        #push
        __redis_cached_builder.finish()
    }}
}

/// The statement appending the placeholder's value to `__redis_cached_builder`.
fn push(placeholder: &Placeholder, key: &syn::LitStr, sig: &Signature) -> TokenStream {
    // Passed by a local at the key literal: a value without `Display` is reported under
    // the key, not at the parameter.
    let at_key = key.span();
    let value = placeholder_expr(placeholder, key, sig);
    quote_spanned! {at_key=> {
        let __redis_cached_value = #value;
        __redis_cached_builder.value(__redis_cached_value);
    }}
}

/// `&param.field`: the root spanned at the parameter's name (so it names the parameter
/// in any expansion), the fields at the key literal (where a wrong field was written).
/// `<return>` is `__redis_cached_return`, a reference already, spanned at the key literal.
fn placeholder_expr(placeholder: &Placeholder, key: &syn::LitStr, sig: &Signature) -> TokenStream {
    let key_span = key.span();
    let fields = placeholder.fields.iter().map(|field| {
        let member: syn::Member = match field.parse::<u32>() {
            Ok(index) => syn::Member::Unnamed(syn::Index { index, span: key_span }),
            Err(_) => syn::Member::Named(Ident::new(field, key_span)),
        };
        quote_spanned!(key_span=> .#member)
    });
    if placeholder.is_return() {
        let root = Ident::new("__redis_cached_return", key_span);
        return if placeholder.fields.is_empty() {
            quote_spanned!(key_span=> #root)
        } else {
            quote_spanned!(key_span=> &#root #(#fields)*)
        };
    }
    let span = if placeholder.root == "self" {
        sig.receiver.unwrap_or_else(Span::call_site)
    } else {
        sig.param(&placeholder.root)
            .and_then(|p| p.ident.as_ref())
            .map_or_else(|| key.span(), Ident::span)
    };
    let root = Ident::new(&placeholder.root, span);
    quote_spanned!(span=> &#root #(#fields)*)
}

/// The `let` that resolves the cache, and the `Option<&Cache>` expression to pass. A
/// named cache is cloned (an `Arc` clone), so the local borrows nothing: the body, which
/// runs after it, may consume `self` or the argument the cache comes from.
fn cache(expr: Option<&syn::Expr>) -> (TokenStream, TokenStream) {
    let cache_let = match expr {
        Some(expr) => quote_spanned! {expr.span()=>
            let __redis_cached_cache = ::core::option::Option::Some(::core::clone::Clone::clone(
                ::redis_cached::__private::AsCache::as_cache(&(#expr)),
            ));
        },
        None => quote!(let __redis_cached_cache = ::redis_cached::__private::default_cache();),
    };
    (cache_let, quote!(::core::option::Option::as_ref(&__redis_cached_cache)))
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
            "fn get_product_key (id : u64 ,)",
            "fn get_product_invalidate (id : u64 ,)",
            ". lock (:: redis_cached :: __private :: DEFAULT_LEASE)",
            ". negative_default ()",
        ] {
            assert!(out.contains(expected), "missing `{expected}` in {out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
        assert!(!out.contains("_uncached"), "{out}");
        assert_eq!(
            out.matches("db . find (id) . await").count(),
            1,
            "the body once, in place: {out}"
        );
    }

    #[test]
    fn near_sets_the_max_age_or_turns_the_near_cache_off() {
        let item = quote!(
            async fn get(id: u64) -> u8 {
                1
            }
        );
        let within = expand(quote!(key = "item:<id>", ttl = 60, near = "10s"), item.clone());
        assert!(
            within.contains(". near (:: redis_cached :: __private :: Duration :: from_millis (10000u64))"),
            "{within}"
        );
        let off = expand(quote!(key = "item:<id>", ttl = 60, near = false), item.clone());
        assert!(off.contains(". no_near ()"), "{off}");
        let default = expand(quote!(key = "item:<id>", ttl = 60), item);
        assert!(!default.contains("near"), "{default}");
    }

    #[test]
    fn an_associated_fn_runs_its_body_in_place() {
        let out = expand(
            quote!(key = "product:<id>", ttl = 60),
            quote!(
                async fn find(id: u64) -> Product {
                    Product::load(id).await
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("async move"), "{out}");
        assert!(out.contains("fn find_key (id : u64 ,)"), "{out}");
    }

    #[test]
    fn a_method_async_trait_expanded_is_cached_inside_its_boxed_block_without_companions() {
        let out = expand(
            quote!(key = "repo:<id>", ttl = 60),
            quote!(
                fn get<'life0, 'async_trait>(
                    &'life0 self,
                    id: u64,
                ) -> ::core::pin::Pin<
                    Box<dyn ::core::future::Future<Output = Option<Row>> + ::core::marker::Send + 'async_trait>,
                >
                where
                    'life0: 'async_trait,
                    Self: 'async_trait,
                {
                    Box::pin(async move {
                        let __self = self;
                        let __ret: Option<Row> = { __self.find(id).await };
                        __ret
                    })
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("Box :: pin (async move {"), "{out}");
        assert!(out.contains("__private :: option :: < Row >"), "{out}");
        assert!(!out.contains("get_key"), "{out}");
    }

    #[test]
    fn a_trait_impl_block_keeps_only_trait_members_and_puts_companions_beside_it() {
        let out = expand(
            TokenStream::new(),
            quote!(
                impl<T: Clone> Repo for PgRepo<T>
                where
                    T: Send,
                {
                    #[redis_cached(key = "repo:<id>", ttl = 60)]
                    async fn get(&self, id: u64) -> Option<Row> {
                        self.find(id).await
                    }
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        let (trait_impl, inherent) = out
            .split_once("impl < T : Clone > PgRepo < T > where T : Send")
            .expect(&out);
        assert!(
            !trait_impl.contains("get_key") && !trait_impl.contains("# [redis_cached"),
            "{out}"
        );
        assert!(
            inherent.contains("pub (crate) fn get_key (& self , id : u64 ,)"),
            "{out}"
        );
        assert!(inherent.contains("pub (crate) async fn get_invalidate"), "{out}");
    }

    #[test]
    fn generics_only_the_trait_names_go_on_the_companions() {
        let out = expand(
            TokenStream::new(),
            quote!(
                impl<'r, S: Sync, T: Display> Find<T> for Repo<'r, S>
                where
                    S: Send,
                    T: Sync,
                {
                    #[redis_cached(key = "find:<id>", ttl = 60, cache = self.cache)]
                    async fn find<'a>(&'a self, id: &'a T) -> Option<String> {
                        None
                    }
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        let (_, inherent) = out
            .split_once("impl < 'r , S : Sync > Repo < 'r , S > where S : Send {")
            .expect(&out);
        assert!(
            inherent.contains("fn find_key < 'a , T : Display > (& self , id : & 'a T ,)"),
            "{out}"
        );
        assert!(inherent.contains("where T : Sync"), "{out}");
    }

    #[test]
    fn an_inherent_impl_block_is_left_to_its_methods_attributes() {
        let block = quote!(
            impl PgRepo {
                #[redis_cached(key = "repo:<id>", ttl = 60)]
                async fn get(&self, id: u64) -> u8 {
                    1
                }
            }
        );
        assert_eq!(expand(TokenStream::new(), block.clone()), block.to_string());
    }

    #[test]
    fn an_impl_block_takes_only_companions() {
        let out = expand(quote!(ttl = 60), quote!(impl Repo for PgRepo {}));
        assert!(
            out.contains("on an `impl` block takes only `companions = false`"),
            "{out}"
        );
    }

    #[test]
    fn an_impl_block_without_companions_has_no_inherent_impl() {
        let block = quote!(
            impl Repo for PgRepo {
                #[redis_cached(key = "repo:<id>", ttl = 60)]
                async fn get(&self, id: u64) -> u8 {
                    1
                }
            }
        );
        let with = expand(TokenStream::new(), block.clone());
        assert!(with.contains("fn get_key"), "{with}");
        let without = expand(quote!(companions = false), block);
        assert!(
            !without.contains("get_key") && !without.contains("get_invalidate"),
            "{without}"
        );
        assert!(!without.contains("compile_error"), "{without}");
    }

    #[test]
    fn a_trait_method_without_a_body_says_where_the_attribute_goes() {
        let out = expand(
            quote!(key = "repo:<id>", ttl = 60),
            quote!(
                async fn get(&self, id: u64) -> u8;
            ),
        );
        assert!(out.contains("put it on `get` in each `impl` of the trait"), "{out}");
        assert!(!out.contains("expected curly braces"), "{out}");
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

    #[test]
    fn a_template_naming_the_result_renders_after_the_body_from_parameters_rendered_before() {
        let out = redis_invalidate(
            quote!(
                key = "product:<id>",
                tags = ["category:<return.before.category_id>", "shop:<shop>:<return.0>"]
            ),
            quote!(
                async fn update(id: u64, shop: String) -> Result<Updated, DbError> {
                    db.update(id, shop).await
                }
            ),
        )
        .to_string();
        assert!(!out.contains("compile_error"), "{out}");
        let (before, after) = out.split_once("db . update (id , shop) . await").expect(&out);
        assert_eq!(
            before.matches("__redis_cached_builder . value").count(),
            2,
            "`id` and `shop`: {out}"
        );
        assert!(before.contains("let __redis_cached_early"), "{out}");
        assert!(
            after.contains("__redis_cached_early [0]") && after.contains("__redis_cached_early [1]"),
            "{out}"
        );
        assert!(
            after.contains("& __redis_cached_return . before . category_id"),
            "{out}"
        );
        assert!(after.contains("& __redis_cached_return . 0"), "{out}");
        assert!(
            after.contains(":: core :: result :: Result :: ok"),
            "only the `Ok` value: {out}"
        );
    }

    #[test]
    fn without_the_result_the_keys_render_before_the_body_as_they_always_did() {
        let out = redis_invalidate(
            quote!(key = "product:<id>"),
            quote!(
                async fn update(id: u64) -> Result<u64, DbError> {
                    Ok(id)
                }
            ),
        )
        .to_string();
        assert!(
            !out.contains("__redis_cached_early") && !out.contains("__redis_cached_return"),
            "{out}"
        );
        assert!(out.contains(":: core :: result :: Result :: is_ok"), "{out}");
    }
}
