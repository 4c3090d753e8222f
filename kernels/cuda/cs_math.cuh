// The transport kernel's own transcendental functions: the CUDA/C twin of
// kernels/src/transport/math.rs, operation for operation. Only + - * /, comparisons and bit
// reinterpretation, no fused multiply-add (NVRTC runs with --fmad=false; the host check
// compiles with -ffp-contract=off), no libm and no CUDA intrinsic, so every device computes
// the bits the CPU engine computes. Constants are written as f32 expressions (1.0f / 5040.0f)
// because Rust folds `1.0 / 5040.0` in f32 there; a double quotient rounded to float could
// differ in the last bit.
#ifndef CS_MATH_CUH
#define CS_MATH_CUH

#include "cs_types.cuh"

#define CS_ROUND_MAGIC 12582912.0f
#define CS_LOG2_E 1.44269504088896340736f
#define CS_SQRT2 1.41421356237309504880f
#define CS_INF (cs_u2f(0x7f800000u))
#define CS_NAN (cs_u2f(0x7fc00000u))

// Round to nearest even for |x| < 2^22. `volatile`-free: with fmad off and no fast math,
// neither NVRTC nor the host compiler may fold (x + M) - M.
CS_FN float cs_round_even(float x) { return (x + CS_ROUND_MAGIC) - CS_ROUND_MAGIC; }

CS_FN int cs_isnan(float x) { return x != x; }

// e^x.
CS_FN float cs_exp(float x) {
    const float LN2_HI = cs_u2f(0x3f317200u);
    const float LN2_LO = cs_u2f(0x35bfbe8eu);
    if (x < -87.33f) {
        return 0.0f;
    }
    if (x > 88.72f) {
        return CS_INF;
    }
    if (cs_isnan(x)) {
        return x;
    }
    float k = cs_round_even(x * CS_LOG2_E);
    float r = (x - k * LN2_HI) - k * LN2_LO;
    float p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = r * p + 1.0f / 120.0f;
    p = r * p + 1.0f / 24.0f;
    p = r * p + 1.0f / 6.0f;
    p = r * p + 0.5f;
    p = r * p + 1.0f;
    p = r * p + 1.0f;
    int ki = (int)k;
    if (ki > 127) {
        return p * cs_u2f(((uint32_t)(ki - 1 + 127)) << 23) * 2.0f;
    }
    return p * cs_u2f(((uint32_t)(ki + 127)) << 23);
}

// Natural logarithm.
CS_FN float cs_ln(float x) {
    const float LN2_HI = cs_u2f(0x3f317200u);
    const float LN2_LO = cs_u2f(0x35bfbe8eu);
    if (cs_isnan(x) || x < 0.0f) {
        return CS_NAN;
    }
    if (x == 0.0f) {
        return -CS_INF;
    }
    if (x == CS_INF) {
        return x;
    }
    uint32_t bits = cs_f2u(x);
    int e = -127;
    if (bits < 0x00800000u) {
        bits = cs_f2u(x * 8388608.0f);
        e -= 23;
    }
    e += (int)(bits >> 23);
    float m = cs_u2f((bits & 0x007fffffu) | 0x3f800000u);
    if (m > CS_SQRT2) {
        m *= 0.5f;
        e += 1;
    }
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float r = z * (2.0f / 9.0f) + 2.0f / 7.0f;
    r = z * r + 2.0f / 5.0f;
    r = z * r + 2.0f / 3.0f;
    r *= z;
    float hfsq = 0.5f * f * f;
    float ef = (float)e;
    return ef * LN2_HI + (f - (hfsq - (s * (hfsq + r) + ef * LN2_LO)));
}

// ln(1 + f) for f in [-0.2929, 0.4142].
CS_FN float cs_ln1p_kernel(float f) {
    float s = f / (2.0f + f);
    float z = s * s;
    float r = z * (2.0f / 9.0f) + 2.0f / 7.0f;
    r = z * r + 2.0f / 5.0f;
    r = z * r + 2.0f / 3.0f;
    r *= z;
    float hfsq = 0.5f * f * f;
    return f - (hfsq - s * (hfsq + r));
}

// -ln(1 - y) for y in [0, 1).
CS_FN float cs_neg_ln_1m(float y) {
    if (y < 1.0f / 64.0f) {
        float p = y * (1.0f / 5.0f) + 0.25f;
        p = y * p + 1.0f / 3.0f;
        p = y * p + 0.5f;
        p = y * p + 1.0f;
        return y * p;
    }
    if (y < 0.29f) {
        return -cs_ln1p_kernel(-y);
    }
    return -cs_ln(1.0f - y);
}

// (sin(2 pi u), cos(2 pi u)), angle in turns.
CS_FN void cs_sincos_turns(float u, float *sn, float *cs) {
    const float PIO2_HI = 1.57079632679489661923f;
    const float PIO2_LO = -4.371139e-8f;
    float t = 4.0f * u;
    float q = cs_round_even(t);
    float r = t - q;
    float a = r * PIO2_HI + r * PIO2_LO;
    float z = a * a;
    float sp = z * (1.0f / 362880.0f) - 1.0f / 5040.0f;
    sp = z * sp + 1.0f / 120.0f;
    sp = z * sp - 1.0f / 6.0f;
    float s = (a * z) * sp + a;
    float cp = z * (-1.0f / 3628800.0f) + 1.0f / 40320.0f;
    cp = z * cp - 1.0f / 720.0f;
    cp = z * cp + 1.0f / 24.0f;
    cp = z * cp - 0.5f;
    float c = z * cp + 1.0f;
    switch (((int)q) & 3) {
    case 0:
        *sn = s;
        *cs = c;
        break;
    case 1:
        *sn = c;
        *cs = -s;
        break;
    case 2:
        *sn = -s;
        *cs = -c;
        break;
    default:
        *sn = -c;
        *cs = s;
        break;
    }
}

#endif
