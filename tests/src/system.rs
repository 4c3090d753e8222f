//! What every system test does: a management node on a redb file (the node `manager run`
//! starts, in this process, so the tests can read its store), real rigs (the rig core,
//! in process, or `compushare rig` processes), a client, and the checks that must hold after
//! any fault: the job completes with the digest of a local run, the ledger verifies, no
//! assignment is paid twice, every verified assignment is paid once, and the verified
//! photon ranges cover the job exactly once (no result lost, none counted twice).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compushare_client::Client;
use compushare_controller::mining::NumberedPool;
use compushare_controller::rig::{Rig, Stop};
use compushare_controller::settings::RigError;
use compushare_controller::status::StatusRx;
use compushare_controller::stratum::client::PoolConfig;
use compushare_controller::stratum::conn::PoolUrl;
use compushare_kernels::transport::input::{parse_job_bytes, ParseOptions};
use compushare_kernels::transport::simulate;
use compushare_manager::ledger::{Account, EntryKind};
use compushare_manager::market::MarketConfig;
use compushare_manager::records::AssignmentState;
use compushare_manager::server::{start, Running, ServerConfig};
use compushare_manager::{Config, Store};
use compushare_protocol::hex;
use compushare_protocol::msg::JobState;
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode, PublicKey};
use compushare_testkit::{Fabricate, FabricatingDevice};

/// A small job: 10x10x10 voxels, two media, a detector (assignments of a fraction of a
/// second on one core).
pub const JOB: &str = r#"{
  "Session": { "ID": "system", "Photons": 1000, "RNGSeed": 3 },
  "Forward": { "T0": 0, "T1": 2e-9, "Dt": 1e-9 },
  "Domain": { "Dim": [10, 10, 10], "OriginType": 1,
    "Media": [ { "mua": 0, "mus": 0, "g": 1, "n": 1 }, { "mua": 0.02, "mus": 1.5, "g": 0.8, "n": 1.37 } ] },
  "Shapes": [ { "Grid": { "Tag": 1, "Size": [10, 10, 10] } } ],
  "Optode": { "Source": { "Type": "pencil", "Pos": [5, 5, 0], "Dir": [0, 0, 1] },
              "Detector": [ { "Pos": [5, 5, 0], "R": 3 } ] }
}"#;

/// What the client is granted, micro-credits.
pub const GRANT: u64 = 1 << 40;

/// A directory removed on drop (kept with `SYSTEM_KEEP=1`).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p =
            std::env::temp_dir().join(format!("cs-system-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // SYSTEM_KEEP=1 leaves the logs and stores of a run to read.
        if std::env::var_os("SYSTEM_KEEP").is_some() {
            println!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Child processes killed (SIGKILL) and reaped on drop, whatever the test did.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `compushare` binary `cargo test --workspace` built next to this test binary
/// (target/PROFILE/compushare).
pub fn compushare_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/PROFILE/deps");
    let bin = dir.join("compushare");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release -p compushare; cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A market for system tests: assignments of `target`, deadlines the default slack past their
/// expected time but at least `deadline_floor`, earnings spendable at once.
pub fn market(target: Duration, deadline_floor: Duration) -> MarketConfig {
    MarketConfig {
        target,
        deadline_min: deadline_floor,
        spendable_after: 0,
        ..MarketConfig::default()
    }
}

/// A management node in this process on a redb file in `dir`, with a funded client.
pub struct Node {
    pub running: Running,
    pub client_key: PathBuf,
    pub client: PublicKey,
}

impl Node {
    /// Starts a node on `dir` (on the database there, if any) with `market`.
    pub async fn start(dir: &Path, market: MarketConfig) -> Node {
        let db = dir.join(compushare_manager::DB_FILE);
        let (store, created) = Store::init(&db, &Config::default()).expect("node store");
        let client_key = dir.join("client.key");
        let (client, _) = Identity::load_or_create(&client_key).expect("client key");
        let client = client.public();
        if created {
            store
                .write(|tx| tx.grant(&client, Amount(GRANT)))
                .expect("grant");
        }
        let (identity, _) = Identity::load_or_create(&dir.join("manager.key")).expect("node key");
        let cfg = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tick: Duration::from_millis(100),
            engine_threads: 1,
            market,
            ..ServerConfig::default()
        };
        let running = start(cfg, identity, Arc::new(store))
            .await
            .expect("node starts");
        Node {
            running,
            client_key,
            client,
        }
    }

    pub fn key(&self) -> PublicKey {
        self.running.shared.identity.public()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.running.shared.store
    }

    /// A client session (retried for a few seconds: a node under faults may be busy).
    pub async fn client(&self) -> Client {
        let t0 = Instant::now();
        loop {
            let me = Identity::load(&self.client_key).unwrap();
            match Client::connect(self.running.addr, me, &self.key()).await {
                Ok(c) => return c,
                Err(e) => {
                    assert!(t0.elapsed() < Duration::from_secs(30), "client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Submits `photons` of [`JOB`] with `seed`, cheapest, at any price.
    pub async fn submit(&self, photons: u64, seed: u64) -> (JobId, Amount) {
        let mut c = self.client().await;
        let (job, price, _) = c
            .submit(
                JOB.as_bytes(),
                photons,
                Some(seed),
                Mode::Cheapest,
                Amount(u64::MAX),
            )
            .await
            .expect("submit");
        (job, price)
    }

    /// Waits until `job` is done (within `limit`) and fetches its result's digest.
    pub async fn done_digest(&self, job: JobId, limit: Duration) -> [u8; 32] {
        let t0 = Instant::now();
        let mut c = self.client().await;
        loop {
            let s = c.status(job).await.expect("status");
            match s.state {
                JobState::Done => break,
                JobState::Failed | JobState::Cancelled => panic!("job {} failed", job.0),
                _ => {}
            }
            assert!(t0.elapsed() < limit, "job {} stuck: {s:?}", job.0);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.fetch(job).await.expect("fetch").digest()
    }
}

/// The digest of a local run of `photons` histories of [`JOB`] with `seed`.
pub fn local_digest(seed: u64, photons: u64) -> [u8; 32] {
    let mut job = parse_job_bytes(JOB.as_bytes(), &ParseOptions::default()).unwrap();
    job.seed = seed;
    job.photons = photons;
    simulate(&job, 0..photons, 2, None).unwrap().digest()
}

/// What the books say about one job, checked: see [`check_books`].
#[derive(Debug, Default)]
pub struct Books {
    /// Micro-credits paid to each payout key for the job (after forfeits).
    pub paid: Vec<(PublicKey, u64)>,
    /// Assignments verified, failed, abandoned.
    pub verified: usize,
    pub failed: usize,
    pub abandoned: usize,
}

impl Books {
    pub fn paid_to(&self, payout: &PublicKey) -> u64 {
        self.paid
            .iter()
            .filter(|(k, _)| k == payout)
            .map(|(_, a)| a)
            .sum()
    }
}

/// The checks after any fault, on the node's store:
/// - `ledger verify` passes;
/// - no assignment has two Pay entries, and the PAID index names the one it has;
/// - every verified assignment of `job` was paid once, no failed or abandoned one kept pay;
/// - the verified assignments' photon ranges cover `[0, photons)` exactly once;
/// - the job's pay (less forfeits) is `photons x price` (no trusted rig ran checks here).
pub fn check_books(store: &Store, job: JobId, photons: u64, price: Amount) -> Books {
    store
        .verify_ledger()
        .unwrap_or_else(|e| panic!("ledger verify: {e}"));
    let read = store.read().unwrap();
    let entries: Vec<_> = read
        .entries(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.entry)
        .collect();
    let mut pays = std::collections::BTreeMap::new();
    for e in entries.iter().filter(|e| e.kind == EntryKind::Pay) {
        let a = e.assignment.expect("a Pay entry names its assignment");
        let before = pays.insert(a.0, e.seq);
        assert!(before.is_none(), "assignment {} paid twice", a.0);
        assert_eq!(
            read.paid_by(a).unwrap(),
            Some(e.seq),
            "PAID index of {}",
            a.0
        );
    }
    let mut books = Books::default();
    let mut ranges = Vec::new();
    for a in read.job_assignments(job).unwrap() {
        match a.state {
            AssignmentState::Verified => {
                books.verified += 1;
                assert!(
                    pays.contains_key(&a.id.0),
                    "verified assignment {} unpaid",
                    a.id.0
                );
                ranges.push((a.photons.start, a.photons.count));
            }
            AssignmentState::Failed => books.failed += 1,
            AssignmentState::Abandoned => {
                books.abandoned += 1;
                assert!(
                    !pays.contains_key(&a.id.0),
                    "abandoned assignment {} paid",
                    a.id.0
                );
            }
            s => panic!("job done with assignment {} {s:?}", a.id.0),
        }
    }
    ranges.sort_unstable();
    let mut next = 0;
    for (start, count) in ranges {
        assert_eq!(
            start, next,
            "verified ranges leave a gap or overlap at {next}"
        );
        next = start + count;
    }
    assert_eq!(next, photons, "verified ranges cover the job");
    let mut total = 0u64;
    let mut paid: std::collections::BTreeMap<PublicKey, u64> = Default::default();
    for e in entries.iter().filter(|e| e.job == Some(job)) {
        match (e.kind, e.credit, e.debit) {
            (EntryKind::Pay, Account::WorkerPending(k) | Account::WorkerSpendable(k), _) => {
                total += e.amount;
                *paid.entry(k).or_default() += e.amount;
            }
            (EntryKind::Forfeit, _, Account::WorkerPending(k)) => {
                total -= e.amount;
                *paid.entry(k).or_default() -= e.amount;
            }
            _ => {}
        }
    }
    assert_eq!(
        total,
        photons * price.0,
        "the job's pay is its photons x price"
    );
    books.paid = paid.into_iter().collect();
    books
}

/// A rig in this process (the rig core `compushare rig` runs), aborted on drop.
pub struct InRig {
    pub name: String,
    pub key: PublicKey,
    pub payout: PublicKey,
    pub status: StatusRx,
    pub dir: TempDir,
    commands: compushare_controller::command::CommandTx,
    identity: Arc<Identity>,
    task: tokio::task::JoinHandle<Result<Stop, RigError>>,
}

impl InRig {
    /// What the operator surfaces need (`controller::ops::spawn_with`).
    pub fn surfaces(
        &self,
    ) -> (
        StatusRx,
        compushare_controller::command::CommandTx,
        Arc<Identity>,
    ) {
        (
            self.status.clone(),
            self.commands.clone(),
            self.identity.clone(),
        )
    }
}

impl Drop for InRig {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How an in-process rig is made.
#[derive(Default, Clone)]
pub struct RigSpec {
    /// Fabricates histories (testkit's dishonest device).
    pub fabricate: Option<Fabricate>,
    /// Mines at this pool URL (worker = the rig's name) when not transporting.
    pub pool: Option<String>,
}

/// Starts a rig named `name` for the node at `addr` with key `node_key`.
pub async fn in_rig(addr: &str, node_key: PublicKey, name: &str, spec: RigSpec) -> InRig {
    let dir = TempDir::new(name);
    let payout = Identity::generate().unwrap().public();
    let mut settings =
        compushare_testkit::rig::transport_rig(addr, node_key, name, payout, dir.0.join("state"));
    settings.vault_slots = 4;
    settings.vault_slot_bytes = 4 << 20;
    settings.options.scheduler.lead_evaluations = 1;
    settings.options.scheduler.min_dwell = Duration::from_millis(500);
    if let Some(url) = spec.pool {
        settings.pools = vec![NumberedPool {
            number: 1,
            pool: PoolConfig {
                url: PoolUrl::parse(&url).expect("pool URL"),
                user: name.to_owned(),
                pass: "x".into(),
            },
        }];
    }
    if let Some(f) = spec.fabricate {
        settings.options.devices = Some(vec![Arc::new(FabricatingDevice::new(0, 1, f))]);
    }
    let id = Identity::generate().unwrap();
    let key = id.public();
    let rig = tokio::task::spawn_blocking(move || Rig::new(settings, id))
        .await
        .unwrap()
        .expect("rig starts");
    InRig {
        name: name.to_owned(),
        key,
        payout,
        status: rig.status(),
        commands: rig.commands(),
        identity: rig.identity(),
        dir,
        task: tokio::spawn(rig.run()),
    }
}

/// A `compushare rig --config rig.conf` process for the node at `addr` (one CPU device, no
/// pool), its stderr in `dir/rig.log`; its identity and payout keys.
pub fn rig_process(
    dir: &Path,
    addr: &str,
    node_key: &PublicKey,
    name: &str,
) -> (Child, PublicKey, PublicKey) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let id = Identity::generate().unwrap();
    id.save_new(&state.join("rig.key")).unwrap();
    let payout = Identity::generate().unwrap().public();
    let conf = dir.join("rig.conf");
    std::fs::write(
        &conf,
        format!(
            "MANAGER={addr}\nMANAGER_KEY={}\nRIG_NAME={name}\nPAYOUT={}\nCPU_DEVICES=1\n\
             STATE_DIR={}\nVAULT_SLOTS=4\nVAULT_SLOT_BYTES=4M\nSWITCH_DWELL_S=1\nSWITCH_EVALUATIONS=1\n\
             API_LISTEN={}\n",
            hex::encode(node_key),
            hex::encode(&payout),
            state.display(),
            free_addr()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("rig.log")).unwrap();
    let child = Command::new(compushare_bin())
        .args(["rig", "--config"])
        .arg(&conf)
        .env("COMPUSHARE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn compushare rig");
    (child, id.public(), payout)
}

/// A loopback address whose port is free now.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Waits until `cond` holds (polling every 50 ms), failing with `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
