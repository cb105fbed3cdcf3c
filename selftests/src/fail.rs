// SPDX-License-Identifier: GPL-2.0

//! Selftests of fault injection (debugfs `minimm/fail/`): every failure point of every
//! command, walked with `nth` as Linux's fail-nth walks a system call, and the probability,
//! interval and times rules.
//!
//! A walk arms `nth` = 1, 2, 3, ... at one point and runs the command each time, until a run
//! passes the point fewer than `nth` times (the knob still reads non-zero afterwards: nothing
//! was injected). Each injected failure must either be absorbed (the command succeeds, as an
//! allocation does when a per-CPU refill gets nothing) or fail the command with the documented
//! errno, ENOMEM, leaving every vmstat line, the zones' free pages, the file's mappings and
//! the handle sequence exactly as before. A command must pass each point listed for it at
//! least once: the walk checks the contract of where the points are, too.

use minimm_uapi::{debugfs, page_size, Device};

use crate::{
    common::{
        e, ensure_loaded, free_pages, info_value, open, reload, sh, validate_ok, vmstat_all,
        DEBUGFS, NORMAL,
    },
    ktap::{expect_errno, pass, TestResult},
};

/// Every failure point, as debugfs names them.
const POINTS: [&str; 12] = [
    "host_borrow",
    "zone_alloc",
    "pcp_refill",
    "handle_insert",
    "mapping_insert",
    "slab_grow",
    "slab_array_refill",
    "slab_create",
    "vm_page",
    "vm_map",
    "vm_record",
    "reclaim_purge",
];

/// Every knob of a point.
const KNOBS: [&str; 5] = ["probability", "interval", "times", "verbose", "nth"];

/// Longest walk: a command passes no point more often than this.
const MAX_NTH: i64 = 80;

fn knob_path(point: &str, knob: &str) -> String {
    format!("{DEBUGFS}/fail/{point}/{knob}")
}

/// Writes `value` to a point's knob.
fn set(point: &str, knob: &str, value: i64) -> Result<(), String> {
    std::fs::write(knob_path(point, knob), value.to_string())
        .map_err(|err| format!("fail/{point}/{knob} = {value}: {err}"))
}

/// Reads a point's knob (or its `injected` count).
fn get(point: &str, knob: &str) -> Result<i64, String> {
    let text = std::fs::read_to_string(knob_path(point, knob))
        .map_err(|err| format!("fail/{point}/{knob}: {err}"))?;
    text.trim()
        .parse()
        .map_err(|_| format!("fail/{point}/{knob}: {text:?}"))
}

/// Every knob of every point is 0.
fn all_disarmed() -> Result<(), String> {
    let mut armed = Vec::new();
    for point in POINTS {
        for knob in KNOBS {
            let v = get(point, knob)?;
            if v != 0 {
                armed.push(format!("{point}/{knob} = {v}"));
            }
        }
    }
    check!(armed.is_empty(), "still armed: {}", armed.join(", "));
    Ok(())
}

/// Disarms every point when dropped, whatever the test left armed.
struct Disarm;

impl Drop for Disarm {
    fn drop(&mut self) {
        for point in POINTS {
            for knob in KNOBS {
                let _ = set(point, knob, 0);
            }
        }
    }
}

/// What a failed command must leave as it was: every vmstat line and each zone's free pages.
#[derive(Debug, PartialEq, Eq)]
struct State {
    vmstat: Vec<(String, u64)>,
    free: [u64; 3],
}

impl State {
    fn now(dev: &Device) -> Result<Self, String> {
        Ok(Self {
            vmstat: vmstat_all()?,
            free: free_pages(dev)?,
        })
    }

    /// What changed from `before` to `self`, for a failure message.
    fn diff(&self, before: &State) -> String {
        let mut d: Vec<String> = self
            .vmstat
            .iter()
            .zip(&before.vmstat)
            .filter(|(a, b)| a != b)
            .map(|((k, a), (_, b))| format!("{k} {b} -> {a}"))
            .collect();
        if self.free != before.free {
            d.push(format!("free pages {:?} -> {:?}", before.free, self.free));
        }
        d.join(", ")
    }
}

/// Empties the per-CPU lists, so that an order-0 allocation refills one.
fn drain() -> Result<(), String> {
    std::fs::write(format!("{DEBUGFS}/drain_pcp"), "1").map_err(|err| format!("drain_pcp: {err}"))
}

/// Mappings of /dev/minimm in this process.
fn device_mappings() -> Result<usize, String> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(e)?;
    Ok(maps.lines().filter(|l| l.ends_with("/dev/minimm")).count())
}

/// One command of the walk.
#[derive(Clone, Copy, Debug)]
enum Command {
    /// ALLOC of this order from NORMAL, then FREE.
    Alloc(u32),
    /// mmap of an order-2 block allocated beforehand, a read of every page (the first touch
    /// faults the pages in), then munmap and FREE.
    Touch,
    /// SLAB_ALLOC from a cache created beforehand (no slab yet: the allocation grows it from
    /// the pool through an empty per-CPU array), then SLAB_FREE and SLAB_DESTROY.
    SlabAlloc,
    /// SLAB_CREATE of a cache, then SLAB_DESTROY.
    SlabCreate,
    /// VM_CREATE of a 70-page area from NORMAL (two batches of pages), then VM_FREE.
    VmCreate,
}

/// A cache name of this walk's.
fn walk_cache_name() -> String {
    format!("failwalk-{}", std::process::id())
}

/// What a slab command made, to clean up.
enum Slab {
    Object(u64),
    Cache(u64),
}

/// Runs `cmd` once on `dev` with `point`'s nth at `nth`. Returns whether a failure was
/// injected. `next_handle` is the handle the next successful ALLOC must get.
fn run_once(
    dev: &Device,
    cmd: Command,
    point: &str,
    nth: i64,
    next_handle: &mut u64,
) -> Result<bool, String> {
    let what = format!("{cmd:?} with {point} nth {nth}");
    // Set-up, with nothing armed.
    let block = match cmd {
        Command::Touch => {
            let a = dev
                .alloc(2, NORMAL, 0)
                .map_err(|err| format!("{what}: set-up: {err}"))?;
            check_eq!(a.handle, *next_handle);
            *next_handle += 1;
            Some(a)
        }
        Command::Alloc(_) | Command::SlabCreate | Command::VmCreate => None,
        Command::SlabAlloc => None,
    };
    let cache = match cmd {
        Command::SlabAlloc => Some(
            dev.slab_create(&walk_cache_name(), 64, 0, 0, 0)
                .map_err(|err| format!("{what}: set-up: {err}"))?,
        ),
        _ => None,
    };
    drain()?;
    let before = State::now(dev)?;
    let buddy_before = debugfs("buddyinfo").map_err(|err| format!("buddyinfo: {err}"))?;
    let maps_before = device_mappings()?;
    let mut slab_done = Vec::new();
    let mut area = None;
    set(point, "nth", nth)?;
    let (result, mapping) = match (cmd, &block) {
        (Command::Alloc(order), _) => (dev.alloc(order, NORMAL, 0).map(Some), None),
        (Command::Touch, Some(a)) => match dev.map(a.mmap_offset, 4 * page_size()) {
            // An injected failure at the fault is retried by the kernel (VM_FAULT_OOM), so the
            // read always completes, with the block's bytes.
            Ok(m) => {
                check!(
                    m.bytes().iter().all(|&b| b == 0),
                    "{what}: a fresh block reads non-zero"
                );
                (Ok(None), Some(m))
            }
            Err(err) => (Err(err), None),
        },
        (Command::Touch, None) => return Err(format!("{what}: no block")),
        (Command::SlabAlloc, _) => (
            dev.slab_alloc(cache.unwrap_or(0), 0, 0).map(|o| {
                slab_done.push(Slab::Object(o.object));
                None
            }),
            None,
        ),
        (Command::SlabCreate, _) => (
            dev.slab_create(&walk_cache_name(), 64, 0, 0, 0).map(|c| {
                slab_done.push(Slab::Cache(c));
                None
            }),
            None,
        ),
        (Command::VmCreate, _) => (
            dev.vm_create(70 * page_size() as u64, NORMAL, 0).map(|a| {
                area = Some(a.handle);
                None
            }),
            None,
        ),
    };
    let left = get(point, "nth")?;
    set(point, "nth", 0)?;
    let injected = left == 0;
    match &result {
        Err(err) if !injected => return Err(format!("{what}: nothing injected, yet {err}")),
        Err(err) => {
            check!(
                err.raw_os_error() == Some(libc::ENOMEM),
                "{what}: {err}, not ENOMEM"
            );
            // Pages a command took before it failed (an area's, a record's slab) went back
            // through the per-CPU lists: drained, the zones are as they were, and the event
            // counters count the pages taken and given back.
            let gives_back = matches!(cmd, Command::VmCreate | Command::SlabAlloc);
            if gives_back {
                drain()?;
            }
            let mut after = State::now(dev)?;
            let mut before = before;
            // A failed area is counted as one, once it got as far as the mapper.
            if matches!(cmd, Command::VmCreate) && point != "handle_insert" {
                if let Some((_, n)) = before.vmstat.iter_mut().find(|(k, _)| k == "vmalloc_fail") {
                    *n += 1;
                }
            }
            if gives_back {
                let event =
                    |k: &str| k.starts_with("pgalloc_") || k == "pgfree" || k == "zone_fallback";
                before.vmstat.retain(|(k, _)| !event(k));
                after.vmstat.retain(|(k, _)| !event(k));
                // Every page back where it was: the free blocks merged as before.
                let buddy = debugfs("buddyinfo").map_err(|err| format!("buddyinfo: {err}"))?;
                check!(
                    buddy == buddy_before,
                    "{what}: buddyinfo {buddy:?}, before {buddy_before:?}"
                );
            }
            check!(
                after == before,
                "{what}: failed, yet changed: {}",
                after.diff(&before)
            );
            check_eq!(device_mappings()?, maps_before);
        }
        Ok(_) => {}
    }
    // Clean up what succeeded; the handle sequence goes on only for a successful ALLOC.
    if let Ok(Some(a)) = result {
        check!(
            a.handle == *next_handle,
            "{what}: handle {} where {} was next",
            a.handle,
            next_handle
        );
        *next_handle += 1;
        dev.free(a.handle)
            .map_err(|err| format!("{what}: FREE: {err}"))?;
    }
    if let Some(h) = area {
        check!(
            h == *next_handle,
            "{what}: area handle {h} where {} was next",
            next_handle
        );
        *next_handle += 1;
        dev.vm_free(h)
            .map_err(|err| format!("{what}: VM_FREE: {err}"))?;
    }
    for done in slab_done {
        match done {
            Slab::Object(o) => dev.slab_free(o),
            Slab::Cache(c) => dev.slab_destroy(c),
        }
        .map_err(|err| format!("{what}: slab clean-up: {err}"))?;
    }
    if let Some(c) = cache {
        dev.slab_destroy(c)
            .map_err(|err| format!("{what}: SLAB_DESTROY: {err}"))?;
    }
    drop(mapping);
    if let Some(a) = block {
        dev.free(a.handle)
            .map_err(|err| format!("{what}: FREE: {err}"))?;
    }
    Ok(injected)
}

/// Walks `nth` over `point` for `cmd`; returns how many failures were injected.
fn walk(dev: &Device, cmd: Command, point: &str, next_handle: &mut u64) -> Result<i64, String> {
    for nth in 1..=MAX_NTH {
        if !run_once(dev, cmd, point, nth, next_handle)? {
            check!(nth > 1, "{cmd:?} never passed {point}");
            return Ok(nth - 1);
        }
    }
    Err(format!("{cmd:?} passed {point} more than {MAX_NTH} times"))
}

/// Every failure point of ALLOC (order 0 through the per-CPU lists, order 3 through the buddy
/// path) and mmap, walked with nth: each injected failure is absorbed or is ENOMEM with
/// nothing changed. Afterwards the allocator validates and every knob is back to 0.
pub fn nth_walks_every_point() -> TestResult {
    let _disarm = Disarm;
    all_disarmed()?;
    let dev = open()?;
    // The file's next handle: ALLOC once to learn it.
    let probe = dev.alloc(0, NORMAL, 0).map_err(e)?;
    dev.free(probe.handle).map_err(e)?;
    let mut next_handle = probe.handle + 1;
    let cases: [(Command, &[&str]); 6] = [
        (
            Command::Alloc(0),
            &["zone_alloc", "pcp_refill", "handle_insert"],
        ),
        (Command::Alloc(3), &["zone_alloc", "handle_insert"]),
        (Command::Touch, &["mapping_insert"]),
        (
            Command::SlabAlloc,
            &[
                "slab_array_refill",
                "slab_grow",
                "zone_alloc",
                "pcp_refill",
                "handle_insert",
            ],
        ),
        (Command::SlabCreate, &["slab_create"]),
        (
            Command::VmCreate,
            &[
                "vm_page",
                "vm_map",
                "vm_record",
                "zone_alloc",
                "handle_insert",
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (cmd, points) in cases {
        for point in points {
            let injected_before = get(point, "injected")?;
            match walk(&dev, cmd, point, &mut next_handle) {
                Ok(n) => {
                    println!("# {cmd:?}: {point}: {n} failure(s) injected");
                    let counted = get(point, "injected")? - injected_before;
                    if counted != n {
                        wrong.push(format!(
                            "{cmd:?}: {point}: injected counts {counted}, not {n}"
                        ));
                    }
                }
                Err(err) => wrong.push(err),
            }
            // A walk that stopped halfway may have left nth armed.
            set(point, "nth", 0)?;
        }
    }
    check!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The handle sequence went on as if no failed ALLOC had been asked.
    let next = dev.alloc(0, NORMAL, 0).map_err(e)?;
    check_eq!(next.handle, next_handle);
    dev.free(next.handle).map_err(e)?;
    validate_ok()?;
    all_disarmed()?;
    pass()
}

/// The last `unloaded: borrowed N pages, returned M` line of the kernel log, as (N, M).
fn last_unload_report() -> Result<(u64, u64), String> {
    let log = sh("dmesg")?;
    let line = log
        .lines()
        .rev()
        .find_map(|l| {
            l.split_once("unloaded: borrowed ")
                .map(|(_, rest)| rest.to_string())
        })
        .ok_or("no unload report in the kernel log")?;
    let mut nums = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<u64>().unwrap_or(u64::MAX));
    match (nums.next(), nums.next()) {
        (Some(b), Some(r)) => Ok((b, r)),
        _ => Err(format!("unload report {line:?}")),
    }
}

/// insmod's borrowing from the host, walked with the module parameter fail_nth_host_borrow
/// over small zones: each injected failure makes the pool borrow smaller chunks, the module
/// loads with as many pages as without injection, validates, disarms host_borrow after the
/// borrowing, and gives every page back at unload. The module is loaded with its defaults
/// again afterwards.
pub fn nth_walks_host_borrow_at_load() -> TestResult {
    const ZONES: &str = "dma_pages=16 dma32_pages=256 normal_pages=256";
    let result = (|| -> Result<i64, String> {
        reload(ZONES)?;
        let want = info_value("borrowed_pages")?;
        check_eq!(get("host_borrow", "injected")?, 0);
        for nth in 1..=MAX_NTH {
            let what = format!("fail_nth_host_borrow={nth}");
            reload(&format!("{ZONES} fail_nth_host_borrow={nth}"))
                .map_err(|err| format!("{what}: {err}"))?;
            let (borrowed, returned) = last_unload_report()?;
            check!(
                borrowed == returned,
                "{what}: the load before borrowed {borrowed}, returned {returned}"
            );
            check_eq!(info_value("fail_nth_host_borrow")?, nth as u64);
            // Disarmed once the borrowing was done, whether it fired or not.
            check_eq!(get("host_borrow", "nth")?, 0);
            let injected = get("host_borrow", "injected")?;
            check!(injected <= 1, "{what}: {injected} failures injected");
            check!(
                info_value("borrowed_pages")? == want,
                "{what}: borrowed {} pages, {want} without injection",
                info_value("borrowed_pages")?
            );
            validate_ok().map_err(|err| format!("{what}: {err}"))?;
            if injected == 0 {
                check!(nth > 1, "the load never borrowed");
                return Ok(nth - 1);
            }
        }
        Err(format!("the load borrowed more than {MAX_NTH} times"))
    })();
    // Whatever happened, the module with its defaults again.
    let restored = reload("").or_else(|_| ensure_loaded().map(|()| String::new()));
    let n = result?;
    restored?;
    println!("# insmod: host_borrow: {n} failure(s) injected");
    let (borrowed, returned) = last_unload_report()?;
    check_eq!(borrowed, returned);
    all_disarmed()?;
    pass()
}

/// probability, interval, times, verbose and nth through debugfs: probability 100 with times 3
/// fails exactly three allocations; interval 3 fails every third; verbose 1 logs each; nth
/// reads the passes left, then 0; values out of range are EINVAL and change nothing.
pub fn knobs_follow_linux_rules() -> TestResult {
    let _disarm = Disarm;
    all_disarmed()?;
    let dev = open()?;
    let p = "zone_alloc";
    let injected = get(p, "injected")?;
    // Which of `n` ALLOCs of order 3 fail (1-based); every failure must be ENOMEM.
    let outcomes = |n: u32| -> Result<Vec<u32>, String> {
        let mut failed = Vec::new();
        for i in 1..=n {
            match dev.alloc(3, NORMAL, 0) {
                Ok(a) => dev.free(a.handle).map_err(e)?,
                Err(err) if err.raw_os_error() == Some(libc::ENOMEM) => failed.push(i),
                Err(err) => return Err(format!("ALLOC {i}: {err}")),
            }
        }
        Ok(failed)
    };
    set(p, "probability", 100)?;
    check_eq!(outcomes(4)?, Vec::<u32>::new());
    set(p, "times", 3)?;
    check_eq!(outcomes(6)?, vec![1, 2, 3]);
    check_eq!(get(p, "times")?, 0);
    check_eq!(get(p, "injected")?, injected + 3);
    // Every third eligible pass, without limit, each logged.
    set(p, "times", -1)?;
    set(p, "interval", 3)?;
    set(p, "verbose", 1)?;
    let logged = || -> Result<usize, String> {
        let line =
            "minimm: injecting failure at zone_alloc (probability 100, interval 3, times -1)";
        Ok(sh("dmesg")?.lines().filter(|l| l.contains(line)).count())
    };
    let logged_before = logged()?;
    check_eq!(outcomes(7)?, vec![3, 6]);
    check_eq!(get(p, "times")?, -1);
    check_eq!(logged()?, logged_before + 2);
    set(p, "probability", 0)?;
    set(p, "interval", 0)?;
    set(p, "times", 0)?;
    set(p, "verbose", 0)?;
    // nth: the passes left, then 0 once injected.
    set(p, "nth", 2)?;
    check_eq!(get(p, "nth")?, 2);
    check_eq!(outcomes(1)?, Vec::<u32>::new());
    check_eq!(get(p, "nth")?, 1);
    check_eq!(outcomes(2)?, vec![1]);
    check_eq!(get(p, "nth")?, 0);
    // Out of range, negative or not a number: EINVAL, the knob unchanged.
    set(p, "times", 5)?;
    for (knob, bad) in [
        ("probability", "101"),
        ("probability", "-1"),
        ("interval", "-1"),
        ("times", "-2"),
        ("verbose", "3"),
        ("nth", "-1"),
        ("nth", "4294967296"),
        ("nth", "abc"),
        ("times", "1 2"),
    ] {
        let before = get(p, knob)?;
        expect_errno(
            std::fs::write(knob_path(p, knob), bad),
            libc::EINVAL,
            &format!("{knob} = {bad:?}"),
        )?;
        check_eq!(get(p, knob)?, before);
    }
    set(p, "times", 0)?;
    // The other points were never armed; nothing is now.
    all_disarmed()?;
    validate_ok()?;
    pass()
}
