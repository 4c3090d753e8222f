//! The one `unsafe` call of the operator surfaces: registering the serial port's descriptor
//! with tokio's reactor.
//!
//! tokio made `AsyncFd::register` unsafe because a generic `T: AsRawFd` could report a
//! different descriptor over time, or close it while registered. Here `T` is an `OwnedFd`:
//! it always reports the descriptor it owns, and that descriptor stays open until the
//! `AsyncFd` (which owns the `OwnedFd`) is dropped, so the contract holds.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

/// Registers an owned, non-blocking descriptor with the current tokio reactor.
pub fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `fd` is a valid open descriptor owned by the `AsyncFd` from here on; an
    // `OwnedFd` returns the same descriptor from every `as_raw_fd` call and closes it only
    // when dropped, which happens after the `AsyncFd` deregisters it.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}
