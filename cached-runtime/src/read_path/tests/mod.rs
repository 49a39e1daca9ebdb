//! The read path against the scripted store: each step, and how it holds up when a
//! lease is lost, an announcement never arrives, Redis stops answering midway, a fill
//! times out, or a refresh races an invalidation. Time is tokio's paused clock.

mod outcomes;
mod races;
mod steps;
mod support;
