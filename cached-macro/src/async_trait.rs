//! Recognises a fn that `#[async_trait]` already expanded, as tracing's `#[instrument]`
//! does: not `async`, returning `Pin<Box<dyn Future<Output = T> + ...>>`, its last
//! statement `Box::pin(async move { ... })`. The attributes then wrap that inner async
//! block instead of the fn, and cache (or invalidate around) its `T`.

use syn::{Block, Expr, ExprAsync, GenericArgument, ItemFn, PathArguments, ReturnType, Stmt, Type, TypeParamBound};

/// A fn whose body is a boxed async block.
pub(crate) struct Boxed<'a> {
    /// The `T` of `Output = T`: what the async block produces.
    pub(crate) output: &'a Type,
    /// The statements before the last one (`#[async_trait]` writes none).
    pub(crate) before: &'a [Stmt],
    /// The fn that boxes the block, as written: `Box::pin`.
    pub(crate) pin: &'a Expr,
    /// The async block inside.
    pub(crate) future: &'a ExprAsync,
}

/// The boxed async block of `function`, if it has the shape `#[async_trait]` gives a fn.
pub(crate) fn recognise(function: &ItemFn) -> Option<Boxed<'_>> {
    if function.sig.asyncness.is_some() {
        return None;
    }
    let ReturnType::Type(_, ty) = &function.sig.output else {
        return None;
    };
    let output = future_output(ty)?;
    let (pin, future, before) = boxed_block(&function.block)?;
    Some(Boxed {
        output,
        before,
        pin,
        future,
    })
}

/// `T` in `Pin<Box<dyn Future<Output = T> + ...>>`, whatever the paths' prefixes.
fn future_output(ty: &Type) -> Option<&Type> {
    let pinned = only_argument(ty, "Pin")?;
    let Type::TraitObject(object) = only_argument(pinned, "Box")? else {
        return None;
    };
    object.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        })
    })
}

/// The one type argument of `path::Name<T>`.
fn only_argument<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

/// `Box::pin(async ... { ... })` as the block's last statement, with the ones before it.
fn boxed_block(block: &Block) -> Option<(&Expr, &ExprAsync, &[Stmt])> {
    let (Stmt::Expr(Expr::Call(call), None), before) = block.stmts.split_last()? else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let mut segments = func.path.segments.iter().rev();
    let is_box_pin =
        segments.next().is_some_and(|s| s.ident == "pin") && segments.next().is_some_and(|s| s.ident == "Box");
    match (is_box_pin, call.args.iter().collect::<Vec<_>>().as_slice()) {
        (true, [Expr::Async(future)]) => Some((&call.func, future, before)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn output_of(function: &str) -> Option<String> {
        let function: ItemFn = syn::parse_str(function).unwrap();
        recognise(&function).map(|boxed| boxed.output.to_token_stream().to_string())
    }

    #[test]
    fn recognises_what_async_trait_writes() {
        let expanded = "fn get<'life0, 'async_trait>(&'life0 self, id: u64)
            -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = Option<Row>> + ::core::marker::Send + 'async_trait>>
            where 'life0: 'async_trait, Self: 'async_trait
            {
                Box::pin(async move {
                    let __self = self;
                    let __ret: Option<Row> = { None };
                    __ret
                })
            }";
        assert_eq!(output_of(expanded).as_deref(), Some("Option < Row >"));
        let local = "fn get(&self) -> Pin<Box<dyn Future<Output = u8> + 'async_trait>> { Box::pin(async move { 1 }) }";
        assert_eq!(output_of(local).as_deref(), Some("u8"));
    }

    #[test]
    fn other_fns_are_not_boxed_async_blocks() {
        for function in [
            "async fn get() -> Pin<Box<dyn Future<Output = u8>>> { Box::pin(async move { 1 }) }",
            "fn get() -> u8 { 1 }",
            "fn get() -> Pin<Box<dyn Future<Output = u8>>> { Box::pin(ready(1)) }",
            "fn get() -> Pin<Box<dyn Future<Output = u8>>> { let f = Box::pin(async move { 1 }); f }",
            "fn get() -> Box<dyn Future<Output = u8>> { Box::new(async move { 1 }) }",
            "fn get() -> Pin<Box<dyn Iterator<Item = u8>>> { Box::pin(async move { 1 }) }",
        ] {
            assert_eq!(output_of(function), None, "{function}");
        }
    }
}
