//! The demo's live progress on stderr: on a terminal, one line per rig and device (role,
//! rate, assignments, shares, pay) under a bar of the job's photons (indicatif); otherwise
//! plain log lines, one per change (a device's role or assignment, the job's progress every
//! few seconds), so a log file reads as a story.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use compushare_controller::status::{LinkState, RigStatus};
use compushare_protocol::msg::JobStatus;
use compushare_protocol::types::Role;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cmd_demo::Demo;
use crate::cmd_demo_report::credits;

/// What the display remembers between refreshes.
#[derive(Default)]
struct Seen {
    /// Per rig and device: the role and the assignment last shown.
    devices: Vec<Vec<(Role, Option<u64>)>>,
    /// Per rig: the assignments its devices ran.
    assignments: Vec<BTreeSet<u64>>,
    /// Photons done when the job's progress was last logged, and when.
    last_progress: Option<(u64, Instant)>,
}

/// Live bars on a terminal, plain lines elsewhere.
pub(crate) struct View {
    live: Option<Live>,
    seen: Mutex<Seen>,
    start: Instant,
}

struct Live {
    multi: MultiProgress,
    job: ProgressBar,
    rigs: Vec<ProgressBar>,
}

impl View {
    /// A view for `rigs` rigs: live when stderr is a terminal.
    pub(crate) fn new(rigs: usize) -> View {
        let live = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            let job = multi.add(ProgressBar::new(1));
            job.set_style(
                ProgressStyle::with_template(
                    "{prefix:>6} [{bar:40.cyan/blue}] {pos}/{len} photons {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            job.set_prefix("job");
            job.set_message("waiting for the client");
            let rigs = (0..rigs)
                .map(|_| {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.enable_steady_tick(Duration::from_millis(200));
                    b
                })
                .collect();
            Live { multi, job, rigs }
        });
        View {
            live,
            seen: Mutex::new(Seen::default()),
            start: Instant::now(),
        }
    }

    /// Whether the display redraws in place (a terminal).
    pub(crate) fn is_live(&self) -> bool {
        self.live.is_some()
    }

    fn stamp(&self) -> String {
        format!("[{:6.1}s]", self.start.elapsed().as_secs_f64())
    }

    /// A line above the live display (or a plain log line).
    pub(crate) fn line(&self, text: &str) {
        match &self.live {
            Some(l) => {
                let _ = l.multi.println(format!("{} {text}", self.stamp()));
            }
            None => eprintln!("demo {} {text}", self.stamp()),
        }
    }

    /// A new phase of the demo.
    pub(crate) fn phase(&self, text: &str) {
        self.line(&format!("== {text}"));
    }

    /// Refreshes from the rigs' snapshots and the job's status.
    pub(crate) fn show(&self, demo: &Demo, job: Option<&JobStatus>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.devices.resize(demo.rigs.len(), Vec::new());
        seen.assignments.resize(demo.rigs.len(), BTreeSet::new());
        let store = demo.node.shared.store.clone();
        let read = store.read().ok();
        for (i, rig) in demo.rigs.iter().enumerate() {
            let status = rig.status.borrow().clone();
            let record = read.as_ref().and_then(|r| r.rig(&rig.key).ok().flatten());
            let (paid, errors) = record.map_or((0, 0), |r| (r.paid, r.errors));
            let mut plain = Vec::new();
            let previous = std::mem::take(&mut seen.devices[i]);
            for (d, dev) in status.devices.iter().enumerate() {
                if let Some(a) = dev.assignment {
                    seen.assignments[i].insert(a);
                }
                let now = (dev.role, dev.assignment);
                if previous.get(d) != Some(&now) {
                    plain.push(device_change(&rig.name, d, previous.get(d), now));
                }
                seen.devices[i].push(now);
            }
            let shares: u64 = status.pools.iter().map(|p| p.accepted).sum();
            let text = rig_line(
                &rig.name,
                &status,
                seen.assignments[i].len(),
                shares,
                paid,
                errors,
                rig.cheater,
            );
            match &self.live {
                Some(l) => {
                    if let Some(b) = l.rigs.get(i) {
                        b.set_message(text);
                    }
                }
                None => {
                    for p in plain {
                        eprintln!("demo {} {p}", self.stamp());
                    }
                }
            }
        }
        let Some(s) = job else { return };
        match &self.live {
            Some(l) => {
                l.job.set_length(s.photons_total.max(1));
                l.job.set_position(s.photons_done);
                l.job.set_prefix(format!("job {}", s.job.0));
                l.job
                    .set_message(format!("{:?}, {} spent", s.state, credits(s.spent.0)));
            }
            None => {
                let due = seen.last_progress.is_none_or(|(done, at)| {
                    done != s.photons_done && at.elapsed() >= Duration::from_secs(2)
                });
                if due {
                    seen.last_progress = Some((s.photons_done, Instant::now()));
                    eprintln!(
                        "demo {} job {}: {:?}, {}/{} photons verified, {} spent",
                        self.stamp(),
                        s.job.0,
                        s.state,
                        s.photons_done,
                        s.photons_total,
                        credits(s.spent.0)
                    );
                }
            }
        }
    }

    /// Ends the live display (it stays on screen).
    pub(crate) fn finish(&self) {
        if let Some(l) = &self.live {
            for b in &l.rigs {
                b.disable_steady_tick();
                b.tick();
            }
            l.job.abandon();
            for b in &l.rigs {
                b.abandon();
            }
        }
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Auto => "auto",
        Role::Mine => "hashing",
        Role::Transport => "transport",
        Role::Off => "off",
    }
}

/// A plain line for a device whose role or assignment changed.
fn device_change(
    rig: &str,
    d: usize,
    before: Option<&(Role, Option<u64>)>,
    now: (Role, Option<u64>),
) -> String {
    let role = role_name(now.0);
    match (before, now.1) {
        (Some((r, _)), _) if *r != now.0 => format!(
            "{rig} cpu{d}: {} -> {role}{}",
            role_name(*r),
            now.1.map_or(String::new(), |a| format!(", assignment {a}"))
        ),
        (_, Some(a)) => format!("{rig} cpu{d}: {role}, assignment {a}"),
        (None, None) => format!("{rig} cpu{d}: {role}"),
        (Some(_), None) => format!("{rig} cpu{d}: {role}, assignment returned"),
    }
}

/// One rig's live line: its devices, shares, assignments and pay.
fn rig_line(
    name: &str,
    status: &RigStatus,
    assignments: usize,
    shares: u64,
    paid: u64,
    errors: u64,
    cheater: bool,
) -> String {
    let link = match &status.manager.state {
        LinkState::Connected { .. } => "up",
        LinkState::Connecting => "connecting",
        LinkState::Down { .. } => "down",
        _ => "off",
    };
    let devices: Vec<String> = status
        .devices
        .iter()
        .enumerate()
        .map(|(d, dev)| {
            let rate = match dev.role {
                Role::Transport => format!("{:>7.0} hist/s", dev.histories_per_s),
                _ => format!("{:>6.2} MH/s", dev.hash_rate / 1e6),
            };
            let a = dev
                .assignment
                .map_or(String::from("      "), |a| format!("a{a:<5}"));
            format!("cpu{d} {:<9} {rate} {a}", role_name(dev.role))
        })
        .collect();
    format!(
        "{name:<5} {}  assignments {assignments:>3}  shares {shares:>3}  paid {:>10}{}  node {link}{}",
        devices.join(" | "),
        credits(paid),
        if errors > 0 {
            format!("  CAUGHT x{errors}")
        } else {
            String::new()
        },
        if cheater { "  (cheater)" } else { "" }
    )
}
