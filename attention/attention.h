// attention/attention.h — attention over a per-layer KV cache, with the FAST-AR accelerations.
//
//   dc::Attention::Ptr attn = dc::make_attention(dc::AttentionSpec::parse("tempcache+annsa+annca"));
//   dc::KvCache cache(n_heads, head_dim, dtype, device);          // one per transformer layer
//   dc::AttentionContext ctx;  ctx.frame = 7;  ctx.step = 0;  ctx.n_steps = 4;
//   at::Tensor out = attn->self_attend(q, k, v, cache, ctx, &stats);   // current frame over [cache ‖ frame]
//   at::Tensor co  = attn->cross_attend(q, pk, pv, prompt_valid, ctx, &stats);   // frame over prompt tokens
//   attn->commit(cache, q_clean, k_clean, v_clean, ctx);   // after the clean pass: write the frame (merge/evict)
//
// One implementation composes three independent parts, each switchable between frames (the app's toggles):
//   cache policy (commit):   "dense" keeps every frame | "window" keeps the last W frames (+ sinks) |
//                            "tempcache" merges near-duplicate keys into groups (log-count bias, exact Lemma 5.1)
//   self-attention kernel:   dense | "annsa" (each query attends to cached keys in its LSH bucket(s))
//   cross-attention kernel:  dense | "annca" (keep prompt tokens that share a bucket with some query)
// A spec's type names the non-default parts joined by '+': "dense", "window", "tempcache", "annsa", "annca",
// "tempcache+annsa+annca", …; params is a JSON object with one sub-object per part, e.g.
//   {"tempcache": {"tau": 0.9}, "annsa": {"bits": 8, "probes": 1, "dense_step_fraction": 0.3}}
// Unknown types, unknown parameter names and out-of-range values throw dc::Error naming what was accepted.
//
// Logits: q·k / sqrt(D) + bias[h, t] − temporal_slope[h] · (ctx.frame − frame_of_key[t]); the current frame's own
// keys have frame = ctx.frame and bias 0. bias holds log(group size) from TempCache (0 for single keys).
// Batch B must be 1 when a cache is used (one play session per cache); training uses the model's own masked path.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dc {

// Per-layer KV cache of committed frames. Layout: [1, H, T, D] keys/values, [1, H, T] bias (float32),
// [T] frame index (int64), [T] group size (int32; 1 for an unmerged key). Storage grows by doubling, so appending a
// frame is amortised O(frame); views returned by keys()/values()/... cover the T live entries only.
class KvCache {
public:
    KvCache(int64_t n_heads, int64_t head_dim, at::ScalarType dtype, at::Device device);
    ~KvCache();
    KvCache(KvCache&&) noexcept;
    KvCache& operator=(KvCache&&) noexcept;

    int64_t n_heads() const;
    int64_t head_dim() const;
    int64_t size() const;               // T, live entries
    int64_t n_frames() const;           // distinct frames with at least one live entry
    at::Tensor keys() const;            // [1, H, T, D]
    at::Tensor values() const;          // [1, H, T, D]
    at::Tensor bias() const;            // [1, H, T] float32, log(group size)
    at::Tensor frames() const;          // [T] int64
    at::Tensor group_sizes() const;     // [T] int32

    // Appends a frame's tokens: k, v [1, H, N, D]; all get frame index `frame`, group size 1 and bias 0.
    void append(const at::Tensor& k, const at::Tensor& v, int64_t frame);
    // Replaces entries idx [M] (int64) in place: new key, value, frame, group size (bias becomes log(size)).
    void update(const at::Tensor& idx, const at::Tensor& k, const at::Tensor& v, int64_t frame,
                const at::Tensor& group_size);
    // Keeps only entries where keep [T] (bool) is true, preserving order.
    void compact(const at::Tensor& keep);
    void clear();

    // Exact byte accounting of live entries (keys + values + bias + frame + group size) and of allocated storage.
    int64_t bytes() const;
    int64_t capacity_bytes() const;

    // Optional budget: when a commit leaves more than max_tokens entries (or more than max_bytes of live entries),
    // whole oldest frames are evicted (after the first `sink_frames` frames, which are kept) until it fits.
    // 0 = unbounded. Policy is applied by Attention::commit, reported in AttentionStats::evicted.
    int64_t max_tokens = 0;
    int64_t max_bytes = 0;
    int64_t sink_frames = 0;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// Where in the model a call happens; decides dense vs sparse steps/blocks.
struct AttentionContext {
    int64_t frame = 0;          // index of the frame being generated (keys of this frame have distance 0)
    int layer = 0;              // transformer block index
    int n_layers = 1;
    int step = 0;               // denoising step index, 0-based; commit passes use step = n_steps
    int n_steps = 1;
    at::Tensor temporal_slope;  // [H] float32 per-head slope on frame distance, or undefined for none
    bool measure_recall = false;   // also compute recall of approximate kernels vs dense (costly; sampled)
};

// What one call (or a frame, when accumulated) did. Counters add up across calls; ratios are recomputed.
struct AttentionStats {
    int64_t calls = 0;
    int64_t query_rows = 0;         // queries × heads processed
    int64_t keys_available = 0;     // Σ over query rows of keys they could attend (cache + frame)
    int64_t keys_attended = 0;      // Σ over query rows of keys actually scored
    double recall_sum = 0;          // Σ recall over measured calls (fraction of dense attention mass kept)
    int64_t recall_calls = 0;
    int64_t cross_available = 0;    // prompt tokens available (valid, × heads) over cross calls
    int64_t cross_kept = 0;         // prompt tokens kept by AnnCA (× heads)
    int64_t committed = 0;          // tokens offered to the cache by commits
    int64_t merged = 0;             // of those, merged into an existing group (TempCache)
    int64_t evicted = 0;            // tokens evicted by window/budget
    double density() const;         // keys_attended / keys_available (1 for dense)
    double recall() const;          // mean recall over measured calls, or -1 when none measured
    double cross_kept_fraction() const;
    double merge_rate() const;      // merged / committed
    void add(const AttentionStats& other);
};

struct AttentionSpec {
    std::string type = "dense";
    std::string params_json = "{}";                 // JSON object (see header comment)
    static AttentionSpec parse(const std::string& type, const std::string& params_json = "{}");
    std::string to_string() const;                  // "type {params}" for logs and recordings
};

class Attention {
public:
    using Ptr = std::unique_ptr<Attention>;
    virtual ~Attention() = default;
    virtual const AttentionSpec& spec() const = 0;

    // Self-attention of the current frame over [cache ‖ current frame].
    // q, k, v: [1, H, N, D] (the current frame, post-RoPE); returns [1, H, N, D] in q's dtype.
    virtual at::Tensor self_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const KvCache& cache,
                                   const AttentionContext& ctx, AttentionStats* stats) = 0;

    // Cross-attention of the current frame to prompt tokens. q: [B, H, N, D]; k, v: [B, H, P, D];
    // valid: [B, P] bool (false = padding). Returns [B, H, N, D].
    virtual at::Tensor cross_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& valid, const AttentionContext& ctx, AttentionStats* stats) = 0;

    // Writes the committed (clean) frame into the cache: q, k, v [1, H, N, D] from the commit pass.
    // Dense appends; Window appends and evicts; TempCache merges each new token into its matched group when the
    // similarity passes tau, else appends; the budget (cache.max_tokens/max_bytes) is enforced afterwards.
    virtual void commit(KvCache& cache, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const AttentionContext& ctx, AttentionStats* stats) = 0;
};

// Builds an implementation; throws dc::Error on an unknown type or bad parameters, listing what is accepted.
Attention::Ptr make_attention(const AttentionSpec& spec);
// The registered types, for tests and the GUI: "dense", "window", "tempcache", "annsa", "annca",
// "tempcache+annsa+annca".
std::vector<std::string> attention_types();

// Reference dense attention with per-key bias (the ground truth every kernel is tested against).
// q [B,H,N,D], k/v [B,H,T,D], bias [B,H,T] float or undefined, key_mask [B,T] bool or undefined → [B,H,N,D].
at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                           const at::Tensor& key_mask);

}  // namespace dc
