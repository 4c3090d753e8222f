//! Block-wise commitments and proofs agree with the plain Merkle tree for every leaf, for
//! assignment sizes around block boundaries, block sizes from 1 to 16 photons and engine
//! batches smaller than, equal to and larger than a block, run through a CPU device.

use std::sync::atomic::AtomicBool;

use compushare_controller::device::cpu::CpuDevice;
use compushare_controller::device::Device;
use compushare_controller::transport::assignment;
use compushare_controller::transport::proofs::{prove, Commitments};
use compushare_kernels::transport::builtin::builtin_job;
use compushare_kernels::transport::input::ParseOptions;
use compushare_kernels::transport::simulate_with_records;
use compushare_protocol::merkle;

#[test]
fn every_leaf_proves_against_the_plain_root() {
    let opts = ParseOptions {
        photons: Some(64),
        ..ParseOptions::default()
    };
    let mut job = builtin_job("cube60", &opts).unwrap();
    job.seed = 77;
    let device = CpuDevice::new(0, 1, 1 << 30, "test CPU");
    let mut engine = device.load(&job).unwrap();
    let mut counted = 0u64;
    let never = AtomicBool::new(false);
    let start = 1000u64;
    for count in [1u64, 2, 3, 7, 8, 9, 16, 17, 31, 33] {
        let (tally, records) = simulate_with_records(&job, start..start + count, 1, None).unwrap();
        let leaves: Vec<_> = records
            .iter()
            .map(|r| merkle::leaf_hash(&r.to_bytes()))
            .collect();
        let root = merkle::root_of(&leaves);
        for (block_log2, batch_log2) in [(0, 10), (1, 0), (2, 3), (3, 1), (4, 10), (4, 4)] {
            let done = assignment::run(
                engine.as_mut(),
                start,
                count,
                block_log2,
                batch_log2,
                &never,
                &mut |n| counted += n,
            )
            .unwrap();
            assert_eq!(
                done.merkle_root, root,
                "count {count} block 2^{block_log2} batch 2^{batch_log2}"
            );
            assert_eq!(done.tally.digest(), tally.digest());
            let c = Commitments {
                start,
                count,
                block_log2: done.block_log2,
                block_roots: done.block_roots.clone(),
            };
            let photons: Vec<u64> = (start..start + count).rev().collect();
            let proofs = prove(engine.as_mut(), &c, &photons).unwrap();
            assert_eq!(proofs.len(), photons.len());
            for (p, want) in proofs.iter().zip(&photons) {
                assert_eq!(p.photon, *want, "answered in the order asked");
                let i = p.photon - start;
                let leaf = merkle::leaf_hash(&p.record);
                assert_eq!(leaf, leaves[i as usize]);
                merkle::verify(i, count, &leaf, &p.path, &root).unwrap();
            }
        }
    }
    // Progress heard every history: 10 sizes x 6 block/batch pairs.
    assert_eq!(
        counted,
        6 * [1u64, 2, 3, 7, 8, 9, 16, 17, 31, 33].iter().sum::<u64>()
    );
    // Cancelling stops a run between blocks.
    let cancelled = AtomicBool::new(true);
    assert!(matches!(
        assignment::run(engine.as_mut(), 0, 8, 2, 2, &cancelled, &mut |_| {}),
        Err(assignment::RunError::Cancelled)
    ));
    // An empty range is refused, not simulated.
    assert!(assignment::run(engine.as_mut(), 0, 0, 2, 2, &never, &mut |_| {}).is_err());
}
