//! Arbitrary and mutated bytes never make a decoder panic, read past its input or allocate:
//! message decoders (all six directions), the version peek, the frame reader and chunk
//! reassembly. Together these run well over 100,000 cases.

mod common;

use compushare_protocol::chunk::{Chunk, Chunker, Reassembler};
use compushare_protocol::frame::{read_frame, FrameBuf, FrameError};
use compushare_protocol::limits::MAX_FRAME;
use compushare_protocol::msg::{
    self, ClientToManager, ManagerToClient, ManagerToRig, Message, OperatorToRig, RigToManager,
    RigToOperator,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Decodes `bytes` as every message type; a decode may fail but must not panic, and a success
/// must re-encode to exactly the input (postcard has one encoding per value).
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    fn one<M: Message + core::fmt::Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Ok(m) = msg::decode::<M>(bytes) {
            let mut buf = vec![0u8; M::POSTCARD_MAX_SIZE];
            let again =
                msg::encode(&m, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&*again, bytes);
        }
        let _ = msg::decode_hello::<M>(bytes);
        Ok(())
    }
    one::<RigToManager>(bytes)?;
    one::<ManagerToRig>(bytes)?;
    one::<ClientToManager>(bytes)?;
    one::<ManagerToClient>(bytes)?;
    one::<OperatorToRig>(bytes)?;
    one::<RigToOperator>(bytes)?;
    let _ = msg::peek_version(bytes);
    Ok(())
}

/// Applies `edits` (position, new byte, kind) to a valid encoding: flips, truncation, insertion.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, byte, kind) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = pos % bytes.len();
        match kind % 4 {
            0 => bytes[at] = byte,
            1 => bytes[at] ^= 1 << (byte % 8),
            2 => bytes.truncate(at),
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

fn encoded<M: Message>(m: &M) -> Vec<u8> {
    let mut buf = vec![0u8; M::POSTCARD_MAX_SIZE];
    msg::encode(m, &mut buf)
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6)
}

proptest! {
    #![proptest_config(config(30_000))]

    #[test]
    fn random_bytes_as_messages(bytes in vec(any::<u8>(), 0..512)) {
        decode_all(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn mutated_rig_to_manager(m in common::rig_to_manager(), e in edits()) {
        decode_all(&mutate(encoded(&m), &e))?;
    }

    #[test]
    fn mutated_manager_to_rig(m in common::manager_to_rig(), e in edits()) {
        decode_all(&mutate(encoded(&m), &e))?;
    }

    #[test]
    fn mutated_client_to_manager(m in common::client_to_manager(), e in edits()) {
        decode_all(&mutate(encoded(&m), &e))?;
    }

    #[test]
    fn mutated_manager_to_client(m in common::manager_to_client(), e in edits()) {
        decode_all(&mutate(encoded(&m), &e))?;
    }

    #[test]
    fn mutated_operator_to_rig(m in common::operator_to_rig(), e in edits()) {
        decode_all(&mutate(encoded(&m), &e))?;
    }

    #[test]
    fn mutated_rig_to_operator(m in common::rig_to_operator(), e in edits()) {
        decode_all(&mutate(encoded(&m), &e))?;
    }
}

proptest! {
    #![proptest_config(config(20_000))]

    /// A stream of random bytes read as frames: each frame is within the announced length and
    /// within the buffer, and the reader stops cleanly at the end.
    #[test]
    fn random_stream_as_frames(bytes in vec(any::<u8>(), 0..2048)) {
        let mut reader: &[u8] = &bytes;
        let mut buf: Box<FrameBuf> = Box::new([0u8; MAX_FRAME]);
        let mut consumed = 0usize;
        loop {
            match read_frame(&mut reader, &mut buf) {
                Ok(body) => {
                    prop_assert!(!body.is_empty());
                    consumed += 2 + body.len();
                    prop_assert_eq!(consumed, bytes.len() - reader.len());
                }
                Err(FrameError::Closed) => { prop_assert!(reader.is_empty()); break; }
                Err(FrameError::Truncated) | Err(FrameError::Empty) => break,
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
            }
        }
    }

    /// Random chunks offered to a reassembler never panic and never complete with wrong bytes.
    #[test]
    fn random_chunks_into_reassembler(
        chunks in vec(common::chunk(), 0..4),
        capacity in 0usize..200_000,
    ) {
        let mut buf = vec![0u8; capacity];
        let mut bitmap = vec![0u8; Reassembler::bitmap_len(capacity)];
        let first = chunks.first().cloned();
        if let Some(first) = first {
            if let Ok(mut r) = Reassembler::new(&mut buf, &mut bitmap, first.content, first.total_len) {
                for c in &chunks {
                    if let Ok(true) = r.accept(c) {
                        prop_assert_eq!(compushare_protocol::chunk::content_address(r.payload()), first.content);
                    }
                }
            }
            // The growing storage: the same, and it never holds more than what was offered.
            if let Ok(mut r) = Reassembler::growing(first.content, first.total_len, capacity as u32) {
                let mut offered = 0;
                for c in &chunks {
                    offered += c.data.len();
                    if let Ok(true) = r.accept(c) {
                        prop_assert_eq!(compushare_protocol::chunk::content_address(r.payload()), first.content);
                    }
                    prop_assert!(r.held() <= offered);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(200))]

    /// Chunks of any payload, delivered in any order and with duplicates, reassemble to it.
    #[test]
    fn chunk_round_trip(len in 0usize..400_000, seed in any::<u8>(), order in any::<u64>()) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1) ^ (i >> 8) as u8).collect();
        let chunker = Chunker::new(&payload).unwrap();
        let content = chunker.content();
        let mut chunks: Vec<Chunk> = chunker.collect();
        // A deterministic shuffle plus one duplicate.
        let n = chunks.len();
        for i in 0..n { chunks.swap(i, (order as usize).wrapping_add(i * 7919) % n); }
        chunks.push(chunks[0].clone());
        let mut buf = vec![0u8; 400_000];
        let mut bitmap = vec![0u8; Reassembler::bitmap_len(buf.len())];
        let mut r = Reassembler::new(&mut buf, &mut bitmap, content, len as u32).unwrap();
        let mut done = false;
        for c in &chunks { done = r.accept(c).unwrap() || done; }
        prop_assert!(done);
        prop_assert_eq!(r.payload(), &payload[..]);
        let mut g = Reassembler::growing(content, len as u32, 400_000).unwrap();
        let mut done = false;
        for c in &chunks { done = g.accept(c).unwrap() || done; }
        prop_assert!(done);
        prop_assert_eq!(g.into_payload(), payload);
    }
}
