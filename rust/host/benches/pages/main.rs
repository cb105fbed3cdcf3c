// SPDX-License-Identifier: GPL-2.0

//! Host-native benchmark of minimm's page allocator core (`make bench-host`).
//!
//! Replays the same seeded traces (trace.rs) on minimm's buddy allocator, on the page path as the
//! module runs it (per-CPU lists of orders 0-3 in front of the buddy allocator), on two published
//! Rust frame allocators, on per-order stacks that never split or merge, and on no allocator at
//! all, and prints ns per operation as a markdown table: the median of `--runs` timed runs (after
//! one warm-up), with the min-max spread. Each run starts from a fresh allocator; runs of the
//! allocators are interleaved so that a busy moment of the machine hits them alike.
//!
//! `--instructions` adds instructions per operation, counted by callgrind (each allocator and
//! trace replayed once, in a child process under `valgrind --tool=callgrind`, counting only
//! inside `replay`), for machines whose PMU `perf_event_open` cannot use.
//!
//! Options: `--ops N` (operations per trace, default 200000), `--runs N` (default 7),
//! `--only NAME` and `--trace N` (one allocator, one trace), `--instructions`.
//! Nothing here asserts on time.

// The host build compiles the module's pure files, as rust/host/src/lib.rs does.
#![allow(dead_code, unused_imports)]

#[path = "../../../buddy.rs"]
mod buddy;
#[path = "../../../pcp.rs"]
mod pcp;
#[path = "../../../zone.rs"]
mod zone;

mod adapters;
mod trace;

use adapters::{replay, Adapter, NONE};
use std::{hint::black_box, process::Command, time::Instant};
use trace::Trace;

/// One row of the table: a name, and how to replay a trace on a fresh instance.
struct Row {
    name: &'static str,
    what: &'static str,
    run: fn(&Trace, &mut [u32]) -> (u64, usize),
}

/// Builds a fresh `A` (untimed), replays `t` on it (timed); returns (ns, refusals).
fn timed<A: Adapter>(new: fn(&Trace) -> A, t: &Trace, slots: &mut [u32]) -> (u64, usize) {
    let mut a = new(t);
    slots.fill(NONE);
    let start = Instant::now();
    let refused = replay(black_box(&mut a), black_box(t), slots);
    let ns = start.elapsed().as_nanos() as u64;
    black_box(&mut a);
    drop(a);
    (ns, refused)
}

const ROWS: &[Row] = &[
    Row {
        name: "minimm buddy",
        what: "rust/buddy.rs alone",
        run: |t, s| timed(adapters::MinimmBuddy::new, t, s),
    },
    Row {
        name: "minimm page path",
        what: "per-CPU lists (orders 0-3) in front of rust/buddy.rs",
        run: |t, s| timed(adapters::PagePath::new, t, s),
    },
    Row {
        name: "buddy_system_allocator",
        what: "FrameAllocator<11> 0.13.0",
        run: |t, s| timed(adapters::BuddySystem::new, t, s),
    },
    Row {
        name: "bitmap-allocator",
        what: "BitAlloc64K 0.4.6",
        run: |t, s| timed(adapters::Bitmap::new, t, s),
    },
    Row {
        name: "per-order stacks",
        what: "LIFO per order, never split or merged",
        run: |t, s| timed(adapters::Stacks::new, t, s),
    },
    Row {
        name: "null",
        what: "the replay loop alone",
        run: |t, s| timed(adapters::Null::new, t, s),
    },
];

struct Opts {
    ops: usize,
    runs: usize,
    warmup: usize,
    only: Option<String>,
    trace: Option<usize>,
    instructions: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        ops: 200_000,
        runs: 7,
        warmup: 1,
        only: None,
        trace: None,
        instructions: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} wants a number"))
        };
        match a.as_str() {
            "--ops" => o.ops = num("--ops"),
            "--runs" => o.runs = num("--runs").max(1),
            "--warmup" => o.warmup = num("--warmup"),
            "--trace" => o.trace = Some(num("--trace")),
            "--only" => o.only = args.next(),
            "--instructions" => o.instructions = true,
            // `cargo bench` passes --bench; anything else unknown is ignored likewise.
            _ => {}
        }
    }
    o
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Instructions per operation of `row` on trace `t`, by callgrind in a child process.
fn instructions(opts: &Opts, row: &Row, t: usize, ops: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::env::temp_dir().join(format!(
        "minimm-bench-{}-{t}-{}.callgrind",
        std::process::id(),
        row.name.replace(' ', "_")
    ));
    let status = Command::new("valgrind")
        .args(["--tool=callgrind", "--toggle-collect=*replay*", "-q"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["--runs", "1", "--warmup", "0", "--only", row.name])
        .args(["--trace", &t.to_string(), "--ops", &opts.ops.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    let text = std::fs::read_to_string(&out).ok();
    let _ = std::fs::remove_file(&out);
    if !status.success() {
        return None;
    }
    let line = text?
        .lines()
        .find(|l| l.starts_with("summary:") || l.starts_with("totals:"))?
        .to_string();
    let ir: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(ir / ops as f64)
}

/// An adapter that checks what the one inside does: blocks aligned, inside the arena (but for
/// the stacks, which have their own), never overlapping a live block.
struct Checked<A> {
    inner: A,
    /// Pages handed out and not freed.
    used: std::collections::HashSet<u32>,
}

impl<A: Adapter> Adapter for Checked<A> {
    fn alloc(&mut self, order: u32) -> Option<u32> {
        let i = self.inner.alloc(order)?;
        assert_eq!(i % (1 << order), 0, "block {i} of order {order} misaligned");
        for p in i..i + (1 << order) {
            assert!(self.used.insert(p), "page {p} handed out twice");
        }
        Some(i)
    }

    fn free(&mut self, index: u32, order: u32) {
        for p in index..index + (1 << order) {
            assert!(self.used.remove(&p), "page {p} freed but not allocated");
        }
        self.inner.free(index, order)
    }
}

/// Replays short traces on every allocator (but the null one) through [`Checked`]; for
/// minimm's, also checks the buddy invariants and that the free pages add up.
fn check() {
    fn run<A: Adapter>(a: A, t: &Trace) -> A {
        let mut c = Checked {
            inner: a,
            used: Default::default(),
        };
        let mut slots = vec![NONE; t.slots];
        replay(&mut c, t, &mut slots);
        c.inner
    }
    for t in &trace::all(6000) {
        let b = run(adapters::MinimmBuddy::new(t), t);
        b.buddy().validate().expect("buddy invariants");
        let p = run(adapters::PagePath::new(t), t);
        p.buddy().validate().expect("page path's buddy invariants");
        assert!(p.pcp_pages() <= 4 * pcp::PCP_PAGES);
        run(adapters::BuddySystem::new(t), t);
        run(adapters::Bitmap::new(t), t);
        let mut s = Checked {
            inner: adapters::Stacks::new(t),
            used: Default::default(),
        };
        let mut slots = vec![NONE; t.slots];
        assert_eq!(replay(&mut s, t, &mut slots), 0, "the stacks never run dry");
    }
    // The pure buddy allocator fills the arena exactly and drains back to its chunks.
    let t = trace::fill_drain("fill-drain", 1, 2);
    let mut b = adapters::MinimmBuddy::new(&t);
    let mut slots = vec![NONE; t.slots];
    assert_eq!(replay(&mut b, &t, &mut slots), 0);
    assert_eq!(b.buddy().free_pages(), trace::PAGES);
    println!("bench pages: traces and adapters check out (run `make bench-host` to measure)");
}

fn main() {
    // `cargo test` runs this file without arguments: check, do not measure.
    if std::env::args().len() == 1 {
        return check();
    }
    let opts = opts();
    let traces: Vec<Trace> = trace::all(opts.ops)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| opts.trace.is_none_or(|t| t == *i))
        .map(|(_, t)| t)
        .collect();
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| opts.only.as_deref().is_none_or(|n| n == r.name))
        .collect();
    let p = adapters::PagePath::new(&traces[0]);
    let (batch, high_min, high_max) = p.marks();
    println!(
        "{} pages in {} chunks of order {}; orders 0..={} uniformly; page path batch {batch}, \
         high {high_min}..{high_max}; {} timed runs after {} warm-up",
        trace::PAGES,
        trace::PAGES >> trace::CHUNK_ORDER,
        trace::CHUNK_ORDER,
        trace::MAX_TRACE_ORDER,
        opts.runs,
        opts.warmup
    );
    for t in &traces {
        let allocs = t.ops.iter().filter(|o| !o.is_free()).count();
        println!(
            "trace {}: {} ops ({} allocations), max live blocks per order {:?}",
            t.name,
            t.ops.len(),
            allocs,
            t.max_live
        );
    }
    println!();

    // ns[trace][row] = per-run ns/op; refused[trace][row].
    let mut ns = vec![vec![Vec::new(); rows.len()]; traces.len()];
    let mut refused = vec![vec![0usize; rows.len()]; traces.len()];
    let max_slots = traces.iter().map(|t| t.slots).max().unwrap_or(0);
    let mut slots = vec![NONE; max_slots];
    for round in 0..opts.warmup + opts.runs {
        for (ti, t) in traces.iter().enumerate() {
            for (ri, r) in rows.iter().enumerate() {
                let (time, nref) = (r.run)(t, &mut slots);
                if round >= opts.warmup {
                    ns[ti][ri].push(time as f64 / t.ops.len() as f64);
                    refused[ti][ri] = nref;
                }
            }
        }
    }
    let ir: Vec<Vec<Option<f64>>> = traces
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            rows.iter()
                .map(|r| {
                    if !opts.instructions {
                        return None;
                    }
                    let index = trace::all(0)
                        .iter()
                        .position(|x| x.name == t.name)
                        .unwrap_or(ti);
                    instructions(&opts, r, index, t.ops.len())
                })
                .collect()
        })
        .collect();
    let with_ir = ir.iter().flatten().any(Option::is_some);

    // The table: one column per trace.
    let mut head = String::from("| allocator |");
    let mut rule = String::from("|---|");
    for t in &traces {
        head += &format!(" {} ns/op |", t.name);
        rule += "---|";
        if with_ir {
            head += &format!(" {} instr/op |", t.name);
            rule += "---|";
        }
    }
    println!("{head}\n{rule}");
    let mut medians = vec![vec![0f64; rows.len()]; traces.len()];
    for (ri, r) in rows.iter().enumerate() {
        let mut line = format!("| {} |", r.name);
        for ti in 0..traces.len() {
            let v = &mut ns[ti][ri];
            let m = median(v);
            medians[ti][ri] = m;
            line += &format!(" {m:.1} ({:.1}-{:.1}) |", v[0], v[v.len() - 1]);
            if with_ir {
                match ir[ti][ri] {
                    Some(x) => line += &format!(" {x:.0} |"),
                    None => line += " - |",
                }
            }
        }
        println!("{line}");
    }
    println!();
    for r in &rows {
        println!("- {}: {}", r.name, r.what);
    }
    let mut refusals = Vec::new();
    for (ti, t) in traces.iter().enumerate() {
        for (ri, r) in rows.iter().enumerate() {
            if refused[ti][ri] > 0 {
                refusals.push(format!("{} on {}: {}", r.name, t.name, refused[ti][ri]));
            }
        }
    }
    if !refusals.is_empty() {
        println!(
            "\nRefused allocations (their frees skipped): {}",
            refusals.join(", ")
        );
    }

    // The targets of issue 10, reported, not asserted.
    let find = |n: &str| rows.iter().position(|r| r.name == n);
    if let (Some(pp), Some(bsa), Some(st)) = (
        find("minimm page path"),
        find("buddy_system_allocator"),
        find("per-order stacks"),
    ) {
        println!("\n| trace | buddy_system_allocator / page path (target >= 5) | page path / stacks (target <= 1.5) | buddy / page path |");
        println!("|---|---|---|---|");
        let bd = find("minimm buddy");
        for (ti, t) in traces.iter().enumerate() {
            let m = &medians[ti];
            println!(
                "| {} | {:.2} | {:.2} | {} |",
                t.name,
                m[bsa] / m[pp],
                m[pp] / m[st],
                bd.map_or("-".into(), |b| format!("{:.2}", m[b] / m[pp]))
            );
        }
    }
}
