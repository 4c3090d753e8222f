//! A fault-injecting TCP proxy for the wire protocol's framed streams (test support).
//!
//! It sits between a peer and a listener (a rig and its manager) and forwards each direction
//! frame by frame (`u16` big-endian length, then the body, as `protocol::frame` writes them),
//! so a fault hits one whole frame: a frame is dropped, held back for a while (the frames after
//! it wait too: TCP keeps order), sent twice, or sent with one bit of its body flipped. Which
//! frames are hit is drawn from a seeded generator per connection, so a failing run can be
//! repeated with the seed it printed. The first [`FaultPlan::spare`] frames of each direction
//! (the Noise handshake and the Hello) pass untouched, so sessions do come up and the faults
//! land on the traffic that matters.
//!
//! A sealed frame that is dropped, duplicated or altered fails authentication at the receiver
//! and ends the session (the channel's nonces are strict): what these faults test is that the
//! peers notice, reconnect and lose nothing. Delays test timeouts and reordering of work
//! across sessions.
//!
//! Bounded: one frame buffer per direction (at most 65,535 + 2 bytes), [`MAX_CONNECTIONS`]
//! connections at once (more are closed at accept), a delayed frame holds its direction.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Connections proxied at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// Which frames to hit, per direction, as probabilities in [0, 1] per frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub corrupt: f64,
    pub delay: f64,
    /// How long a delayed frame is held.
    pub delay_for: Duration,
}

impl Faults {
    /// No faults: the proxy forwards every frame as it is.
    pub const NONE: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        corrupt: 0.0,
        delay: 0.0,
        delay_for: Duration::ZERO,
    };
}

/// What the proxy does to each direction of each connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    /// Frames from the connecting peer to the upstream listener.
    pub upstream: Faults,
    /// Frames from the upstream listener back to the peer.
    pub downstream: Faults,
    /// Frames per direction forwarded untouched before faults start (handshake and Hello).
    pub spare: u64,
    /// Seed of the generator; connection `n` uses `seed + n`.
    pub seed: u64,
}

impl FaultPlan {
    /// The same faults in both directions.
    pub fn both(faults: Faults, spare: u64, seed: u64) -> Self {
        FaultPlan {
            upstream: faults,
            downstream: faults,
            spare,
            seed,
        }
    }
}

/// What the proxy did, summed over connections and directions.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub connections: AtomicU64,
    pub frames: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub corrupted: AtomicU64,
    pub delayed: AtomicU64,
    /// Connections closed at accept because [`MAX_CONNECTIONS`] were open.
    pub refused: AtomicU64,
}

impl FaultCounts {
    /// Faults injected so far, of every kind.
    pub fn injected(&self) -> u64 {
        [
            &self.dropped,
            &self.duplicated,
            &self.corrupted,
            &self.delayed,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// A running proxy; dropping it stops accepting (open connections end with their peers).
pub struct FaultProxy {
    addr: SocketAddr,
    counts: Arc<FaultCounts>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` under `plan`.
    pub async fn start(upstream: SocketAddr, plan: FaultPlan) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(FaultCounts::default());
        let task = tokio::spawn(accept_loop(listener, upstream, plan, Arc::clone(&counts)));
        Ok(FaultProxy { addr, counts, task })
    }

    /// Where peers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it has done so far.
    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    plan: FaultPlan,
    counts: Arc<FaultCounts>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut n = 0u64;
    loop {
        let Ok((peer, _)) = listener.accept().await else {
            continue;
        };
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::AcqRel);
            counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(peer);
            continue;
        }
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let seed = plan.seed.wrapping_add(n);
        n += 1;
        let (counts, open) = (Arc::clone(&counts), Arc::clone(&open));
        tokio::spawn(async move {
            if let Ok(up) = TcpStream::connect(upstream).await {
                let _ = peer.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let (pr, pw) = peer.into_split();
                let (ur, uw) = up.into_split();
                let a = pump(pr, uw, plan.upstream, plan.spare, seed, &counts);
                let b = pump(ur, pw, plan.downstream, plan.spare, !seed, &counts);
                // Either side ending ends the connection, as a real middlebox would.
                tokio::select! {
                    _ = a => {}
                    _ = b => {}
                }
            }
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Forwards frames from `rd` to `wr` until either side closes, hitting frames as `faults`
/// says after the first `spare`.
async fn pump(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    faults: Faults,
    spare: u64,
    seed: u64,
    counts: &FaultCounts,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut frame = vec![0u8; 2 + usize::from(u16::MAX)];
    let mut seen = 0u64;
    loop {
        if rd.read_exact(&mut frame[..2]).await.is_err() {
            return;
        }
        let len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
        if rd.read_exact(&mut frame[2..2 + len]).await.is_err() {
            return;
        }
        let bytes = &mut frame[..2 + len];
        counts.frames.fetch_add(1, Ordering::Relaxed);
        seen += 1;
        let mut copies = 1;
        if seen > spare {
            if rng.random_bool(faults.drop) {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if rng.random_bool(faults.delay) {
                counts.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(faults.delay_for).await;
            }
            if len > 0 && rng.random_bool(faults.corrupt) {
                counts.corrupted.fetch_add(1, Ordering::Relaxed);
                let i = 2 + rng.random_range(0..len);
                bytes[i] ^= 1 << rng.random_range(0..8u32);
            }
            if rng.random_bool(faults.duplicate) {
                counts.duplicated.fetch_add(1, Ordering::Relaxed);
                copies = 2;
            }
        }
        for _ in 0..copies {
            if wr.write_all(bytes).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every byte back.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 2];
        tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut len))
            .await
            .ok()?
            .ok()?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    async fn roundtrip(plan: FaultPlan, frames: usize) -> (Vec<Vec<u8>>, FaultProxy) {
        let proxy = FaultProxy::start(echo().await, plan).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        for i in 0..frames {
            s.write_all(&frame(&[i as u8; 100])).await.unwrap();
        }
        let mut got = Vec::new();
        while let Some(f) = read_frame(&mut s).await {
            got.push(f);
        }
        (got, proxy)
    }

    #[tokio::test]
    async fn without_faults_every_frame_passes_in_order() {
        let (got, proxy) = roundtrip(FaultPlan::both(Faults::NONE, 0, 1), 20).await;
        assert_eq!(got.len(), 20);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f, &vec![i as u8; 100]);
        }
        assert_eq!(proxy.counts().injected(), 0);
        assert_eq!(proxy.counts().frames.load(Ordering::Relaxed), 40);
    }

    #[tokio::test]
    async fn spared_frames_pass_then_everything_is_dropped() {
        let faults = Faults {
            drop: 1.0,
            ..Faults::NONE
        };
        let (got, proxy) = roundtrip(FaultPlan::both(faults, 3, 1), 10).await;
        assert_eq!(got, (0..3u8).map(|i| vec![i; 100]).collect::<Vec<_>>());
        assert_eq!(proxy.counts().dropped.load(Ordering::Relaxed), 7);
    }

    #[tokio::test]
    async fn duplicates_and_corruption_hit_whole_frames() {
        let dup = Faults {
            duplicate: 1.0,
            ..Faults::NONE
        };
        let plan = FaultPlan {
            upstream: dup,
            downstream: Faults::NONE,
            spare: 0,
            seed: 7,
        };
        let (got, _) = roundtrip(plan, 4).await;
        assert_eq!(got.len(), 8);
        assert_eq!(got[0], got[1]);

        let bad = Faults {
            corrupt: 1.0,
            ..Faults::NONE
        };
        let plan = FaultPlan {
            upstream: bad,
            downstream: Faults::NONE,
            spare: 0,
            seed: 7,
        };
        let (got, proxy) = roundtrip(plan, 5).await;
        assert_eq!(got.len(), 5);
        for (i, f) in got.iter().enumerate() {
            let flipped: u32 = f.iter().map(|&b| (b ^ i as u8).count_ones()).sum();
            assert_eq!(flipped, 1, "frame {i}: exactly one bit flipped");
        }
        assert_eq!(proxy.counts().corrupted.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn the_same_seed_hits_the_same_frames() {
        let some = Faults {
            drop: 0.3,
            ..Faults::NONE
        };
        let plan = FaultPlan {
            upstream: some,
            downstream: Faults::NONE,
            spare: 0,
            seed: 42,
        };
        let (a, _) = roundtrip(plan, 40).await;
        let (b, _) = roundtrip(plan, 40).await;
        assert_eq!(a, b);
        assert!(a.len() < 40 && !a.is_empty());
    }
}
