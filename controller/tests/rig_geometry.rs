//! Geometry reassembly: any chunk order completes, foreign or misplaced chunks are refused,
//! arbitrary chunks never panic or write outside the announced length.

use compushare_controller::transport::geometry::{Fetch, FetchError};
use compushare_protocol::chunk::{Chunk, Chunker};
use proptest::prelude::*;

fn chunks(payload: &[u8]) -> Vec<Chunk> {
    Chunker::new(payload).unwrap().collect()
}

#[test]
fn reassembles_out_of_order_with_duplicates_and_checks_the_address() {
    let payload: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let cs = chunks(&payload);
    assert_eq!(cs.len(), 3);
    let mut f = Fetch::new(cs[0].content, payload.len() as u32);
    assert_eq!(f.accept(&cs[2]), Ok(false));
    assert_eq!(f.accept(&cs[0]), Ok(false));
    assert_eq!(f.accept(&cs[0]), Ok(false));
    assert_eq!(f.accept(&cs[1]), Ok(true));
    // Not JSON: the parse fails with a message, after the address matched.
    let err = f.into_job().unwrap_err();
    assert!(!err.contains("content address"), "{err}");

    // Right placement, wrong bytes: the address check catches it.
    let mut forged = cs[1].clone();
    forged.data[0] ^= 1;
    let mut f = Fetch::new(cs[0].content, payload.len() as u32);
    for c in [&cs[0], &forged, &cs[2]] {
        f.accept(c).unwrap();
    }
    assert!(f.into_job().unwrap_err().contains("content address"));

    let mut f = Fetch::new(cs[0].content, payload.len() as u32);
    let mut moved = cs[2].clone();
    moved.offset += 1;
    assert!(matches!(
        f.accept(&moved),
        Err(FetchError::Misplaced { .. })
    ));
    let other = chunks(b"other");
    assert_eq!(f.accept(&other[0]), Err(FetchError::WrongPayload));
}

proptest! {
    #[test]
    fn arbitrary_chunks_never_panic(
        len in 0u32..200_000,
        offset in any::<u32>(),
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        total_delta in 0u32..3,
    ) {
        let content = [7u8; 32];
        let mut f = Fetch::new(content, len);
        let mut c = Chunk {
            content,
            total_len: len.wrapping_add(total_delta).wrapping_sub(1),
            offset,
            data: heapless::Vec::new(),
        };
        let _ = c.data.extend_from_slice(&data);
        let _ = f.accept(&c);
        c.total_len = len;
        c.offset = offset % (len.max(1) + 65_536);
        let _ = f.accept(&c);
        let _ = f.into_job();
    }
}
