// Philox4x32-10 and the per-photon stream: the CUDA/C twin of
// kernels/src/transport/rng.rs. Photon i of seed s draws blocks (block, 0, i_lo, i_hi) under
// key (s_lo, s_hi), block = 0, 1, 2, ..., words in block order. The Rust engine generates four
// blocks at a time; the stream is the same, so here one block at a time (fewer registers).
#ifndef CS_PHILOX_CUH
#define CS_PHILOX_CUH

#include "cs_types.cuh"

#define CS_PHILOX_M0 0xD2511F53u
#define CS_PHILOX_M1 0xCD9E8D57u
#define CS_PHILOX_W0 0x9E3779B9u
#define CS_PHILOX_W1 0xBB67AE85u

// One block: ten rounds over ctr with key; out may alias nothing.
CS_FN void cs_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    CS_UNROLL
    for (int round = 0; round < 10; ++round) {
        uint64_t p0 = (uint64_t)CS_PHILOX_M0 * (uint64_t)c0;
        uint64_t p1 = (uint64_t)CS_PHILOX_M1 * (uint64_t)c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += CS_PHILOX_W0;
        k1 += CS_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// The random stream of one photon.
typedef struct {
    uint32_t key[2];
    uint32_t index[2];
    uint32_t block;
    uint32_t buf[4];
    uint32_t used;
} cs_rng;

CS_FN void cs_rng_init(cs_rng *r, uint64_t seed, uint64_t index) {
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->index[0] = (uint32_t)index;
    r->index[1] = (uint32_t)(index >> 32);
    r->block = 0;
    r->used = 4;
}

CS_FN uint32_t cs_rng_next_u32(cs_rng *r) {
    if (r->used >= 4) {
        uint32_t ctr[4] = {r->block, 0u, r->index[0], r->index[1]};
        cs_philox4x32_10(ctr, r->key, r->buf);
        r->block += 1u;
        r->used = 0;
    }
    // Select without dynamic indexing so the buffer stays in registers on a GPU.
    uint32_t u = r->used;
    uint32_t w = (u == 0) ? r->buf[0] : (u == 1) ? r->buf[1] : (u == 2) ? r->buf[2] : r->buf[3];
    r->used = u + 1;
    return w;
}

// 2^-24: the top 24 bits of a word as an exact f32 fraction.
#define CS_TWO_POW_M24 (1.0f / 16777216.0f)

// Uniform in [0, 1) on the 2^-24 lattice (exact conversion).
CS_FN float cs_rng_uniform(cs_rng *r) { return (float)(cs_rng_next_u32(r) >> 8) * CS_TWO_POW_M24; }

// Uniform in (0, 1): lattice midpoints.
CS_FN float cs_rng_uniform_open(cs_rng *r) {
    return ((float)(cs_rng_next_u32(r) >> 8) + 0.5f) * CS_TWO_POW_M24;
}

#endif
