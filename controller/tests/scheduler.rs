//! The scheduler with scripted prices and a scripted clock (nothing sleeps): the right role
//! per device, no thrashing under noisy prices, leaving a role that stops paying at the first
//! evaluation, the margin, the lead count and the dwell, pins and unusable devices.

use std::time::Duration;

use compushare_controller::scheduler::{
    DeviceFigures, Reason, Revenue, Scheduler, SchedulerConfig, Stance,
};
use compushare_protocol::types::Role;

const EVERY: Duration = Duration::from_secs(2);

fn cfg() -> SchedulerConfig {
    SchedulerConfig {
        margin: 0.05,
        lead_evaluations: 3,
        min_dwell: Duration::from_secs(30),
    }
}

fn fig(mining: f64, transport: Option<f64>) -> DeviceFigures {
    DeviceFigures {
        pin: Role::Auto,
        unusable: None,
        mining: Revenue::Pays(mining),
        transport: match transport {
            Some(t) => Revenue::Pays(t),
            None => Revenue::Unavailable("no open offer"),
        },
    }
}

/// Runs `n` evaluations every 2 s from `t`, with figures from `f(step)`; returns the switches
/// and the time after.
fn run(
    s: &mut Scheduler,
    t: &mut Duration,
    n: usize,
    mut f: impl FnMut(usize) -> Vec<DeviceFigures>,
) -> Vec<compushare_controller::scheduler::Switch> {
    let mut all = Vec::new();
    for i in 0..n {
        all.extend(s.evaluate(*t, &f(i)));
        *t += EVERY;
    }
    all
}

#[test]
fn each_device_gets_the_role_that_pays() {
    // Device 0: transport pays 50% more; device 1: mining pays more; device 2: no offer.
    let mut s = Scheduler::new(cfg(), 3, Duration::ZERO);
    let mut t = Duration::from_secs(40);
    let figures = vec![fig(10.0, Some(15.0)), fig(10.0, Some(8.0)), fig(10.0, None)];
    let sw = run(&mut s, &mut t, 3, |_| figures.clone());
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0].device, 0);
    assert_eq!((sw[0].from, sw[0].to), (Stance::Mine, Stance::Transport));
    assert!(
        matches!(sw[0].reason, Reason::Led { evaluations: 3, lead } if (lead - 0.5).abs() < 1e-9)
    );
    assert_eq!(
        [s.stance(0), s.stance(1), s.stance(2)],
        [Stance::Transport, Stance::Mine, Stance::Mine]
    );
    // The log line carries the reason and both figures.
    let line = sw[0].to_string();
    assert!(
        line.contains("transport led by 50.0% for 3 evaluations"),
        "{line}"
    );
    assert!(
        line.contains("mining 10.000000 msat/s, transport 15.000000 msat/s"),
        "{line}"
    );
}

#[test]
fn a_lead_within_the_margin_never_switches() {
    let mut s = Scheduler::new(cfg(), 1, Duration::ZERO);
    let mut t = Duration::from_secs(40);
    // 4% better: under the 5% margin, forever.
    let sw = run(&mut s, &mut t, 100, |_| vec![fig(100.0, Some(104.0))]);
    assert!(sw.is_empty(), "{sw:?}");
    assert_eq!(s.stance(0), Stance::Mine);
}

#[test]
fn noisy_prices_around_parity_do_not_thrash() {
    // Transport's price swings +-8% around mining's, at random every evaluation: it often
    // leads by more than the margin, but rarely three times in a row; and a device that
    // switched stays at least the dwell. Over an hour of evaluations: a handful of switches
    // at most, never two within the dwell.
    let mut s = Scheduler::new(cfg(), 1, Duration::ZERO);
    let mut t = Duration::ZERO;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 0.16 - 0.08
    };
    let mut times = Vec::new();
    for _ in 0..1800 {
        let m = 100.0 * (1.0 + noise());
        let tr = 100.0 * (1.0 + noise());
        for _sw in s.evaluate(t, &[fig(m, Some(tr))]) {
            times.push(t);
        }
        t += EVERY;
    }
    assert!(times.len() <= 60, "{} switches in an hour", times.len());
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_secs(30), "{times:?}");
    }
    // The same noise without a margin or lead would flip about every other evaluation.
    let mut eager = Scheduler::new(
        SchedulerConfig {
            margin: 0.0,
            lead_evaluations: 1,
            min_dwell: Duration::ZERO,
        },
        1,
        Duration::ZERO,
    );
    let mut flips = 0;
    let mut t = Duration::ZERO;
    for _ in 0..1800 {
        let m = 100.0 * (1.0 + noise());
        let tr = 100.0 * (1.0 + noise());
        flips += eager.evaluate(t, &[fig(m, Some(tr))]).len();
        t += EVERY;
    }
    assert!(flips > 5 * times.len().max(1), "{flips} vs {}", times.len());
}

#[test]
fn an_interrupted_lead_starts_counting_again() {
    let mut s = Scheduler::new(cfg(), 1, Duration::ZERO);
    let mut t = Duration::from_secs(40);
    // Leads, leads, falls back, leads, leads: never three in a row.
    let pattern = [120.0, 120.0, 100.0, 120.0, 120.0, 100.0, 120.0, 120.0];
    let sw = run(&mut s, &mut t, pattern.len(), |i| {
        vec![fig(100.0, Some(pattern[i]))]
    });
    assert!(sw.is_empty(), "{sw:?}");
    let sw = run(&mut s, &mut t, 1, |_| vec![fig(100.0, Some(120.0))]);
    assert_eq!(sw.len(), 1, "third in a row switches");
}

#[test]
fn the_dwell_holds_a_fresh_role() {
    let mut s = Scheduler::new(cfg(), 1, Duration::ZERO);
    // At t=0 the device has just started hashing: a better transport must wait the dwell.
    let mut t = Duration::ZERO;
    let sw = run(&mut s, &mut t, 14, |_| vec![fig(100.0, Some(200.0))]);
    assert!(sw.is_empty(), "switched before 30 s: {sw:?}");
    let sw = run(&mut s, &mut t, 2, |_| vec![fig(100.0, Some(200.0))]);
    assert_eq!(sw.len(), 1);
    assert!(t >= Duration::from_secs(30));
}

#[test]
fn a_role_that_stops_paying_is_left_at_once() {
    let mut s = Scheduler::new(cfg(), 2, Duration::ZERO);
    let mut t = Duration::from_secs(40);
    run(&mut s, &mut t, 3, |_| vec![fig(10.0, Some(20.0)); 2]);
    assert_eq!([s.stance(0), s.stance(1)], [Stance::Transport; 2]);
    // Device 0's offer closes (work ended) one evaluation after the switch: well inside the
    // dwell, it is back on hashing at that very evaluation.
    let sw = s.evaluate(t, &[fig(10.0, None), fig(10.0, Some(20.0))]);
    assert_eq!(sw.len(), 1);
    assert_eq!(
        (sw[0].device, sw[0].to, sw[0].reason),
        (0, Stance::Mine, Reason::Stopped)
    );
    assert!(sw[0].to_string().contains("transport stopped paying"));
    // A price of zero is no pay either.
    t += EVERY;
    let sw = s.evaluate(t, &[fig(10.0, None), fig(10.0, Some(0.0))]);
    assert_eq!((sw[0].device, sw[0].to), (1, Stance::Mine));
    // Mining stops paying (pool lost) while transport pays: straight to transport.
    t += EVERY;
    let lost = DeviceFigures {
        mining: Revenue::Unavailable("no job from the pools"),
        ..fig(0.0, Some(1.0))
    };
    let sw = s.evaluate(t, &[lost, fig(10.0, None)]);
    assert_eq!(
        (sw[0].device, sw[0].to, sw[0].reason),
        (0, Stance::Transport, Reason::Stopped)
    );
}

#[test]
fn pins_win_and_unusable_devices_rest() {
    let mut s = Scheduler::with_pins(
        cfg(),
        &[Role::Mine, Role::Transport, Role::Off, Role::Auto],
        Duration::ZERO,
    );
    assert_eq!(
        [s.stance(0), s.stance(1), s.stance(2), s.stance(3)],
        [Stance::Mine, Stance::Transport, Stance::Off, Stance::Mine]
    );
    let mut t = Duration::from_secs(40);
    let pins = [Role::Mine, Role::Transport, Role::Off, Role::Auto];
    // Prices that would move every device: pinned ones stay put.
    let sw = run(&mut s, &mut t, 5, |_| {
        pins.iter()
            .map(|&pin| DeviceFigures {
                pin,
                ..fig(10.0, Some(100.0))
            })
            .collect()
    });
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0].device, 3);
    // Pinned transport with no offer stays transport (it hashes while idle).
    let sw = s.evaluate(
        t,
        &[
            DeviceFigures {
                pin: Role::Mine,
                ..fig(10.0, None)
            },
            DeviceFigures {
                pin: Role::Transport,
                ..fig(10.0, None)
            },
            DeviceFigures {
                pin: Role::Off,
                ..fig(10.0, None)
            },
            DeviceFigures {
                pin: Role::Mine,
                ..fig(10.0, None)
            },
        ],
    );
    assert_eq!(sw.len(), 1);
    assert_eq!(
        (sw[0].device, sw[0].to, sw[0].reason),
        (3, Stance::Mine, Reason::Pinned)
    );
    // A hot or dead device is off whatever its pin, and comes back to the paying role.
    t += EVERY;
    let hot = DeviceFigures {
        unusable: Some("over its temperature limit"),
        ..fig(10.0, Some(100.0))
    };
    let sw = s.evaluate(t, &[hot, hot, hot, hot]);
    assert_eq!(
        sw.iter().filter(|s| s.to == Stance::Off).count(),
        3,
        "{sw:?}"
    );
    t += EVERY;
    let sw = s.evaluate(t, &[fig(10.0, Some(100.0)); 4]);
    assert!(
        sw.iter()
            .all(|s| s.to == Stance::Transport && s.reason == Reason::Resumed),
        "{sw:?}"
    );
    assert_eq!(s.switches(3), 4);
}
