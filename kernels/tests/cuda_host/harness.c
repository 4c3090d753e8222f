/* Host harness for kernels/tests/cuda_host.rs: runs the CUDA kernels' portable headers
 * (kernels/cuda/cs_*.cuh) compiled as plain C, so their arithmetic can be compared bit for bit
 * with the Rust engines on a machine without a GPU. Output: little-endian u32 words on
 * stdout, in the order the Rust test regenerates them.
 *
 *   harness philox SEED_HI SEED_LO INDEX_HI INDEX_LO N   -> N words of that photon's stream
 *   harness math STRIDE                                   -> for x = bits 0, STRIDE, ... < 2^32:
 *                                                            exp, ln, neg_ln_1m, sin, cos (bits)
 *   harness sha N                                         -> reads 24 words + base nonce on
 *                                                            stdin (hex), writes H7 of N nonces
 *   harness transport FILE                                -> runs a photon range of the model
 *                                                            in FILE (layout: read_model), writes
 *                                                            deposit, totals, detected records,
 *                                                            then every photon's canonical record
 */
#include <stdio.h>
#include <stdlib.h>

#include "cs_math.cuh"
#include "cs_photon.cuh"
#include "cs_philox.cuh"
#include "cs_sha256d_core.cuh"

static void put(uint32_t w) {
    unsigned char b[4] = {(unsigned char)w, (unsigned char)(w >> 8), (unsigned char)(w >> 16),
                          (unsigned char)(w >> 24)};
    fwrite(b, 1, 4, stdout);
}

static uint32_t arg32(const char *s) { return (uint32_t)strtoul(s, NULL, 0); }

static void *read_array(FILE *f, size_t elem, uint64_t *n_out) {
    uint64_t n;
    if (fread(&n, 8, 1, f) != 1) {
        exit(3);
    }
    void *p = malloc(n * elem + 8);
    if (!p || fread(p, elem, n, f) != n) {
        exit(3);
    }
    *n_out = n;
    return p;
}

/* File: params, labels (u16), dist (u8), media (f32), pattern (f32), detectors (f32) as
 * length-prefixed (u64) arrays, then cells, first photon, photon count (u64 each). */
static int run_transport(const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) {
        return 3;
    }
    uint64_t n, cells, first, count;
    uint32_t *prm = (uint32_t *)read_array(f, 4, &n);
    cs_model m;
    cs_model_load(prm, &m);
    m.labels = (const uint16_t *)read_array(f, 2, &n);
    m.dist = (const uint8_t *)read_array(f, 1, &n);
    m.media = (const cs_medium *)read_array(f, 4, &n);
    m.pattern = (const float *)read_array(f, 4, &n);
    m.det = (const float *)read_array(f, 4, &n);
    if (fread(&cells, 8, 1, f) != 1 || fread(&first, 8, 1, f) != 1 || fread(&count, 8, 1, f) != 1) {
        return 3;
    }
    fclose(f);
    uint64_t *deposit = (uint64_t *)calloc(cells + 1, 8);
    uint32_t det_words = CS_DET_HEAD + m.nmedia;
    uint32_t *det_buf = (uint32_t *)malloc(((size_t)count + 1) * det_words * 4);
    uint32_t det_count = 0;
    uint64_t totals[CS_T_COUNT] = {0};
    float path[CS_MAX_TRACK + 1024];
    uint32_t *records = (uint32_t *)malloc(((size_t)count + 1) * CS_RECORD_WORDS * 4);
    if (!deposit || !det_buf || !records) {
        return 4;
    }
    for (uint64_t i = 0; i < count; ++i) {
        cs_record rec;
        cs_run_photon(&m, first + i, deposit, path, &rec);
        cs_totals_add(totals, &rec);
        if (rec.detector >= 0) {
            cs_detected_write(&m, &rec, first + i, path, &det_count, det_buf, (uint32_t)count);
        }
        cs_record_encode(&rec, first + i, records + i * CS_RECORD_WORDS);
    }
    fwrite(deposit, 8, cells, stdout);
    fwrite(totals, 8, CS_T_COUNT, stdout);
    fwrite(&det_count, 4, 1, stdout);
    fwrite(det_buf, 4, (size_t)det_count * det_words, stdout);
    fwrite(records, 4, (size_t)count * CS_RECORD_WORDS, stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && argv[1][0] == 't') {
        return run_transport(argv[2]);
    }
    if (argc >= 7 && argv[1][0] == 'p') {
        uint64_t seed = ((uint64_t)arg32(argv[2]) << 32) | arg32(argv[3]);
        uint64_t index = ((uint64_t)arg32(argv[4]) << 32) | arg32(argv[5]);
        uint32_t n = arg32(argv[6]);
        cs_rng r;
        cs_rng_init(&r, seed, index);
        for (uint32_t i = 0; i < n; ++i) {
            put(cs_rng_next_u32(&r));
        }
        /* Then the uniform conversions on a fresh stream, as f32 bits. */
        cs_rng_init(&r, seed, index);
        for (uint32_t i = 0; i < n; ++i) {
            put(cs_f2u(cs_rng_uniform(&r)));
            put(cs_f2u(cs_rng_uniform_open(&r)));
        }
        return 0;
    }
    if (argc >= 3 && argv[1][0] == 'm') {
        uint64_t stride = arg32(argv[2]);
        for (uint64_t b = 0; b < (1ull << 32); b += stride) {
            float x = cs_u2f((uint32_t)b);
            float s, c;
            put(cs_f2u(cs_exp(x)));
            put(cs_f2u(cs_ln(x)));
            /* neg_ln_1m's domain is [0, 1): map x's bits into it as the Rust test does. */
            float y = cs_u2f((uint32_t)(b % 0x3f800000u));
            put(cs_f2u(cs_neg_ln_1m(y)));
            /* sincos_turns' domain in the kernel is [0, 1); the test covers [-4, 4]. */
            float u = cs_u2f((uint32_t)(b % 0x40800000u)) * ((b & 1) ? -1.0f : 1.0f);
            cs_sincos_turns(u, &s, &c);
            put(cs_f2u(s));
            put(cs_f2u(c));
        }
        return 0;
    }
    if (argc >= 3 && argv[1][0] == 's') {
        uint32_t prm[24];
        unsigned long v;
        for (int i = 0; i < 24; ++i) {
            if (scanf("%lx", &v) != 1) {
                return 2;
            }
            prm[i] = (uint32_t)v;
        }
        if (scanf("%lx", &v) != 1) {
            return 2;
        }
        uint32_t base = (uint32_t)v;
        uint32_t n = arg32(argv[2]);
        for (uint32_t i = 0; i < n; ++i) {
            put(hash_h7(prm, cs_bswap(base + i)));
        }
        return 0;
    }
    fprintf(stderr, "usage: harness philox|math|sha ...\n");
    return 2;
}
