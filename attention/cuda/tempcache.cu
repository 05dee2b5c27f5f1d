// attention/cuda/tempcache.cu — TempCache on the GPU: matching new tokens to cache entries, and merging in place.
//
// Match: a block takes kQB new tokens (their queries over all heads in shared memory, H·D floats each) and a slice
// of the candidates; each thread scores one candidate against the kQB queries at a time, keeps its best, and the
// block publishes per-token bests with one 64-bit atomicMax of (ordered score bits, inverted candidate position) —
// highest score first, then the lowest position. A second kernel turns bests into cache indices and cosines.
// Resolve: one block applies the one-to-one rule to a frame's matches on the device, so a commit needs no host
// round trip before merging and appending.
// Merge: one block per (idx, src) pair; the first pair naming a cache entry applies every pair naming it, in order,
// so that repeated entries give the sequential result without races.
#include "device_utils.cuh"
#include "kernels.cuh"

namespace dc::cuda::kernels {
namespace {

using namespace dc::cuda::dev;

constexpr int kThreads = 256;
constexpr int kQB = 16;  // new tokens per scoring block
constexpr int kMergeThreads = 128;

struct MatchParams {
    int H, N, D;
    int64_t T;
    Rows q_new, k_new, k_cache;
    const int64_t* cand_idx;
    int64_t C;
    unsigned long long* best;  // [N] packed (score, candidate), 0 = none
    int64_t* match;
    float* cos;
};

__device__ __forceinline__ unsigned long long pack_best(float s, int64_t c) {
    uint32_t u = __float_as_uint(s);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // order-preserving float → unsigned
    return (static_cast<unsigned long long>(u) << 32) | (0xffffffffu - static_cast<uint32_t>(c));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) match_score_kernel(const MatchParams mp) {
    float* qs = dynamic_smem<float>();  // [kQB, H·D] queries of tokens i0 .. i0 + kQB − 1
    const int hd = mp.H * mp.D;
    const int i0 = static_cast<int>(blockIdx.y) * kQB;
    const int tid = static_cast<int>(threadIdx.x);
    for (int e = tid; e < kQB * hd; e += kThreads) {
        const int j = e / hd;
        const int h = (e % hd) / mp.D;
        const int d = e % mp.D;
        const int i = i0 + j;
        qs[e] = i < mp.N
                    ? to_float(static_cast<const T*>(mp.q_new.ptr)[h * mp.q_new.stride_h + i * mp.q_new.stride_r + d])
                    : 0.f;
    }
    __syncthreads();

    float best_s[kQB];
    int64_t best_c[kQB];
#pragma unroll
    for (int j = 0; j < kQB; ++j) {
        best_s[j] = neg_inf();
        best_c[j] = -1;
    }
    const T* kc = static_cast<const T*>(mp.k_cache.ptr);
    for (int64_t c = static_cast<int64_t>(blockIdx.x) * kThreads + tid; c < mp.C;
         c += static_cast<int64_t>(gridDim.x) * kThreads) {
        const int64_t t = mp.cand_idx[c];
        if (t < 0 || t >= mp.T) continue;
        float acc[kQB];
#pragma unroll
        for (int j = 0; j < kQB; ++j) acc[j] = 0.f;
        for (int h = 0; h < mp.H; ++h) {
            const T* kr = kc + h * mp.k_cache.stride_h + t * mp.k_cache.stride_r;
            for (int d0 = 0; d0 < mp.D; d0 += 8) {
                float kf[8];
                load8(kr + d0, kf);
#pragma unroll
                for (int j = 0; j < kQB; ++j) {
                    const float* qj = qs + j * hd + h * mp.D + d0;
                    const float4 qa = *reinterpret_cast<const float4*>(qj);
                    const float4 qb = *reinterpret_cast<const float4*>(qj + 4);
                    float s = acc[j];
                    s = fmaf(qa.x, kf[0], s);
                    s = fmaf(qa.y, kf[1], s);
                    s = fmaf(qa.z, kf[2], s);
                    s = fmaf(qa.w, kf[3], s);
                    s = fmaf(qb.x, kf[4], s);
                    s = fmaf(qb.y, kf[5], s);
                    s = fmaf(qb.z, kf[6], s);
                    s = fmaf(qb.w, kf[7], s);
                    acc[j] = s;
                }
            }
        }
#pragma unroll
        for (int j = 0; j < kQB; ++j) {
            if (best_c[j] < 0 || acc[j] > best_s[j]) {  // candidates come in increasing order: first max wins
                best_s[j] = acc[j];
                best_c[j] = c;
            }
        }
    }
    const int lane = tid & 31;
#pragma unroll
    for (int j = 0; j < kQB; ++j) {
        unsigned long long pk = best_c[j] >= 0 ? pack_best(best_s[j], best_c[j]) : 0ull;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long other = __shfl_xor_sync(kFullMask, pk, o);
            pk = other > pk ? other : pk;
        }
        if (lane == 0 && pk != 0ull && i0 + j < mp.N) atomicMax(&mp.best[i0 + j], pk);
    }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) match_finish_kernel(const MatchParams mp) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int i = static_cast<int>(blockIdx.x) * (kThreads / 32) + (static_cast<int>(threadIdx.x) >> 5);
    if (i >= mp.N) return;  // warp-uniform
    const unsigned long long pk = mp.best[i];
    if (pk == 0ull) {
        if (lane == 0) {
            mp.match[i] = -1;
            mp.cos[i] = neg_inf();
        }
        return;
    }
    const int64_t c = static_cast<int64_t>(0xffffffffu - static_cast<uint32_t>(pk & 0xffffffffull));
    const int64_t t = mp.cand_idx[c];
    const T* kn = static_cast<const T*>(mp.k_new.ptr);
    const T* kc = static_cast<const T*>(mp.k_cache.ptr);
    float dot = 0.f, na = 0.f, nb = 0.f;
    for (int e = lane; e < mp.H * mp.D; e += 32) {
        const int h = e / mp.D;
        const int d = e % mp.D;
        const float x = to_float(kn[h * mp.k_new.stride_h + i * mp.k_new.stride_r + d]);
        const float y = to_float(kc[h * mp.k_cache.stride_h + t * mp.k_cache.stride_r + d]);
        dot = fmaf(x, y, dot);
        na = fmaf(x, x, na);
        nb = fmaf(y, y, nb);
    }
    dot = warp_sum(dot);
    na = warp_sum(na);
    nb = warp_sum(nb);
    if (lane == 0) {
        mp.match[i] = t;
        mp.cos[i] = dot / sqrtf(fmaxf(na * nb, 1e-16f));  // torch.cosine_similarity with eps = 1e-8
    }
}

template <typename T>
__global__ void __launch_bounds__(kMergeThreads) merge_kernel(const MergeArgs a) {
    __shared__ int s_m0, s_m1;
    __shared__ int64_t s_last;
    const int64_t j = blockIdx.x;
    const int64_t entry = a.idx[j];
    const int64_t src = a.src[j];
    if (entry < 0 || entry >= a.T || src < 0 || src >= a.N) return;  // block-uniform
    const int tid = static_cast<int>(threadIdx.x);
    auto valid_pair = [&](int64_t k) { return a.idx[k] == entry && a.src[k] >= 0 && a.src[k] < a.N; };

    // Only the first valid pair naming this entry works; it applies all of them in order.
    int earlier = 0;
    for (int64_t k = tid; k < j; k += kMergeThreads) earlier |= valid_pair(k) ? 1 : 0;
    if (__syncthreads_or(earlier)) return;
    if (tid == 0) {
        const int m0 = a.group_size[entry * a.group_size_stride];
        int m = m0;
        int64_t last = src;
        for (int64_t k = j; k < a.M; ++k) {
            if (!valid_pair(k)) continue;
            ++m;
            last = a.src[k];
        }
        s_m0 = m0;
        s_m1 = m;
        s_last = last;
    }
    __syncthreads();

    T* kc = static_cast<T*>(a.k_cache);
    T* vc = static_cast<T*>(a.v_cache);
    const T* kn = static_cast<const T*>(a.k_new.ptr);
    const T* vn = static_cast<const T*>(a.v_new.ptr);
    for (int e = tid; e < a.H * a.D; e += kMergeThreads) {
        const int h = e / a.D;
        const int d = e % a.D;
        T* vp = vc + h * a.vc_stride_h + entry * a.vc_stride_t + d;
        float v = to_float(*vp);
        float m = static_cast<float>(s_m0);
        for (int64_t k = j; k < a.M; ++k) {
            if (!valid_pair(k)) continue;
            const float x = to_float(vn[h * a.v_new.stride_h + a.src[k] * a.v_new.stride_r + d]);
            v = (m * v + x) / (m + 1.f);
            m += 1.f;
        }
        *vp = from_float<T>(v);
        kc[h * a.kc_stride_h + entry * a.kc_stride_t + d] = kn[h * a.k_new.stride_h + s_last * a.k_new.stride_r + d];
    }
    for (int h = tid; h < a.H; h += kMergeThreads)
        a.bias[h * a.bias_stride_h + entry * a.bias_stride_t] = logf(static_cast<float>(s_m1));
    if (tid == 0) {
        a.group_size[entry * a.group_size_stride] = s_m1;
        a.frames[entry * a.frames_stride] = a.frame;
    }
}

// One block: each new token i merges when its cosine (clamped to 1) reaches tau and no other such token matched
// to the same entry beats it (higher cosine, or equal and a lower index) — the host's one-to-one rule. Thread 0
// then lists, in token order, the merged pairs and the tokens left to append (a frame has a few hundred tokens).
constexpr int kResolveThreads = 256;

__global__ void __launch_bounds__(kResolveThreads)
    resolve_kernel(const int64_t* __restrict__ match, const float* __restrict__ cos, int N, double tau,
                   int64_t* __restrict__ plan) {
    int64_t* sm = dynamic_smem<int64_t>();                    // [N] matched entry
    float* sc = reinterpret_cast<float*>(sm + N);             // [N] clamped cosine
    uint8_t* merged = reinterpret_cast<uint8_t*>(sc + N);     // [N]
    const int tid = static_cast<int>(threadIdx.x);
    for (int i = tid; i < N; i += kResolveThreads) {
        sm[i] = match[i];
        sc[i] = fminf(cos[i], 1.f);  // NaN → 1, as the host's std::min(1.0, c)
    }
    __syncthreads();
    for (int i = tid; i < N; i += kResolveThreads) {
        bool ok = sm[i] >= 0 && static_cast<double>(sc[i]) >= tau;
        for (int j = 0; ok && j < N; ++j)
            if (j != i && sm[j] == sm[i] && static_cast<double>(sc[j]) >= tau &&
                (sc[j] > sc[i] || (sc[j] == sc[i] && j < i)))
                ok = false;
        merged[i] = ok ? 1 : 0;
    }
    __syncthreads();
    if (tid == 0) {
        int64_t* idx = plan + 2;
        int64_t* src = idx + N;
        int64_t* rest = src + N;
        int64_t m = 0, r = 0;
        for (int i = 0; i < N; ++i) {
            if (merged[i]) {
                idx[m] = sm[i];
                src[m++] = i;
            } else {
                rest[r++] = i;
            }
        }
        for (int64_t j = m; j < N; ++j) {
            idx[j] = -1;
            src[j] = 0;
        }
        for (int64_t j = r; j < N; ++j) rest[j] = 0;
        plan[0] = m;
        plan[1] = r;
    }
}

}  // namespace

size_t tempcache_match_workspace_bytes(int N) {
    return N > 0 ? static_cast<size_t>(N) * sizeof(unsigned long long) : 0;
}

cudaError_t tempcache_match(DType dtype, int H, int N, int D, int64_t T, Rows q_new, Rows k_new, Rows k_cache,
                            const int64_t* cand_idx, int64_t C, int64_t* match, float* cos, void* workspace,
                            size_t workspace_bytes, cudaStream_t stream) {
    if (H < 1 || N < 0 || D < 8 || D % 8 != 0 || T < 0 || C < 0 || C >= 0xffffffffll) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    if (match == nullptr || cos == nullptr || workspace == nullptr ||
        workspace_bytes < tempcache_match_workspace_bytes(N) || reinterpret_cast<uintptr_t>(workspace) % 8 != 0)
        return cudaErrorInvalidValue;
    const int esz = dtype == DType::bf16 ? 2 : 4;
    const bool score = C > 0 && T > 0;
    if (score && (k_cache.ptr == nullptr || reinterpret_cast<uintptr_t>(k_cache.ptr) % 16 != 0 ||
                  (k_cache.stride_h * esz) % 16 != 0 || (k_cache.stride_r * esz) % 16 != 0 || cand_idx == nullptr ||
                  q_new.ptr == nullptr || k_new.ptr == nullptr))
        return cudaErrorInvalidValue;
    const size_t smem = static_cast<size_t>(kQB) * H * D * sizeof(float);
    if (smem > 200 * 1024) return cudaErrorInvalidValue;

    MatchParams mp{H,     N,  D, T, q_new, k_new, k_cache, cand_idx, C, static_cast<unsigned long long*>(workspace),
                   match, cos};
    cudaError_t e = cudaMemsetAsync(workspace, 0, tempcache_match_workspace_bytes(N), stream);
    if (e != cudaSuccess) return e;
    if (score) {
        const int64_t blocks = ceil_div(C, kThreads);
        const dim3 grid(static_cast<unsigned>(blocks < 1024 ? blocks : 1024), static_cast<unsigned>(ceil_div(N, kQB)));
        void (*kernel)(const MatchParams) =
            dtype == DType::bf16 ? match_score_kernel<__nv_bfloat16> : match_score_kernel<float>;
        if (smem > 48 * 1024) {
            e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
            if (e != cudaSuccess) return e;
        }
        DC_LAUNCH(kernel, grid, kThreads, smem, stream, mp);
        e = cudaGetLastError();
        if (e != cudaSuccess) return e;
    }
    void (*finish)(const MatchParams) =
        dtype == DType::bf16 ? match_finish_kernel<__nv_bfloat16> : match_finish_kernel<float>;
    DC_LAUNCH(finish, static_cast<unsigned>(ceil_div(N, kThreads / 32)), kThreads, 0, stream, mp);
    return cudaGetLastError();
}

cudaError_t tempcache_merge(const MergeArgs& a, cudaStream_t stream) {
    if (a.H < 0 || a.D < 0 || a.T < 0 || a.M < 0 || a.N < 0 || a.M > 0x7fffffff) return cudaErrorInvalidValue;
    if (a.M == 0 || a.T == 0 || a.H == 0 || a.D == 0) return cudaSuccess;
    if (a.k_cache == nullptr || a.v_cache == nullptr || a.bias == nullptr || a.frames == nullptr ||
        a.group_size == nullptr || a.idx == nullptr || a.src == nullptr || a.k_new.ptr == nullptr ||
        a.v_new.ptr == nullptr)
        return cudaErrorInvalidValue;
    void (*kernel)(const MergeArgs) = a.dtype == DType::bf16 ? merge_kernel<__nv_bfloat16> : merge_kernel<float>;
    DC_LAUNCH(kernel, static_cast<unsigned>(a.M), kMergeThreads, 0, stream, a);
    return cudaGetLastError();
}

cudaError_t tempcache_resolve(const int64_t* match, const float* cos, int N, double tau, int64_t* plan,
                              cudaStream_t stream) {
    if (N < 0 || N > kMaxResolveTokens || plan == nullptr || (N > 0 && (match == nullptr || cos == nullptr)))
        return cudaErrorInvalidValue;
    const size_t smem = static_cast<size_t>(N) * (sizeof(int64_t) + sizeof(float) + 1);
    DC_LAUNCH(resolve_kernel, 1, kResolveThreads, smem, stream, match, cos, N, tau, plan);
    return cudaGetLastError();
}

}  // namespace dc::cuda::kernels
