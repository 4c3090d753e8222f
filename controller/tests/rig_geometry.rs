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

/// The key theft against a rig: a job whose `Domain.VolumeFile` names the rig's own key file
/// (absolute, and relative to the rig's working directory). The geometry parse takes volumes
/// only from the bundle, so the file is never read, and the error (which the rig logs; the
/// manager only sees `AssignmentRejected`) names the field, not the file, its size or bytes.
#[test]
fn a_geometry_naming_the_rigs_key_file_reads_nothing_and_reveals_nothing() {
    use compushare_protocol::secure::Identity;
    let dir = std::env::temp_dir().join(format!("cs-rig-theft-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join(compushare_controller::transport::state::KEY_FILE);
    Identity::generate().unwrap().save_new(&key_file).unwrap();
    let text = std::fs::read_to_string(&key_file).unwrap();
    let secret = text.lines().nth(1).unwrap().to_owned();
    let cwd = std::env::current_dir().unwrap();
    let depth = cwd.components().count() - 1;
    let relative = format!(
        "{}{}",
        "../".repeat(depth),
        key_file.display().to_string().trim_start_matches('/')
    );
    assert!(cwd.join(&relative).exists());
    for path in [key_file.display().to_string(), relative] {
        let json = format!(
            r#"{{"Session":{{"Photons":10}},"Forward":{{"T0":0,"T1":1e-9,"Dt":1e-9}},
               "Domain":{{"Dim":[2,2,8],"OriginType":1,"VolumeFile":"{path}",
                 "Media":[{{"mua":0,"mus":0,"g":1,"n":1}},{{"mua":0.1,"mus":1,"g":0.9,"n":1.4}}]}},
               "Optode":{{"Source":{{"Pos":[1,1,0],"Dir":[0,0,1]}}}}}}"#
        );
        let cs = chunks(json.as_bytes());
        let mut f = Fetch::new(cs[0].content, json.len() as u32);
        for c in &cs {
            f.accept(c).unwrap();
        }
        let err = f.into_job().unwrap_err();
        assert!(err.contains("Domain.VolumeFile"), "{err}");
        assert!(!err.contains(KEY_NAME), "names the file: {err}");
        assert!(
            !err.contains(&text.len().to_string()),
            "gives its size: {err}"
        );
        assert!(!err.contains("label"), "speaks of its bytes: {err}");
        for w in secret.as_bytes().windows(6) {
            assert!(!err.contains(std::str::from_utf8(w).unwrap()), "{err}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

const KEY_NAME: &str = compushare_controller::transport::state::KEY_FILE;
