// attention/attention_impl.h — private to attention/*.cpp: the KV cache's storage, derived index data, the CPU
// kernels and helpers shared by the implementations. Not installed; other folders use attention.h and ann.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attention/ann.h"
#include "attention/attention.h"

namespace dc {

// Bucket-sorted view of a CUDA cache for one set of LSH planes (AnnSA), built at the first sparse call after a
// change and dropped on the next mutation: the kernel gathers each bucket's keys through perm.
struct BucketLayout {
    uint64_t tag = 0;
    int bits = 0;
    int64_t version = -1;
    at::Tensor perm;                // [1, H, T] int32 — cache index of each sorted slot
    at::Tensor offsets_t;           // [1, H, 2^bits + 1] int32
    int64_t bytes() const;
};

// CPU AnnSA storage: per head and bucket, contiguous rows of keys and values (compute dtype) and their cache
// indices, so that one bucket is scored by one matmul. Built once when AnnSA first runs on a cache, then kept in
// sync entry by entry by append/update/compact (O(changes) per frame instead of re-sorting the cache).
// Rows inside a bucket are in the order of their history (swap-remove on deletion), not sorted.
struct BucketStore {
    struct Bucket {
        at::Tensor k, v;                 // [capacity, D] compute dtype
        std::vector<int64_t> ids;        // [n] cache index of each row
        int64_t n() const { return static_cast<int64_t>(ids.size()); }
    };
    uint64_t tag = 0;
    int bits = 0;
    at::ScalarType dt = at::kFloat;
    int64_t n_heads = 0, head_dim = 0;
    std::vector<Bucket> buckets;                   // [H · 2^bits], bucket b of head h at h·2^bits + b
    std::vector<std::vector<int32_t>> bucket_of;   // [H][T] bucket of each entry
    std::vector<std::vector<int64_t>> slot_of;     // [H][T] row of each entry inside its bucket

    Bucket& at(int64_t h, int64_t b) { return buckets[static_cast<size_t>((h << bits) + b)]; }
    const Bucket& at(int64_t h, int64_t b) const { return buckets[static_cast<size_t>((h << bits) + b)]; }
    int64_t bytes() const;
};

struct KvCacheAccess {
    using Impl = KvCache::Impl;
    static Impl& impl(const KvCache& c) { return *c.m_impl; }   // derived data is built lazily
};
using CacheImpl = KvCacheAccess::Impl;

struct KvCache::Impl {
    int64_t n_heads = 0, head_dim = 0;
    at::ScalarType dtype;
    at::Device device{at::kCPU};
    int64_t size = 0, capacity = 0;
    at::Tensor k, v;                    // [1, H, cap, D] dtype
    at::Tensor bias;                    // [1, H, cap] float32
    at::Tensor frames;                  // [cap] int64
    at::Tensor group;                   // [cap] int32
    std::vector<int64_t> host_frames;   // [T] host copy of frames (eviction and candidate choice need no sync)
    std::vector<int32_t> host_group;    // [T] host copy of group sizes
    std::map<int64_t, int64_t> frame_count;   // frame → live entries (n_frames/frame_ids without a scan)
    uint64_t code_tag = 0;              // 0 = no codes kept
    at::Tensor code_planes;             // [H, D, bits] float32 on the cache's device
    at::Tensor codes;                   // [1, H, cap] int32 (valid for the first `size` entries)
    int64_t version = 0;
    std::shared_ptr<const BucketLayout> layout;                // CUDA, derived for the current version only
    std::shared_ptr<BucketStore> store;                        // CPU, kept in sync by every mutation
    std::map<std::string, std::shared_ptr<void>> derived;      // other derived data (top-k indexes), same rule
    // Rows written (appended or merged into) per frame, for the last kWriteLogFrames frames that were written
    // since write_log_from: TempCache's candidates (entries of the last frames) without a scan of the whole cache.
    // A compaction renumbers the rows and restarts the log.
    static constexpr int64_t kWriteLogFrames = 64;
    std::map<int64_t, std::vector<int64_t>> write_log;
    int64_t write_log_from = 0;   // the log holds every row written at frames ≥ this

    Impl(int64_t h, int64_t d, at::ScalarType dt, at::Device dev);
    // Rows [size, size + n) were written on the device (keys, values, bias 0, frame, group 1 and codes when kept):
    // make them live — host mirrors, size, write log, version. The device-side TempCache commit appends this way.
    void adopt_appended(int64_t n, int64_t frame);
    void log_written(int64_t frame, const int64_t* rows, int64_t n);   // rows written at frame
    void log_written_range(int64_t frame, int64_t begin, int64_t end);
    void restart_write_log(int64_t from_frame);   // forget the log; rows written from from_frame on are logged
    // Rows whose frame is ≥ lo, ascending; false when the log does not reach back to lo (then scan host_frames).
    bool rows_since(int64_t lo, std::vector<int64_t>& out) const;
    void reserve(int64_t need);         // grows storage by doubling
    void touched();                     // a mutation happened: new version, derived data dropped
    void recompute_codes(int64_t begin, int64_t end);   // codes of entries [begin, end)
};

// BucketStore maintenance (bucket_store.cpp). All require m.code_tag == store tag and codes up to date.
std::shared_ptr<BucketStore> build_bucket_store(const CacheImpl& m, int bits, at::ScalarType dt);
void bucket_store_append(BucketStore& s, const CacheImpl& m, int64_t begin, int64_t end);
void bucket_store_update(BucketStore& s, const CacheImpl& m, const std::vector<int64_t>& idx);
void bucket_store_compact(BucketStore& s, const std::vector<int64_t>& kept);   // new entry j = old kept[j]


// ---- configuration ----------------------------------------------------------------------------------------------
AttentionConfig parse_attention_config(const std::string& type, const std::string& params_json);

// ---- kernels (kernels.cpp) --------------------------------------------------------------------------------------
at::ScalarType compute_dtype(at::ScalarType t);   // float64 stays, everything else computes in float32

// Additive per-key term of the cache: bias[h, t] − slope[h]·(frame − frames[t]) → [H, T] in `dt`.
at::Tensor cache_key_add(const KvCache& cache, const AttentionContext& ctx, at::ScalarType dt);

// Dense self-attention over [cache ‖ frame] with an online softmax over key chunks (bounded memory).
// q, k_cur, v_cur [H, N, D] compute dtype, q already scaled by 1/sqrt(D); ck, cv [H, T, D] any float dtype;
// kadd [H, T] → [H, N, D].
at::Tensor attend_dense_chunked(const at::Tensor& q, const at::Tensor& ck, const at::Tensor& cv,
                                const at::Tensor& kadd, const at::Tensor& k_cur, const at::Tensor& v_cur);

// Block-sparse self-attention: query i of head h scores the cached keys of the buckets probe[h, i, :] (distinct per
// row) plus the whole current frame. probes [H, N, P] int32 (CPU); kadd [H, T] indexed by cache entry. Returns
// out [H, N, D] and the number of cached keys scored per row n_scored [H, N] int64.
std::pair<at::Tensor, at::Tensor> attend_bucketed_cpu(const at::Tensor& q, const BucketStore& store,
                                                       const at::Tensor& kadd, const at::Tensor& probes,
                                                       const at::Tensor& k_cur, const at::Tensor& v_cur);

// Top-k self-attention: query i of head h scores cached keys ids[h][i, :] (−1 = none) plus the current frame.
// ids: one [N, k] int64 tensor per head. ck, cv [H, T, D]. → [H, N, D].
at::Tensor attend_selected_cpu(const at::Tensor& q, const at::Tensor& ck, const at::Tensor& cv,
                               const at::Tensor& kadd, const std::vector<at::Tensor>& ids, const at::Tensor& k_cur,
                               const at::Tensor& v_cur);

// Attention with a key mask per head: q [B, H, N, D], k/v [B, H, P, D], mask [B, H or 1, P] bool → [B, H, N, D]
// in compute dtype; rows with no key give zeros.
at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask);

// Recall of a sparse self-attention call: fraction of the dense softmax mass on the attended keys, averaged over
// the sampled rows. rows[h]: sampled query indices of head h (recall_rows: ≤ 32 evenly spaced (head, query) rows);
// attended[h]: [rows[h].size(), T] bool, cached keys those rows scored (the current frame always counts).
// q [H, N, D] scaled; ck [H, T, D]; kadd [H, T]; k_cur [H, N, D]. Returns a float64 scalar on q's device (never read
// back here: on the GPU a recall frame must not wait for it call by call; AttentionStats::add_recall).
std::vector<std::vector<int64_t>> recall_rows(int64_t n_heads, int64_t n_queries);
// A host index list as an int64 tensor on `device`; to a GPU through pinned memory without waiting for it.
at::Tensor index_tensor(const std::vector<int64_t>& values, const at::Device& device);
at::Tensor self_recall(const at::Tensor& q, const at::Tensor& ck, const at::Tensor& kadd, const at::Tensor& k_cur,
                       const std::vector<std::vector<int64_t>>& rows, const std::vector<at::Tensor>& attended);
// Same for cross-attention: q [B, H, N, D] (unscaled), k [B, H, P, D], valid [B, P], kept [B, H, P] bool; sampled
// rows whose prompt has no valid token are skipped (1 when every sampled row is skipped).
at::Tensor cross_recall(const at::Tensor& q, const at::Tensor& k, const at::Tensor& valid, const at::Tensor& kept);

}  // namespace dc
