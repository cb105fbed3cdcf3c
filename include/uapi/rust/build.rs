// SPDX-License-Identifier: GPL-2.0

//! Generates the Rust bindings from `include/uapi/linux/minimm.h`, the single source of truth:
//!
//! - structs and plain constants with bindgen (the `bindgen` command, as the kernel build uses;
//!   `qemu/setup toolchain` provides it and `make` puts it on PATH);
//! - ioctl numbers, which bindgen cannot evaluate (`_IOWR(...)` is a function-like macro), by
//!   compiling and running a small C program that includes the header and prints them.

use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let header = manifest.join("../linux/minimm.h").canonicalize().unwrap();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=BINDGEN");

    let bindgen = env::var("BINDGEN").unwrap_or_else(|_| "bindgen".into());
    let status = Command::new(&bindgen)
        .arg(&header)
        .args(["--use-core", "--with-derive-default", "--with-derive-eq"])
        .args(["--allowlist-type", "minimm_.*", "--allowlist-var", "MINIMM_.*"])
        // 64-bit flag masks come from the C compiler below, with their C type.
        .args(["--blocklist-item", "MINIMM_FEAT.*"])
        .arg("-o")
        .arg(out.join("bindings.rs"))
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run '{bindgen}' ({e}): run qemu/setup toolchain, or put bindgen-cli on PATH")
        });
    assert!(status.success(), "bindgen failed on {}", header.display());

    // What bindgen cannot evaluate or types too narrowly, evaluated by the C compiler: every
    // `#define MINIMM_IOC_<NAME> _IO...(...)` (u32) and every `#define MINIMM_FEAT<...>` (u64).
    let text = fs::read_to_string(&header).unwrap();
    let names: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("#define"), Some(n), Some(v))
                    if n.starts_with("MINIMM_IOC_") && v.starts_with("_IO") =>
                {
                    Some((n, "u32"))
                }
                (Some("#define"), Some(n), Some(_)) if n.starts_with("MINIMM_FEAT") => {
                    Some((n, "u64"))
                }
                _ => None,
            }
        })
        .collect();
    let mut c = format!(
        "#include <stdio.h>\n#include \"{}\"\nint main(void) {{\n",
        header.display()
    );
    for (n, ty) in &names {
        c += &format!("printf(\"pub const {n}: {ty} = %#llx;\\n\", (unsigned long long){n});\n");
    }
    c += "return 0;\n}\n";
    let src = out.join("ioctls.c");
    let exe = out.join("ioctls");
    fs::write(&src, c).unwrap();
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .map(|s| s.success());
    assert!(
        matches!(ok, Ok(true)),
        "cannot compile {} with {cc}",
        src.display()
    );
    let printed = Command::new(&exe).output().expect("run ioctl generator");
    assert!(printed.status.success());
    fs::write(out.join("ioctls.rs"), printed.stdout).unwrap();
}
