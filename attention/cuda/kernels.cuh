// attention/cuda/kernels.cuh — plain-CUDA launchers of the attention kernels: raw device pointers, element strides,
// sizes and a stream; each returns cudaError_t (launch errors included) and never synchronises. No torch here, so
// this header compiles with nvcc (the kernels) and with the host compiler (the torch adapter cuda_ops.cpp).
//
//   dc::cuda::kernels::DenseArgs a;   a.dtype = DType::bf16;  a.H = 6;  a.N = 256;  a.D = 64;  a.T = t;  ...
//   dc::cuda::kernels::DensePlan plan;
//   dense_attention_plan(a, &plan);                     // chunking for this device; plan.workspace_bytes
//   dense_attention(a, plan, workspace, stream);        // workspace: plan.workspace_bytes of device memory
//
// Layouts: a "rows" operand is [H, R, D] with element (h, r, d) at ptr[h·stride_h + r·stride_r + d] (the innermost
// dimension contiguous). Kernels that read rows with 16-byte vectors need ptr 16-byte aligned and both strides
// multiples of 16 bytes; the launchers return cudaErrorInvalidValue otherwise. Logits follow cuda_ops.h:
//   logit[h, i, t] = q[h, i]·k[h, t] / sqrt(D) + bias[h, t] − slope[h] · (frame − frames[t]).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace dc::cuda::kernels {

enum class DType : int { f32 = 0, bf16 = 1 };  // element type of q/k/v (and of the attention output)

struct Rows {
    const void* ptr = nullptr;  // element (h, r, d) at ptr[h·stride_h + r·stride_r + d]
    int64_t stride_h = 0;       // elements between heads
    int64_t stride_r = 0;       // elements between rows (tokens)
};

// ---- 1. split-KV dense attention (flash-decoding) ------------------------------------------------------------------
// Which bf16 kernel runs: wgmma (Hopper warpgroup MMA; D = 64 on an sm_90 device, in builds for sm_90a), mma_sync
// (tensor-core mma.sync, every D, sm_80 and later), or best = wgmma where it can run, else mma_sync. float32 inputs
// always run the CUDA-core kernel. Asking for wgmma where it cannot run returns cudaErrorNotSupported.
enum class DenseKernel : int { best = 0, mma_sync = 1, wgmma = 2 };
// One frame of queries over [cache ‖ current frame]; the current frame's keys have bias 0 and distance 0.
struct DenseArgs {
    DType dtype = DType::bf16;
    int H = 0;                    // heads
    int N = 0;                    // queries of the frame = keys of the current frame (≥ 1)
    int D = 0;                    // head dim: 32, 64 or 128
    int64_t T = 0;                // cached keys (may be 0)
    Rows q;                       // [H, N, D]
    Rows k_cache, v_cache;        // [H, T, D]
    const float* bias = nullptr;  // [H, T] at bias[h·bias_stride_h + t]; nullptr = 0
    int64_t bias_stride_h = 0;
    const int64_t* frames = nullptr;  // [T] frame index of each cached key; nullptr = distance 0
    Rows k_cur, v_cur;                // [H, N, D]
    const float* slope = nullptr;     // [H] per-head slope on frame distance; nullptr = none
    int64_t frame = 0;                // index of the current frame
    void* out = nullptr;  // [H, N, D] in dtype, element (h, i, d) at out[h·out_stride_h + i·out_stride_n + d]
    int64_t out_stride_h = 0;
    int64_t out_stride_n = 0;
    DenseKernel kernel = DenseKernel::best;  // bf16 only; see DenseKernel
};
// How the keys are split across thread blocks; from dense_attention_plan (depends on the device's SM count).
struct DensePlan {
    int n_qtiles = 0;            // query tiles per head
    int tiles_total = 0;         // key tiles per head over cache + current frame
    int n_chunks = 0;            // key chunks per head (1 = no reduce pass)
    int chunk_tiles = 0;         // key tiles per chunk
    size_t workspace_bytes = 0;  // partial results: H·n_chunks·N·(D + 2) floats (0 when n_chunks = 1)
};
cudaError_t dense_attention_plan(const DenseArgs& a, DensePlan* plan);
// Whether the wgmma kernel can run these arguments (bf16, D = 64) here (build and current device).
bool dense_wgmma_available(const DenseArgs& a);
cudaError_t dense_attention(const DenseArgs& a, const DensePlan& plan, void* workspace, cudaStream_t stream);

// ---- 2. LSH codes ---------------------------------------------------------------------------------------------------
// x [B, H, T, D] contiguous (dtype), planes [H, D, bits] contiguous float32, bits in [1, 16]
// → codes [B, H, T] int32, code = Σ_b [x·planes[h, :, b] > 0] << b.
cudaError_t lsh_codes(DType dtype, const void* x, const float* planes, int B, int H, int64_t T, int D, int bits,
                      int32_t* codes, cudaStream_t stream);
// Multi-probe codes: [B, H, T, probes] int32, the row's own code first, then the codes of the cheapest bit-flip sets
// (|projection| costs) in increasing total cost — attention/ann.cpp's lsh_probe_codes on the GPU. probes ≤ kMaxProbes,
// or exactly 2^bits (every bucket: own code, then the rest in code order).
constexpr int kMaxProbes = 16;
cudaError_t lsh_probe_codes(DType dtype, const void* x, const float* planes, int B, int H, int64_t T, int D, int bits,
                            int probes, int32_t* out, cudaStream_t stream);

// ---- 3. bucket sort (stable counting sort per head, 8-bit digits) ---------------------------------------------------
// codes [H, T] contiguous int32, taken modulo 2^bits (bits in [1, 16]) → perm [H, T] int32 (indices sorted by code,
// stable), offsets [H, 2^bits + 1] int32 (bucket b of head h is perm[h, offsets[h, b] : offsets[h, b + 1]]).
size_t bucket_sort_workspace_bytes(int H, int64_t T, int bits);
cudaError_t bucket_sort(const int32_t* codes, int H, int64_t T, int bits, int32_t* perm, int32_t* offsets,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream);

// ---- 4. bucketed attention (AnnSA) ----------------------------------------------------------------------------------
// Each query attends to the cached keys whose code (as sorted by bucket_sort) is in its probe set — P probe codes,
// taken modulo 2^bits, duplicates counted once — plus every key of the current frame. Same logits as dense.
struct BucketedArgs {
    DenseArgs dense;                  // q, caches, bias, frames, current frame, slope, frame, out (as for dense)
    const int32_t* probes = nullptr;  // [H, N, P] contiguous
    int P = 0;
    const int32_t* perm = nullptr;     // [H, T] contiguous, from bucket_sort
    const int32_t* offsets = nullptr;  // [H, 2^bits + 1] contiguous, from bucket_sort
    int bits = 0;
    int32_t* n_scored = nullptr;  // [H, N] contiguous: cached keys scored per query
};
// Per-query kernel (one warp per (head, query), keys gathered through perm, CUDA cores): the reference path, and the
// float32 path. Needs no workspace.
cudaError_t bucketed_attention(const BucketedArgs& a, cudaStream_t stream);
// Bucket-major kernel (bucket_major_attention.cu): each probed bucket's keys are read once per head and chunk and
// scored against every query probing it on tensor cores; (m, l, o) partials per (query, bucket, chunk) are merged
// per query. Same results as bucketed_attention up to bf16 rounding of P. bf16 only: float32 arguments run
// bucketed_attention (workspace_bytes is then 0). The workspace (16-byte aligned, bucketed_attention_workspace_bytes
// of it) holds the per-bucket query lists and the partials; it needs no initialisation. No host synchronisation.
size_t bucketed_attention_workspace_bytes(const BucketedArgs& a);
cudaError_t bucketed_attention_bucket_major(const BucketedArgs& a, void* workspace, size_t workspace_bytes,
                                            cudaStream_t stream);

// ---- 5. TempCache
// ----------------------------------------------------------------------------------------------------- Match: for each
// new token i, the candidate c (cache index cand_idx[j], j < C) maximising Σ_h q_new[h, i]·k[h, c] (first j on ties),
// and the cosine between k_new[:, i] and k[:, c] over the H·D concatenation. match [N] int64 (−1 when C = 0), cos [N]
// float (−inf when C = 0). Candidates outside [0, T) are skipped.
size_t tempcache_match_workspace_bytes(int N);
cudaError_t tempcache_match(DType dtype, int H, int N, int D, int64_t T, Rows q_new, Rows k_new, Rows k_cache,
                            const int64_t* cand_idx, int64_t C, int64_t* match, float* cos, void* workspace,
                            size_t workspace_bytes, cudaStream_t stream);

// Merge, in place, sequentially in pair order (a cache entry named twice absorbs both tokens):
//   k[:, idx] ← k_new[:, src];  v[:, idx] ← (m·v[:, idx] + v_new[:, src]) / (m + 1);  m ← m + 1;
//   bias[:, idx] ← log(m);  frames[idx] ← frame.       Pairs with idx ∉ [0, T) or src ∉ [0, N) are skipped.
struct MergeArgs {
    DType dtype = DType::bf16;
    int H = 0;
    int D = 0;
    int64_t T = 0;
    void* k_cache = nullptr;  // [H, T, D] at k_cache[h·kc_stride_h + t·kc_stride_t + d]
    int64_t kc_stride_h = 0, kc_stride_t = 0;
    void* v_cache = nullptr;  // [H, T, D]
    int64_t vc_stride_h = 0, vc_stride_t = 0;
    float* bias = nullptr;  // [H, T] at bias[h·bias_stride_h + t·bias_stride_t]
    int64_t bias_stride_h = 0, bias_stride_t = 0;
    int64_t* frames = nullptr;  // [T] at frames[t·frames_stride]
    int64_t frames_stride = 1;
    int32_t* group_size = nullptr;  // [T] at group_size[t·group_size_stride]
    int64_t group_size_stride = 1;
    const int64_t* idx = nullptr;  // [M] cache entries
    const int64_t* src = nullptr;  // [M] new tokens
    int64_t M = 0;
    Rows k_new, v_new;  // [H, N, D]
    int N = 0;
    int64_t frame = 0;
};
cudaError_t tempcache_merge(const MergeArgs& a, cudaStream_t stream);

// Resolve (the one-to-one rule, on the device): token i merges into match[i] when min(cos[i], 1) ≥ tau and no other
// such token with the same match has a higher clamped cosine (or an equal one and a lower index). plan [2 + 3N]
// int64: M, R, then idx[N] (merged entries in token order, −1 after M: tempcache_merge skips them), src[N] (their
// tokens, 0 after M), rest[N] (the R tokens to append, in order, 0 after R). N ≤ kMaxResolveTokens.
constexpr int kMaxResolveTokens = 2048;   // its shared memory: 13 bytes a token
cudaError_t tempcache_resolve(const int64_t* match, const float* cos, int N, double tau, int64_t* plan,
                              cudaStream_t stream);

// ---- 6. AnnCA keep mask
// ------------------------------------------------------------------------------------------------- keep[b, h, p] =
// valid[b, p] && some i has q_codes[b, h, i] == k_codes[b, h, p]. q_codes [B, H, N], k_codes [B, H, P] int32
// contiguous, codes in [0, 2^16) (LSH codes of ≤ 16 bits; a code outside never matches); valid [B, P], keep
// [B, H, P] bytes (0/1) contiguous.
cudaError_t annca_keep(const int32_t* q_codes, const int32_t* k_codes, const uint8_t* valid, int B, int H, int N, int P,
                       uint8_t* keep, cudaStream_t stream);

}  // namespace dc::cuda::kernels
