//! The watchdog's state machine with a scripted clock: SICK and restarted after the sick
//! threshold (again every threshold while stuck), DEAD and disabled at the dead threshold,
//! healthy again on progress, never stalled without work, paused when hot and resumed when
//! cool.

use std::time::Duration;

use compushare_controller::status::Health;
use compushare_controller::watchdog::{Action, DeviceWatch, Observation, WatchdogConfig};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn obs(has_work: bool, last: u64, temp: Option<i16>) -> Observation {
    Observation {
        has_work,
        last_progress: s(last),
        temperature_dc: temp,
    }
}

#[test]
fn stalled_device_is_restarted_then_disabled() {
    let mut w = DeviceWatch::new(WatchdogConfig::default());
    let mut actions = Vec::new();
    // Progress up to t=10, then nothing, with work all along.
    for t in 0..=700u64 {
        let last = t.min(10);
        for a in w.observe(s(t), obs(true, last, None)).into_iter().flatten() {
            actions.push((t, a));
        }
    }
    assert_eq!(
        actions,
        vec![
            (130, Action::Restart),
            (250, Action::Restart),
            (370, Action::Restart),
            (490, Action::Restart),
            (610, Action::Disable),
        ]
    );
    assert_eq!(w.health(), Health::Dead);
    assert_eq!(w.restarts(), 4);
    assert!(w.usable().is_some());
    // Dead stays dead.
    assert_eq!(w.observe(s(800), obs(true, 800, Some(999))), [None, None]);
}

#[test]
fn progress_after_a_restart_heals() {
    let mut w = DeviceWatch::new(WatchdogConfig::default());
    assert_eq!(w.observe(s(0), obs(true, 0, None)), [None, None]);
    assert_eq!(
        w.observe(s(120), obs(true, 0, None)),
        [Some(Action::Restart), None]
    );
    assert_eq!(w.health(), Health::Sick);
    assert_eq!(w.observe(s(125), obs(true, 124, None)), [None, None]);
    assert_eq!(w.health(), Health::Ok);
    assert!(w.usable().is_none());
}

#[test]
fn no_work_is_no_stall() {
    let mut w = DeviceWatch::new(WatchdogConfig::default());
    // Last progress long ago, but nothing to do (no pool job, no assignment).
    for t in 0..2000 {
        assert_eq!(w.observe(s(t), obs(false, 0, None)), [None, None]);
    }
    // Work arrives at t=2000: the stall clock starts there, not at the old progress.
    assert_eq!(w.observe(s(2000), obs(true, 0, None)), [None, None]);
    assert_eq!(w.observe(s(2119), obs(true, 0, None)), [None, None]);
    assert_eq!(
        w.observe(s(2120), obs(true, 0, None)),
        [Some(Action::Restart), None]
    );
}

#[test]
fn hot_pauses_and_cool_resumes_with_hysteresis() {
    let cfg = WatchdogConfig {
        temp_limit_dc: 900,
        temp_resume_dc: 800,
        ..WatchdogConfig::default()
    };
    let mut w = DeviceWatch::new(cfg);
    assert_eq!(w.observe(s(0), obs(true, 0, Some(899))), [None, None]);
    assert_eq!(
        w.observe(s(1), obs(true, 1, Some(900))),
        [None, Some(Action::Pause)]
    );
    assert_eq!(w.health(), Health::Hot);
    // Between the thresholds, and without a reading: still paused, no new action.
    for (t, temp) in [(2, Some(870)), (3, None), (4, Some(801))] {
        assert_eq!(w.observe(s(t), obs(true, 1, temp)), [None, None]);
    }
    // A paused device is not stalled, however long it waits.
    assert_eq!(w.observe(s(500), obs(true, 1, Some(850))), [None, None]);
    assert_eq!(
        w.observe(s(501), obs(true, 1, Some(800))),
        [None, Some(Action::Resume)]
    );
    assert_eq!(w.health(), Health::Ok);
}
