// attention/cuda/annca.cu — AnnCA keep mask: a prompt token is kept for a head when it is valid and some query of the
// frame shares its code. One block per (batch, head): the block first marks every query code of the head in a
// bitmap of all 2^16 possible codes in shared memory (LSH codes have at most 16 bits), then each thread looks up the
// prompt tokens' codes — N + P work per block instead of N·P comparisons, so the call stays a few microseconds
// however many probes the queries carry.
#include "device_utils.cuh"
#include "kernels.cuh"

namespace dc::cuda::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kCodeBits = 16;                           // LSH codes are < 2^16 (at most 16 planes)
constexpr int kWords = (1 << kCodeBits) / 32;           // bitmap words

__global__ void __launch_bounds__(kThreads)
    annca_keep_kernel(const int32_t* __restrict__ q_codes, const int32_t* __restrict__ k_codes,
                      const uint8_t* __restrict__ valid, int H, int N, int P, uint8_t* __restrict__ keep) {
    __shared__ uint32_t seen[kWords];
    const int64_t bh = blockIdx.x;
    const int64_t b = bh / H;
    const int tid = static_cast<int>(threadIdx.x);
    for (int i = tid; i < kWords; i += kThreads) seen[i] = 0u;
    __syncthreads();
    const int32_t* q = q_codes + bh * N;
    for (int i = tid; i < N; i += kThreads) {
        const uint32_t c = static_cast<uint32_t>(q[i]);
        if (c < (1u << kCodeBits)) atomicOr(&seen[c >> 5], 1u << (c & 31));
    }
    __syncthreads();
    for (int p = tid; p < P; p += kThreads) {
        const uint32_t c = static_cast<uint32_t>(k_codes[bh * P + p]);
        const bool found = c < (1u << kCodeBits) && (seen[c >> 5] >> (c & 31) & 1u) != 0u;
        keep[bh * P + p] = (found && valid[b * P + p] != 0) ? 1 : 0;
    }
}

}  // namespace

cudaError_t annca_keep(const int32_t* q_codes, const int32_t* k_codes, const uint8_t* valid, int B, int H, int N, int P,
                       uint8_t* keep, cudaStream_t stream) {
    if (B < 0 || H < 0 || N < 0 || P < 0) return cudaErrorInvalidValue;
    if (B == 0 || H == 0 || P == 0) return cudaSuccess;
    if (static_cast<int64_t>(B) * H > 0x7fffffff || k_codes == nullptr || valid == nullptr || keep == nullptr ||
        (N > 0 && q_codes == nullptr))
        return cudaErrorInvalidValue;
    DC_LAUNCH(annca_keep_kernel, static_cast<unsigned>(B * H), kThreads, 0, stream, q_codes, k_codes, valid, H, N, P,
              keep);
    return cudaGetLastError();
}

}  // namespace dc::cuda::kernels
