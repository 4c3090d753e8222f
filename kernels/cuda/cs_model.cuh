// A transport job as the kernel sees it: the CUDA/C twin of kernels/src/transport/model.rs's
// `Model`, filled from a block of 32-bit words that the Rust driver (kernels/src/cuda/
// transport.rs, `ModelBlock`) builds from the very `Model` the CPU engine uses, so both walk
// with identical constants. Word layout: the CS_P_* indices below (floats as IEEE bits).
#ifndef CS_MODEL_CUH
#define CS_MODEL_CUH

#include "cs_types.cuh"

#define CS_P_DIM 0          // 3 words, int
#define CS_P_GATES 3
#define CS_P_NMEDIA 4
#define CS_P_VOXELS_LO 5
#define CS_P_VOXELS_HI 6
#define CS_P_FACES 7        // 6 words
#define CS_P_DO_SPECULAR 13
#define CS_P_DO_MISMATCH 14
#define CS_P_SRC_KIND 15
#define CS_P_PAT_W 16
#define CS_P_PAT_H 17
#define CS_P_NDET 18
#define CS_P_HAS_ROULETTE 19
#define CS_P_SEED_LO 20
#define CS_P_SEED_HI 21
#define CS_P_DIMF 22        // 3 floats
#define CS_P_N0 25
#define CS_P_L0 26
#define CS_P_L1 27
#define CS_P_INV_LDT 28
#define CS_P_SRC_POS 29     // 3
#define CS_P_SRC_DIR 32     // 3
#define CS_P_E1 35          // 3
#define CS_P_E2 38          // 3
#define CS_P_COS_HALF 41
#define CS_P_SRC_RADIUS 42  // Gaussian waist or disk radius
#define CS_P_V1 43          // 3
#define CS_P_V2 46          // 3
#define CS_P_ROUL_THRESHOLD 49
#define CS_P_ROUL_FACTOR 50
#define CS_P_WORDS 51

// Floats per medium: mua_g, mus_g, inv_mus_g, g, n, nl, inv_nl, inv_mua_g, hg[5].
#define CS_MEDIUM_FLOATS 13

#define CS_SRC_PENCIL 0u
#define CS_SRC_ISOTROPIC 1u
#define CS_SRC_CONE 2u
#define CS_SRC_GAUSSIAN 3u
#define CS_SRC_DISK 4u
#define CS_SRC_PLANAR 5u
#define CS_SRC_PATTERN 6u

#define CS_FACE_ABSORB 0u
#define CS_FACE_FRESNEL 1u
#define CS_FACE_MIRROR 2u
#define CS_FACE_CYCLIC 3u

typedef struct {
    float mua_g, mus_g, inv_mus_g, g, n, nl, inv_nl, inv_mua_g;
    float hg[5];
} cs_medium;

typedef struct {
    int32_t dim[3];
    uint32_t gates, nmedia, faces[6], do_specular, do_mismatch, src_kind, pat_w, pat_h, ndet,
        has_roulette;
    uint64_t voxels, seed;
    float dimf[3], n0, l0, l1, inv_ldt, src_pos[3], src_dir[3], e1[3], e2[3], cos_half, src_radius,
        v1[3], v2[3], roul_threshold, roul_factor;
    const uint16_t *labels;
    const uint8_t *dist;
    const cs_medium *media;
    const float *pattern;
    const float *det; // 4 floats per detector: x, y, z, radius
} cs_model;

CS_FN void cs_model_load(const uint32_t *w, cs_model *m) {
    for (int a = 0; a < 3; ++a) {
        m->dim[a] = (int32_t)w[CS_P_DIM + a];
        m->dimf[a] = cs_u2f(w[CS_P_DIMF + a]);
        m->src_pos[a] = cs_u2f(w[CS_P_SRC_POS + a]);
        m->src_dir[a] = cs_u2f(w[CS_P_SRC_DIR + a]);
        m->e1[a] = cs_u2f(w[CS_P_E1 + a]);
        m->e2[a] = cs_u2f(w[CS_P_E2 + a]);
        m->v1[a] = cs_u2f(w[CS_P_V1 + a]);
        m->v2[a] = cs_u2f(w[CS_P_V2 + a]);
    }
    m->gates = w[CS_P_GATES];
    m->nmedia = w[CS_P_NMEDIA];
    m->voxels = ((uint64_t)w[CS_P_VOXELS_HI] << 32) | w[CS_P_VOXELS_LO];
    for (int f = 0; f < 6; ++f) {
        m->faces[f] = w[CS_P_FACES + f];
    }
    m->do_specular = w[CS_P_DO_SPECULAR];
    m->do_mismatch = w[CS_P_DO_MISMATCH];
    m->src_kind = w[CS_P_SRC_KIND];
    m->pat_w = w[CS_P_PAT_W];
    m->pat_h = w[CS_P_PAT_H];
    m->ndet = w[CS_P_NDET];
    m->has_roulette = w[CS_P_HAS_ROULETTE];
    m->seed = ((uint64_t)w[CS_P_SEED_HI] << 32) | w[CS_P_SEED_LO];
    m->n0 = cs_u2f(w[CS_P_N0]);
    m->l0 = cs_u2f(w[CS_P_L0]);
    m->l1 = cs_u2f(w[CS_P_L1]);
    m->inv_ldt = cs_u2f(w[CS_P_INV_LDT]);
    m->cos_half = cs_u2f(w[CS_P_COS_HALF]);
    m->src_radius = cs_u2f(w[CS_P_SRC_RADIUS]);
    m->roul_threshold = cs_u2f(w[CS_P_ROUL_THRESHOLD]);
    m->roul_factor = cs_u2f(w[CS_P_ROUL_FACTOR]);
}

// Linear voxel index (x fastest); v is always inside the grid where this is called.
CS_FN uint64_t cs_index(const cs_model *m, const int32_t v[3]) {
    return (uint64_t)(uint32_t)v[0] +
           (uint64_t)(uint32_t)m->dim[0] * ((uint64_t)(uint32_t)v[1] + (uint64_t)(uint32_t)m->dim[1] * (uint64_t)(uint32_t)v[2]);
}

CS_FN uint32_t cs_label(const cs_model *m, const int32_t v[3]) {
    uint64_t i = cs_index(m, v);
    return i < m->voxels ? (uint32_t)m->labels[i] : 0u;
}

CS_FN uint32_t cs_dist(const cs_model *m, const int32_t v[3]) {
    uint64_t i = cs_index(m, v);
    return i < m->voxels ? (uint32_t)m->dist[i] : 1u;
}

// Time gate of an optical path length (model.rs `gate`).
CS_FN uint64_t cs_gate(const cs_model *m, float lopt) {
    if (m->gates == 1u) {
        return 0u;
    }
    float g = (lopt - m->l0) * m->inv_ldt;
    if (g <= 0.0f) {
        return 0u;
    }
    uint32_t gi;
    if (g != g) {
        gi = 0u;
    } else if (g >= 4294967296.0f) {
        gi = 0xffffffffu;
    } else {
        gi = (uint32_t)g;
    }
    return gi < m->gates - 1u ? gi : m->gates - 1u;
}

#endif
