//! The network side's own decoders never panic and never allocate without bound on hostile
//! input: result/input reassembly from arbitrary chunks. (Stored state is decoded by the
//! store's codec, fuzzed in `decode_props.rs`.)

use compushare_manager::results::Assembly;
use compushare_protocol::chunk::{content_address, Chunk, Chunker};
use proptest::prelude::*;

fn chunk() -> impl Strategy<Value = Chunk> {
    (
        any::<[u8; 32]>(),
        0u32..300_000,
        0u32..300_000,
        prop::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_map(|(content, total_len, offset, data)| {
            let mut d = heapless::Vec::new();
            let _ = d.extend_from_slice(&data);
            Chunk {
                content,
                total_len,
                offset,
                data: d,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn assembly_survives_arbitrary_chunks(len in 0u32..200_000, chunks in prop::collection::vec(chunk(), 0..8)) {
        if let Ok(mut a) = Assembly::new([7; 32], len, 150_000) {
            for c in &chunks {
                let _ = a.accept(c);
            }
        }
    }

    #[test]
    fn assembly_refuses_mutated_real_chunks(payload in prop::collection::vec(any::<u8>(), 1..150_000), flip in any::<prop::sample::Index>()) {
        let name = content_address(&payload);
        let chunks: Vec<Chunk> = Chunker::new(&payload).unwrap().collect();
        let mut a = Assembly::new(name, payload.len() as u32, 1 << 20).unwrap();
        let mut bad = chunks[0].clone();
        let i = flip.index(bad.data.len());
        bad.data[i] ^= 1;
        let mut done = false;
        for (k, c) in chunks.iter().enumerate() {
            if let Ok(d) = a.accept(if k == 0 { &bad } else { c }) {
                done |= d;
            }
        }
        // An altered byte is never accepted as the named payload.
        prop_assert!(!done);
    }
}
