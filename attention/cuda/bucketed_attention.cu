// attention/cuda/bucketed_attention.cu — AnnSA: each query attends to the cached keys of its probe buckets (ranges
// of the bucket-sorted permutation) plus the whole current frame, with an online softmax.
//
// One warp per (head, query). Keys are taken 32 at a time, one per lane: the lane gathers its key row (16-byte
// loads) and dots it with the query (in shared memory, read as a broadcast); the warp then updates the running max,
// and for P·V each lane owns D/32 output dims and reads, key by key, the matching slice of the V row (coalesced).
// Per query this is Σ_probes |bucket| + N keys, so the kernel's cost follows the density of the sparse pattern.
#include "device_utils.cuh"
#include "kernels.cuh"

namespace dc::cuda::kernels {
namespace {

using namespace dc::cuda::dev;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename T, int D>
struct QueryState {
    static constexpr int kDpl = D / 32;  // output dims per lane
    const float* q;                      // [D] this warp's query (shared memory)
    float acc[kDpl];
    float m;  // running max, log2 units (warp-uniform)
    float l;  // this lane's share of the running sum

    // Scores one batch of up to 32 keys: lane j's key is row koff (or none when koff < 0) of kbase/vbase.
    __device__ __forceinline__ void batch(const T* kbase, const T* vbase, int64_t koff, int64_t voff, float kb,
                                          float scale_log2) {
        const int lane = static_cast<int>(threadIdx.x) & 31;
        float x = neg_inf();
        if (koff >= 0) {
            const T* kr = kbase + koff;
            float d = 0.f;
#pragma unroll
            for (int d0 = 0; d0 < D; d0 += 8) {
                float kf[8];
                load8(kr + d0, kf);
                const float4 qa = *reinterpret_cast<const float4*>(q + d0);
                const float4 qb = *reinterpret_cast<const float4*>(q + d0 + 4);
                d = fmaf(qa.x, kf[0], d);
                d = fmaf(qa.y, kf[1], d);
                d = fmaf(qa.z, kf[2], d);
                d = fmaf(qa.w, kf[3], d);
                d = fmaf(qb.x, kf[4], d);
                d = fmaf(qb.y, kf[5], d);
                d = fmaf(qb.z, kf[6], d);
                d = fmaf(qb.w, kf[7], d);
            }
            x = fmaf(d, scale_log2, kb);
        }
        const float bm = warp_max(x);
        if (bm > m) {  // warp-uniform
            const float alpha = exp2_fast(m - bm);
            m = bm;
            l *= alpha;
#pragma unroll
            for (int i = 0; i < kDpl; ++i) acc[i] *= alpha;
        }
        const float mu = m == neg_inf() ? 0.f : m;
        const float p = koff >= 0 ? exp2_fast(x - mu) : 0.f;
        l += p;
        for (int j = 0; j < 32; ++j) {
            const long long vj = __shfl_sync(kFullMask, static_cast<long long>(koff >= 0 ? voff : -1), j);
            const float pj = __shfl_sync(kFullMask, p, j);
            if (vj < 0) continue;  // warp-uniform
            const T* vr = vbase + vj + lane * kDpl;
#pragma unroll
            for (int i = 0; i < kDpl; ++i) acc[i] = fmaf(pj, to_float(vr[i]), acc[i]);
        }
    }
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 2) bucketed_kernel(const BucketedArgs ba, float scale_log2) {
    __shared__ __align__(16) float qs[kWarps][D];
    const DenseArgs& a = ba.dense;
    const int warp = static_cast<int>(threadIdx.x) >> 5;
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int n = static_cast<int>(blockIdx.x) * kWarps + warp;
    const int h = static_cast<int>(blockIdx.y);
    if (n >= a.N) return;  // warp-uniform; no block barrier below

    const T* qr = static_cast<const T*>(a.q.ptr) + h * a.q.stride_h + n * a.q.stride_r;
    for (int d = lane; d < D; d += 32) qs[warp][d] = to_float(qr[d]);
    __syncwarp();

    QueryState<T, D> st;
    st.q = qs[warp];
#pragma unroll
    for (int i = 0; i < QueryState<T, D>::kDpl; ++i) st.acc[i] = 0.f;
    st.m = neg_inf();
    st.l = 0.f;
    const float slope = a.slope != nullptr ? a.slope[h] : 0.f;

    // Cached keys of each distinct probe bucket.
    const int nb = 1 << ba.bits;
    const int32_t* probes = ba.probes + (static_cast<int64_t>(h) * a.N + n) * ba.P;
    const int32_t* perm = ba.perm + h * a.T;
    const int32_t* offsets = ba.offsets + static_cast<int64_t>(h) * (nb + 1);
    const T* kc = a.T > 0 ? static_cast<const T*>(a.k_cache.ptr) + h * a.k_cache.stride_h : nullptr;
    const T* vc = a.T > 0 ? static_cast<const T*>(a.v_cache.ptr) + h * a.v_cache.stride_h : nullptr;
    int scored = 0;
    for (int pi = 0; pi < ba.P && a.T > 0; ++pi) {
        const int c = probes[pi] & (nb - 1);
        bool seen = false;
        for (int pj = 0; pj < pi; ++pj) seen = seen || (probes[pj] & (nb - 1)) == c;
        if (seen) continue;
        const int begin = offsets[c];
        const int end = offsets[c + 1];
        scored += end - begin;
        for (int b0 = begin; b0 < end; b0 += 32) {
            const int pos = b0 + lane;
            int64_t t = -1;
            if (pos < end) {
                t = perm[pos];
                if (t >= a.T) t = -1;
            }
            float kb = 0.f;
            if (t >= 0) {
                const float bias = a.bias != nullptr ? a.bias[h * a.bias_stride_h + t] : 0.f;
                const int64_t fr = a.frames != nullptr ? a.frames[t] : a.frame;
                kb = (bias - slope * static_cast<float>(a.frame - fr)) * kLog2e;
            }
            st.batch(kc, vc, t >= 0 ? t * a.k_cache.stride_r : -1, t >= 0 ? t * a.v_cache.stride_r : -1, kb,
                     scale_log2);
        }
    }

    // The current frame, densely.
    const T* ku = static_cast<const T*>(a.k_cur.ptr) + h * a.k_cur.stride_h;
    const T* vu = static_cast<const T*>(a.v_cur.ptr) + h * a.v_cur.stride_h;
    for (int b0 = 0; b0 < a.N; b0 += 32) {
        const int u = b0 + lane;
        const bool ok = u < a.N;
        st.batch(ku, vu, ok ? u * a.k_cur.stride_r : -1, ok ? u * a.v_cur.stride_r : -1, 0.f, scale_log2);
    }

    const float l = warp_sum(st.l);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    T* out = static_cast<T*>(a.out) + h * a.out_stride_h + n * a.out_stride_n + lane * QueryState<T, D>::kDpl;
#pragma unroll
    for (int i = 0; i < QueryState<T, D>::kDpl; ++i) out[i] = from_float<T>(st.acc[i] * inv);
    if (lane == 0) ba.n_scored[static_cast<int64_t>(h) * a.N + n] = scored;
}

template <typename T>
cudaError_t launch(const BucketedArgs& ba, cudaStream_t stream) {
    const DenseArgs& a = ba.dense;
    const dim3 grid(static_cast<unsigned>(ceil_div(a.N, kWarps)), static_cast<unsigned>(a.H));
    const float scale_log2 = kLog2e / sqrtf(static_cast<float>(a.D));
    void (*kernel)(const BucketedArgs, float) = a.D == 32   ? bucketed_kernel<T, 32>
                                                : a.D == 64 ? bucketed_kernel<T, 64>
                                                            : bucketed_kernel<T, 128>;
    DC_LAUNCH(kernel, grid, kThreads, 0, stream, ba, scale_log2);
    return cudaGetLastError();
}

bool rows_ok(const Rows& r, int esz) {
    return r.ptr != nullptr && reinterpret_cast<uintptr_t>(r.ptr) % 16 == 0 && (r.stride_h * esz) % 16 == 0 &&
           (r.stride_r * esz) % 16 == 0;
}

}  // namespace

cudaError_t bucketed_attention(const BucketedArgs& ba, cudaStream_t stream) {
    const DenseArgs& a = ba.dense;
    if (a.H < 0 || a.N < 0 || a.T < 0 || a.T > 0x7fffffff || (a.D != 32 && a.D != 64 && a.D != 128) || ba.P < 0 ||
        ba.bits < 1 || ba.bits > 16 || a.H > 65535)
        return cudaErrorInvalidValue;
    if (a.H == 0 || a.N == 0) return cudaSuccess;
    const int esz = a.dtype == DType::bf16 ? 2 : 4;
    if (!rows_ok(a.k_cur, esz) || !rows_ok(a.v_cur, esz) || a.q.ptr == nullptr || a.out == nullptr ||
        ba.n_scored == nullptr || (ba.P > 0 && ba.probes == nullptr))
        return cudaErrorInvalidValue;
    if (a.T > 0 &&
        (!rows_ok(a.k_cache, esz) || !rows_ok(a.v_cache, esz) || ba.perm == nullptr || ba.offsets == nullptr))
        return cudaErrorInvalidValue;
    return a.dtype == DType::bf16 ? launch<__nv_bfloat16>(ba, stream) : launch<float>(ba, stream);
}

}  // namespace dc::cuda::kernels
