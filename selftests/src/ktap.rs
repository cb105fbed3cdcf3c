// SPDX-License-Identifier: GPL-2.0

//! A small KTAP v1 harness (Documentation/dev-tools/ktap.rst) with kselftest exit codes.

use std::io;

/// How one test ended.
pub enum Outcome {
    Pass,
    Skip(String),
}

/// A test's result: `Err` fails it with a message; [`skip`] skips it.
pub type TestResult = Result<Outcome, String>;

/// A named test.
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// kselftest exit codes.
pub const KSFT_PASS: i32 = 0;
pub const KSFT_FAIL: i32 = 1;
pub const KSFT_SKIP: i32 = 4;

/// Passes the test.
pub fn pass() -> TestResult {
    Ok(Outcome::Pass)
}

/// Skips the test with a reason.
pub fn skip(why: impl Into<String>) -> TestResult {
    Ok(Outcome::Skip(why.into()))
}

/// Fails unless `cond`, with the message `what`.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!("{} (line {}): {}", stringify!($cond), line!(), format!($($what)+)));
        }
    };
}

/// Fails unless `left == right`.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!(
                "{} == {} (line {}): {:?} != {:?}",
                stringify!($left),
                stringify!($right),
                line!(),
                l,
                r
            ));
        }
    }};
}

/// Fails unless `res` is an error with errno `errno`.
pub fn expect_errno<T: std::fmt::Debug>(
    res: io::Result<T>,
    errno: i32,
    what: &str,
) -> Result<(), String> {
    match res {
        Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
        Err(e) => Err(format!("{what}: expected errno {errno}, got {e}")),
        Ok(v) => Err(format!(
            "{what}: expected errno {errno}, succeeded with {v:?}"
        )),
    }
}

/// Runs `tests` whose name contains `filter`, prints KTAP, returns the exit code.
pub fn run(suite: &str, tests: &[Test], filter: Option<&str>) -> i32 {
    let chosen: Vec<&Test> = tests
        .iter()
        .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
        .collect();
    println!("KTAP version 1");
    println!("# suite: {suite}");
    println!("1..{}", chosen.len());
    let (mut failed, mut skipped) = (0, 0);
    for (i, t) in chosen.iter().enumerate() {
        let n = i + 1;
        match (t.run)() {
            Ok(Outcome::Pass) => println!("ok {n} {}", t.name),
            Ok(Outcome::Skip(why)) => {
                skipped += 1;
                println!("ok {n} {} # SKIP {why}", t.name);
            }
            Err(why) => {
                failed += 1;
                for line in why.lines() {
                    println!("# {line}");
                }
                println!("not ok {n} {}", t.name);
            }
        }
    }
    println!(
        "# totals: pass:{} fail:{failed} skip:{skipped}",
        chosen.len() - failed - skipped
    );
    if failed > 0 {
        KSFT_FAIL
    } else if skipped == chosen.len() && !chosen.is_empty() {
        KSFT_SKIP
    } else {
        KSFT_PASS
    }
}
