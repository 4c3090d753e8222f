//! The MCX JSON parser never panics and never over-allocates, whatever it is fed.

use compushare_kernels::transport::builtin::{builtin_json, BUILTIN_NAMES};
use compushare_kernels::transport::input::{job_from_value, parse_job_bytes, ParseOptions};
use compushare_kernels::transport::job::Job;
use proptest::prelude::*;
use serde_json::Value;

/// A tight memory limit so mutated sizes cannot make a test allocate gigabytes.
fn opts() -> ParseOptions {
    ParseOptions {
        max_job_bytes: 32 << 20,
        ..ParseOptions::default()
    }
}

/// What every accepted job guarantees to the engine.
fn check_invariants(job: &Job) {
    assert_eq!(job.labels.len(), job.voxels());
    assert!(job.labels.iter().all(|&l| usize::from(l) < job.media.len()));
    assert!(job.time.gates >= 1 && job.time.dt > 0.0 && job.time.t1 > job.time.t0);
    assert!(job.unit_mm > 0.0 && job.photons > 0);
    let d = job.source.dir;
    let norm = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    assert!(job
        .media
        .iter()
        .all(|m| m.mua >= 0.0 && m.mus >= 0.0 && m.g.abs() <= 1.0 && m.n > 0.0));
    assert!(job.detectors.iter().all(|d| d.radius > 0.0));
}

/// Replacement values for numbers and strings deep in a benchmark's tree.
fn any_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        (-100i64..200).prop_map(Value::from),
        Just(Value::Null),
        Just(Value::Bool(true)),
        "[a-zA-Z_]{0,8}".prop_map(Value::from),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([1, 2, 3])),
    ]
}

/// Visits the `n`th node (pre-order) and replaces it.
fn replace_nth(v: &mut Value, n: &mut usize, with: &Value) -> bool {
    if *n == 0 {
        *v = with.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| replace_nth(x, n, with)),
        Value::Object(o) => o.values_mut().any(|x| replace_nth(x, n, with)),
        _ => false,
    }
}

/// Renames the `n`th object key (pre-order over keys).
fn rename_nth(v: &mut Value, n: &mut usize, to: &str) -> bool {
    match v {
        Value::Array(a) => a.iter_mut().any(|x| rename_nth(x, n, to)),
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                if *n == 0 {
                    if let Some(x) = o.remove(&k) {
                        o.insert(to.to_owned(), x);
                    }
                    return true;
                }
                *n -= 1;
                if o.get_mut(&k).is_some_and(|x| rename_nth(x, n, to)) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(job) = parse_job_bytes(&bytes, &opts()) {
            check_invariants(&job);
        }
    }

    #[test]
    fn mutated_text_never_panics(
        which in 0..BUILTIN_NAMES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = builtin_json(BUILTIN_NAMES[which]).unwrap_or_default().as_bytes().to_vec();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        if let Ok(job) = parse_job_bytes(&bytes, &opts()) {
            check_invariants(&job);
        }
    }

    #[test]
    fn mutated_trees_never_panic(
        which in 0..BUILTIN_NAMES.len(),
        edits in proptest::collection::vec((0usize..200, any_leaf()), 1..5),
        rename in proptest::option::of((0usize..80, "[A-Z][a-z]{0,6}")),
    ) {
        let text = builtin_json(BUILTIN_NAMES[which]).unwrap_or_default();
        let mut tree: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        for (n, leaf) in &edits {
            let mut n = *n;
            replace_nth(&mut tree, &mut n, leaf);
        }
        if let Some((n, to)) = rename {
            let mut n = n;
            rename_nth(&mut tree, &mut n, &to);
        }
        if let Ok(job) = job_from_value(&tree, &opts()) {
            check_invariants(&job);
        }
    }
}

proptest! {
    /// Any bytes as a job bundle: an error or a job, never a panic; lengths are read against
    /// the bytes present (a huge announced length is an error, not an allocation).
    #[test]
    fn arbitrary_bundles_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        magic in any::<bool>(),
        announced in any::<u32>(),
    ) {
        use compushare_kernels::transport::input::bundle::{JobBundle, MAGIC};
        use compushare_kernels::transport::input::parse_bundle;
        let mut b = Vec::new();
        if magic {
            b.extend_from_slice(&MAGIC);
            b.extend_from_slice(&announced.to_le_bytes());
        }
        b.extend_from_slice(&bytes);
        if let Ok(d) = JobBundle::decode(&b) {
            prop_assert_eq!(d.encode(), Some(b.clone()), "one encoding per bundle");
        }
        if let Ok(job) = parse_bundle(&b, &opts()) {
            check_invariants(&job);
        }
    }
}
