//! Profit switching: which role each device holds, decided every few seconds from what each
//! role would earn it, in millisatoshi per second.
//!
//! A pure, clock-injected state machine: [`Scheduler::evaluate`] takes the time and each
//! device's figures and returns the switches it makes; it never reads a clock, sleeps or does
//! I/O, so tests script prices and time.
//!
//! The rules, per device whose pin is `auto`:
//! - A role that stops paying (no pool job, no open offer, manager gone, vault full: revenue
//!   unavailable or zero) is left at the first evaluation that sees it, whatever the dwell.
//! - A paying role is left for a better one only when the other has led by more than the
//!   margin (`SWITCH_MARGIN`) for `lead_evaluations` evaluations in a row, and the device has
//!   held its role for at least `min_dwell`. A lead interrupted once starts counting again, so
//!   noise around parity never switches, and no device switches more than once per dwell
//!   because of prices.
//! - Pins (ROLES, the console, the manager's RoleCommand) win: a pinned device holds its pin.
//! - A device that cannot work (disabled by the watchdog, too hot) is `Off` until it can.
//!
//! The `Transport` role means: bid for and accept paid work. A device in it hashes while it
//! has no assignment (the device worker does that at once, within a polling interval), so a
//! device whose transport work ends or never comes is hashing again well within a second; the
//! role itself moves back to `Mine` when transport stops paying.

use std::fmt;
use std::time::Duration;

use compushare_protocol::types::Role;

/// Tunables (rig.conf SWITCH_MARGIN; the rest are library options with these defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Fraction by which the other role must beat the current one (0.05: 5% more).
    pub margin: f64,
    /// Evaluations in a row the other role must lead by the margin.
    pub lead_evaluations: u32,
    /// Least time in a role before prices may move a device out of it.
    pub min_dwell: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            margin: crate::config::DEFAULT_SWITCH_MARGIN,
            lead_evaluations: 3,
            min_dwell: Duration::from_secs(30),
        }
    }
}

/// The role the scheduler gives a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stance {
    /// Hash for the pools.
    Mine,
    /// Bid for and run paid transport (hashing while no assignment runs).
    Transport,
    /// No work (pinned off, or unable to work).
    Off,
}

impl Stance {
    /// The protocol's role for this stance.
    pub fn role(self) -> Role {
        match self {
            Stance::Mine => Role::Mine,
            Stance::Transport => Role::Transport,
            Stance::Off => Role::Off,
        }
    }
}

impl fmt::Display for Stance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stance::Mine => "mine",
            Stance::Transport => "transport",
            Stance::Off => "off",
        })
    }
}

/// What a role would earn a device now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Revenue {
    /// Millisatoshi per second.
    Pays(f64),
    /// The role cannot earn anything now, and why (for the switch log).
    Unavailable(&'static str),
}

impl Revenue {
    /// The rate when it is positive and finite.
    pub fn paying(self) -> Option<f64> {
        match self {
            Revenue::Pays(r) if r > 0.0 && r.is_finite() => Some(r),
            _ => None,
        }
    }

    /// The rate, 0 when unavailable (for status views).
    pub fn rate(self) -> f64 {
        self.paying().unwrap_or(0.0)
    }
}

impl fmt::Display for Revenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revenue::Pays(r) => write!(f, "{r:.6} msat/s"),
            Revenue::Unavailable(why) => write!(f, "none ({why})"),
        }
    }
}

/// One device's situation at an evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceFigures {
    /// The operator's pin; `Auto` lets the scheduler choose.
    pub pin: Role,
    /// Why the device cannot work at all now (disabled, too hot), if so.
    pub unusable: Option<&'static str>,
    pub mining: Revenue,
    pub transport: Revenue,
}

/// Why a device switched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// The operator pinned the role.
    Pinned,
    /// The device cannot work.
    Unusable(&'static str),
    /// The role it left stopped paying.
    Stopped,
    /// The new role led by more than the margin for this many evaluations.
    Led { evaluations: u32, lead: f64 },
    /// The device came back (pin lifted, recovered) and took the role that pays.
    Resumed,
}

/// A role change, with both figures (what the log line shows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Switch {
    pub device: usize,
    pub from: Stance,
    pub to: Stance,
    pub reason: Reason,
    pub mining: Revenue,
    pub transport: Revenue,
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device {}: {} -> {} (", self.device, self.from, self.to)?;
        match self.reason {
            Reason::Pinned => write!(f, "pinned by the operator")?,
            Reason::Unusable(why) => write!(f, "cannot work: {why}")?,
            Reason::Stopped => write!(f, "{} stopped paying", self.from)?,
            Reason::Led { evaluations, lead } => write!(
                f,
                "{} led by {:.1}% for {evaluations} evaluations",
                self.to,
                lead * 100.0
            )?,
            Reason::Resumed => write!(f, "back to work")?,
        }
        write!(f, "; mining {}, transport {})", self.mining, self.transport)
    }
}

/// Per-device state.
#[derive(Debug, Clone, Copy)]
struct Slot {
    stance: Stance,
    since: Duration,
    lead: u32,
    switches: u64,
}

/// The scheduler of one rig.
#[derive(Debug, Clone)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    slots: Vec<Slot>,
}

impl Scheduler {
    /// `devices` devices, all hashing from time `now`.
    pub fn new(cfg: SchedulerConfig, devices: usize, now: Duration) -> Scheduler {
        Scheduler::with_pins(cfg, &vec![Role::Auto; devices], now)
    }

    /// One device per pin, each starting in its pinned role (hashing when `Auto`).
    pub fn with_pins(cfg: SchedulerConfig, pins: &[Role], now: Duration) -> Scheduler {
        Scheduler {
            cfg,
            slots: pins
                .iter()
                .map(|p| Slot {
                    stance: match p {
                        Role::Off => Stance::Off,
                        Role::Transport => Stance::Transport,
                        Role::Auto | Role::Mine => Stance::Mine,
                    },
                    since: now,
                    lead: 0,
                    switches: 0,
                })
                .collect(),
        }
    }

    /// The stance of device `i` (`Off` for an unknown index).
    pub fn stance(&self, i: usize) -> Stance {
        self.slots.get(i).map_or(Stance::Off, |s| s.stance)
    }

    /// Switches device `i` made since start.
    pub fn switches(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.switches)
    }

    /// One evaluation at time `now` (monotonic, from any origin) with each device's figures
    /// (index = device; extra figures are ignored, missing ones leave their device as it is).
    pub fn evaluate(&mut self, now: Duration, figures: &[DeviceFigures]) -> Vec<Switch> {
        let cfg = &self.cfg;
        let mut out = Vec::new();
        for (i, (slot, f)) in self.slots.iter_mut().zip(figures).enumerate() {
            let (to, reason) = decide(cfg, slot, now, f);
            if to != slot.stance {
                out.push(Switch {
                    device: i,
                    from: slot.stance,
                    to,
                    reason,
                    mining: f.mining,
                    transport: f.transport,
                });
                slot.stance = to;
                slot.since = now;
                slot.lead = 0;
                slot.switches += 1;
            }
        }
        out
    }
}

/// The stance device `slot` should have; updates its lead counter.
fn decide(
    cfg: &SchedulerConfig,
    slot: &mut Slot,
    now: Duration,
    f: &DeviceFigures,
) -> (Stance, Reason) {
    let keep = (slot.stance, Reason::Pinned);
    if let Some(why) = f.unusable {
        slot.lead = 0;
        return (Stance::Off, Reason::Unusable(why));
    }
    match f.pin {
        Role::Off => return (Stance::Off, Reason::Pinned),
        Role::Mine => return (Stance::Mine, Reason::Pinned),
        Role::Transport => return (Stance::Transport, Reason::Pinned),
        Role::Auto => {}
    }
    let (mine, transport) = (f.mining.paying(), f.transport.paying());
    match slot.stance {
        Stance::Off => {
            slot.lead = 0;
            // Back from a pin or a pause: the role that pays best now, hashing by default.
            let to = match (mine, transport) {
                (None, Some(_)) => Stance::Transport,
                (Some(m), Some(t)) if t > m * (1.0 + cfg.margin) => Stance::Transport,
                _ => Stance::Mine,
            };
            (to, Reason::Resumed)
        }
        current => {
            let (here, there, other) = match current {
                Stance::Mine => (mine, transport, Stance::Transport),
                _ => (transport, mine, Stance::Mine),
            };
            match (here, there) {
                // The role stopped paying and the other pays, or transport stopped (hash
                // while it has nothing): leave at once.
                (None, Some(_)) => {
                    slot.lead = 0;
                    (other, Reason::Stopped)
                }
                (None, None) if current == Stance::Transport => {
                    slot.lead = 0;
                    (Stance::Mine, Reason::Stopped)
                }
                (Some(h), Some(t)) if t > h * (1.0 + cfg.margin) => {
                    slot.lead = slot.lead.saturating_add(1);
                    let dwelt = now.saturating_sub(slot.since) >= cfg.min_dwell;
                    if slot.lead >= cfg.lead_evaluations.max(1) && dwelt {
                        (
                            other,
                            Reason::Led {
                                evaluations: slot.lead,
                                lead: t / h - 1.0,
                            },
                        )
                    } else {
                        keep
                    }
                }
                _ => {
                    slot.lead = 0;
                    keep
                }
            }
        }
    }
}
