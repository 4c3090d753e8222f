//! CompuShare wire protocol: what rigs, clients and management nodes say to each other.
//!
//! - [`msg`]: one postcard-encoded enum per direction, bounded (heapless) so that decoding
//!   never allocates, each enum's maximum size checked at compile time against the frame limit.
//! - [`frame`]: length-prefixed frames of at most 65,535 bytes over embedded-io byte streams
//!   (blocking and async), so the same code runs over tokio TCP, serial lines and pipes.
//! - [`chunk`]: large payloads split into content-addressed chunks and reassembled into a
//!   bounded buffer.
//! - [`sheet`]: a farm's flight sheet (the rig settings a manager pushes to a farm's rigs).
//! - `log` (feature `std`): the workspace's logging shim (`warn!`, `info!`, `debug!`).
//! - `secure` (feature `std`): the Noise XX channel (25519/ChaChaPoly/SHA256) with pinned
//!   manager keys, zeroizing identities stored 0600, and tokio adapters.
//!
//! The core (`msg`, `frame`, `chunk`) is `no_std` with no allocator.
#![no_std]
#![deny(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod bytes;
pub mod chunk;
pub mod frame;
pub mod hex;
pub mod limits;
#[cfg(feature = "std")]
pub mod log;
pub mod merkle;
pub mod msg;
#[cfg(feature = "std")]
pub mod secure;
pub mod sheet;
pub mod types;

pub use msg::{Message, PROTOCOL_VERSION};
