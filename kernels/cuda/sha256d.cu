// SHA-256d nonce scanning: the CUDA twin of kernels/src/sha256d/lanes.rs.
//
// Per nonce: rounds 3..64 of the header's second block (the midstate, rounds 0..2 and the
// constant schedule words come precomputed from the host: `Prepared` in work.rs), then
// rounds 0..60 of the outer hash, which is enough to know H7 of the final hash. A nonce whose
// byte-swapped H7 exceeds the target's top word is dropped there (early exit on the last
// word); survivors are appended to `out` and re-hashed in full on the host, which compares
// the whole 256-bit target, so the GPU reports exactly the CPU's nonces.
//
// Kernel signature (kernels/src/cuda/sys.rs launches it with exactly these arguments):
//   sha256d_scan(const uint32_t *prm, uint32_t base, uint32_t count, uint32_t target_top,
//                uint32_t *out, uint32_t out_cap)
// prm[0..8] midstate, prm[8..15] state after round 2 (a..g), prm[16] r3_a, prm[17] r3_e,
// prm[18] w16, prm[19] w17, prm[20] c18, prm[21] c19, prm[22] o_a1, prm[23] o_e1.
// out[0] counts survivors (may exceed out_cap: the host then rescans that launch on the
// CPU); out[1 + i] holds survivor i for i < out_cap.

#include "cs_sha256d_core.cuh"

extern "C" __global__ void __launch_bounds__(256) sha256d_scan(const uint32_t *__restrict__ prm, uint32_t base,
                                                               uint32_t count, uint32_t target_top,
                                                               uint32_t *__restrict__ out, uint32_t out_cap) {
    __shared__ uint32_t sp[24];
    if (threadIdx.x < 24) {
        sp[threadIdx.x] = prm[threadIdx.x];
    }
    __syncthreads();
    uint32_t p[24];
#pragma unroll
    for (int i = 0; i < 24; ++i) {
        p[i] = sp[i];
    }
    uint32_t stride = gridDim.x * blockDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        uint32_t nonce = base + i;
        uint32_t h7 = hash_h7(p, bswap(nonce));
        if (bswap(h7) <= target_top) {
            uint32_t slot = atomicAdd(out, 1u);
            if (slot < out_cap) {
                out[1 + slot] = nonce;
            }
        }
    }
}
