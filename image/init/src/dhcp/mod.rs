//! A DHCP client (RFC 2131): DISCOVER, OFFER, REQUEST, ACK, then renewal at T1 (unicast to
//! the server), rebinding at T2 (broadcast) and loss of the lease at its expiry.
//!
//! `wire` owns the message format; `client` the state machine over a [`client::Link`] (a UDP
//! socket bound to port 68 on one interface on the rig; a loopback socket in tests). Applying
//! a lease to the interface is the caller's (`net`).

pub mod client;
pub mod wire;

pub use client::{Client, Dest, DhcpError, Lease, Link};
