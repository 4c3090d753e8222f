//! A peer's announced length never sizes an allocation before its bytes arrive (issue 12).
//!
//! Funded clients announce job inputs of 60 MiB (under the node's 64 MiB `max_input`) and send
//! one chunk each, never the rest. The node used to allocate the announced length at
//! `SubmitJob` (the manager's own reassembler, `results::Assembly`); it now holds what arrived.
//! Rigs' result uploads go through the same reassembler (`Reassembler::growing`).
//!
//! One test in its own binary: a counting allocator measures the bytes this process holds at
//! its peak, which other tests running alongside would disturb.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use compushare_manager::market::MarketConfig;
use compushare_protocol::chunk::{content_address, Chunk};
use compushare_protocol::limits::CHUNK_DATA;
use compushare_protocol::msg::{ClientToManager, ManagerToClient, SubmitJob, PROTOCOL_VERSION};
use compushare_protocol::secure::net::{connect_tcp, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::{Amount, JobId, Mode};

/// Bytes allocated now and at the peak since the last reset.
struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = NOW.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                NOW.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_input_lengths_allocate_nothing() {
    let funded = Identity::generate().unwrap();
    let m = common::manager_granting(&funded.public(), 1 << 40, MarketConfig::default()).await;
    let key = m.shared.identity.public();
    let announced: u32 = 60 << 20;
    assert!(announced <= m.shared.cfg.market.max_input);
    let first: Vec<u8> = common::JOB.as_bytes().to_vec();
    let mut sessions = Vec::new();
    let connect = || connect_tcp(m.addr, &funded, &key, HANDSHAKE_TIMEOUT);
    // Warm up one session so that its buffers are counted before the peak is reset.
    let mut warm = connect().await.unwrap();
    warm.send(&ClientToManager::Hello {
        version: PROTOCOL_VERSION,
    })
    .await
    .unwrap();
    let _ = warm.recv::<ManagerToClient>().await.unwrap();
    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    for _ in 0..4 {
        let mut ch = connect().await.unwrap();
        ch.send(&ClientToManager::Hello {
            version: PROTOCOL_VERSION,
        })
        .await
        .unwrap();
        let _ = ch.recv::<ManagerToClient>().await.unwrap();
        // The first chunk of a 60 MiB payload (the job's JSON, padded); the rest never comes,
        // so its name is never checked.
        let content = content_address(&first);
        let mut data = heapless::Vec::new();
        data.extend_from_slice(&first).unwrap();
        data.resize(CHUNK_DATA, b' ').unwrap();
        let one = Chunk {
            content,
            total_len: announced,
            offset: 0,
            data,
        };
        let submit = SubmitJob {
            input: content,
            input_len: announced,
            photons: 1_000,
            seed: Some(1),
            mode: Mode::Cheapest,
            max_price: Amount(u64::MAX),
        };
        ch.send(&ClientToManager::SubmitJob(submit)).await.unwrap();
        ch.send(&ClientToManager::JobData(one)).await.unwrap();
        // Requests are served in order: once this is answered the chunk was taken.
        ch.send(&ClientToManager::JobStatus { job: JobId(999) })
            .await
            .unwrap();
        let reply = ch.recv::<ManagerToClient>().await.unwrap();
        assert!(matches!(*reply, ManagerToClient::Error { .. }), "{reply:?}");
        sessions.push(ch);
    }
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    println!(
        "4 uploads announced at {} MiB each: peak {} KiB above the start",
        announced >> 20,
        peak >> 10
    );
    // Chunks and session buffers, not 4 x 60 MiB (nor one).
    assert!(
        peak < 16 << 20,
        "the node held {} MiB for announced lengths",
        peak >> 20
    );
    let held_after = NOW.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        held_after < 8 << 20,
        "{} MiB held after four unfinished uploads",
        held_after >> 20
    );
    drop(sessions);
}
