// attention/cuda/lsh_codes.cu — LSH codes: the sign bits of random projections, one thread per row.
// A block takes 256 rows of one (batch, head); the head's planes [D, bits] sit in shared memory and every thread
// reads the same plane entry at the same time (broadcast), so the kernel streams x once.
#include "device_utils.cuh"
#include "kernels.cuh"

namespace dc::cuda::kernels {
namespace {

using namespace dc::cuda::dev;

constexpr int kThreads = 256;
constexpr int kMaxBits = 16;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    lsh_codes_kernel(const T* __restrict__ x, const float* __restrict__ planes, int H, int64_t rows, int D, int bits,
                     int32_t* __restrict__ codes) {
    float* pl = dynamic_smem<float>();  // [D, bits] of this block's head
    const int64_t bh = blockIdx.y;      // batch · H + head
    const int h = static_cast<int>(bh % H);
    for (int i = static_cast<int>(threadIdx.x); i < D * bits; i += kThreads) pl[i] = planes[h * D * bits + i];
    __syncthreads();

    const int64_t t = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
    if (t >= rows) return;
    const T* row = x + (bh * rows + t) * D;
    float acc[kMaxBits];
#pragma unroll
    for (int b = 0; b < kMaxBits; ++b) acc[b] = 0.f;
    auto add = [&](float xv, int d) {
#pragma unroll
        for (int b = 0; b < kMaxBits; ++b)
            if (b < bits) acc[b] = fmaf(xv, pl[d * bits + b], acc[b]);
    };
    if ((D & 7) == 0) {
        for (int d0 = 0; d0 < D; d0 += 8) {
            float f[8];
            load8(row + d0, f);
#pragma unroll
            for (int e = 0; e < 8; ++e) add(f[e], d0 + e);
        }
    } else {
        for (int d = 0; d < D; ++d) add(to_float(row[d]), d);
    }
    int32_t code = 0;
#pragma unroll
    for (int b = 0; b < kMaxBits; ++b)
        if (b < bits && acc[b] > 0.f) code |= 1 << b;
    codes[bh * rows + t] = code;
}

}  // namespace

cudaError_t lsh_codes(DType dtype, const void* x, const float* planes, int B, int H, int64_t T, int D, int bits,
                      int32_t* codes, cudaStream_t stream) {
    if (B < 0 || H < 0 || T < 0 || D < 1 || bits < 1 || bits > kMaxBits) return cudaErrorInvalidValue;
    if (B == 0 || H == 0 || T == 0) return cudaSuccess;
    const size_t smem = static_cast<size_t>(D) * bits * sizeof(float);
    const int64_t blocks_x = ceil_div(T, kThreads);
    if (smem > 48 * 1024 || static_cast<int64_t>(B) * H > 65535 || blocks_x > 0x7fffffff) return cudaErrorInvalidValue;
    if (x == nullptr || planes == nullptr || codes == nullptr) return cudaErrorInvalidValue;
    if ((D & 7) == 0 && reinterpret_cast<uintptr_t>(x) % 16 != 0) return cudaErrorInvalidValue;  // load8
    const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(B * H));
    if (dtype == DType::bf16)
        DC_LAUNCH(lsh_codes_kernel<__nv_bfloat16>, grid, kThreads, smem, stream, static_cast<const __nv_bfloat16*>(x),
                  planes, H, T, D, bits, codes);
    else
        DC_LAUNCH(lsh_codes_kernel<float>, grid, kThreads, smem, stream, static_cast<const float*>(x), planes, H, T, D,
                  bits, codes);
    return cudaGetLastError();
}

}  // namespace dc::cuda::kernels
