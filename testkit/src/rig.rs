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
            farm: None,
        },
        name,
        Some(payout),
        state_dir,
        test_options(),
    )
}

/// A rig with no manager (mining and reporting only) named `name`, everything else default.
pub fn local_rig(name: &str, state_dir: PathBuf, options: RigOptions) -> RigSettings {
    let mut s = RigSettings::transport(
        ManagerSettings {
            addr: String::new(),
            key: [0; 32],
            farm: None,
        },
        name,
        None,
        state_dir,
        options,
    );
    s.manager = None;
    s
}
