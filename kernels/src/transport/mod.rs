//! Monte Carlo photon transport (the physics of MCX), deterministic to the bit.
//!
//! `job` is the validated, typed description of a simulation (what `input` parses MCX JSON
//! into); `tally` is what a run produces, in integers, so that any split of a photon range
//! merges to the same bits. The engine, RNG and the project's own transcendental functions
//! are the only things that turn one into the other.

pub mod job;
pub mod builtin;
pub mod input;
pub mod output;
pub mod tally;
