//! Monte Carlo photon transport (the physics of MCX), deterministic to the bit.
//!
//! `job` is the validated, typed description of a simulation (what `input` parses MCX JSON
//! into); `tally` is what a run produces, in integers, so that any split of a photon range
//! merges to the same bits. The engine, RNG and the project's own transcendental functions
//! are the only things that turn one into the other.
//!
//! Engine modules: `rng` (Philox counter-based streams; `sys_philox` its SSE2 form), `math` (own exp/ln/sincos), `grid`
//! (distance map), `model` (a job prepared for the loop), `photon` (one photon's life and
//! record), `lanes` (photons side by side in SIMD lanes; `sys_lanes` its AVX2/AVX-512 builds), `engine` (threads, shared integer tally), `tally_ops` (merge, digest), `error`.

pub mod builtin;
pub mod engine;
pub mod error;
pub mod grid;
pub mod input;
pub mod job;
mod lanes;
pub mod math;
pub mod model;
pub mod output;
pub mod photon;
pub mod rng;
#[cfg(target_arch = "x86_64")]
mod sys_lanes;
#[cfg(target_arch = "x86_64")]
mod sys_philox;
pub mod tally;
pub mod tally_codec;
pub mod tally_ops;

pub use engine::{simulate, simulate_photon, simulate_with_records, CpuPath, Engine};
pub use error::TransportError;
pub use photon::{Fate, PhotonRecord};
pub use tally_codec::TallyCodecError;
pub use tally_ops::tally_bytes;
