// SPDX-License-Identifier: GPL-2.0

//! Seeded allocation traces, the same for every allocator.
//!
//! A trace is a list of operations over numbered *slots*: `Alloc(order)` into a slot, and
//! `Free(slot)` of what an earlier `Alloc` put there. The trace is made by a model that only
//! counts pages (it knows nothing of placement), so it is the same for every allocator; an
//! allocator that refuses an `Alloc` leaves its slot empty and the matching `Free` is skipped
//! (the replay counts such refusals).

/// Pages of the arena: one zone of 16384 pages, as 16 chunks of order 10, like the module's
/// NORMAL zone by default.
pub const PAGES: usize = 16384;
/// Order of each chunk.
pub const CHUNK_ORDER: u32 = 10;
/// Orders the traces ask for: 0..=MAX_TRACE_ORDER, uniformly.
pub const MAX_TRACE_ORDER: u32 = 4;

/// An operation, packed: bit 31 set for a free, bits 24..29 the order, bits 0..24 the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op(u32);

const FREE: u32 = 1 << 31;
const SLOT_MASK: u32 = (1 << 24) - 1;

impl Op {
    fn alloc(order: u32, slot: u32) -> Self {
        Self(order << 24 | slot)
    }

    fn free(order: u32, slot: u32) -> Self {
        Self(FREE | order << 24 | slot)
    }

    /// Whether this is a free (else an allocation).
    #[inline(always)]
    pub fn is_free(self) -> bool {
        self.0 & FREE != 0
    }

    #[inline(always)]
    pub fn order(self) -> u32 {
        (self.0 >> 24) & 0x1f
    }

    #[inline(always)]
    pub fn slot(self) -> usize {
        (self.0 & SLOT_MASK) as usize
    }
}

/// A generated trace.
pub struct Trace {
    pub name: &'static str,
    pub ops: Vec<Op>,
    /// Slots used (the replay's table size).
    pub slots: usize,
    /// The most blocks of each order live at once (what never-splitting stacks need).
    pub max_live: [usize; MAX_TRACE_ORDER as usize + 1],
}

/// xorshift64, as the tests of buddy.rs and pcp.rs use.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The model the traces are made with: which slots hold a block of which order.
struct Model {
    rng: Rng,
    ops: Vec<Op>,
    /// Live (slot, order), in no particular order.
    live: Vec<(u32, u32)>,
    spare_slots: Vec<u32>,
    slots: u32,
    used: usize,
    live_per_order: [usize; MAX_TRACE_ORDER as usize + 1],
    max_live: [usize; MAX_TRACE_ORDER as usize + 1],
}

impl Model {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            ops: Vec::new(),
            live: Vec::new(),
            spare_slots: Vec::new(),
            slots: 0,
            used: 0,
            live_per_order: [0; MAX_TRACE_ORDER as usize + 1],
            max_live: [0; MAX_TRACE_ORDER as usize + 1],
        }
    }

    fn random_order(&mut self) -> u32 {
        self.rng.below(u64::from(MAX_TRACE_ORDER) + 1) as u32
    }

    fn alloc(&mut self, order: u32) {
        let slot = self.spare_slots.pop().unwrap_or_else(|| {
            self.slots += 1;
            self.slots - 1
        });
        self.ops.push(Op::alloc(order, slot));
        self.live.push((slot, order));
        self.used += 1 << order;
        let o = order as usize;
        self.live_per_order[o] += 1;
        self.max_live[o] = self.max_live[o].max(self.live_per_order[o]);
    }

    /// Frees the live block at position `k` of `live`.
    fn free_at(&mut self, k: usize) {
        let (slot, order) = self.live.swap_remove(k);
        self.ops.push(Op::free(order, slot));
        self.spare_slots.push(slot);
        self.used -= 1 << order;
        self.live_per_order[order as usize] -= 1;
    }

    fn free_random(&mut self) {
        if !self.live.is_empty() {
            let k = self.rng.below(self.live.len() as u64) as usize;
            self.free_at(k);
        }
    }

    fn finish(self, name: &'static str) -> Trace {
        Trace {
            name,
            ops: self.ops,
            slots: self.slots as usize,
            max_live: self.max_live,
        }
    }
}

/// Random churn of orders 0..=4 around `percent` % of the arena: a fill up to it, then `ops`
/// operations that allocate (3 in 4) while below it and free (3 in 4) while at or above it.
pub fn churn(name: &'static str, seed: u64, percent: usize, ops: usize) -> Trace {
    let mut m = Model::new(seed);
    let target = PAGES * percent / 100;
    loop {
        let o = m.random_order();
        if m.used + (1 << o) > target {
            break;
        }
        m.alloc(o);
    }
    let start = m.ops.len();
    while m.ops.len() - start < ops {
        let o = m.random_order();
        let below = m.used < target;
        let coin = m.rng.below(4) != 0;
        if below == coin && m.used + (1 << o) <= PAGES {
            m.alloc(o);
        } else {
            m.free_random();
        }
    }
    m.finish(name)
}

/// `passes` times: allocate random orders 0..=4 until the arena is exactly full (the last
/// requests shrink to what still fits), then free every block in random order.
pub fn fill_drain(name: &'static str, seed: u64, passes: usize) -> Trace {
    let mut m = Model::new(seed);
    for _ in 0..passes {
        while m.used < PAGES {
            let mut o = m.random_order();
            while m.used + (1 << o) > PAGES {
                o -= 1;
            }
            m.alloc(o);
        }
        while !m.live.is_empty() {
            m.free_random();
        }
    }
    m.finish(name)
}

/// The three traces of the benchmark, each about `ops` operations.
pub fn all(ops: usize) -> Vec<Trace> {
    // A fill-then-drain pass is about 2 * 16384 / 6.2 operations.
    let passes = (ops / 5300).max(1);
    vec![
        churn("churn 50%", 0x5eed_0050, 50, ops),
        churn("churn 90%", 0x5eed_0090, 90, ops),
        fill_drain("fill-drain", 0x5eed_f111, passes),
    ]
}
