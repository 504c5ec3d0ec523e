//! xorshift64*: a small dependency-free generator shared by the benchmarks. Seeded with
//! a constant it replays the same stream every run; seeded from the clock it gives
//! pauses no restarter's timer can lock onto.

// Each benchmark binary includes this file and uses only part of it.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of the space-separated words of `words`.
    pub fn word<'a>(&mut self, words: &'a str) -> &'a str {
        let n = words.split(' ').count();
        words.split(' ').nth(self.below(n)).unwrap_or(words)
    }
}
