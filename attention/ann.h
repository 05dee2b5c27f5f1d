// attention/ann.h — approximate maximum-inner-product search and LSH bucket codes for the attention kernels.
//
//   auto index = dc::make_ann_index("sq8", 384);        // "exact" | "lsh" | "sq8"
//   index->add(keys);                                    // [n, 384] float32 (any device; stored on the CPU)
//   auto [scores, ids] = index->search(queries, 1);      // [nq, 1] float32 inner products, [nq, 1] int64
//
//   at::Tensor planes = dc::lsh_planes(6, 64, 8, seed);  // [H, D, bits] float32, the same on every machine
//   at::Tensor codes  = dc::lsh_codes(keys, planes);     // [B, H, T] int32 bucket of each key, per head
//   at::Tensor probes = dc::lsh_probe_codes(q, planes, 3);   // [B, H, N, 3] int32 buckets to visit per query
//
// Index kinds (all search by inner product; ids are insertion order; k > size() pads with id −1, score −inf):
//   exact  brute force: faiss::IndexFlatIP, or one torch matmul + topk. The reference for the others.
//   lsh    sign bits of random projections, searched by Hamming distance, then the best rerank·k candidates are
//          re-scored with the exact inner product (sign hashing ranks by angle; re-scoring restores the inner
//          product order among them). faiss::IndexLSH (random rotation, bits = 2·dim by default), or a torch
//          version (Hamming distance as a ±1 matmul). IndexLSH was chosen over IndexBinaryHash because the
//          search needs a ranked candidate list, not only exact bucket hits.
//   sq8    8-bit scalar quantization per dimension (faiss::IndexScalarQuantizer QT_8bit, METRIC_INNER_PRODUCT),
//          trained on the vectors added so far at the first search after an add; 4× smaller than float32 and
//          ~1% off in score. Optional re-scoring with rerank > 0 (keeps a float copy).
// The torch versions implement the same constructions; results match FAISS for "exact" up to float rounding and
// statistically (recall) for the others. CPU only: the CUDA kernels of attention/cuda/ replace these on the GPU.
//
// LSH bucket codes (AnnSA/AnnCA): code = Σ_b [x·planes[h, :, b] > 0] << b per head. Planes come from a fixed
// SplitMix64/Box–Muller stream, so they do not depend on the torch version or device. Projections are summed in a
// fixed order per row, so a key gets the same code whether it is hashed alone or with others.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dc {

struct AnnIndexParams {
    int lsh_bits = 0;        // lsh: bits per vector; 0 = 2·dim (≈ angle resolution of 2/dim rad·π; FAISS's usual)
    int rerank = -1;         // candidates re-scored exactly per result (×k); −1 = kind default: lsh 16, sq8 0
    uint64_t seed = 1234;    // lsh projections (torch version; FAISS IndexLSH seeds its own rotation)
    bool use_faiss = true;   // false forces the torch version even when FAISS is built in (tests compare both)
};

class AnnIndex {
public:
    virtual ~AnnIndex() = default;
    virtual std::string kind() const = 0;          // "exact" | "lsh" | "sq8"
    virtual bool uses_faiss() const = 0;
    virtual int64_t dim() const = 0;
    virtual int64_t size() const = 0;
    virtual int64_t bytes() const = 0;             // memory of stored codes (+ float copy when re-scoring)
    virtual void add(const at::Tensor& x) = 0;     // [n, dim] float (converted to float32 CPU)
    virtual void reset() = 0;
    // Top-k by inner product: q [nq, dim] → (scores [nq, k] float32, ids [nq, k] int64), best first.
    virtual std::pair<at::Tensor, at::Tensor> search(const at::Tensor& q, int64_t k) = 0;
};

// Throws dc::Error for an unknown kind (listing ann_index_kinds()) or dim < 1.
std::unique_ptr<AnnIndex> make_ann_index(const std::string& kind, int64_t dim, const AnnIndexParams& params = {});
std::vector<std::string> ann_index_kinds();     // {"exact", "lsh", "sq8"}
bool ann_have_faiss();                          // built with FAISS

// Hyperplanes [H, D, bits] float32 (CPU), N(0, 1) entries from `seed`. bits in 1..16.
at::Tensor lsh_planes(int64_t n_heads, int64_t head_dim, int bits, uint64_t seed);
// x [B, H, T, D] (any float dtype; CPU, or CUDA through the kernels) → codes [B, H, T] int32 on x's device.
at::Tensor lsh_codes(const at::Tensor& x, const at::Tensor& planes);
// Multi-probe: x [B, H, N, D] → [B, H, N, P] int32; probe 0 is the own code, then the buckets reached by the
// cheapest sets of bit flips, cost = Σ |projection| of the flipped bits (Lv et al. 2007): the least confident bit
// first. probes ≥ 2^bits lists every bucket. CUDA inputs are hashed on the GPU (probes ≤ 16 or all buckets; other
// counts go through the CPU); codes there may differ where a projection is within rounding of 0.
at::Tensor lsh_probe_codes(const at::Tensor& x, const at::Tensor& planes, int probes);

}  // namespace dc
