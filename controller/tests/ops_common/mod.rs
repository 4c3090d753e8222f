//! Shared setup of the operator-surface tests: a status snapshot of a two-device rig and
//! `RigCoreDouble`, a test double of the rig core that executes console commands against
//! a small table of devices and pools and records every command it was sent.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compushare_controller::command::{self, Command, CommandError, CommandTx};
use compushare_controller::status::{
    self, DeviceView, Earnings, Health, LinkState, ManagerLink, PoolView, RigStatus, StatusRx,
    StatusTx, VaultView,
};
use compushare_protocol::types::{DeviceKind, Role};

/// A rig with a mining GPU (reporting temperature, power and fan) and a CPU device running
/// transport (reporting none), two pools (the first active), a manager session and a vault.
pub fn sample_status() -> RigStatus {
    RigStatus {
        name: "rig-7".into(),
        key: [0xab; 32],
        firmware: "0.1.0".into(),
        uptime_s: 3_725,
        at_unix_s: 1_796_164_509,
        maintenance: None,
        manager: ManagerLink {
            addr: Some("10.0.0.1:7733".into()),
            key: Some([0xcd; 32]),
            state: LinkState::Connected { for_s: 600 },
            credit_msat: Some(1),
            results_delivered: 12,
        },
        pools: vec![
            PoolView {
                number: 1,
                url: "stratum+tcp://pool.example:3333".into(),
                user: "farm.rig7".into(),
                active: true,
                state: LinkState::Connected { for_s: 3000 },
                accepted: 40,
                rejected: 2,
                stale: 1,
                difficulty: 65_536.0,
                network_difficulty: Some(1.2e14),
                last_share_s: Some(9),
            },
            PoolView {
                number: 2,
                url: "stratum+tcp://backup.example:3333".into(),
                user: "farm,rig|7=\"x\"".into(),
                active: false,
                state: LinkState::Down {
                    error: "connection refused".into(),
                    retry_in_s: 30,
                },
                accepted: 0,
                rejected: 0,
                stale: 0,
                difficulty: 1.0,
                network_difficulty: None,
                last_share_s: None,
            },
        ],
        devices: vec![
            DeviceView {
                index: 0,
                kind: DeviceKind::CudaGpu,
                name: "NVIDIA H200".into(),
                role: Role::Mine,
                pin: Role::Auto,
                health: Health::Ok,
                hash_rate: 2.5e9,
                histories_per_s: 0.0,
                mining_msat_per_s: 0.8,
                transport_msat_per_s: 0.5,
                temperature_dc: Some(654),
                power_w: Some(410),
                fan_percent: Some(55),
                hashes: 9_000_000_000_000,
                histories: 0,
                shares_accepted: 38,
                shares_rejected: 2,
                hw_errors: 0,
                switches: 3,
                assignment: None,
                idle_s: 0,
            },
            DeviceView {
                index: 1,
                kind: DeviceKind::Cpu,
                name: "cpu1 (2 cores)".into(),
                role: Role::Transport,
                pin: Role::Transport,
                health: Health::Hot,
                hash_rate: 0.0,
                histories_per_s: 41_000.0,
                mining_msat_per_s: 0.001,
                transport_msat_per_s: 0.02,
                temperature_dc: None,
                power_w: None,
                fan_percent: None,
                hashes: 1_000_000,
                histories: 80_000_000,
                shares_accepted: 2,
                shares_rejected: 0,
                hw_errors: 1,
                switches: 4,
                assignment: Some(77),
                idle_s: 2,
            },
        ],
        vault: VaultView {
            slots: 16,
            used: 3,
            slot_bytes: 1 << 20,
            sealed: 20,
            full_events: 1,
        },
        earnings: Earnings {
            mining_msat: 1234.5,
            transport_msat: 5000.0,
        },
        calibration_failures: Default::default(),
        console_keys: Vec::new(),
        sheet: Default::default(),
    }
}

pub fn status_channel() -> (StatusTx, StatusRx) {
    status::channel(sample_status())
}

/// A test double of the rig core: owns the command receiver, checks each command against
/// two devices and pools 1-2 (a third can be added), records it and answers as the rig core
/// would. `gate` (when set) holds every answer until released, to fill the queue.
pub struct RigCoreDouble {
    pub tx: CommandTx,
    pub seen: Arc<Mutex<Vec<Command>>>,
    pub gate: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl RigCoreDouble {
    /// A double that answers at once.
    pub fn start() -> Self {
        Self::start_gated(usize::MAX >> 4)
    }

    /// A double that answers only as `gate` permits are added.
    pub fn start_gated(permits: usize) -> Self {
        let (tx, mut rx) = command::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(permits));
        let (s, g) = (seen.clone(), gate.clone());
        let task = tokio::spawn(async move {
            let mut pools = vec![1u32, 2];
            while let Some((cmd, reply)) = rx.recv().await {
                if let Ok(p) = g.acquire().await {
                    p.forget();
                }
                s.lock().unwrap().push(cmd.clone());
                let answer = match cmd {
                    Command::Role {
                        device: Some(d), ..
                    } if d > 1 => Err(CommandError::NoSuchDevice(d)),
                    Command::Role { device, role } => Ok(format!(
                        "{} pinned to {role:?}",
                        device.map_or("all devices".to_string(), |d| format!("device {d}"))
                    )),
                    Command::PoolAdd { url, .. } if !url.starts_with("stratum+") => {
                        Err(CommandError::BadPoolUrl(url))
                    }
                    Command::PoolAdd { url, .. } => {
                        let n = pools.iter().max().copied().unwrap_or(0) + 1;
                        pools.push(n);
                        Ok(format!("added pool {n} {url}"))
                    }
                    Command::PoolRemove { number } if !pools.contains(&number) => {
                        Err(CommandError::NoSuchPool(number))
                    }
                    Command::PoolRemove { .. } if pools.len() == 1 => Err(CommandError::LastPool),
                    Command::PoolRemove { number } => {
                        pools.retain(|&p| p != number);
                        Ok(format!("removed pool {number}"))
                    }
                    Command::Reboot => Ok("rebooting".into()),
                    _ => Ok("done".into()),
                };
                let _ = reply.send(answer);
            }
        });
        RigCoreDouble {
            tx,
            seen,
            gate,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Command> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RigCoreDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// Surfaces started by a test, with the double and the status channel they read.
pub struct Running {
    pub h: compushare_controller::ops::OpsHandles,
    pub core: RigCoreDouble,
    pub status: StatusTx,
    pub rig: Arc<compushare_protocol::secure::Identity>,
}

/// Starts the operator surfaces on loopback with nothing enabled but what `edit` turns on
/// (listeners on port 0), over [`sample_status`] and a fresh [`RigCoreDouble`].
pub async fn start(edit: impl FnOnce(&mut compushare_controller::ops::OpsConfig)) -> Running {
    let mut cfg = compushare_controller::ops::OpsConfig {
        serial_console: None,
        console_listen: None,
        console_keys: Vec::new(),
        api_listen: None,
        metrics_listen: None,
    };
    edit(&mut cfg);
    let core = RigCoreDouble::start();
    let (status, rx) = status_channel();
    let rig = Arc::new(compushare_protocol::secure::Identity::generate().unwrap());
    let h = compushare_controller::ops::spawn_with(&cfg, rx, core.tx.clone(), rig.clone())
        .await
        .unwrap();
    Running {
        h,
        core,
        status,
        rig,
    }
}

/// Handshake (the rig's key not pinned) and Hello as `me`; the rig's first answer.
pub async fn hello_as(
    addr: std::net::SocketAddr,
    me: &compushare_protocol::secure::Identity,
) -> (
    compushare_protocol::secure::net::TcpChannel,
    compushare_protocol::msg::RigToOperator,
) {
    use compushare_protocol::msg::{OperatorToRig, RigToOperator, PROTOCOL_VERSION};
    let wait = Duration::from_secs(10);
    let mut ch = compushare_protocol::secure::net::connect_tcp_to(addr, me, None, wait)
        .await
        .unwrap();
    ch.send(&OperatorToRig::Hello {
        version: PROTOCOL_VERSION,
    })
    .await
    .unwrap();
    let first = *tokio::time::timeout(wait, ch.recv::<RigToOperator>())
        .await
        .expect("an answer")
        .unwrap();
    (ch, first)
}
