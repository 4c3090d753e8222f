//! PID 1 of the CompuShare rig image. Sequences the library's parts; see lib.rs.
//!
//! PID 1 must never exit or panic (either is a kernel panic): each boot step reports its
//! error and the boot goes on with what it has, the steps run under `catch_unwind`, and the
//! last state is the supervision loop, which never returns. With no usable stick or network
//! the controller still starts (in its maintenance mode), so its console and API answer.
#![deny(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compushare_init::conf::{self, InitConf};
use compushare_init::console::Console;
use compushare_init::status::{self, hms};
use compushare_init::supervise::{ManagerSeen, Supervisor};
use compushare_init::{modules, net, nvidia, stick, uptime, utc_now};

/// The controller binary on the image.
const CONTROLLER: &str = "/usr/bin/compushare";
/// Extra controller arguments chosen at build time (one per line).
const CONTROLLER_ARGS: &str = "/etc/compushare/controller.args";
/// Build facts for the banner (`KEY=VALUE` lines).
const RELEASE: &str = "/etc/compushare/release";
/// How long the stick gets to appear (USB enumeration).
const STICK_WAIT: Duration = Duration::from_secs(20);
/// How long the controller's start waits for an address.
const NET_WAIT: Duration = Duration::from_secs(10);
/// How often the status line is redrawn.
const STATUS_PERIOD: Duration = Duration::from_secs(1);
/// How often the cgminer API is asked.
const API_PERIOD: Duration = Duration::from_secs(2);

fn early_mounts() -> Vec<String> {
    use rustix::mount::{mount, MountFlags};
    let mut errors = Vec::new();
    for (src, dir, fs, flags, data) in [
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountFlags::NOSUID,
            Some(c"mode=0755"),
        ),
        (
            "proc",
            "/proc",
            "proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        ),
        (
            "sysfs",
            "/sys",
            "sysfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(c"mode=0755,size=16m"),
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(c"mode=1777,size=64m"),
        ),
    ] {
        let _ = std::fs::create_dir_all(dir);
        match mount(src, dir, fs, flags, data) {
            Ok(()) | Err(rustix::io::Errno::BUSY) => {}
            Err(e) => errors.push(format!("mount {fs} on {dir}: {e}")),
        }
    }
    errors
}

/// Points our own stdout/stderr at /dev/console so that anything the runtime prints (a
/// panic message) is seen.
fn console_stdio() {
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = rustix::stdio::dup2_stdout(&f);
        let _ = rustix::stdio::dup2_stderr(&f);
    }
}

fn release_info() -> Vec<(String, String)> {
    std::fs::read_to_string(RELEASE)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn banner(console: &Console) {
    let info = release_info();
    let get = |k: &str| {
        info.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("?")
    };
    for line in [
        String::new(),
        "  ====================================================================".into(),
        format!(
            "   CompuShare rig {}  (image {}, kernel {})",
            get("VERSION"),
            get("BUILD"),
            get("KERNEL")
        ),
        "   GPU farm firmware: hashing or paid photon transport, whichever pays".into(),
        "   Serial console: ttyS0 115200 8N1.  Settings: rig.conf on the stick.".into(),
        "  ====================================================================".into(),
        String::new(),
    ] {
        console.line(&line);
    }
}

/// What the boot steps produced for the supervision loop.
struct Booted {
    conf: InitConf,
    net: Option<net::Shared>,
    stick: bool,
}

fn boot(console: &Arc<Console>, early_errors: &[String]) -> Booted {
    for e in early_errors {
        console.say(format_args!("{e}"));
    }
    let report = modules::load_all(Path::new(modules::LIST));
    console.say(format_args!(
        "modules: {} loaded, {} already there, {} failed ({:.2} s)",
        report.loaded,
        report.already,
        report.failed.len(),
        report.took.as_secs_f64()
    ));
    for e in &report.failed {
        console.say(format_args!("module {e}"));
    }
    match nvidia::make_nodes() {
        Ok(Some(n)) => console.say(format_args!("nvidia: {n} GPU(s), device nodes made")),
        Ok(None) => {}
        Err(e) => console.say(format_args!("nvidia: device nodes: {e}")),
    }
    let stick = match stick::find_and_mount(Instant::now() + STICK_WAIT) {
        Ok(dev) => {
            console.say(format_args!(
                "stick: {} mounted on {}",
                dev.display(),
                stick::MOUNT_POINT
            ));
            true
        }
        Err(e) => {
            console.say(format_args!("stick: {e}"));
            false
        }
    };
    let conf_path = Path::new(stick::MOUNT_POINT).join(stick::RIG_CONF);
    let conf = match std::fs::read(&conf_path) {
        Ok(bytes) => {
            let (c, problems) = conf::parse(&bytes);
            for p in problems {
                console.say(format_args!("{p} (using the default)"));
            }
            c
        }
        Err(e) => {
            console.say(format_args!(
                "{}: {e}; network by DHCP",
                conf_path.display()
            ));
            InitConf::default()
        }
    };
    let host = conf
        .rig_name
        .clone()
        .unwrap_or_else(|| "compushare-rig".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(63)
        .collect();
    let _ = rustix::system::sethostname(host.as_bytes());
    let shared = net::spawn(conf.clone(), console.clone());
    if !net::wait_for_address(&shared, NET_WAIT) {
        console.say(format_args!(
            "net: no address after {} s; starting the controller anyway",
            NET_WAIT.as_secs()
        ));
    }
    Booted {
        conf,
        net: Some(shared),
        stick,
    }
}

fn controller_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "rig".into(),
        "--config".into(),
        Path::new(stick::MOUNT_POINT).join(stick::RIG_CONF).into(),
    ];
    if let Ok(text) = std::fs::read_to_string(CONTROLLER_ARGS) {
        args.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(OsString::from),
        );
    }
    args
}

fn status_line(b: &Booted, sup: &Supervisor, mining: &Option<status::Mining>) -> (String, String) {
    let mut parts = vec![format!("up {}", hms(uptime()))];
    let mut key = Vec::new();
    if let Some(n) = b
        .net
        .as_ref()
        .and_then(|n| n.lock().ok().map(|s| s.clone()))
    {
        let net = match (&n.interface, n.addr) {
            (Some(i), Some((a, p))) => format!("{i} {a}/{p} {}", n.source),
            _ => format!(
                "net down{}",
                n.error.map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        };
        key.push(net.clone());
        parts.push(net);
        if let Some(c) = n.clock {
            parts.push(if c.starts_with("ntp") {
                "clock ntp".into()
            } else {
                "clock rtc".into()
            });
        }
    }
    if !b.stick {
        parts.push("NO STICK".into());
        key.push("no stick".into());
    }
    let s = sup.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let ctl = match (s.pid, s.running_since) {
        (Some(_), Some(t)) => format!(
            "controller up {} ({} restarts)",
            hms(t.elapsed()),
            s.restarts
        ),
        _ => format!(
            "controller down ({})",
            s.last_exit.unwrap_or_else(|| "starting".into())
        ),
    };
    key.push(ctl.split(' ').take(2).collect::<Vec<_>>().join(" "));
    parts.push(ctl);
    // The controller's API is the authority when it answers; its log lines otherwise.
    let api = mining.as_ref();
    if s.maintenance.is_some() || api.is_some_and(|m| m.maintenance.is_some()) {
        parts.push("MAINTENANCE (see console)".into());
        key.push("maintenance".into());
    }
    let manager = match (api.and_then(|m| m.manager.as_deref()), s.manager) {
        (Some("Connected"), _) => "manager registered".to_owned(),
        (Some(other), _) => format!("manager {}", other.to_ascii_lowercase()),
        (None, ManagerSeen::Registered) => "manager registered".to_owned(),
        (None, ManagerSeen::Down) => "manager down".to_owned(),
        (None, ManagerSeen::Unknown) => "manager -".to_owned(),
    };
    key.push(manager.clone());
    parts.push(manager);
    if let Some(m) = mining {
        parts.push(format!(
            "{} A {} R {} pools {}/{}",
            status::rate(m.mhs),
            m.accepted,
            m.rejected,
            m.pools_alive,
            m.pools
        ));
        key.push(format!("pools {}/{}", m.pools_alive, m.pools));
    }
    (parts.join(" | "), key.join("|"))
}

/// The supervision loop: never returns.
fn supervise(console: &Arc<Console>, booted: &mut Booted) -> ! {
    let mut sup = Supervisor::new(
        PathBuf::from(CONTROLLER),
        controller_args(),
        console.clone(),
    );
    let mut next_status = Instant::now();
    let mut next_api = Instant::now() + API_PERIOD;
    let mut next_stick = Instant::now() + Duration::from_secs(2);
    let mut mining = None;
    loop {
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sup.reap();
            if !booted.stick && Instant::now() >= next_stick {
                // A stick plugged in late: mount it and restart the controller on its rig.conf.
                next_stick = Instant::now() + Duration::from_secs(2);
                if let Ok(dev) = stick::find_and_mount(Instant::now()) {
                    console.say(format_args!(
                        "stick: {} mounted late; restarting the controller",
                        dev.display()
                    ));
                    booted.stick = true;
                    if let Some(pid) = sup.seen.lock().ok().and_then(|s| s.pid) {
                        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                            let _ =
                                rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                        }
                    }
                }
            }
            sup.start_if_due();
            if Instant::now() >= next_api {
                next_api = Instant::now() + API_PERIOD;
                mining = status::poll(booted.conf.api_listen);
            }
            if Instant::now() >= next_status {
                next_status = Instant::now() + STATUS_PERIOD;
                let (line, key) = status_line(booted, &sup, &mining);
                console.status(&line, &key);
            }
        }));
        if step.is_err() {
            console.say(format_args!(
                "internal error in the supervision loop (see above); continuing"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let early_errors = early_mounts();
    console_stdio();
    let console = Arc::new(Console::open("/dev/ttyS0", "/dev/tty0"));
    banner(&console);
    console.say(format_args!(
        "PID 1 at {:.2} s, clock {}",
        uptime().as_secs_f64(),
        utc_now()
    ));
    let booted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        boot(&console, &early_errors)
    }));
    let mut booted = booted.unwrap_or_else(|_| {
        console.say(format_args!(
            "internal error during boot (see above); starting the controller with defaults"
        ));
        Booted {
            conf: InitConf::default(),
            net: None,
            stick: false,
        }
    });
    supervise(&console, &mut booted)
}
