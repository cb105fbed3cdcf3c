// SPDX-License-Identifier: GPL-2.0

//! Selftests of unloading with debugfs files in use: an open file pins the module (`rmmod`
//! fails with EWOULDBLOCK until the last one is closed), and unload attempts racing reads of
//! every file either fail or unload cleanly. Both reload the module afterwards with the
//! parameters it had, so the tests after them still have a device.

use std::{
    ffi::CString,
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    os::unix::{fs::PermissionsExt, io::AsRawFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        RwLock,
    },
    thread,
    time::{Duration, Instant},
};

use minimm_uapi::{debugfs, parse_kv, Device};

use crate::{
    common::{e, sh, sh_status, DEBUGFS, MODULE_PATH},
    ktap::{pass, TestResult},
};

/// The module's load parameters, as `insmod` arguments, read back from debugfs `info`.
pub(crate) fn load_params() -> Result<String, String> {
    let kv = parse_kv(&debugfs("info").map_err(|err| format!("read info: {err}"))?);
    let mut args = Vec::new();
    for key in [
        "dma_pages",
        "dma32_pages",
        "normal_pages",
        "file_quota_pages",
        "min_free_kbytes",
        "watermark_scale_factor",
    ] {
        let (_, v) = kv
            .iter()
            .find(|(k, _)| k == key)
            .ok_or(format!("no {key} in info"))?;
        v.parse::<u64>()
            .map_err(|err| format!("{key}: {v:?}: {err}"))?;
        args.push(format!("{key}={v}"));
    }
    Ok(args.join(" "))
}

/// Whether minimm is in /proc/modules, and its reference count there.
fn module_refs() -> Result<Option<u64>, String> {
    let text = std::fs::read_to_string("/proc/modules").map_err(e)?;
    let Some(line) = text.lines().find(|l| l.starts_with("minimm ")) else {
        return Ok(None);
    };
    let refs = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .ok_or(format!("cannot read {line:?}"))?;
    Ok(Some(refs))
}

/// A debugfs file of minimm and how it may be opened.
struct Entry {
    name: String,
    path: String,
    readable: bool,
}

impl Entry {
    /// Files that list live buffers or areas read empty when there are none.
    fn may_be_empty(&self) -> bool {
        self.name.starts_with("page_owner") || self.name == "vmallocinfo"
    }
}

/// Every file under debugfs `minimm/`, in its subdirectories too (`fail/<point>/<knob>`),
/// named by its path below `minimm/`.
fn entries() -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let at = format!("{DEBUGFS}/{dir}");
        for ent in std::fs::read_dir(&at).map_err(|err| format!("{at}: {err}"))? {
            let ent = ent.map_err(e)?;
            let meta = ent.metadata().map_err(e)?;
            let name = format!("{dir}{}", ent.file_name().to_string_lossy());
            if meta.is_dir() {
                dirs.push(format!("{name}/"));
                continue;
            }
            let mode = meta.permissions().mode();
            check!(
                mode & 0o666 != 0,
                "{name}: mode {mode:o}, neither readable nor writable"
            );
            out.push(Entry {
                path: format!("{DEBUGFS}/{name}"),
                readable: mode & 0o444 != 0,
                name,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    // The files the README lists, at least.
    for name in [
        "info",
        "buddyinfo",
        "vmstat",
        "watermarks",
        "drain_pcp",
        "bench",
    ] {
        check!(out.iter().any(|f| f.name == name), "no {name} in {DEBUGFS}");
    }
    Ok(out)
}

/// Opens a debugfs file: readable ones for reading, write-only ones for writing.
fn open_entry(f: &Entry) -> io::Result<File> {
    if f.readable {
        File::open(&f.path)
    } else {
        OpenOptions::new().write(true).open(&f.path)
    }
}

/// `delete_module("minimm", O_NONBLOCK)`, as `rmmod` does it.
fn delete_module() -> io::Result<()> {
    // SAFETY: a NUL-terminated name and flags; the kernel copies the name.
    let r = unsafe {
        libc::syscall(
            libc::SYS_delete_module,
            c"minimm".as_ptr(),
            libc::O_NONBLOCK,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Loads minimm from its file with `params`, as `insmod` does.
fn finit_module(params: &CString) -> io::Result<()> {
    let ko = File::open(MODULE_PATH)?;
    // SAFETY: an open file descriptor, a NUL-terminated parameter string, no flags.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, ko.as_raw_fd(), params.as_ptr(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Loads minimm with `params` unless it is loaded; then checks that it works.
fn ensure_loaded(params: &str) -> Result<(), String> {
    if module_refs()?.is_none() {
        sh(&format!("insmod {MODULE_PATH} {params}"))?;
    }
    check_works()
}

/// The device answers an ioctl and debugfs `info` reads.
fn check_works() -> Result<(), String> {
    let dev = Device::open().map_err(|err| format!("open /dev/minimm: {err}"))?;
    dev.info().map_err(|err| format!("GET_INFO: {err}"))?;
    let text = debugfs("info").map_err(|err| format!("read info: {err}"))?;
    check!(text.starts_with("version: "), "info reads {text:?}");
    Ok(())
}

/// The sequence of issue 8 (`exec 3<info; rmmod minimm; exec 3<&-`), then every debugfs file
/// open at once: `rmmod` fails while any is open, the module keeps working, and unloads once
/// they are closed. It is loaded again with the same parameters afterwards.
pub fn open_debugfs_file_pins_module() -> TestResult {
    let params = load_params()?;
    let files = entries()?;
    // Exactly the report's sequence, in a shell.
    let text = sh(&format!(
        "exec 3<{DEBUGFS}/info; rmmod minimm; echo rc=$?; cat <&3 >/dev/null; echo read=$?; exec 3<&-"
    ))?;
    check!(
        text.contains("rc=1") && text.contains("read=0"),
        "rmmod with info open: {text:?}"
    );
    check!(
        text.contains("Resource temporarily unavailable"),
        "rmmod did not fail with EWOULDBLOCK: {text:?}"
    );
    check!(module_refs()?.is_some(), "minimm unloaded with info open");
    check_works()?;
    let result = (|| -> Result<(), String> {
        let before = module_refs()?.ok_or("minimm not loaded")?;
        let mut open = Vec::new();
        for f in &files {
            let file = open_entry(f).map_err(|err| format!("open {}: {err}", f.name))?;
            open.push((f, file));
        }
        // Each open file holds a reference.
        check_eq!(module_refs()?, Some(before + files.len() as u64));
        let (ok, text) = sh_status("rmmod minimm")?;
        check!(!ok, "rmmod succeeded with every debugfs file open: {text}");
        check!(
            text.contains("Resource temporarily unavailable"),
            "rmmod: {text:?}"
        );
        match delete_module() {
            Err(err) if err.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
            other => return Err(format!("delete_module with files open: {other:?}")),
        }
        check!(module_refs()?.is_some(), "minimm unloaded with files open");
        // Still working, through the files already open as well.
        check_works()?;
        for (f, file) in &mut open {
            if f.readable {
                let mut text = String::new();
                file.read_to_string(&mut text)
                    .map_err(|err| format!("read {}: {err}", f.name))?;
                check!(
                    !text.is_empty() || f.may_be_empty(),
                    "{} reads empty",
                    f.name
                );
            }
        }
        drop(open);
        check_eq!(module_refs()?, Some(before));
        Ok(())
    })();
    if let Err(err) = result {
        // Whatever failed, leave the module loaded and working.
        ensure_loaded(&params)?;
        return Err(err);
    }
    sh("rmmod minimm")?;
    check_eq!(module_refs()?, None);
    check!(
        std::fs::metadata(DEBUGFS).is_err(),
        "{DEBUGFS} still exists after rmmod"
    );
    sh(&format!("insmod {MODULE_PATH} {params}"))?;
    check_works()?;
    check_eq!(load_params()?, params);
    pass()
}

/// How long the race runs.
const RACE: Duration = Duration::from_secs(5);

/// How often the unloader lets an unload go through.
const CYCLE: Duration = Duration::from_secs(1);

/// State shared by the racing threads.
///
/// `gate` keeps opens out of a `delete_module` call that may succeed. The kernel has a window
/// there: `try_stop_module` drops the module's reference count to zero before it marks the
/// module going, and an open in between fails `try_module_get` while the module still looks
/// live, so debugfs warns ("debugfs file owner did not clean up at exit",
/// fs/debugfs/file.c:461) and fails the open with ENXIO. That is the kernel's race, not
/// minimm's, and it would fail the run; so every attempt either races opens while the
/// unloader holds a file open (refused, whatever the readers do), or runs with opens held off.
#[derive(Default)]
struct Race {
    stop: AtomicBool,
    gate: RwLock<()>,
    reads: AtomicU64,
    writes: AtomicU64,
    absent: AtomicU64,
    going: AtomicU64,
    refused: AtomicU64,
    unloaded: AtomicU64,
}

/// One reader's loop over one file until `stop`: open, read it all (twice, seeking back in
/// between) or write `1` to a write-only file, close, pause 0 to 3 ms. While the module is
/// unloaded the open fails with ENOENT; once a file is open, every read and write must work,
/// whatever the unloader does.
fn reader(files: &[Entry], race: &Race) -> Result<(), String> {
    let mut pause = 0;
    let mut next = 0usize;
    while !race.stop.load(Relaxed) {
        let Some(f) = files.get(next % files.len().max(1)) else {
            return Ok(());
        };
        next = next.wrapping_add(1);
        pause = (pause + 1) % 4;
        thread::sleep(Duration::from_millis(pause));
        let opened = {
            let _gate = race.gate.read().map_err(|_| "gate poisoned")?;
            open_entry(f)
        };
        let mut file = match opened {
            Ok(file) => file,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                race.absent.fetch_add(1, Relaxed);
                continue;
            }
            Err(err) if err.raw_os_error() == Some(libc::ENXIO) => {
                race.going.fetch_add(1, Relaxed);
                continue;
            }
            Err(err) => return Err(format!("open {}: {err}", f.name)),
        };
        if f.readable {
            for _ in 0..2 {
                let mut text = Vec::new();
                file.read_to_end(&mut text)
                    .map_err(|err| format!("read {}: {err}", f.name))?;
                check!(
                    !text.is_empty() || f.may_be_empty(),
                    "{} reads empty",
                    f.name
                );
                if f.name == "info" {
                    check!(text.starts_with(b"version: "), "info reads {text:?}");
                }
                file.seek(SeekFrom::Start(0))
                    .map_err(|err| format!("seek {}: {err}", f.name))?;
            }
            race.reads.fetch_add(1, Relaxed);
        } else {
            file.write_all(b"1")
                .map_err(|err| format!("write {}: {err}", f.name))?;
            race.writes.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

/// Reader threads of the race: each file is opened by one of them in turn.
const READERS: usize = 24;

/// The unloader's loop until `stop`. Holding `info` open, it tries `rmmod` back to back
/// while the readers open, read and close: every attempt must fail with EWOULDBLOCK. Every
/// `CYCLE` it closes `info`, holds opens off, tries again until the readers' files are closed
/// and the module is gone (refused meanwhile), lets the readers find it absent for a moment,
/// and loads it again with the same parameters while they keep opening.
fn unloader(params: &CString, race: &Race) -> Result<(), String> {
    let info = format!("{DEBUGFS}/info");
    let mut pin = File::open(&info).map_err(|err| format!("open info: {err}"))?;
    let mut cycle = Instant::now();
    while !race.stop.load(Relaxed) {
        if cycle.elapsed() < CYCLE {
            match delete_module() {
                Err(err) if err.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                    race.refused.fetch_add(1, Relaxed);
                }
                other => return Err(format!("rmmod with info open: {other:?}")),
            }
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        drop(pin);
        {
            let _gate = race.gate.write().map_err(|_| "gate poisoned")?;
            let mut tries = 0;
            loop {
                match delete_module() {
                    Ok(()) => break,
                    Err(err) if err.raw_os_error() == Some(libc::EWOULDBLOCK) && tries < 1000 => {
                        race.refused.fetch_add(1, Relaxed);
                        tries += 1;
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err(err) => return Err(format!("rmmod with opens held off: {err}")),
                }
            }
        }
        race.unloaded.fetch_add(1, Relaxed);
        thread::sleep(Duration::from_millis(20));
        finit_module(params).map_err(|err| format!("insmod after rmmod: {err}"))?;
        pin = File::open(&info).map_err(|err| format!("open info after insmod: {err}"))?;
        cycle = Instant::now();
    }
    Ok(())
}

/// Readers of every debugfs file ([`READERS`] threads) race unload attempts for a few seconds,
/// and from time to time an unload and a reload. Afterwards the module is loaded and works,
/// and the kernel log stays clean (the runner checks).
pub fn reads_race_unload() -> TestResult {
    let params = load_params()?;
    let cparams = CString::new(params.clone()).map_err(|err| err.to_string())?;
    let files = entries()?;
    let race = Race::default();
    let results: Vec<Result<(), String>> = thread::scope(|s| {
        // At most READERS threads, each going round its share of the files: one thread per
        // file (hundreds, with the slab caches' directories) overloads two vCPUs under TCG
        // until the unloader starves.
        let per = files.len().div_ceil(READERS).max(1);
        let readers: Vec<_> = files
            .chunks(per)
            .map(|share| s.spawn(|| reader(share, &race)))
            .collect();
        let unload = s.spawn(|| unloader(&cparams, &race));
        let start = Instant::now();
        while start.elapsed() < RACE && !unload.is_finished() {
            thread::sleep(Duration::from_millis(50));
        }
        race.stop.store(true, Relaxed);
        readers
            .into_iter()
            .chain([unload])
            .map(|t| t.join().unwrap_or(Err("thread panicked".to_string())))
            .collect()
    });
    println!(
        "# {} reads, {} writes, opens failed: {} ENOENT, {} ENXIO; unloads: {} refused, {} done",
        race.reads.load(Relaxed),
        race.writes.load(Relaxed),
        race.absent.load(Relaxed),
        race.going.load(Relaxed),
        race.refused.load(Relaxed),
        race.unloaded.load(Relaxed)
    );
    ensure_loaded(&params)?;
    for r in results {
        r?;
    }
    check!(race.reads.load(Relaxed) > 0, "no read completed");
    check!(race.refused.load(Relaxed) > 0, "no unload was refused");
    check!(race.unloaded.load(Relaxed) > 0, "no unload went through");
    let text = debugfs("validate").map_err(e)?;
    check_eq!(text.lines().filter(|l| l.contains(": ok,")).count(), 3);
    check_eq!(load_params()?, params);
    pass()
}
