// attention/cuda/device_utils.cuh — device-side helpers shared by the kernels in attention/cuda/*.cu:
// the launch macro, dynamic shared memory, cp.async, the bf16 tensor-core MMA, conversions and warp reductions.
// Only .cu files include this header (it needs nvcc); launchers are declared in kernels.cuh.
//
//   DC_LAUNCH(my_kernel<64>, grid, block, smem_bytes, stream, args...);   // <<<...>>> in one place
//   float4* buf = dc::cuda::dev::dynamic_smem<float4>();
//   dc::cuda::dev::mma_bf16_16816(acc, a_frag, b0, b1);                  // acc[4] += A(16x16) · B(16x8)
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

// Kernel launch in one place (launch errors are collected with cudaGetLastError by each launcher).
#define DC_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)

namespace dc::cuda::dev {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float neg_inf() {
    return __int_as_float(0xff800000);
}

// Dynamic shared memory of the running kernel (16-byte aligned), typed.
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
    extern __shared__ __align__(16) unsigned char dc_dynamic_smem[];
    return reinterpret_cast<T*>(dc_dynamic_smem);
}

// ---- asynchronous global → shared copies (sm_80+) ---------------------------------------------------------------
// 16 bytes; both addresses 16-byte aligned. Bypasses L1 (.cg): streamed KV is read once per block.
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src) {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- tensor cores -------------------------------------------------------------------------------------------------
// d[4] += A · B with A 16×16 bf16 (row-major fragment a[4]), B 16×8 bf16 (column fragment b0, b1), fp32 accumulate.
// Fragment layout (PTX ISA, mma.m16n8k16; g = lane / 4, t = lane % 4; low half of a register = lower column/row):
//   a[0] = A[g][2t, 2t+1]   a[1] = A[g+8][2t, 2t+1]   a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   b0   = B[2t, 2t+1][g]   b1   = B[2t+8, 2t+9][g]
//   d[0], d[1] = D[g][2t, 2t+1]   d[2], d[3] = D[g+8][2t, 2t+1]
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- conversions --------------------------------------------------------------------------------------------------
// Two floats → one register of two bf16 (round to nearest even); lo lands in the low 16 bits.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    uint32_t r;
    memcpy(&r, &h, sizeof(r));
    return r;
}
__device__ __forceinline__ float bf16_lo(uint32_t w) {
    return __uint_as_float(w << 16);
}
__device__ __forceinline__ float bf16_hi(uint32_t w) {
    return __uint_as_float(w & 0xffff0000u);
}

// 2^x with the hardware approximation (relative error ~2^-22); exp2_fast(-inf) = 0.
__device__ __forceinline__ float exp2_fast(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// Element type → float, for the scalar kernels (float or __nv_bfloat16).
__device__ __forceinline__ float to_float(float x) {
    return x;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
    return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
    return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

// Loads 8 consecutive elements starting at p (16-byte aligned for bf16, 32-byte for float) as floats.
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&f)[8]) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        f[2 * i] = bf16_lo(w[i]);
        f[2 * i + 1] = bf16_hi(w[i]);
    }
}
__device__ __forceinline__ void load8(const float* p, float (&f)[8]) {
    const float4 a = *reinterpret_cast<const float4*>(p);
    const float4 b = *reinterpret_cast<const float4*>(p + 4);
    f[0] = a.x;
    f[1] = a.y;
    f[2] = a.z;
    f[3] = a.w;
    f[4] = b.x;
    f[5] = b.y;
    f[6] = b.z;
    f[7] = b.w;
}

// ---- warp reductions ----------------------------------------------------------------------------------------------
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

// Ceiling division for sizes.
template <typename A, typename B>
__host__ __device__ constexpr A ceil_div(A a, B b) {
    return (a + static_cast<A>(b) - 1) / static_cast<A>(b);
}

}  // namespace dc::cuda::dev
