//! Reconnect backoff: exponential from the minimum, capped, jittered into [0.5, 1.0] of it.

use std::time::Duration;

use compushare_controller::stratum::pools::{backoff, FailoverConfig};

#[test]
fn backoff_is_capped_and_jittered() {
    let cfg = FailoverConfig {
        switch_back_delay: Duration::from_secs(300),
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
    };
    assert_eq!(backoff(&cfg, 1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff(&cfg, 2, 1.0), Duration::from_secs(2));
    assert_eq!(backoff(&cfg, 4, 1.0), Duration::from_secs(8));
    assert_eq!(backoff(&cfg, 7, 1.0), Duration::from_secs(60));
    assert_eq!(backoff(&cfg, u32::MAX, 1.0), Duration::from_secs(60));
    assert_eq!(backoff(&cfg, 4, 0.5), Duration::from_secs(4));
    assert_eq!(backoff(&cfg, 0, 1.0), Duration::from_secs(1));
    assert_eq!(
        FailoverConfig::default().switch_back_delay,
        Duration::from_secs(300)
    );
}
