//! Rig settings for tests: real rigs (the firmware's own core) on one CPU device of one core,
//! quick to start and quick to react, that take any price.

use std::path::PathBuf;
use std::time::Duration;

use compushare_controller::settings::{RigOptions, RigSettings};
use compushare_controller::transport::session::ManagerSettings;
use compushare_protocol::types::{Amount, PublicKey};

/// Options of a test rig: one core, no GPU, short calibration, evaluations every 200 ms,
/// reconnects within half a second, any price taken.
pub fn test_options() -> RigOptions {
    let mut o = RigOptions {
        cores: Some(1),
        no_gpus: true,
        calibration_photons: 256,
        evaluate_every: Duration::from_millis(200),
        ..RigOptions::default()
    };
    o.session.min_price = Amount(0);
    o.session.backoff_min = Duration::from_millis(100);
    o.session.backoff_max = Duration::from_millis(500);
    o
}

/// A transport rig for the manager at `addr` (key `manager_key`) with [`test_options`].
pub fn transport_rig(
    addr: &str,
    manager_key: PublicKey,
    name: &str,
    payout: PublicKey,
    state_dir: PathBuf,
) -> RigSettings {
    RigSettings::transport(
        ManagerSettings {
            addr: addr.to_owned(),
            key: manager_key,
        },
        name,
        Some(payout),
        state_dir,
        test_options(),
    )
}
