//! The watchdog: one device's fault never stops the others or the rig.
//!
//! A pure, clock-injected state machine per device (the rig core feeds it the device's last
//! progress and temperature once a second and carries out its actions):
//! - A device that has work but makes no progress for `sick` (WATCHDOG_SICK_S, default 120 s)
//!   is SICK: its worker is restarted (a fresh thread; the stuck one is abandoned, its work
//!   given back), again every `sick` while it stays stuck.
//! - No progress for `dead` (WATCHDOG_DEAD_S, default 600 s): DEAD, disabled until the rig
//!   restarts. It takes no role; the others carry on.
//! - At or above `temp_limit` (TEMP_LIMIT_C, default 90 °C) a device is HOT and paused (no
//!   hashing, its transport assignment waits between batches); at or below `temp_resume`
//!   (TEMP_RESUME_C, default 80 °C) it resumes. A missing reading changes nothing.
//! - A device without work (no pool job, no assignment, paused) is never stalled: the clock
//!   of stalling starts when it has work and made no progress since.

use std::time::Duration;

use crate::status::Health;

/// Thresholds (rig.conf keys with these defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    pub sick: Duration,
    pub dead: Duration,
    /// Tenths of a degree Celsius.
    pub temp_limit_dc: i16,
    pub temp_resume_dc: i16,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        use crate::config::*;
        WatchdogConfig {
            sick: Duration::from_secs(u64::from(DEFAULT_WATCHDOG_SICK_S)),
            dead: Duration::from_secs(u64::from(DEFAULT_WATCHDOG_DEAD_S)),
            temp_limit_dc: (DEFAULT_TEMP_LIMIT_C * 10) as i16,
            temp_resume_dc: (DEFAULT_TEMP_RESUME_C * 10) as i16,
        }
    }
}

/// What the device reported by the time of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Whether it has work now (a pool job to hash, or an assignment).
    pub has_work: bool,
    /// When it last made progress (same clock as `now`).
    pub last_progress: Duration,
    /// Tenths of a degree Celsius, when it reports a temperature.
    pub temperature_dc: Option<i16>,
}

/// What the rig core must do about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stalled for the sick threshold: start a fresh worker.
    Restart,
    /// Stalled for the dead threshold: disable it.
    Disable,
    /// Too hot: stop its work.
    Pause,
    /// Cooled down: let it work again.
    Resume,
}

/// One device's watchdog.
#[derive(Debug, Clone)]
pub struct DeviceWatch {
    cfg: WatchdogConfig,
    dead: bool,
    hot: bool,
    /// When the device started having work without progress (None: progressing or idle).
    stalled_from: Option<Duration>,
    /// When it was last restarted during the current stall.
    restarted_at: Option<Duration>,
    restarts: u64,
}

impl DeviceWatch {
    pub fn new(cfg: WatchdogConfig) -> DeviceWatch {
        DeviceWatch {
            cfg,
            dead: false,
            hot: false,
            stalled_from: None,
            restarted_at: None,
            restarts: 0,
        }
    }

    /// Health now.
    pub fn health(&self) -> Health {
        if self.dead {
            Health::Dead
        } else if self.hot {
            Health::Hot
        } else if self.restarted_at.is_some() {
            Health::Sick
        } else {
            Health::Ok
        }
    }

    /// Restarts since start.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Whether the device may take work (not dead, not hot).
    pub fn usable(&self) -> Option<&'static str> {
        if self.dead {
            Some("disabled by the watchdog (no progress)")
        } else if self.hot {
            Some("over its temperature limit")
        } else {
            None
        }
    }

    /// One observation at `now`; returns what to do (at most one progress action and one
    /// temperature action).
    pub fn observe(&mut self, now: Duration, o: Observation) -> [Option<Action>; 2] {
        if self.dead {
            return [None, None];
        }
        let mut temp = None;
        match o.temperature_dc {
            Some(t) if !self.hot && t >= self.cfg.temp_limit_dc => {
                self.hot = true;
                temp = Some(Action::Pause);
            }
            Some(t) if self.hot && t <= self.cfg.temp_resume_dc => {
                self.hot = false;
                temp = Some(Action::Resume);
            }
            _ => {}
        }
        // A paused device has no work by our own doing: not a stall.
        let working = o.has_work && !self.hot;
        let since = if working {
            // Stalled since its last progress, or since it got work, whichever is later.
            let from = *self.stalled_from.get_or_insert(now);
            Some(from.max(o.last_progress))
        } else {
            self.stalled_from = None;
            None
        };
        let mut act = None;
        match since {
            Some(s) if now.saturating_sub(s) >= self.cfg.dead => {
                self.dead = true;
                act = Some(Action::Disable);
            }
            Some(s) if now.saturating_sub(s) >= self.cfg.sick => {
                let due = self
                    .restarted_at
                    .is_none_or(|r| now.saturating_sub(r.max(s)) >= self.cfg.sick);
                if due {
                    self.restarted_at = Some(now);
                    self.restarts += 1;
                    act = Some(Action::Restart);
                }
            }
            _ => {
                // Progressing (or idle): healthy again.
                self.restarted_at = None;
                if !working {
                    self.stalled_from = None;
                }
            }
        }
        [act, temp]
    }
}
