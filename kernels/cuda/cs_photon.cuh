// One photon's life: the CUDA/C twin of kernels/src/transport/photon.rs (`run_photon`), the
// same walk in the same order of floating-point operations and RNG draws, so that every
// photon's deposits, fate and exit weight are the CPU engine's bits. Read photon.rs's module
// doc for the definition; comments here only mark what is C-specific.
//
// Rust semantics reproduced by hand: float -> int casts saturate and map NaN to 0
// (cs_f2i_sat, cs_f2u_sat, cs_q); f32::max/min return the non-NaN operand (cs_fmax/cs_fmin);
// f32::clamp keeps NaN (cs_clamp). sqrtf is IEEE correctly rounded on both sides
// (--prec-sqrt=true on the GPU, SSE sqrtss on the host).
#ifndef CS_PHOTON_CUH
#define CS_PHOTON_CUH

#include "cs_math.cuh"
#include "cs_model.cuh"
#include "cs_philox.cuh"

#ifndef __CUDACC__
#include <math.h>
#endif

CS_FN float cs_sqrt(float x) { return sqrtf(x); }
CS_FN float cs_fabs(float x) { return cs_u2f(cs_f2u(x) & 0x7fffffffu); }
CS_FN float cs_fmax(float a, float b) { return (a > b || b != b) ? a : b; }
CS_FN float cs_fmin(float a, float b) { return (a < b || b != b) ? a : b; }
CS_FN float cs_clamp(float x, float lo, float hi) {
    if (x < lo) {
        x = lo;
    }
    if (x > hi) {
        x = hi;
    }
    return x;
}
CS_FN int cs_isfinite(float x) { return (cs_f2u(x) & 0x7f800000u) != 0x7f800000u; }
CS_FN int32_t cs_f2i_sat(float x) {
    if (x != x) {
        return 0;
    }
    if (x >= 2147483648.0f) {
        return 2147483647;
    }
    if (x <= -2147483648.0f) {
        return (-2147483647 - 1);
    }
    return (int32_t)x;
}
CS_FN uint32_t cs_f2u_sat(float x) {
    if (!(x > 0.0f)) {
        return 0u;
    }
    if (x >= 4294967296.0f) {
        return 0xffffffffu;
    }
    return (uint32_t)x;
}
// Component i (0..2) of a 3-vector by selects, not by address: a run-time index into a local
// array would move it from registers to local memory on a GPU. Same values, so same bits.
CS_FN float cs_getf(const float a[3], int i) { return i == 0 ? a[0] : (i == 1 ? a[1] : a[2]); }
CS_FN void cs_setf(float a[3], int i, float x) {
    a[0] = i == 0 ? x : a[0];
    a[1] = i == 1 ? x : a[1];
    a[2] = i == 2 ? x : a[2];
}
CS_FN int32_t cs_geti(const int32_t a[3], int i) { return i == 0 ? a[0] : (i == 1 ? a[1] : a[2]); }
CS_FN void cs_seti(int32_t a[3], int i, int32_t x) {
    a[0] = i == 0 ? x : a[0];
    a[1] = i == 1 ? x : a[1];
    a[2] = i == 2 ? x : a[2];
}
CS_FN int32_t cs_mini(int32_t x, int32_t hi) { return x < hi ? x : hi; }

// Fixed-point weight: trunc(w * 2^32), negative and NaN to 0 (photon.rs `q`).
CS_FN uint64_t cs_q(float w) {
    float s = w * 4294967296.0f;
    if (!(s > 0.0f)) {
        return 0u;
    }
    if (s >= 9223372036854775808.0f) {
        return 0x7fffffffffffffffull;
    }
    return (uint64_t)(int64_t)s;
}

CS_FN uint64_t cs_sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0u; }
CS_FN uint64_t cs_min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

CS_FN uint32_t cs_face_index(int axis, int positive) { return (uint32_t)axis + (positive ? 3u : 0u); }

// Fates (photon.rs Fate::code).
#define CS_FATE_ESCAPED 0u
#define CS_FATE_ALIVE 1u
#define CS_FATE_ROULETTE 2u
#define CS_FATE_EXHAUSTED 3u
#define CS_FATE_NEVER 4u
#define CS_FATE_STEPLIMIT 5u

#define CS_MAX_SEGMENTS (1u << 24)

// A photon's integer outcome (the parts the tally needs).
typedef struct {
    uint32_t fate;
    uint32_t face;
    uint64_t launched;
    uint64_t specular;
    uint64_t exit_weight;
    uint64_t roulette_gain;
    uint32_t scatters;
    int32_t detector; // -1 when none
    uint32_t end_gate; // time gate at the end (photon.rs `Walker::finish`)
    float exit_pos[3];
    float exit_dir[3];
} cs_record;

// Fresnel reflectance and transmitted cosine; (1, 0) under total internal reflection.
CS_FN float cs_fresnel(float n1, float n2, float ci, float *ct_out) {
    float eta = n1 / n2;
    float st2 = eta * eta * (1.0f - ci * ci);
    if (st2 >= 1.0f) {
        *ct_out = 0.0f;
        return 1.0f;
    }
    float ct = cs_sqrt(1.0f - st2);
    float rs = (n1 * ci - n2 * ct) / (n1 * ci + n2 * ct);
    float rp = (n1 * ct - n2 * ci) / (n1 * ct + n2 * ci);
    *ct_out = ct;
    return 0.5f * (rs * rs + rp * rp);
}

CS_FN void cs_refract(float d[3], int axis, float eta, float ct) {
    float o0 = d[0] * eta, o1 = d[1] * eta, o2 = d[2] * eta;
    float oa = cs_getf(d, axis) > 0.0f ? ct : -ct;
    d[0] = o0;
    d[1] = o1;
    d[2] = o2;
    cs_setf(d, axis, oa);
}

// Launch position, direction and weight (photon.rs `launch`).
CS_FN float cs_launch(const cs_model *m, cs_rng *rng, float p[3], float d[3]) {
    for (int a = 0; a < 3; ++a) {
        p[a] = m->src_pos[a];
        d[a] = m->src_dir[a];
    }
    switch (m->src_kind) {
    case CS_SRC_PENCIL:
        return 1.0f;
    case CS_SRC_ISOTROPIC: {
        float ct = 2.0f * cs_rng_uniform(rng) - 1.0f;
        float st = cs_sqrt(cs_fmax(1.0f - ct * ct, 0.0f));
        float sn, cs;
        cs_sincos_turns(cs_rng_uniform(rng), &sn, &cs);
        d[0] = st * cs;
        d[1] = st * sn;
        d[2] = ct;
        return 1.0f;
    }
    case CS_SRC_CONE: {
        float ct = 1.0f - cs_rng_uniform(rng) * (1.0f - m->cos_half);
        float st = cs_sqrt(cs_fmax(1.0f - ct * ct, 0.0f));
        float sn, cs;
        cs_sincos_turns(cs_rng_uniform(rng), &sn, &cs);
        float a = st * cs;
        float b = st * sn;
        for (int k = 0; k < 3; ++k) {
            d[k] = ct * m->src_dir[k] + a * m->e1[k] + b * m->e2[k];
        }
        return 1.0f;
    }
    case CS_SRC_GAUSSIAN:
    case CS_SRC_DISK: {
        float r;
        if (m->src_kind == CS_SRC_GAUSSIAN) {
            r = m->src_radius * cs_sqrt(-0.5f * cs_ln(cs_rng_uniform_open(rng)));
        } else {
            r = m->src_radius * cs_sqrt(cs_rng_uniform(rng));
        }
        float phi = cs_rng_uniform(rng);
        float sn, cs;
        cs_sincos_turns(phi, &sn, &cs);
        float a = r * cs;
        float b = r * sn;
        for (int k = 0; k < 3; ++k) {
            p[k] = m->src_pos[k] + a * m->e1[k] + b * m->e2[k];
        }
        return 1.0f;
    }
    default: {
        // Planar and pattern.
        float a = cs_rng_uniform(rng);
        float b = cs_rng_uniform(rng);
        for (int k = 0; k < 3; ++k) {
            p[k] = m->src_pos[k] + a * m->v1[k] + b * m->v2[k];
        }
        if (m->src_kind == CS_SRC_PLANAR) {
            return 1.0f;
        }
        uint32_t w = m->pat_w, h = m->pat_h;
        uint32_t ix = cs_f2u_sat(a * (float)w);
        uint32_t iy = cs_f2u_sat(b * (float)h);
        ix = ix < w - 1u ? ix : w - 1u;
        iy = iy < h - 1u ? iy : h - 1u;
        uint64_t cell = (uint64_t)ix + (uint64_t)w * (uint64_t)iy;
        return cell < (uint64_t)w * (uint64_t)h ? m->pattern[cell] : 0.0f;
    }
    }
}

CS_FN uint32_t cs_dominant_face(const float d[3]) {
    int axis = 0;
    for (int a = 1; a < 3; ++a) {
        if (cs_fabs(d[a]) > cs_fabs(cs_getf(d, axis))) {
            axis = a;
        }
    }
    return cs_face_index(axis, cs_getf(d, axis) > 0.0f);
}

// Distance to the exit face of voxel v, and its axis.
CS_FN float cs_face_distance(const float p[3], const float d[3], const float inv_d[3], const int32_t v[3],
                             int *axis_out) {
    float best = CS_INF;
    int axis = 0;
    for (int a = 0; a < 3; ++a) {
        float t;
        if (d[a] > 0.0f) {
            t = ((float)(v[a] + 1) - p[a]) * inv_d[a];
        } else if (d[a] < 0.0f) {
            t = ((float)v[a] - p[a]) * inv_d[a];
        } else {
            t = CS_INF;
        }
        t = cs_fmax(t, 0.0f);
        if (t < best) {
            best = t;
            axis = a;
        }
    }
    *axis_out = axis;
    return best;
}

CS_FN float cs_box_exit(const float p[3], const float d[3], const float inv_d[3], const float dimf[3],
                        int *axis_out) {
    float best = CS_INF;
    int axis = 0;
    for (int a = 0; a < 3; ++a) {
        float t;
        if (d[a] > 0.0f) {
            t = (dimf[a] - p[a]) * inv_d[a];
        } else if (d[a] < 0.0f) {
            t = -p[a] * inv_d[a];
        } else {
            t = CS_INF;
        }
        t = cs_fmax(t, 0.0f);
        if (t < best) {
            best = t;
            axis = a;
        }
    }
    *axis_out = axis;
    return best;
}

// Moves a launched photon to its first nonzero-label voxel (photon.rs `enter`). Returns 1
// when in (p, v, entered set; entered = -1 when not from the background), 0 when never
// (face_out set).
CS_FN int cs_enter(const cs_model *m, float p[3], const float d[3], int32_t v[3], int *entered,
                   uint32_t *face_out) {
    int inside = 1;
    for (int a = 0; a < 3; ++a) {
        if (!(p[a] >= 0.0f && p[a] < m->dimf[a])) {
            inside = 0;
        }
    }
    *entered = -1;
    if (inside) {
        for (int a = 0; a < 3; ++a) {
            int32_t t = cs_f2i_sat(p[a]);
            v[a] = t < m->dim[a] - 1 ? t : m->dim[a] - 1;
            if (p[a] == 0.0f && d[a] > 0.0f && *entered < 0) {
                *entered = a;
            }
        }
    } else {
        float tnear = -CS_INF;
        float tfar = CS_INF;
        int axis = 0;
        for (int a = 0; a < 3; ++a) {
            if (d[a] == 0.0f) {
                if (p[a] < 0.0f || p[a] > m->dimf[a]) {
                    *face_out = cs_dominant_face(d);
                    return 0;
                }
                continue;
            }
            float t_in, t_out;
            if (d[a] > 0.0f) {
                t_in = (0.0f - p[a]) / d[a];
                t_out = (m->dimf[a] - p[a]) / d[a];
            } else {
                t_in = (m->dimf[a] - p[a]) / d[a];
                t_out = (0.0f - p[a]) / d[a];
            }
            if (t_in > tnear) {
                tnear = t_in;
                axis = a;
            }
            tfar = cs_fmin(tfar, t_out);
        }
        if (tnear > tfar || tfar <= 0.0f || tnear < 0.0f) {
            *face_out = cs_dominant_face(d);
            return 0;
        }
        for (int a = 0; a < 3; ++a) {
            p[a] = cs_clamp(p[a] + d[a] * tnear, 0.0f, m->dimf[a]);
        }
        cs_setf(p, axis, cs_getf(d, axis) > 0.0f ? 0.0f : m->dimf[axis]);
        for (int a = 0; a < 3; ++a) {
            int32_t t = cs_f2i_sat(p[a]);
            v[a] = t < m->dim[a] - 1 ? t : m->dim[a] - 1;
        }
        *entered = axis;
    }
    uint64_t max_steps = (uint64_t)m->dim[0] + (uint64_t)m->dim[1] + (uint64_t)m->dim[2] + 3u;
    uint64_t steps = 0;
    while (cs_label(m, v) == 0u) {
        int axis;
        float inv_d[3] = {1.0f / d[0], 1.0f / d[1], 1.0f / d[2]};
        float t = cs_face_distance(p, d, inv_d, v, &axis);
        if (!cs_isfinite(t) || steps > max_steps) {
            *face_out = cs_dominant_face(d);
            return 0;
        }
        steps += 1;
        for (int a = 0; a < 3; ++a) {
            p[a] += d[a] * t;
        }
        int pos = cs_getf(d, axis) > 0.0f;
        cs_setf(p, axis, (float)(cs_geti(v, axis) + (pos ? 1 : 0)));
        cs_seti(v, axis, cs_geti(v, axis) + (pos ? 1 : -1));
        if (cs_geti(v, axis) < 0 || cs_geti(v, axis) >= m->dim[axis]) {
            *face_out = cs_face_index(axis, pos);
            return 0;
        }
        *entered = axis;
    }
    return 1;
}

// Henyey-Greenstein scattering (photon.rs `scatter`).
CS_FN void cs_scatter(float d[3], const cs_medium *med, cs_rng *rng) {
    float u = cs_rng_uniform(rng);
    float ct;
    if (cs_fabs(med->g) > 1e-6f) {
        float tmp = med->hg[0] / (med->hg[1] + med->hg[2] * u);
        ct = cs_clamp((med->hg[3] - tmp * tmp) * med->hg[4], -1.0f, 1.0f);
    } else {
        ct = 2.0f * u - 1.0f;
    }
    float st = cs_sqrt(cs_fmax(1.0f - ct * ct, 0.0f));
    float sp, cp;
    cs_sincos_turns(cs_rng_uniform(rng), &sp, &cp);
    if (cs_fabs(d[2]) > 0.99999f) {
        float z = d[2] > 0.0f ? ct : -ct;
        d[0] = st * cp;
        d[1] = st * sp;
        d[2] = z;
        return;
    }
    float tmp = cs_sqrt(1.0f - d[2] * d[2]);
    float k = st / tmp;
    float n0 = k * (d[0] * d[2] * cp - d[1] * sp) + d[0] * ct;
    float n1 = k * (d[1] * d[2] * cp + d[0] * sp) + d[1] * ct;
    float n2 = -st * cp * tmp + d[2] * ct;
    d[0] = n0;
    d[1] = n1;
    d[2] = n2;
}

#define CS_CROSS_ENTER 0
#define CS_CROSS_REFLECT 1
#define CS_CROSS_ESCAPE 2

CS_FN int cs_cross(const cs_model *m, cs_rng *rng, float d[3], uint32_t cur, uint32_t nl, int axis) {
    float n1 = cur < m->nmedia ? m->media[cur].n : m->n0;
    float n2 = nl == 0u ? m->n0 : (nl < m->nmedia ? m->media[nl].n : m->n0);
    if (m->do_mismatch && n1 != n2) {
        float ct;
        float r = cs_fresnel(n1, n2, cs_fabs(cs_getf(d, axis)), &ct);
        if (r >= 1.0f || cs_rng_uniform(rng) < r) {
            cs_setf(d, axis, -cs_getf(d, axis));
            return CS_CROSS_REFLECT;
        }
        cs_refract(d, axis, n1 / n2, ct);
    }
    return nl == 0u ? CS_CROSS_ESCAPE : CS_CROSS_ENTER;
}

CS_FN void cs_escape(const cs_model *m, cs_record *rec, uint32_t face, const float p[3], const float d[3],
                     float w) {
    rec->fate = CS_FATE_ESCAPED;
    rec->face = face;
    rec->exit_weight = cs_q(w);
    for (uint32_t k = 0; k < m->ndet; ++k) {
        const float *det = m->det + 4u * k;
        float dx = p[0] - det[0];
        float dy = p[1] - det[1];
        float dz = p[2] - det[2];
        if (dx * dx + dy * dy + dz * dz <= det[3] * det[3]) {
            rec->detector = (int32_t)k;
            for (int a = 0; a < 3; ++a) {
                rec->exit_pos[a] = p[a];
                rec->exit_dir[a] = d[a];
            }
            break;
        }
    }
}

#define CS_STOP_LIMIT 0
#define CS_STOP_FACE 1
#define CS_STOP_INTERFACE 2

// Simulates photon `index`; deposits go to `deposit` (CS_ADD_U64), the per-medium path (grid
// units, only when the job has detectors) to `path` (m->nmedia floats).
CS_FN void cs_run_photon(const cs_model *m, uint64_t index, uint64_t *deposit, float *path, cs_record *rec) {
    cs_rng rng;
    cs_rng_init(&rng, m->seed, index);
    float p[3], d[3];
    float w0 = cs_launch(m, &rng, p, d);
    uint64_t launched = cs_q(w0);
    rec->fate = CS_FATE_EXHAUSTED;
    rec->face = 0;
    rec->launched = launched;
    rec->specular = 0;
    rec->exit_weight = 0;
    rec->roulette_gain = 0;
    rec->scatters = 0;
    rec->detector = -1;
    rec->end_gate = 0;
    int track = m->ndet > 0u;
    if (track) {
        for (uint32_t k = 0; k < m->nmedia; ++k) {
            path[k] = 0.0f;
        }
    }
    if (launched == 0u) {
        return;
    }
    int32_t v[3];
    int entered;
    uint32_t never_face;
    if (!cs_enter(m, p, d, v, &entered, &never_face)) {
        rec->fate = CS_FATE_NEVER;
        rec->face = never_face;
        rec->exit_weight = launched;
        return;
    }
    uint32_t cur = cs_label(m, v);
    float w = w0;
    if (entered >= 0 && m->do_specular) {
        float n_in = cur < m->nmedia ? m->media[cur].n : m->n0;
        if (n_in != m->n0) {
            float ct;
            float r = cs_fresnel(m->n0, n_in, cs_fabs(cs_getf(d, entered)), &ct);
            w *= 1.0f - r;
            rec->specular = launched - cs_min_u64(cs_q(w), launched);
        }
    }
    uint64_t qw = cs_q(w);
    float lopt = 0.0f;
    float s_rem = -cs_ln(cs_rng_uniform_open(&rng));
    uint64_t voxels = m->voxels;
    uint32_t segments = 0;
    for (;;) {
        segments += 1u;
        if (segments > CS_MAX_SEGMENTS) {
            rec->fate = CS_FATE_STEPLIMIT;
            rec->exit_weight = qw;
            break;
        }
        if (cur >= m->nmedia) {
            rec->fate = CS_FATE_EXHAUSTED;
            rec->exit_weight = cs_q(w);
            break;
        }
        const cs_medium *med = &m->media[cur];
        float s_dist = med->mus_g > 0.0f ? s_rem * med->inv_mus_g : CS_INF;
        float t_dist = (m->l1 - lopt) * med->inv_nl;
        if (t_dist <= 0.0f) {
            rec->fate = CS_FATE_ALIVE;
            rec->exit_weight = cs_q(w);
            break;
        }
        int scatter_first = s_dist <= t_dist;
        float limit = scatter_first ? s_dist : t_dist;
        float p0[3] = {p[0], p[1], p[2]};
        float traveled = 0.0f;
        int one_jump = 1;
        float near = CS_INF;
        for (int a = 0; a < 3; ++a) {
            near = cs_fmin(cs_fmin(near, p[a]), m->dimf[a] - p[a]);
        }
        // 1/d per axis, computed only when a face distance is needed (photon.rs does the same;
        // d is constant within a segment, so when it is computed does not change its bits).
        float inv_d[3] = {0.0f, 0.0f, 0.0f};
        int have_inv = 0;
        float t_box;
        int box_axis;
        if (limit * 1.001f + 0.001f < near) {
            t_box = CS_INF;
            box_axis = 0;
        } else {
            inv_d[0] = 1.0f / d[0];
            inv_d[1] = 1.0f / d[1];
            inv_d[2] = 1.0f / d[2];
            have_inv = 1;
            t_box = cs_box_exit(p, d, inv_d, m->dimf, &box_axis);
        }
        int stop;
        int s_axis = 0, s_pos = 0;
        int32_t nv[3] = {0, 0, 0};
        uint32_t nl = 0;
        for (;;) {
            float rem = limit - traveled;
            uint32_t dm = cs_dist(m, v);
            if (dm > 1u) {
                float safe = (float)dm - 1.01f;
                float to_box = t_box - traveled;
                if (to_box <= rem && to_box <= safe) {
                    int pos = cs_getf(d, box_axis) > 0.0f;
                    for (int a = 0; a < 3; ++a) {
                        p[a] = cs_clamp(p[a] + d[a] * to_box, 0.0f, m->dimf[a]);
                    }
                    cs_setf(p, box_axis, pos ? m->dimf[box_axis] : 0.0f);
                    for (int a = 0; a < 3; ++a) {
                        v[a] = cs_mini(cs_f2i_sat(p[a]), m->dim[a] - 1);
                    }
                    traveled = cs_fmax(t_box, traveled);
                    stop = CS_STOP_FACE;
                    s_axis = box_axis;
                    s_pos = pos;
                    break;
                }
                float step = rem <= safe ? rem : safe;
                for (int a = 0; a < 3; ++a) {
                    p[a] += d[a] * step;
                    v[a] = cs_mini(cs_f2i_sat(p[a]), m->dim[a] - 1);
                }
                if (rem <= safe) {
                    traveled = limit;
                    stop = CS_STOP_LIMIT;
                    break;
                }
                traveled += safe;
                one_jump = 0;
                continue;
            }
            one_jump = 0;
            if (!have_inv) {
                inv_d[0] = 1.0f / d[0];
                inv_d[1] = 1.0f / d[1];
                inv_d[2] = 1.0f / d[2];
                have_inv = 1;
            }
            int axis;
            float t = cs_face_distance(p, d, inv_d, v, &axis);
            if (rem <= t) {
                for (int a = 0; a < 3; ++a) {
                    p[a] += d[a] * rem;
                }
                traveled = limit;
                stop = CS_STOP_LIMIT;
                break;
            }
            for (int a = 0; a < 3; ++a) {
                p[a] += d[a] * t;
            }
            traveled += t;
            int pos = cs_getf(d, axis) > 0.0f;
            cs_setf(p, axis, (float)(cs_geti(v, axis) + (pos ? 1 : 0)));
            nv[0] = v[0];
            nv[1] = v[1];
            nv[2] = v[2];
            cs_seti(nv, axis, cs_geti(nv, axis) + (pos ? 1 : -1));
            if (cs_geti(nv, axis) < 0 || cs_geti(nv, axis) >= m->dim[axis]) {
                stop = CS_STOP_FACE;
                s_axis = axis;
                s_pos = pos;
                break;
            }
            nl = cs_label(m, nv);
            if (nl != cur) {
                stop = CS_STOP_INTERFACE;
                s_axis = axis;
                s_pos = pos;
                break;
            }
            v[0] = nv[0];
            v[1] = nv[1];
            v[2] = nv[2];
        }
        if (med->mua_g > 0.0f && traveled > 0.0f) {
            float att = cs_exp(-med->mua_g * traveled);
            float w_new = w * att;
            uint64_t qw_new = cs_q(w_new);
            uint64_t loss = cs_sat_sub(qw, qw_new);
            if (loss > 0u) {
                float x = cs_rng_uniform(&rng);
                float sstar = cs_clamp(cs_neg_ln_1m(x * (1.0f - att)) * med->inv_mua_g, 0.0f, traveled);
                int32_t sv[3];
                for (int a = 0; a < 3; ++a) {
                    sv[a] = cs_mini(cs_f2i_sat(p0[a] + d[a] * sstar), m->dim[a] - 1);
                }
                if (!one_jump && cs_label(m, sv) != cur) {
                    sv[0] = v[0];
                    sv[1] = v[1];
                    sv[2] = v[2];
                }
                uint64_t gate = cs_gate(m, lopt + sstar * med->nl);
                CS_ADD_U64(&deposit[gate * voxels + cs_index(m, sv)], loss);
            }
            w = w_new;
            qw = qw_new;
        }
        lopt += traveled * med->nl;
        if (track && cur < m->nmedia) {
            path[cur] += traveled;
        }
        if (qw == 0u) {
            rec->fate = CS_FATE_EXHAUSTED;
            break;
        }
        if (stop == CS_STOP_LIMIT) {
            if (!scatter_first) {
                rec->fate = CS_FATE_ALIVE;
                rec->exit_weight = qw;
                break;
            }
            if (m->has_roulette && w < m->roul_threshold) {
                float x = cs_rng_uniform(&rng);
                if (x * m->roul_factor < 1.0f) {
                    w *= m->roul_factor;
                    uint64_t after = cs_q(w);
                    rec->roulette_gain += cs_sat_sub(after, qw);
                    qw = after;
                } else {
                    rec->fate = CS_FATE_ROULETTE;
                    rec->exit_weight = cs_q(w);
                    break;
                }
            }
            cs_scatter(d, med, &rng);
            rec->scatters = rec->scatters == 0xffffffffu ? rec->scatters : rec->scatters + 1u;
            s_rem = -cs_ln(cs_rng_uniform_open(&rng));
        } else if (stop == CS_STOP_FACE) {
            s_rem = cs_fmax(s_rem - traveled * med->mus_g, 0.0f);
            uint32_t face = cs_face_index(s_axis, s_pos);
            uint32_t fb = m->faces[face];
            if (fb == CS_FACE_ABSORB) {
                cs_escape(m, rec, face, p, d, w);
                break;
            } else if (fb == CS_FACE_MIRROR) {
                cs_setf(d, s_axis, -cs_getf(d, s_axis));
            } else if (fb == CS_FACE_FRESNEL) {
                if (m->do_mismatch && med->n != m->n0) {
                    float ct;
                    float r = cs_fresnel(med->n, m->n0, cs_fabs(cs_getf(d, s_axis)), &ct);
                    if (r >= 1.0f || cs_rng_uniform(&rng) < r) {
                        cs_setf(d, s_axis, -cs_getf(d, s_axis));
                        continue;
                    }
                    cs_refract(d, s_axis, med->n / m->n0, ct);
                }
                cs_escape(m, rec, face, p, d, w);
                break;
            } else {
                // Cyclic.
                int32_t cv[3] = {v[0], v[1], v[2]};
                cs_seti(cv, s_axis, s_pos ? 0 : m->dim[s_axis] - 1);
                uint32_t cl = cs_label(m, cv);
                float np = s_pos ? 0.0f : m->dimf[s_axis];
                int c = cs_cross(m, &rng, d, cur, cl, s_axis);
                if (c == CS_CROSS_ENTER) {
                    cs_setf(p, s_axis, np);
                    v[0] = cv[0];
                    v[1] = cv[1];
                    v[2] = cv[2];
                    cur = cl;
                } else if (c == CS_CROSS_ESCAPE) {
                    cs_escape(m, rec, face, p, d, w);
                    break;
                }
            }
        } else {
            s_rem = cs_fmax(s_rem - traveled * med->mus_g, 0.0f);
            int c = cs_cross(m, &rng, d, cur, nl, s_axis);
            if (c == CS_CROSS_ENTER) {
                v[0] = nv[0];
                v[1] = nv[1];
                v[2] = nv[2];
                cur = nl;
            } else if (c == CS_CROSS_ESCAPE) {
                cs_escape(m, rec, cs_face_index(s_axis, s_pos), p, d, w);
                break;
            }
        }
    }
    rec->end_gate = (uint32_t)cs_gate(m, lopt);
}

// Totals per photon range (u64 each): the Rust driver reads them in this order.
#define CS_T_PHOTONS 0
#define CS_T_LAUNCHED 1
#define CS_T_SPECULAR 2
#define CS_T_ROULETTE_GAINED 3
#define CS_T_ROULETTE_KILLED 4
#define CS_T_ALIVE 5
#define CS_T_ESCAPED 6 // 6 faces
#define CS_T_COUNT 12

// Most media whose path lengths a photon tracks for detectors on the GPU (a per-thread array).
#define CS_MAX_TRACK 32

// u32 words of one detected photon: photon (2), detector, scatters, exit_pos (3), exit_dir (3),
// weight (2), then path per medium in grid units (nmedia floats).
#define CS_DET_HEAD 12

// Adds a photon's record to running totals (engine.rs `Partial::add`).
CS_FN void cs_totals_add(uint64_t t[CS_T_COUNT], const cs_record *r) {
    t[CS_T_PHOTONS] += 1u;
    t[CS_T_LAUNCHED] += r->launched;
    t[CS_T_SPECULAR] += r->specular;
    t[CS_T_ROULETTE_GAINED] += r->roulette_gain;
    if (r->fate == CS_FATE_ESCAPED || r->fate == CS_FATE_NEVER) {
        // Unrolled selects rather than t[6 + face]: keeps t in registers on a GPU.
        CS_UNROLL
        for (uint32_t k = 0; k < 6u; ++k) {
            t[CS_T_ESCAPED + k] += r->face == k ? r->exit_weight : 0u;
        }
    } else if (r->fate == CS_FATE_ALIVE || r->fate == CS_FATE_STEPLIMIT) {
        t[CS_T_ALIVE] += r->exit_weight;
    } else if (r->fate == CS_FATE_ROULETTE) {
        t[CS_T_ROULETTE_KILLED] += r->exit_weight;
    }
}

// Words of one photon's record in its canonical encoding (photon.rs `PhotonRecord::to_bytes`).
#define CS_RECORD_WORDS 16

// Writes a photon's record in its canonical 64-byte encoding as 16 u32 words (little-endian
// words are its bytes): the Merkle leaves a manager samples. `deposited` follows from the
// per-photon conservation the CPU engine holds exactly (launched + roulette_gain == specular +
// deposited + exit_weight), so the walk does not carry it.
CS_FN void cs_record_encode(const cs_record *r, uint64_t index, uint32_t *o) {
    uint32_t has_det = r->detector >= 0 ? 1u : 0u;
    uint32_t face = (r->fate == CS_FATE_ESCAPED || r->fate == CS_FATE_NEVER) ? r->face : 0u;
    uint64_t deposited = r->launched + r->roulette_gain - r->specular - r->exit_weight;
    uint64_t v[5] = {r->launched, r->specular, deposited, r->exit_weight, r->roulette_gain};
    o[0] = (uint32_t)index;
    o[1] = (uint32_t)(index >> 32);
    o[2] = (r->fate & 0xffu) | ((face & 0xffu) << 8) | (has_det << 16);
    o[3] = has_det ? ((uint32_t)r->detector & 0xffffu) : 0u;
    for (int k = 0; k < 5; ++k) {
        o[4 + 2 * k] = (uint32_t)v[k];
        o[5 + 2 * k] = (uint32_t)(v[k] >> 32);
    }
    o[14] = r->scatters;
    o[15] = r->end_gate;
}

// Appends a detected photon to `buf` (slot from the shared counter); the host sorts by photon.
CS_FN void cs_detected_write(const cs_model *m, const cs_record *r, uint64_t index, const float *path,
                             uint32_t *count, uint32_t *buf, uint32_t cap) {
    uint32_t slot = CS_INC_U32(count);
    if (slot >= cap) {
        return; // the host sees count > cap and fails the run rather than lose a photon
    }
    uint32_t *o = buf + (uint64_t)slot * (CS_DET_HEAD + m->nmedia);
    o[0] = (uint32_t)index;
    o[1] = (uint32_t)(index >> 32);
    o[2] = (uint32_t)r->detector;
    o[3] = r->scatters;
    for (int a = 0; a < 3; ++a) {
        o[4 + a] = cs_f2u(r->exit_pos[a]);
        o[7 + a] = cs_f2u(r->exit_dir[a]);
    }
    o[10] = (uint32_t)r->exit_weight;
    o[11] = (uint32_t)(r->exit_weight >> 32);
    for (uint32_t k = 0; k < m->nmedia; ++k) {
        o[CS_DET_HEAD + k] = cs_f2u(path[k]);
    }
}

#endif
