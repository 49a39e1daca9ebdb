//! The store's misbehaviour in a run, drawn from the seed: faults on requests, and how
//! each announcement reaches each process.

use std::time::Duration;

use super::plan::Storm;
use super::rng::Rng;
use crate::store::Announcement;
use crate::store::scripted::{Delivery, Fault, Op, Script};

#[derive(Debug)]
pub(super) struct Chaos {
    rng: Rng,
    storm: Storm,
}

impl Chaos {
    pub(super) fn new(seed: u64, storm: Storm) -> Self {
        Self {
            rng: Rng::new(seed, 2),
            storm,
        }
    }
}

impl Script for Chaos {
    fn fault(&mut self, _process: usize, _op: &Op) -> Option<Fault> {
        if !self.rng.chance(self.storm.faults) {
            // Requests of different processes interleave, as on a network.
            let latency = self.rng.chance(self.storm.latency).then(|| Fault::Slow {
                before: self.rng.ms(0, 2),
                after: self.rng.ms(0, 2),
            });
            return latency;
        }
        Some(match self.rng.below(8) {
            0 => Fault::Skipped,
            1 => Fault::Lost,
            2 | 3 => Fault::Unanswered,
            // Mostly within the deadline, sometimes past it.
            _ => Fault::Slow {
                before: self.rng.ms(0, 40),
                after: self.rng.ms(0, 40),
            },
        })
    }

    fn delivery(&mut self, _process: usize, _announcement: &Announcement) -> Delivery {
        if self.rng.chance(self.storm.on_time) {
            return Delivery::Now;
        }
        match self.rng.below(10) {
            0..=4 => Delivery::After(self.rng.ms(1, 120)),
            5..=7 => Delivery::Lost,
            _ => Delivery::Silent {
                noticed: self.rng.ms(100, 1500),
            },
        }
    }

    fn outage(&mut self, _process: usize) -> Duration {
        self.rng.ms(20, 400)
    }
}
