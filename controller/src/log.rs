//! A tiny logging shim so library code never names a logging backend.
//!
//! Messages go to stderr when the level allows it. The level is process-wide and starts at
//! `Warn`; `COMPUSHARE_LOG=debug|info|warn|off` overrides it at first use, and binaries
//! may call [`set_level`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

/// How loud the process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Nothing at all.
    Off = 0,
    /// Something went wrong and the engine is working around it.
    Warn = 1,
    /// State changes an operator wants to see (pool switches, new difficulty).
    Info = 2,
    /// Per-message detail.
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);
static INIT: Once = Once::new();

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

/// Whether a message at `level` would be printed.
pub fn enabled(level: Level) -> bool {
    init_from_env();
    level != Level::Off && (level as u8) <= LEVEL.load(Ordering::Relaxed)
}

/// Prints one line at `level` (used through the macros).
pub fn emit(level: Level, args: std::fmt::Arguments<'_>) {
    if enabled(level) {
        let tag = match level {
            Level::Off => "",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        eprintln!("compushare[{tag}]: {args}");
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
