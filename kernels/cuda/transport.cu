// Photon transport on the GPU: one thread per photon (grid-stride over the launch's range),
// the walk of cs_photon.cuh (bit-identical to the CPU engine), deposits and totals as u64
// integer atomics, detected photons appended to a buffer the host sorts.
//
// Kernel signature (kernels/src/cuda/sys.rs `launch_transport` passes exactly these):
//   transport_run(const uint32_t *prm, const uint16_t *labels, const uint8_t *dist,
//                 const float *media, const float *pattern, const float *det,
//                 uint64_t first, uint32_t count, uint64_t *deposit, uint64_t *totals,
//                 uint32_t *det_count, uint32_t *det_buf, uint32_t det_cap,
//                 uint32_t *records, uint32_t want_records)
// prm: CS_P_WORDS words (cs_model.cuh); totals: CS_T_COUNT u64; det_buf: det_cap records of
// CS_DET_HEAD + nmedia words; records: when want_records, count x CS_RECORD_WORDS words, photon
// first + i's canonical record at i (paid work: the Merkle leaves), else unused.

#include "cs_photon.cuh"

extern "C" __global__ void __launch_bounds__(128)
    transport_run(const uint32_t *__restrict__ prm, const uint16_t *__restrict__ labels,
                  const uint8_t *__restrict__ dist, const float *__restrict__ media,
                  const float *__restrict__ pattern, const float *__restrict__ det, uint64_t first,
                  uint32_t count, uint64_t *__restrict__ deposit, uint64_t *__restrict__ totals,
                  uint32_t *__restrict__ det_count, uint32_t *__restrict__ det_buf, uint32_t det_cap,
                  uint32_t *__restrict__ records, uint32_t want_records) {
    __shared__ cs_model sm;
    if (threadIdx.x == 0) {
        cs_model_load(prm, &sm);
        sm.labels = labels;
        sm.dist = dist;
        sm.media = (const cs_medium *)media;
        sm.pattern = pattern;
        sm.det = det;
    }
    __syncthreads();
    float path[CS_MAX_TRACK];
    uint64_t t[CS_T_COUNT];
    for (int k = 0; k < CS_T_COUNT; ++k) {
        t[k] = 0u;
    }
    uint32_t stride = gridDim.x * blockDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        cs_record rec;
        uint64_t index = first + i;
        cs_run_photon(&sm, index, deposit, path, &rec);
        cs_totals_add(t, &rec);
        if (rec.detector >= 0) {
            cs_detected_write(&sm, &rec, index, path, det_count, det_buf, det_cap);
        }
        if (want_records) {
            cs_record_encode(&rec, index, records + (uint64_t)i * CS_RECORD_WORDS);
        }
    }
    for (int k = 0; k < CS_T_COUNT; ++k) {
        if (t[k] != 0u) {
            CS_ADD_U64(&totals[k], t[k]);
        }
    }
}
