//! Which call a request is sent for. A future wrapped in [`attributed`] marks every
//! request it sends with its call's number, so the history tells calls apart; spawned
//! tasks (a background release) send unmarked requests.

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static CALL: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The call being polled on this thread, if any.
pub(super) fn current() -> Option<u64> {
    CALL.with(Cell::get)
}

/// `inner`, polled as call `call`.
pub(crate) fn attributed<F: Future>(call: u64, inner: F) -> Attributed<F> {
    Attributed {
        call,
        inner: Box::pin(inner),
    }
}

#[derive(Debug)]
pub(crate) struct Attributed<F> {
    call: u64,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Attributed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let outer = CALL.with(|call| call.replace(Some(this.call)));
        let polled = this.inner.as_mut().poll(cx);
        CALL.with(|call| call.set(outer));
        polled
    }
}
