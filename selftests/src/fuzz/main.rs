// SPDX-License-Identifier: GPL-2.0

//! minimm-fuzz: a seeded fuzzer of the whole `/dev/minimm` uapi.
//!
//! Several worker processes, each with several threads, run random operations (the table in
//! `ops.rs`): ALLOC with random and invalid zones, orders, flags and struct sizes, FREE,
//! double FREE, foreign and freed handles, BLOCK_DATA, mmap and its errors, partial munmap,
//! mremap, mprotect, madvise, fork with the child touching the block, files passed to another
//! process over a unix socket, close and reopen, ZONE_STATS, GET_INFO and reads of every
//! debugfs file. Each file's model (`model.rs`) says what every call must return and what
//! every mapping must read. At the end, with every file closed and every child reaped, the
//! pool must be exactly as it was: free pages per zone, `nr_held_pages`, the allocator's
//! invariants; event counters may only have grown.
//!
//! Output is KTAP (one result line per final check); the exit code is kselftest's. Every
//! thread's stream of operations comes from (seed, process, thread): `--seed` replays them.
//! With several threads or processes the interleaving is the scheduler's, so a replay meets
//! other states; `--procs 1 --threads 1 --ops N` is deterministic.

#[macro_use]
#[path = "../ktap.rs"]
#[allow(dead_code)]
mod ktap;

// The selftests' helpers; the fuzzer uses some of them.
#[path = "../common.rs"]
#[allow(dead_code)]
mod common;

mod discard;
mod model;
mod ops;
mod rng;
mod slab;
mod sys;
mod vm;

use std::{
    io::{self, Write},
    os::fd::AsRawFd,
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use minimm_uapi::{page_size, sys as uapi, Device};

use common::{info_value, validate_ok, vmstat_all, within, DEBUGFS};
use ktap::{KSFT_FAIL, KSFT_PASS, KSFT_SKIP};
use model::{lock, Proc};
use ops::{errno_name, is_discard, is_slab, is_vm, Ctx, Ran, KINDS};
use rng::Rng;

/// Kinds of operation the counters have room for.
const MAX_KINDS: usize = 64;
/// Errnos the counters have room for.
const MAX_ERRNO: usize = 160;

/// Worker processes the mailboxes have room for.
pub(crate) const MAX_PROCS: usize = 64;
/// Mailbox slots per process.
pub(crate) const SLOTS: usize = 4;

/// States of a mailbox slot.
pub(crate) const MAIL_EMPTY: u32 = 0;
pub(crate) const MAIL_BUSY: u32 = 1;
pub(crate) const MAIL_FULL: u32 = 2;
pub(crate) const MAIL_TAKEN: u32 = 3;

/// A file offered to a worker process (which receives the descriptor over its unix socket,
/// with `SCM_RIGHTS`): the sender's pid and descriptor number, for messages, and a message
/// about a block in it.
pub(crate) struct Mail {
    pub(crate) state: AtomicU32,
    pub(crate) pid: AtomicU32,
    pub(crate) fd: AtomicU32,
    pub(crate) msg: [AtomicU64; sys::MSG_WORDS],
}

/// Counters shared by every worker process (a shared anonymous mapping made before fork).
pub(crate) struct Stats {
    pub(crate) mail: [[Mail; SLOTS]; MAX_PROCS],
    ops: [AtomicU64; MAX_KINDS],
    skipped: [AtomicU64; MAX_KINDS],
    errnos: [AtomicU64; MAX_ERRNO],
    violations: AtomicU64,
    stop: AtomicBool,
}

impl Stats {
    /// Zeroed counters in memory shared with the processes forked afterwards.
    fn shared() -> io::Result<&'static Self> {
        let len = size_of::<Self>();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let at = sys::mmap(-1, 0, len, rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS)?;
        // SAFETY: a zeroed, page-aligned mapping of the struct's size that is never unmapped;
        // all-zero atomics are valid.
        Ok(unsafe { &*(at as *const Self) })
    }

    /// Counts an errno a call returned as the contract allows.
    pub(crate) fn errno(&self, n: i32) {
        if let Some(c) = self.errnos.get(n as usize) {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// The command line.
struct Cfg {
    seed: u64,
    seconds: Option<u64>,
    ops: Option<u64>,
    procs: u32,
    threads: u32,
    fail: bool,
    fail_probability: u32,
    verbose: bool,
    /// The slab operations were not turned off (`--no-slab`).
    want_slab: bool,
    /// The slab operations run: asked for, and the module has MINIMM_FEAT_SLAB.
    slab: bool,
    /// The area operations run: the module has MINIMM_FEAT_VMALLOC.
    vm: bool,
    /// The discardable-block operations run: the module has MINIMM_FEAT_RECLAIM.
    reclaim: bool,
}

const USAGE: &str = "usage: minimm-fuzz [--seed N] [--seconds S] [--ops N] [--procs P] \
                     [--threads T] [--fail] [--fail-probability PERCENT] [--no-slab] [--verbose]";

fn parse_args() -> Result<Cfg, String> {
    let mut cfg = Cfg {
        seed: random_seed(),
        seconds: None,
        ops: None,
        procs: 4,
        threads: 3,
        fail: false,
        fail_probability: 1,
        verbose: false,
        want_slab: true,
        slab: false,
        vm: false,
        reclaim: false,
    };
    let mut args = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> Result<u64, String> {
        let v = v.ok_or(format!("{what} needs a value"))?;
        let r = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        r.map_err(|_| format!("{what}: not a number: {v:?}"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => cfg.seed = num(args.next(), "--seed")?,
            "--seconds" => cfg.seconds = Some(num(args.next(), "--seconds")?),
            "--ops" => cfg.ops = Some(num(args.next(), "--ops")?),
            "--procs" => cfg.procs = num(args.next(), "--procs")?.clamp(1, MAX_PROCS as u64) as u32,
            "--threads" => cfg.threads = num(args.next(), "--threads")?.clamp(1, 64) as u32,
            "--fail" => cfg.fail = true,
            "--fail-probability" => {
                cfg.fail_probability = num(args.next(), "--fail-probability")?.min(100) as u32
            }
            "--verbose" => cfg.verbose = true,
            "--no-slab" => cfg.want_slab = false,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    if cfg.seconds.is_none() && cfg.ops.is_none() {
        cfg.seconds = Some(30);
    }
    Ok(cfg)
}

fn random_seed() -> u64 {
    let mut s = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `s`.
    let n = unsafe { libc::getrandom((&raw mut s).cast(), 8, 0) };
    if n != 8 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // SAFETY: getpid has no preconditions.
        s = rng::mix(t ^ u64::from(unsafe { libc::getpid() } as u32));
    }
    s
}

fn replay_line(cfg: &Cfg) -> String {
    let mut s = format!(
        "minimm-fuzz --seed {:#x} --procs {} --threads {}",
        cfg.seed, cfg.procs, cfg.threads
    );
    if let Some(n) = cfg.ops {
        s += &format!(" --ops {n}");
    }
    if let Some(n) = cfg.seconds {
        s += &format!(" --seconds {n}");
    }
    if cfg.fail {
        s += &format!(" --fail --fail-probability {}", cfg.fail_probability);
    }
    if !cfg.want_slab {
        s += " --no-slab";
    }
    s
}

/// Operations thread `t` of process `p` runs at most, out of the run's total.
fn share(total: u64, cfg: &Cfg, p: u32, t: u32) -> u64 {
    let n = u64::from(cfg.procs * cfg.threads);
    let i = u64::from(p * cfg.threads + t);
    total / n + u64::from(i < total % n)
}

/// One worker thread: operations until its share, the deadline or a violation anywhere.
fn run_thread(p: &Proc, cfg: &Cfg, t: u32, limit: Option<u64>) -> bool {
    let mut ctx = Ctx {
        p,
        rng: Rng::new(cfg.seed, p.id, t),
        what: String::new(),
    };
    let mut recent: Vec<String> = Vec::new();
    let (mut done, mut tried) = (0u64, 0u64);
    let weights = KINDS.iter().map(|k| {
        if (is_slab(k) && !p.slab) || (is_vm(k) && !p.vm) || (is_discard(k) && !p.reclaim) {
            0
        } else {
            k.weight
        }
    });
    loop {
        if p.stats.stop.load(Relaxed)
            || limit.is_some_and(|l| done >= l || tried >= l.saturating_mul(20))
            || p.deadline.is_some_and(|d| Instant::now() >= d)
        {
            return true;
        }
        let k = ctx.rng.weighted(weights.clone());
        ctx.what = KINDS[k].name.to_string();
        tried += 1;
        if p.verbose {
            eprintln!("# p{} t{t} #{tried} {}", p.id, KINDS[k].name);
        }
        let ran = (KINDS[k].run)(&mut ctx);
        if p.verbose {
            eprintln!("#   {}", ctx.what);
        }
        match ran {
            Ok(Ran::Done) => {
                done += 1;
                p.stats.ops[k].fetch_add(1, Relaxed);
            }
            Ok(Ran::Skipped) => {
                p.stats.skipped[k].fetch_add(1, Relaxed);
            }
            Err(msg) => {
                p.stats.violations.fetch_add(1, Relaxed);
                p.stats.stop.store(true, Relaxed);
                let mut out = format!(
                    "# VIOLATION: process {} thread {t}, operation {tried} ({}): {}\n",
                    p.id, KINDS[k].name, ctx.what
                );
                for l in msg.lines() {
                    out += &format!("#   {l}\n");
                }
                out += "# this thread's operations before it:\n";
                for r in &recent {
                    out += &format!("#   {r}\n");
                }
                out += &format!("# replay: {}\n", replay_line(cfg));
                print!("{out}");
                let _ = io::stdout().flush();
                return false;
            }
        }
        if recent.len() >= 16 {
            recent.remove(0);
        }
        recent.push(format!("{tried} {}: {}", KINDS[k].name, ctx.what));
    }
}

/// A worker process: its own files and threads; the exit code.
fn worker(cfg: &Cfg, id: u32, stats: &'static Stats, quota: u64, socks: &[(i32, i32)]) -> i32 {
    let p = Proc {
        id,
        files: Mutex::new(Vec::new()),
        orphans: Arc::new(Mutex::new(Vec::new())),
        next_file: AtomicU32::new(0),
        procs: cfg.procs,
        pending: Mutex::new(Vec::new()),
        socks: socks.to_vec(),
        quota,
        page: page_size(),
        fail: cfg.fail,
        stats,
        deadline: cfg.seconds.map(|s| Instant::now() + Duration::from_secs(s)),
        verbose: cfg.verbose,
        slab: cfg.slab,
        vm: cfg.vm,
        reclaim: cfg.reclaim,
        // SAFETY: getpid has no preconditions.
        pid: unsafe { libc::getpid() } as u32,
        next_name: AtomicU64::new(0),
    };
    for _ in 0..2 {
        match Device::open() {
            Ok(dev) => {
                let f = p.file(dev, libc::O_RDWR);
                lock(&p.files).push(f);
            }
            Err(e) => {
                println!("# process {id}: open /dev/minimm: {e}");
                return KSFT_FAIL;
            }
        }
    }
    let ok = thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let limit = cfg.ops.map(|n| share(n, cfg, id, t));
                let p = &p;
                s.spawn(move || run_thread(p, cfg, t, limit))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .fold(true, |a, b| a && b)
    });
    if ok {
        KSFT_PASS
    } else {
        KSFT_FAIL
    }
}

/// The fault-injection points the run turns on with `--fail`.
const FAIL_POINTS: [&str; 4] = [
    "zone_alloc",
    "pcp_refill",
    "handle_insert",
    "mapping_insert",
];

/// The slab layer's fault-injection points, turned on with `--fail` when the module has them.
const SLAB_FAIL_POINTS: [&str; 7] = [
    "slab_grow",
    "slab_array_refill",
    "slab_create",
    "vm_page",
    "vm_map",
    "vm_record",
    "reclaim_purge",
];

fn fail_dir() -> String {
    format!("{DEBUGFS}/fail")
}

/// The points `--fail` turns on: the slab layer's and the mapper's too where the module has
/// them.
fn fail_points() -> Vec<&'static str> {
    let slab = SLAB_FAIL_POINTS
        .into_iter()
        .filter(|p| Path::new(&format!("{}/{p}", fail_dir())).is_dir());
    FAIL_POINTS.into_iter().chain(slab).collect()
}

/// Sets every point's probability (percent); `times` unlimited, one in every call eligible.
fn fail_set(probability: u32) -> Result<(), String> {
    for point in fail_points() {
        let dir = format!("{}/{point}", fail_dir());
        let mut attrs = vec![("probability", probability.to_string())];
        if probability > 0 {
            attrs.extend([
                ("interval", "1".to_string()),
                ("times", "-1".to_string()),
                ("verbose", "0".to_string()),
            ]);
        }
        for (attr, v) in attrs {
            std::fs::write(format!("{dir}/{attr}"), &v)
                .map_err(|e| format!("write {v} to {dir}/{attr}: {e}"))?;
        }
    }
    Ok(())
}

/// The pool's state that must come back: free pages per zone after a drain, and vmstat.
struct Snapshot {
    zone_free: [u64; 3],
    vmstat: Vec<(String, u64)>,
}

fn drain_pcp() -> Result<(), String> {
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(|e| format!("drain_pcp: {e}"))
}

fn snapshot(watch: &Device) -> Result<Snapshot, String> {
    drain_pcp()?;
    let mut zone_free = [0; 3];
    for (z, f) in zone_free.iter_mut().enumerate() {
        let s = watch
            .zone_stats(z as u32)
            .map_err(|e| format!("ZONE_STATS {z}: {e}"))?;
        *f = s.free_pages + s.pcp_pages;
    }
    Ok(Snapshot {
        zone_free,
        vmstat: vmstat_all()?,
    })
}

/// What the slab caches hold (debugfs slabinfo): with MINIMM_FEAT_SLAB only.
type SlabState = Option<Result<Vec<slab::SlabLine>, String>>;

fn slab_state(cfg: &Cfg) -> SlabState {
    cfg.slab.then(slab::slabinfo)
}

/// Pages and slabs the slab caches hold.
fn slab_held(s: &SlabState) -> Option<(u64, u64)> {
    let l = s.as_ref()?.as_ref().ok()?;
    Some((
        l.iter().map(|x| x.num_slabs * x.pagesperslab).sum(),
        l.iter().map(|x| x.num_slabs).sum(),
    ))
}

/// Whether the pool's free pages are back: per zone; or, when the slab caches hold another
/// number of pages than at the start (the generic caches keep slabs, empty or with objects
/// in their per-CPU arrays, and nothing in user space gives them back), in all, counting
/// those pages.
fn pool_back(
    start: &Snapshot,
    s0: Option<(u64, u64)>,
    end: &Snapshot,
    s1: Option<(u64, u64)>,
) -> bool {
    match (s0, s1) {
        (Some((p0, _)), Some((p1, _))) if p0 != p1 => {
            let t0: u64 = start.zone_free.iter().sum();
            let t1: u64 = end.zone_free.iter().sum();
            t0 + p0 == t1 + p1
        }
        _ => end.zone_free == start.zone_free,
    }
}

/// The module's record caches (no per-CPU arrays: `active_objs` is exact).
const RECORD_CACHES: [&str; 2] = ["minimm_slab_object", "minimm_vm_area"];

/// Every fuzzer's cache is gone from slabinfo once every file is closed, and the module's
/// record caches hold as many records as at the start (none of the fuzzer's handles left).
/// (The generic caches' objects cannot be counted from here: slabinfo's `active_objs`
/// includes the free objects in their per-CPU arrays; the pages they hold are counted in the
/// pool's checks.)
fn slab_released(start: &SlabState) -> Result<Option<String>, String> {
    let Some(start) = start else {
        return Ok(Some("the module has no MINIMM_FEAT_SLAB".into()));
    };
    let start = start.as_ref().map_err(|e| format!("at the start: {e}"))?;
    let records = |lines: &[slab::SlabLine]| -> Vec<(String, u64)> {
        lines
            .iter()
            .filter(|l| RECORD_CACHES.contains(&l.name.as_str()))
            .map(|l| (l.name.clone(), l.active_objs))
            .collect()
    };
    let records0 = records(start);
    let mut left = Vec::new();
    let back = within(5, || {
        let now = slab::slabinfo()?;
        left = now
            .iter()
            .filter(|l| slab::fuzzer_name(&l.name))
            .map(|l| format!("{} ({} active objects)", l.name, l.active_objs))
            .collect();
        let records1 = records(&now);
        if records1 != records0 {
            left.push(format!("records {records1:?}, at the start {records0:?}"));
        }
        Ok(left.is_empty())
    })?;
    if back {
        Ok(None)
    } else {
        Err(format!(
            "after 5 s, fuzzer caches or records left in slabinfo: {left:?}"
        ))
    }
}

fn value(v: &[(String, u64)], k: &str) -> Option<u64> {
    v.iter().find(|(n, _)| n == k).map(|(_, x)| *x)
}

/// The KTAP result lines.
struct Results {
    n: u32,
    failed: u32,
}

impl Results {
    fn line(&mut self, name: &str, r: Result<Option<String>, String>) {
        self.n += 1;
        match r {
            Ok(None) => println!("ok {} {name}", self.n),
            Ok(Some(skip)) => println!("ok {} {name} # SKIP {skip}", self.n),
            Err(why) => {
                self.failed += 1;
                for l in why.lines() {
                    println!("# {l}");
                }
                println!("not ok {} {name}", self.n);
            }
        }
    }
}

/// The final checks: one more with `--fail`.
fn nr_checks(cfg: &Cfg) -> u32 {
    8 + u32::from(cfg.fail)
}

/// Event counters of vmstat: they only grow.
fn is_event(name: &str) -> bool {
    name.starts_with("pgalloc")
        || matches!(
            name,
            "pgfree" | "low_wmark_hit" | "min_wmark_hit" | "zone_fallback" | "nr_held_recycled"
        )
}

fn main() {
    let mut cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!("KTAP version 1");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("1..0 # SKIP not root");
        std::process::exit(KSFT_SKIP);
    }
    let watch = match Device::open_mode(libc::O_RDONLY) {
        Ok(d) => d,
        Err(e) => {
            println!("1..0 # SKIP cannot open /dev/minimm ({e}): is minimm.ko loaded?");
            std::process::exit(KSFT_SKIP);
        }
    };
    cfg.slab = cfg.want_slab
        && watch
            .info()
            .is_ok_and(|i| i.features & uapi::MINIMM_FEAT_SLAB != 0);
    cfg.vm = watch
        .info()
        .is_ok_and(|i| i.features & uapi::MINIMM_FEAT_VMALLOC != 0);
    cfg.reclaim = watch
        .info()
        .is_ok_and(|i| i.features & uapi::MINIMM_FEAT_RECLAIM != 0);
    println!(
        "# minimm-fuzz: seed {:#x}, {} processes x {} threads, {}{}",
        cfg.seed,
        cfg.procs,
        cfg.threads,
        match (cfg.ops, cfg.seconds) {
            (Some(n), Some(s)) => format!("{n} operations or {s} s"),
            (Some(n), None) => format!("{n} operations"),
            (None, s) => format!("{} s", s.unwrap_or(0)),
        },
        if cfg.fail { ", fault injection" } else { "" }
    );
    if !cfg.want_slab {
        println!("# no slab operations (--no-slab)");
    } else if !cfg.slab {
        println!("# the module has no MINIMM_FEAT_SLAB: no slab operations");
    }
    if !cfg.vm {
        println!("# the module has no MINIMM_FEAT_VMALLOC: no area operations");
    }
    if !cfg.reclaim {
        println!("# the module has no MINIMM_FEAT_RECLAIM: no discardable-block operations");
    }
    println!("# replay: {}", replay_line(&cfg));
    println!("1..{}", nr_checks(&cfg));
    let mut res = Results { n: 0, failed: 0 };
    match run(&cfg, &watch, &mut res) {
        Ok(()) => {}
        Err(e) => {
            println!("# {e}");
            while res.n < nr_checks(&cfg) {
                res.line("set-up", Err("not reached".into()));
            }
        }
    }
    println!(
        "# totals: pass:{} fail:{} skip:0",
        res.n - res.failed,
        res.failed
    );
    if res.failed > 0 {
        println!("# FAILED; replay: {}", replay_line(&cfg));
        std::process::exit(KSFT_FAIL);
    }
    std::process::exit(KSFT_PASS);
}

fn run(cfg: &Cfg, watch: &Device, res: &mut Results) -> Result<(), String> {
    let quota = info_value("file_quota_pages")?;
    let fail_exists = Path::new(&fail_dir()).is_dir();
    let fail_on = cfg.fail && fail_exists;
    if cfg.fail && !fail_exists {
        println!(
            "# --fail: {} does not exist (no fault injection in this module): running without it",
            fail_dir()
        );
    }
    let fail_set_up = if fail_on {
        fail_set(0)
            .and_then(|()| fail_set(cfg.fail_probability))
            .map(|()| {
                println!(
                    "# fault injection: {}% on {}",
                    cfg.fail_probability,
                    fail_points().join(", ")
                )
            })
    } else {
        Ok(())
    };
    let start = snapshot(watch)?;
    let slab_start = slab_state(cfg);
    let stats = Stats::shared().map_err(|e| format!("shared counters: {e}"))?;
    let began = Instant::now();
    let cfg_run = Cfg {
        fail: fail_on,
        ..*cfg
    };
    let _ = io::stdout().flush();
    // One unix socket pair per worker, made before the forks so that every worker has all.
    let mut pairs = Vec::new();
    for _ in 0..cfg.procs {
        pairs.push(sys::socketpair_dgram().map_err(|e| format!("socketpair: {e}"))?);
    }
    let socks: Vec<(i32, i32)> = pairs
        .iter()
        .map(|(r, s)| (r.as_raw_fd(), s.as_raw_fd()))
        .collect();
    let mut pids = Vec::new();
    for id in 0..cfg.procs {
        // SAFETY: this process has one thread; the child runs the worker and leaves with
        // _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = worker(&cfg_run, id, stats, quota, &socks);
            let _ = io::stdout().flush();
            // SAFETY: leaving the child without running the parent's exit path.
            unsafe { libc::_exit(code) };
        }
        if pid < 0 {
            stats.stop.store(true, Relaxed);
            println!("# fork: {}", io::Error::last_os_error());
            break;
        }
        pids.push(pid);
    }
    let mut bad_exits = Vec::new();
    for (id, pid) in pids.iter().enumerate() {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(*pid, &mut status, 0) };
        if r != *pid {
            bad_exits.push(format!(
                "process {id}: waitpid: {}",
                io::Error::last_os_error()
            ));
        } else if libc::WIFSIGNALED(status) {
            bad_exits.push(format!(
                "process {id} killed by signal {}",
                libc::WTERMSIG(status)
            ));
        } else if libc::WEXITSTATUS(status) != 0 {
            bad_exits.push(format!("process {id} exited {}", libc::WEXITSTATUS(status)));
        }
    }
    if pids.len() < cfg.procs as usize {
        bad_exits.push(format!(
            "only {} of {} processes started",
            pids.len(),
            cfg.procs
        ));
    }
    let elapsed = began.elapsed();
    // Files still queued on a socket (given to a worker that ended first) are closed with the
    // last ends of the sockets, held here; the kernel puts such files a moment later.
    drop(pairs);
    std::thread::sleep(Duration::from_millis(200));
    let fail_reset = if fail_on { fail_set(0) } else { Ok(()) };

    let violations = stats.violations.load(Relaxed);
    res.line(
        "workers_keep_the_contract",
        if violations == 0 {
            Ok(None)
        } else {
            Err(format!("{violations} contract violations (see above)"))
        },
    );
    res.line(
        "workers_exit_cleanly",
        if bad_exits.is_empty() {
            Ok(None)
        } else {
            Err(bad_exits.join("\n"))
        },
    );
    let held0 = value(&start.vmstat, "nr_held_pages").unwrap_or(0);
    let mut held = held0;
    let back = within(5, || {
        held = common::vmstat("nr_held_pages")?;
        Ok(held == held0)
    });
    res.line(
        "held_pages_come_back",
        match back {
            Ok(true) => Ok(None),
            Ok(false) => Err(format!(
                "nr_held_pages {held} after 5 s, {held0} at the start"
            )),
            Err(e) => Err(e),
        },
    );
    res.line("slab_caches_released", slab_released(&slab_start));
    let s0 = slab_held(&slab_start);
    let mut end = snapshot(watch)?;
    let mut slab_end = slab_state(cfg);
    let _ = within(5, || {
        end = snapshot(watch)?;
        slab_end = slab_state(cfg);
        Ok(pool_back(&start, s0, &end, slab_held(&slab_end)))
    });
    let s1 = slab_held(&slab_end);
    let free0 = value(&start.vmstat, "nr_free_pages");
    let free1 = value(&end.vmstat, "nr_free_pages");
    // Pages in slabs, as pool_back counts them.
    let (p0, p1) = match (s0, s1) {
        (Some((p0, _)), Some((p1, _))) => (p0, p1),
        _ => (0, 0),
    };
    res.line(
        "free_pages_back_to_start",
        if pool_back(&start, s0, &end, s1) && free0.map(|f| f + p0) == free1.map(|f| f + p1) {
            Ok(None)
        } else {
            Err(format!(
                "free pages per zone {:?} at the start, {:?} at the end; vmstat nr_free_pages \
                 {free0:?} then {free1:?}; pages in slabs {s0:?} then {s1:?}",
                start.zone_free, end.zone_free
            ))
        },
    );
    let mut shrank = Vec::new();
    for (k, v0) in &start.vmstat {
        let v1 = value(&end.vmstat, k);
        if is_event(k) && v1.is_none_or(|v1| v1 < *v0) {
            shrank.push(format!("{k}: {v0} -> {v1:?}"));
        }
        if matches!(
            k.as_str(),
            "nr_managed_pages" | "nr_pcp_pages" | "borrowed_pages"
        ) && v1 != Some(*v0)
        {
            shrank.push(format!("{k}: {v0} -> {v1:?} (must not change)"));
        }
    }
    res.line(
        "counters_monotonic",
        if shrank.is_empty() {
            Ok(None)
        } else {
            Err(shrank.join("\n"))
        },
    );
    let sum = |v: &[(String, u64)], pre: &str| -> u64 {
        v.iter()
            .filter(|(k, _)| k.starts_with(pre) && k != "pgalloc_fail")
            .map(|(_, x)| x)
            .sum()
    };
    let allocs = sum(&end.vmstat, "pgalloc_") - sum(&start.vmstat, "pgalloc_");
    let frees = sum(&end.vmstat, "pgfree") - sum(&start.vmstat, "pgfree");
    // Slabs the slab caches kept (or gave back) since the start: one block each.
    let kept = match (s0, s1) {
        (Some((_, a)), Some((_, b))) => i128::from(b) - i128::from(a),
        _ => 0,
    };
    res.line(
        "every_block_allocated_was_freed",
        if i128::from(allocs) - i128::from(frees) == kept {
            println!("# blocks allocated and freed during the run: {allocs}");
            Ok(None)
        } else {
            Err(format!(
                "pgalloc grew by {allocs}, pgfree by {frees}; the slab caches hold {kept} \
                 slabs more than at the start"
            ))
        },
    );
    res.line("validate_passes", validate_ok().map(|()| None));
    if cfg.fail {
        res.line(
            "fault_injection",
            if !fail_exists {
                Ok(Some(format!("{} does not exist", fail_dir())))
            } else {
                match (fail_set_up, fail_reset) {
                    (Ok(()), Ok(())) => Ok(None),
                    (a, b) => Err(format!("set up: {a:?}; reset to 0: {b:?}")),
                }
            },
        );
    }

    let total: u64 = stats.ops.iter().map(|c| c.load(Relaxed)).sum();
    let secs = elapsed.as_secs_f64();
    println!(
        "# {total} operations in {secs:.1} s ({:.0}/s), seed {:#x}",
        total as f64 / secs.max(0.001),
        cfg.seed
    );
    let per_kind: Vec<String> = KINDS
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "{} {} (+{} skipped)",
                k.name,
                stats.ops[i].load(Relaxed),
                stats.skipped[i].load(Relaxed)
            )
        })
        .collect();
    for chunk in per_kind.chunks(4) {
        println!("# ops: {}", chunk.join(", "));
    }
    let slab_ops: u64 = KINDS
        .iter()
        .enumerate()
        .filter(|(_, k)| is_slab(k))
        .map(|(i, _)| stats.ops[i].load(Relaxed))
        .sum();
    if cfg.slab {
        println!("# slab operations: {slab_ops}");
    } else {
        println!("# slab operations: {slab_ops} (the module has no MINIMM_FEAT_SLAB)");
    }
    let errnos: Vec<String> = stats
        .errnos
        .iter()
        .enumerate()
        .filter(|(_, c)| c.load(Relaxed) > 0)
        .map(|(n, c)| format!("{} {}", errno_name(n as i32), c.load(Relaxed)))
        .collect();
    println!("# errors, as the contract allows: {}", errnos.join(", "));
    let _ = uapi::MINIMM_ABI_VERSION;
    Ok(())
}
