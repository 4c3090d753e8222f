//! The workspace's one logging shim: library code never names a logging backend.
//!
//! Lines go to stderr when the level allows it, and to a tap when one is set: the tap gets
//! info and warn lines always and debug lines when they are enabled (a rig's console keeps a
//! bounded ring of recent lines through it, `compushare_controller::log`). The level is process-wide and starts at
//! `Warn`; `COMPUSHARE_LOG=debug|info|warn|off` overrides it at first use, and binaries may
//! call [`set_level`]. Use it through the `warn!`, `info!` and `debug!` macros exported at
//! this crate's root (the controller re-exports them as its own).

use core::fmt::Arguments;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Once, OnceLock};

/// How loud the process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Nothing at all.
    Off = 0,
    /// Something went wrong and the program is working around it.
    Warn = 1,
    /// State changes an operator wants to see.
    Info = 2,
    /// Per-message detail.
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);
static INIT: Once = Once::new();
static TAP: OnceLock<fn(Level, Arguments<'_>)> = OnceLock::new();

fn init_from_env() {
    INIT.call_once(|| {
        if let Ok(v) = std::env::var("COMPUSHARE_LOG") {
            let level = match v.to_ascii_lowercase().as_str() {
                "off" | "0" => Level::Off,
                "info" => Level::Info,
                "debug" | "trace" => Level::Debug,
                _ => Level::Warn,
            };
            LEVEL.store(level as u8, Ordering::Relaxed);
        }
    });
}

/// Sets the process-wide level (overrides `COMPUSHARE_LOG`).
pub fn set_level(level: Level) {
    INIT.call_once(|| {});
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Also hands lines to `tap` (see the module doc; once per process: a later call with
/// another tap is refused and returns false). The tap must be quick and must not log.
pub fn set_tap(tap: fn(Level, Arguments<'_>)) -> bool {
    TAP.set(tap).is_ok() || TAP.get().is_some_and(|t| core::ptr::fn_addr_eq(*t, tap))
}

/// Whether a message at `level` would be printed.
pub fn enabled(level: Level) -> bool {
    init_from_env();
    level != Level::Off && (level as u8) <= LEVEL.load(Ordering::Relaxed)
}

/// Prints one line at `level` (used through the macros) and hands it to the tap.
pub fn emit(level: Level, args: Arguments<'_>) {
    let to_stderr = enabled(level);
    let tap = TAP
        .get()
        .filter(|_| level != Level::Off && (level <= Level::Info || to_stderr));
    if !to_stderr && tap.is_none() {
        return;
    }
    if to_stderr {
        let tag = match level {
            Level::Off => "",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        std::eprintln!("compushare[{tag}]: {args}");
    }
    if let Some(tap) = tap {
        tap(level, args);
    }
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Warn, format_args!($($t)*)) };
}
/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Info, format_args!($($t)*)) };
}
/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Debug, format_args!($($t)*)) };
}
