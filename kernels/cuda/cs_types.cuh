// Fixed-width integer types and function qualifiers shared by every kernel header, so the
// same header compiles under NVRTC (device code) and as plain C/C++ on the host (the
// bit-for-bit checks in kernels/tests compile these headers with the host `cc`).
#ifndef CS_TYPES_CUH
#define CS_TYPES_CUH

#ifdef __CUDACC__
// NVRTC has no <stdint.h>: define the widths it guarantees.
typedef unsigned int uint32_t;
typedef int int32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;
typedef unsigned short uint16_t;
typedef unsigned char uint8_t;
#define CS_FN __device__ __forceinline__
#define CS_CONST __device__ __constant__
#define CS_UNROLL _Pragma("unroll")
// Integer atomics: the order of adds never changes an integer sum, so tallies are exact.
#define CS_ADD_U64(ptr, v) atomicAdd((unsigned long long *)(ptr), (unsigned long long)(v))
#define CS_INC_U32(ptr) atomicAdd((unsigned int *)(ptr), 1u)
#else
#include <stdint.h>
#include <string.h>
#define CS_FN static inline
#define CS_CONST static const
#define CS_UNROLL
// The host harness runs one thread: plain adds.
#define CS_ADD_U64(ptr, v) (*(ptr) += (uint64_t)(v))
CS_FN uint32_t cs_inc_u32(uint32_t *p) { return (*p)++; }
#define CS_INC_U32(ptr) cs_inc_u32(ptr)
#endif

// Reinterpret float <-> bits without touching the value.
CS_FN uint32_t cs_f2u(float x) {
#ifdef __CUDACC__
    return __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
#endif
}

CS_FN float cs_u2f(uint32_t u) {
#ifdef __CUDACC__
    return __uint_as_float(u);
#else
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
#endif
}

// 32-bit rotate right by n (1..31) and byte swap: one funnel shift / byte permute on a GPU.
CS_FN uint32_t cs_rotr(uint32_t x, uint32_t n) {
#ifdef __CUDACC__
    return __funnelshift_r(x, x, n);
#else
    return (x >> n) | (x << (32u - n));
#endif
}

CS_FN uint32_t cs_bswap(uint32_t x) {
#ifdef __CUDACC__
    return __byte_perm(x, 0, 0x0123);
#else
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
#endif
}

#endif
