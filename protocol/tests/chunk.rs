//! Chunk reassembly rejects what does not belong, does not fit, or does not hash right.

use compushare_protocol::chunk::{content_address, Chunk, ChunkError, Chunker, Reassembler};
use compushare_protocol::limits::CHUNK_DATA;

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn payload_larger_than_buffer_is_refused_before_any_chunk() {
    let p = payload(3 * CHUNK_DATA);
    let mut buf = vec![0u8; 2 * CHUNK_DATA];
    let mut bitmap = vec![0u8; Reassembler::bitmap_len(buf.len())];
    let err = Reassembler::new(&mut buf, &mut bitmap, content_address(&p), p.len() as u32).err();
    assert_eq!(
        err,
        Some(ChunkError::TooLarge {
            len: p.len() as u32,
            capacity: 2 * CHUNK_DATA as u32
        })
    );
}

#[test]
fn chunk_of_another_payload_or_length_is_refused() {
    let p = payload(CHUNK_DATA + 10);
    let chunks: Vec<Chunk> = Chunker::new(&p).unwrap().collect();
    let mut buf = vec![0u8; 4 * CHUNK_DATA];
    let mut bitmap = vec![0u8; Reassembler::bitmap_len(buf.len())];
    let mut r =
        Reassembler::new(&mut buf, &mut bitmap, content_address(&p), p.len() as u32).unwrap();
    let mut other = chunks[0].clone();
    other.content[0] ^= 1;
    assert_eq!(r.accept(&other), Err(ChunkError::WrongContent));
    let mut longer = chunks[0].clone();
    longer.total_len += 1;
    assert!(matches!(
        r.accept(&longer),
        Err(ChunkError::LengthChanged { .. })
    ));
    let mut misplaced = chunks[1].clone();
    misplaced.offset = 5;
    assert!(matches!(
        r.accept(&misplaced),
        Err(ChunkError::BadPlacement { .. })
    ));
    let mut short = chunks[0].clone();
    short.data.truncate(100);
    assert!(matches!(
        r.accept(&short),
        Err(ChunkError::BadPlacement { .. })
    ));
    assert_eq!(r.missing(), 2);
}

#[test]
fn altered_data_fails_the_digest_at_completion() {
    let p = payload(2 * CHUNK_DATA + 1);
    let mut chunks: Vec<Chunk> = Chunker::new(&p).unwrap().collect();
    chunks[1].data[17] ^= 0x40;
    let mut buf = vec![0u8; p.len()];
    let mut bitmap = vec![0u8; Reassembler::bitmap_len(buf.len())];
    let mut r =
        Reassembler::new(&mut buf, &mut bitmap, content_address(&p), p.len() as u32).unwrap();
    assert_eq!(r.accept(&chunks[0]), Ok(false));
    assert_eq!(r.accept(&chunks[1]), Ok(false));
    assert_eq!(r.accept(&chunks[2]), Err(ChunkError::DigestMismatch));
}

#[test]
fn empty_payload_is_one_empty_chunk() {
    let chunks: Vec<Chunk> = Chunker::new(&[]).unwrap().collect();
    assert_eq!(chunks.len(), 1);
    let mut buf = [0u8; 0];
    let mut bitmap = [0u8; 1];
    let mut r = Reassembler::new(&mut buf, &mut bitmap, content_address(&[]), 0).unwrap();
    assert_eq!(r.accept(&chunks[0]), Ok(true));
}

/// The growing reassembler (the manager's uploads, the client's results, the rig's geometry):
/// an announced length allocates nothing; memory follows the bytes that arrived, in order or
/// not; the payload is the same as the borrowed reassembler's.
#[test]
fn growing_storage_holds_only_what_arrived() {
    let p = payload(5 * CHUNK_DATA + 77);
    let chunks: Vec<Chunk> = Chunker::new(&p).unwrap().collect();
    let name = content_address(&p);
    // A peer may announce up to the bound; nothing is held for it.
    let r = Reassembler::growing(name, 60 << 20, 64 << 20).unwrap();
    assert_eq!(r.held(), 0);
    assert_eq!(
        Reassembler::growing(name, (64 << 20) + 1, 64 << 20).err(),
        Some(ChunkError::TooLarge {
            len: (64 << 20) + 1,
            capacity: 64 << 20
        })
    );
    // Out of order, with a retransmission: held = received, complete at the last chunk.
    let mut r = Reassembler::growing(name, p.len() as u32, 1 << 20).unwrap();
    assert_eq!(r.accept(&chunks[3]), Ok(false));
    assert_eq!(r.held(), CHUNK_DATA);
    assert_eq!(r.accept(&chunks[0]), Ok(false));
    assert_eq!(r.accept(&chunks[0]), Ok(false));
    assert_eq!(r.held(), 2 * CHUNK_DATA);
    assert_eq!(r.accept(&chunks[5]), Ok(false));
    assert_eq!(r.accept(&chunks[2]), Ok(false));
    assert_eq!(r.accept(&chunks[1]), Ok(false));
    assert_eq!(r.missing(), 1);
    assert_eq!(r.accept(&chunks[4]), Ok(true));
    assert_eq!(r.payload(), &p[..]);
    assert_eq!(r.into_payload(), p);
    // The same checks as the borrowed one.
    let mut r = Reassembler::growing(name, p.len() as u32, 1 << 20).unwrap();
    let mut moved = chunks[1].clone();
    moved.offset += 1;
    assert!(matches!(
        r.accept(&moved),
        Err(ChunkError::BadPlacement { .. })
    ));
    let mut altered = chunks.clone();
    altered[2].data[9] ^= 1;
    let mut last = Ok(false);
    for c in &altered {
        last = r.accept(c);
    }
    assert_eq!(last, Err(ChunkError::DigestMismatch));
}
