// attention/cuda/annca.cu — AnnCA keep mask: a prompt token is kept for a head when it is valid and some query of the
// frame shares its code. One block per (batch, head); the frame's query codes pass through shared memory in chunks
// and each thread checks one prompt token against them (N·P comparisons, a few thousand per block).
#include "device_utils.cuh"
#include "kernels.cuh"

namespace dc::cuda::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 1024;  // query codes staged per round

__global__ void __launch_bounds__(kThreads)
    annca_keep_kernel(const int32_t* __restrict__ q_codes, const int32_t* __restrict__ k_codes,
                      const uint8_t* __restrict__ valid, int H, int N, int P, uint8_t* __restrict__ keep) {
    __shared__ int32_t qs[kChunk];
    const int64_t bh = blockIdx.x;
    const int64_t b = bh / H;
    const int tid = static_cast<int>(threadIdx.x);
    const int32_t* q = q_codes + bh * N;
    for (int p0 = 0; p0 < P; p0 += kThreads) {
        const int p = p0 + tid;
        const bool active = p < P;
        const int32_t code = active ? k_codes[bh * P + p] : 0;
        bool found = false;
        for (int n0 = 0; n0 < N; n0 += kChunk) {
            const int count = N - n0 < kChunk ? N - n0 : kChunk;
            __syncthreads();  // the previous chunk is no longer read
            for (int i = tid; i < count; i += kThreads) qs[i] = q[n0 + i];
            __syncthreads();
            if (active && !found)
                for (int i = 0; i < count; ++i)
                    if (qs[i] == code) {
                        found = true;
                        break;
                    }
        }
        if (active) keep[bh * P + p] = (found && valid[b * P + p] != 0) ? 1 : 0;
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
