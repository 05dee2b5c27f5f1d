// attention/cuda/cuda_ops.h — torch adapters over the plain-CUDA kernels in attention/cuda/*.cu.
// Compiled when DC_HAVE_CUDA (CUDA LibTorch) or DC_CUDA_COMPILE_ONLY (CI: kernels build, adapters need CUDA torch).
// Each adapter checks device, dtype (float32 or bfloat16 for q/k/v), contiguity and shapes with DC_CHECK, and
// launches on the current CUDA stream. Semantics are exactly those of the CPU reference in attention/*.cpp:
//   logit[h,i,t] = q[h,i]·k[h,t] / sqrt(D) + bias[h,t] − slope[h] · (frame − frames[t]);  softmax over t; · v.
// The current frame's own keys (k_cur, v_cur) have bias 0 and frame distance 0 and are always attended densely.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>

namespace dc::cuda {

bool available();   // a CUDA device is present and this build has the kernels
std::string device_name(int index = 0);   // the card's name ("NVIDIA H100 80GB HBM3"), for benchmark reports
void synchronize();                        // waits for all queued work of the current device (timings)

// Split-KV (flash-decoding) dense attention of one frame of queries over [cache ‖ current frame].
// q, k_cur, v_cur [1, H, N, D]; k_cache, v_cache [1, H, T, D] (T may be 0); bias [1, H, T] f32; frames [T] i64;
// slope [H] f32 or undefined. Returns [1, H, N, D] in q's dtype. D ∈ {32, 64, 128}.
// bias/frames may be undefined (0 / distance 0). k_cache/v_cache may be KvCache views (any head stride); other
// layouts are copied. bfloat16 runs on tensor cores (P rounded to bf16, fp32 accumulation), float32 in exact fp32.
at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                           const at::Tensor& bias, const at::Tensor& frames, const at::Tensor& k_cur,
                           const at::Tensor& v_cur, const at::Tensor& slope, int64_t frame);
// The bf16 kernels: wgmma (Hopper warpgroup MMA, D = 64, on a compute-capability-9.0 card in a build for sm_90a),
// mma_sync (any D, sm_80 and later); dense_attention runs best = wgmma where it can, else mma_sync. Asking for
// wgmma where it cannot run is an error that says why; float32 inputs run their CUDA-core kernel whatever is asked.
enum class DenseKernel { best, mma_sync, wgmma };
at::Tensor dense_attention_using(DenseKernel kernel, const at::Tensor& q, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& bias, const at::Tensor& frames,
                                 const at::Tensor& k_cur, const at::Tensor& v_cur, const at::Tensor& slope,
                                 int64_t frame);
// Whether the wgmma kernel runs bf16 heads of head_dim on the current device in this build.
bool dense_wgmma_available(int64_t head_dim);

// LSH codes: sign bits of projections. x [B, H, T, D]; planes [H, D, bits] f32 (bits ≤ 16) → codes [B, H, T] i32,
// code = Σ_b [x·planes[:, :, b] > 0] << b.
at::Tensor lsh_codes(const at::Tensor& x, const at::Tensor& planes);
// Multi-probe codes x [B, H, T, D], planes [H, D, bits] f32 → [B, H, T, probes] i32: own code first, then the
// cheapest bit flips (attention/ann.h lsh_probe_codes). probes ≤ kMaxLshProbes or exactly 2^bits.
constexpr int kMaxLshProbes = 16;
at::Tensor lsh_probe_codes(const at::Tensor& x, const at::Tensor& planes, int probes);

// Bucket-sorted layout of cache codes [1, H, T] i32 with 2^bits buckets: returns (perm [1, H, T] i32 — cache
// indices sorted by code, stable; offsets [1, H, 2^bits + 1] i32 — bucket b is perm[offsets[b] : offsets[b+1]]).
// 1 ≤ bits ≤ 16; codes are taken modulo 2^bits.
std::pair<at::Tensor, at::Tensor> bucket_sort(const at::Tensor& codes, int bits);

// AnnSA: each query attends to the cached keys whose code is in its probe set, plus the whole current frame.
// q_probe_codes [1, H, N, P] i32 (P probes per query, first = own code, taken modulo 2^bits; a repeated probe
// counts once); perm/offsets from bucket_sort (bits = log2(offsets.size(2) − 1)).
// Returns (out [1, H, N, D], n_scored [1, H, N] i32 = cached keys scored per query).
// Runs the default kernel (kDefaultBucketedKernel in cuda_ops.cpp); bucketed_attention_using picks one.
std::pair<at::Tensor, at::Tensor> bucketed_attention(const at::Tensor& q, const at::Tensor& q_probe_codes,
                                                     const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                     const at::Tensor& bias, const at::Tensor& frames,
                                                     const at::Tensor& perm, const at::Tensor& offsets,
                                                     const at::Tensor& k_cur, const at::Tensor& v_cur,
                                                     const at::Tensor& slope, int64_t frame);
// The AnnSA kernels: bucket_major reads each probed bucket once per head and serves all queries probing it on
// tensor cores (bf16; float32 runs per_query); per_query is one warp per (head, query), the reference path.
enum class BucketedKernel { bucket_major, per_query };
std::pair<at::Tensor, at::Tensor> bucketed_attention_using(BucketedKernel kernel, const at::Tensor& q,
                                                           const at::Tensor& q_probe_codes, const at::Tensor& k_cache,
                                                           const at::Tensor& v_cache, const at::Tensor& bias,
                                                           const at::Tensor& frames, const at::Tensor& perm,
                                                           const at::Tensor& offsets, const at::Tensor& k_cur,
                                                           const at::Tensor& v_cur, const at::Tensor& slope,
                                                           int64_t frame);

// TempCache matching: for each new token i, the candidate c (among cache entries cand_idx [C] i64) maximising
// Σ_h q_new[h,i]·k_cache[h,c], and the cosine similarity between k_new[:, i] and k_cache[:, c] over the
// concatenation of all heads (H·D). q_new, k_new [1, H, N, D]. Returns (match [N] i64 — cache index, cos [N] f32).
// Ties go to the first candidate; candidates outside [0, T) are skipped; with none, match = −1 and cos = −inf.
std::pair<at::Tensor, at::Tensor> tempcache_match(const at::Tensor& q_new, const at::Tensor& k_new,
                                                  const at::Tensor& k_cache, const at::Tensor& cand_idx);

// TempCache merge (in place on the cache tensors): for each pair (idx[j], src[j]):
// k_cache[:, :, idx] ← k_new[:, :, src]; v_cache[:, :, idx] ← (m·v_cache + v_new[src]) / (m + 1);
// group_size[idx] ← m + 1; bias[:, :, idx] ← log(m + 1); frames[idx] ← frame.   (m = old group_size[idx])
// Pairs apply in order (an entry named twice absorbs both tokens); pairs with idx ∉ [0, T) or src ∉ [0, N) are
// skipped. The cache tensors may be views (any strides, last dimension dense); group_size is int32.
void tempcache_merge(at::Tensor& k_cache, at::Tensor& v_cache, at::Tensor& bias, at::Tensor& frames,
                     at::Tensor& group_size, const at::Tensor& idx, const at::Tensor& src, const at::Tensor& k_new,
                     const at::Tensor& v_new, int64_t frame);

// TempCache's one-to-one rule on the device (kernels.cuh tempcache_resolve): match [N] int64, cos [N] float from
// tempcache_match -> plan [2 + 3N] int64 (M, R, merged entries, their tokens, tokens to append; padded).
at::Tensor tempcache_resolve(const at::Tensor& match, const at::Tensor& cos, double tau);

// AnnCA selection: keep [B, H, P] bool — prompt token p is kept for head h when valid[b, p] and some query of the
// frame has the same code. q_codes [B, H, N] i32, k_codes [B, H, P] i32, valid [B, P] bool.
at::Tensor annca_keep(const at::Tensor& q_codes, const at::Tensor& k_codes, const at::Tensor& valid);

}  // namespace dc::cuda
