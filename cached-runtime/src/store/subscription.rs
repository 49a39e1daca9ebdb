//! The announcement subscription every Redis topology keeps: one `SUBSCRIBE` to the
//! cache's channel, checked with a keepalive `PING`, renewed when it fails or when the
//! command connection was replaced. While there is none, waiters poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSub;
use redis::{RedisError, Value};
use tokio::sync::watch;

use super::announce::{Announcement, Listener};
use super::supervise::{log_failed_attempt, pause};
use crate::backoff::Backoff;
use crate::log::RateLimited;

/// How often the subscription is checked with a `PING`: a connection that a NAT or a
/// firewall dropped silently delivers nothing and reports nothing.
const SUBSCRIPTION_KEEPALIVE: Duration = Duration::from_secs(1);

/// Whether a subscription is up, and which one.
#[derive(Debug, Default)]
pub(crate) struct Subscription {
    subscribed: AtomicBool,
    /// Counts subscriptions made: a message can only have been missed across a change.
    made: AtomicU64,
}

impl Subscription {
    /// See `Store::announcements`.
    pub(crate) fn current(&self) -> Option<u64> {
        // The number is written before `subscribed` is set, and read after it.
        let subscribed = self.subscribed.load(Ordering::Acquire);
        let number = self.made.load(Ordering::Acquire);
        subscribed.then_some(number)
    }

    fn up(&self) {
        self.made.fetch_add(1, Ordering::AcqRel);
        self.subscribed.store(true, Ordering::Release);
    }

    fn down(&self) {
        self.subscribed.store(false, Ordering::Release);
    }
}

/// What the subscription task is given.
pub(crate) struct Subscribe<C> {
    /// Opens a pub/sub connection (to any server that hears the channel).
    pub(crate) connect: C,
    pub(crate) channel: String,
    pub(crate) state: Arc<Subscription>,
    /// Changes when the command connection is replaced: the subscription may be stuck too.
    pub(crate) reconnects: watch::Receiver<u64>,
    /// The deadline of one attempt, and of one keepalive `PING`.
    pub(crate) timeout: Duration,
    pub(crate) listener: Arc<dyn Listener>,
}

/// Keeps one subscription to the announcement channel and hands what it hears to the
/// listener, until `shutdown`'s sender drops.
pub(crate) async fn keep_subscribed<C, F>(subscribe: Subscribe<C>, shutdown: watch::Receiver<()>)
where
    C: Fn() -> F,
    F: Future<Output = Result<PubSub, RedisError>>,
{
    let listener = subscribe.listener.clone();
    let hear = move |payload: &[u8]| {
        if let Some(announcement) = Announcement::decode(payload) {
            listener.heard(announcement);
        }
    };
    let what = Failures {
        subscribe: "cannot subscribe to fill messages; waiters poll instead",
        silent: "the announcement subscription stopped answering; subscribing again",
    };
    keep_subscribed_with(subscribe, hear, what, shutdown).await;
}

/// What the log says when a subscription cannot be made, and when it stops answering.
pub(crate) struct Failures {
    pub(crate) subscribe: &'static str,
    pub(crate) silent: &'static str,
}

/// Keeps one subscription to `subscribe.channel` (its `listener` unused) and hands each
/// message's payload to `hear`, until `shutdown`'s sender drops.
pub(crate) async fn keep_subscribed_with<C, F>(
    subscribe: Subscribe<C>,
    mut hear: impl FnMut(&[u8]),
    what: Failures,
    mut shutdown: watch::Receiver<()>,
) where
    C: Fn() -> F,
    F: Future<Output = Result<PubSub, RedisError>>,
{
    let Subscribe {
        connect,
        channel,
        state,
        mut reconnects,
        timeout,
        listener: _,
    } = subscribe;
    let mut backoff = Backoff::new();
    let failures_logged = RateLimited::new();
    let silences_logged = RateLimited::new();
    loop {
        // Reconnects before this subscription is made do not concern it.
        reconnects.borrow_and_update();
        let attempt = async {
            let mut pubsub = connect().await?;
            pubsub.subscribe(channel.as_str()).await?;
            Ok::<_, RedisError>(pubsub.split())
        };
        let (mut sink, mut messages) = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(subscription)) => subscription,
            failed => {
                log_failed_attempt(&failures_logged, &failed, timeout, what.subscribe);
                if !pause(&mut backoff, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        state.up();
        let mut keepalive = tokio::time::interval(SUBSCRIPTION_KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => hear(message.get_payload_bytes()),
                    None => break,
                },
                _ = keepalive.tick() => {
                    let ping = tokio::time::timeout(timeout, sink.ping::<Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        log_failed_attempt(&silences_logged, &ping, timeout, what.silent);
                        break;
                    }
                }
                _ = reconnects.changed() => break,
                _ = shutdown.changed() => {
                    state.down();
                    return;
                }
            }
        }
        state.down();
    }
}
