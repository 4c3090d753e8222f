// The SHA-256d scan core: H7 of sha256d(header with nonce) from the per-work constants.
// The CUDA twin of kernels/src/sha256d/lanes.rs `hash_h7`, written as portable C so the host
// test (kernels/tests/cuda_host.rs) can run this exact code and compare it with Rust.
#ifndef CS_SHA256D_CORE_CUH
#define CS_SHA256D_CORE_CUH

#include "cs_types.cuh"

CS_CONST uint32_t CS_K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

#define CS_IV0 0x6a09e667u
#define CS_IV1 0xbb67ae85u
#define CS_IV2 0x3c6ef372u
#define CS_IV3 0xa54ff53au
#define CS_IV4 0x510e527fu
#define CS_IV5 0x9b05688cu
#define CS_IV6 0x1f83d9abu
#define CS_IV7 0x5be0cd19u

// Padding words (work.rs: PAD2_W4, PAD2_W15, PADO_W8, PADO_W15).
#define PAD2_W4 0x80000000u
#define PAD2_W15 640u
#define PADO_W8 0x80000000u
#define PADO_W15 256u

CS_FN uint32_t rotr(uint32_t x, uint32_t n) { return cs_rotr(x, n); }
CS_FN uint32_t bsig0(uint32_t x) { return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22); }
CS_FN uint32_t bsig1(uint32_t x) { return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25); }
CS_FN uint32_t ssig0(uint32_t x) { return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3); }
CS_FN uint32_t ssig1(uint32_t x) { return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10); }
// ch and maj as single LOP3 bit selects.
CS_FN uint32_t ch(uint32_t e, uint32_t f, uint32_t g) { return g ^ (e & (f ^ g)); }
CS_FN uint32_t maj(uint32_t a, uint32_t b, uint32_t c) { return (a & b) | (c & (a | b)); }
CS_FN uint32_t bswap(uint32_t x) { return cs_bswap(x); }

// Host-side constant folding of K[t] + W[t] happens here through the compiler: after full
// unrolling every CS_K index is a literal and every padding word a constant.
#define RND(a, b, c, d, e, f, g, h, kw)                                          \
    do {                                                                         \
        uint32_t t1_ = (h) + bsig1(e) + ch((e), (f), (g)) + (kw);                \
        uint32_t t2_ = bsig0(a) + maj((a), (b), (c));                            \
        (d) += t1_;                                                              \
        (h) = t1_ + t2_;                                                         \
    } while (0)

// Rounds with rotating names: round t works on the state shifted by t (mod 8).
#define RND8(s, t, kw)                                                                      \
    RND(s[(8 - (t)) & 7], s[(9 - (t)) & 7], s[(10 - (t)) & 7], s[(11 - (t)) & 7],        \
        s[(12 - (t)) & 7], s[(13 - (t)) & 7], s[(14 - (t)) & 7], s[(15 - (t)) & 7], kw)

CS_FN uint32_t hash_h7(const uint32_t *p, uint32_t w3) {
    // Second block. State indexing: s[(8 - t) & 7] is `a` at round t.
    uint32_t s[8];
    // After round 3: a = r3_a + W3, b..d = s3[0..2], e = r3_e + W3, f..h = s3[4..6].
    // Round 3's result is placed as the state "entering round 4": a at index (8-4)&7 = 4.
    s[4] = p[16] + w3;
    s[5] = p[8];
    s[6] = p[9];
    s[7] = p[10];
    s[0] = p[17] + w3;
    s[1] = p[12];
    s[2] = p[13];
    s[3] = p[14];
CS_UNROLL
    for (int t = 4; t < 16; ++t) {
        uint32_t w = (t == 4) ? PAD2_W4 : ((t == 15) ? PAD2_W15 : 0u);
        RND8(s, t, CS_K[t] + w);
    }
    uint32_t w[16];
    w[0] = p[18];
    w[1] = p[19];
    w[2] = p[20] + ssig0(w3);
    w[3] = p[21] + w3;
    w[4] = ssig1(w[2]) + PAD2_W4;
    w[5] = ssig1(w[3]);
    w[6] = ssig1(w[4]) + PAD2_W15;
    w[7] = ssig1(w[5]) + w[0];
    w[8] = ssig1(w[6]) + w[1];
    w[9] = ssig1(w[7]) + w[2];
    w[10] = ssig1(w[8]) + w[3];
    w[11] = ssig1(w[9]) + w[4];
    w[12] = ssig1(w[10]) + w[5];
    w[13] = ssig1(w[11]) + w[6];
    w[14] = ssig1(w[12]) + w[7] + ssig0(PAD2_W15);
    w[15] = ssig1(w[13]) + w[8] + (ssig0(p[18]) + PAD2_W15);
CS_UNROLL
    for (int t = 16; t < 32; ++t) {
        RND8(s, t, w[t & 15] + CS_K[t]);
    }
CS_UNROLL
    for (int t = 32; t < 64; ++t) {
        w[t & 15] = ssig1(w[(t - 2) & 15]) + w[(t - 7) & 15] + ssig0(w[(t - 15) & 15]) + w[t & 15];
        RND8(s, t, w[t & 15] + CS_K[t]);
    }
    // After 64 rounds the state is back at its starting rotation: a = s[0].
    uint32_t h[8];
CS_UNROLL
    for (int i = 0; i < 8; ++i) {
        h[i] = s[i] + p[i];
    }

    // Outer hash of the 32-byte first hash: W0..W7 = h, W8 = 0x80000000, W15 = 256.
    // Round 0 is precomputed up to adding W0: state entering round 1 has a at index 7.
    s[7] = p[22] + h[0];
    s[0] = CS_IV0;
    s[1] = CS_IV1;
    s[2] = CS_IV2;
    s[3] = p[23] + h[0];
    s[4] = CS_IV4;
    s[5] = CS_IV5;
    s[6] = CS_IV6;
CS_UNROLL
    for (int t = 1; t < 8; ++t) {
        RND8(s, t, h[t] + CS_K[t]);
    }
CS_UNROLL
    for (int t = 8; t < 16; ++t) {
        uint32_t wp = (t == 8) ? PADO_W8 : ((t == 15) ? PADO_W15 : 0u);
        RND8(s, t, CS_K[t] + wp);
    }
    w[0] = ssig0(h[1]) + h[0];
    w[1] = ssig0(h[2]) + h[1] + ssig1(PADO_W15);
    w[2] = ssig1(w[0]) + ssig0(h[3]) + h[2];
    w[3] = ssig1(w[1]) + ssig0(h[4]) + h[3];
    w[4] = ssig1(w[2]) + ssig0(h[5]) + h[4];
    w[5] = ssig1(w[3]) + ssig0(h[6]) + h[5];
    w[6] = ssig1(w[4]) + ssig0(h[7]) + h[6] + PADO_W15;
    w[7] = ssig1(w[5]) + w[0] + h[7] + ssig0(PADO_W8);
    w[8] = ssig1(w[6]) + w[1] + PADO_W8;
    w[9] = ssig1(w[7]) + w[2];
    w[10] = ssig1(w[8]) + w[3];
    w[11] = ssig1(w[9]) + w[4];
    w[12] = ssig1(w[10]) + w[5];
    w[13] = ssig1(w[11]) + w[6];
    w[14] = ssig1(w[12]) + w[7] + ssig0(PADO_W15);
    w[15] = ssig1(w[13]) + w[8] + ssig0(w[0]) + PADO_W15;
CS_UNROLL
    for (int t = 16; t < 32; ++t) {
        RND8(s, t, w[t & 15] + CS_K[t]);
    }
CS_UNROLL
    for (int t = 32; t < 61; ++t) {
        w[t & 15] = ssig1(w[(t - 2) & 15]) + w[(t - 7) & 15] + ssig0(w[(t - 15) & 15]) + w[t & 15];
        RND8(s, t, w[t & 15] + CS_K[t]);
    }
    // After round 60 (61 rounds done), e sits at index (12 - 61) & 7 = 7; it is what h will
    // be after round 63, so H7 = IV7 + e. The dead a/t2 work of rounds 57..60 is removed by
    // the compiler's dead-code elimination.
    return s[7] + CS_IV7;
}

#endif
