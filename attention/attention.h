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
//                            "tempcache" merges near-duplicate keys into groups (log-count bias, exact Lemma 5.1) |
//                            "tempcache+window" merges, then evicts groups not refreshed within the last W frames
//   self-attention kernel:   dense | "annsa" (each query attends to cached keys in its LSH bucket(s))
//   cross-attention kernel:  dense | "annca" (keep prompt tokens that share a bucket with some query)
// A spec's type names the non-default parts joined by '+' in any order: "dense", "window", "tempcache", "annsa",
// "annca", "tempcache+annsa+annca", …; params is a JSON object with one sub-object per part, e.g.
//   {"tempcache": {"tau": 0.9}, "annsa": {"bits": 6, "probes": 8, "dense_step_fraction": 0.3}}
// plus {"dense": {"kernel": "torch"}}, which runs every dense self-attention call (all of them without AnnSA, the
// dense steps and blocks with it) through torch ops instead of the CUDA split-KV kernel: the baseline that kernel is
// measured against (`dreamcaster bench rollout`, configuration dense-torch). The CPU always runs torch ops.
// Sub-objects of parts the type does not enable are validated and kept (the app keeps every part's settings while
// toggling), but have no effect. Every field, its default and why: the *Params structs below.
// Unknown types, unknown parameter names and out-of-range values throw dc::Error naming what was accepted.
//
// Logits: q·k / sqrt(D) + bias[h, t] − temporal_slope[h] · (ctx.frame − frame_of_key[t]); the current frame's own
// keys have frame = ctx.frame and bias 0. bias holds log(group size) from TempCache (0 for single keys).
// Batch B must be 1 when a cache is used (one play session per cache); training uses the model's own masked path.
// Devices: CPU tensors run torch ops (chunked online softmax, bucket-sorted block-sparse AnnSA, FAISS indexes);
// CUDA tensors run the kernels of attention/cuda/cuda_ops.h when the build has them.
//
// Semantics the tests pin down (tests/test_attention_*.cpp):
// - TempCache commit: candidates are entries of frames ≥ frame − lookback; new token i matches the candidate c
//   maximising Σ_h q_i·k_c (its top-1 key) and merges when cos(k_i, k_c) over all heads ≥ tau, one new token per
//   entry (the most similar). Merge: key ← newest, value ← running mean, size m+1, bias log(m+1), frame ← frame.
//   With tau > 1 it never merges (= Dense bit for bit); on exactly repeated keys it equals Dense (Lemma 5.1).
// - AnnSA: the current frame is always attended densely; sparse only at steps ≥ ceil(f·n_steps), in the last
//   round(f·n_layers) blocks and for caches ≥ min_cache_tokens; probes ≥ 2^bits equals Dense.
// - AnnCA: a head for which no prompt token shares a bucket with a query falls back to all valid tokens.
// - Window/budget evict whole frames at commit; budget after the policy, oldest first after the sink frames.
// - Stats: recall is measured (ctx.measure_recall) on ≤ 32 sampled rows of sparse calls only; density counts the
//   always-dense current frame as attended.
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
// Index data for AnnSA (per-entry LSH codes [1, H, T] int32, and on the CPU a bucket-sorted copy of keys/values
// built at the first sparse call after a change) is kept here too, in sync with every append/update/compact.
class KvCache {
public:
    KvCache(int64_t n_heads, int64_t head_dim, at::ScalarType dtype, at::Device device);
    ~KvCache();
    KvCache(KvCache&&) noexcept;
    KvCache& operator=(KvCache&&) noexcept;

    int64_t n_heads() const;
    int64_t head_dim() const;
    at::ScalarType dtype() const;
    at::Device device() const;
    int64_t size() const;               // T, live entries
    int64_t n_frames() const;           // distinct frames with at least one live entry
    std::vector<int64_t> frame_ids() const;   // those frames, ascending
    at::Tensor keys() const;            // [1, H, T, D]
    at::Tensor values() const;          // [1, H, T, D]
    at::Tensor bias() const;            // [1, H, T] float32, log(group size)
    at::Tensor frames() const;          // [T] int64
    at::Tensor group_sizes() const;     // [T] int32
    int64_t version() const;            // changes on every mutation (derived data is rebuilt when it changes)

    // Appends a frame's tokens: k, v [1, H, N, D]; all get frame index `frame`, group size 1 and bias 0.
    void append(const at::Tensor& k, const at::Tensor& v, int64_t frame);
    // Replaces entries idx [M] (int64) in place: new key, value, frame, group size (bias becomes log(size)).
    // k, v [1, H, M, D]; group_size [M] (int32 or int64).
    void update(const at::Tensor& idx, const at::Tensor& k, const at::Tensor& v, int64_t frame,
                const at::Tensor& group_size);
    // Keeps only entries where keep [T] (bool) is true, preserving order.
    void compact(const at::Tensor& keep);
    // The same from the rows to keep (ascending), without reading a mask back from the device.
    void compact(const std::vector<int64_t>& keep_rows);
    void clear();

    // LSH codes of the live keys for `planes` [H, D, bits] float32 (identified by `tag`): [1, H, T] int32,
    // code = Σ_b [k·planes[h, :, b] > 0] << b. Computed for all keys on first use or when the tag changes, then
    // kept in sync by append/update/compact (so AnnSA can be switched on at any frame).
    at::Tensor key_codes(const at::Tensor& planes, uint64_t tag) const;

    // Exact byte accounting of live entries (keys + values + bias + frame + group size) and of allocated storage:
    // bytes() = T · (2·H·D·sizeof(dtype) + 4·H + 8 + 4).
    int64_t bytes() const;
    int64_t capacity_bytes() const;
    // Bytes of index data held for AnnSA (codes, bucket-sorted copies); not part of bytes() or the budget.
    int64_t index_bytes() const;

    // Optional budget: when a commit leaves more than max_tokens entries (or more than max_bytes of live entries),
    // whole oldest frames are evicted (after the first `sink_frames` frames, which are kept) until it fits.
    // The frame just committed is never evicted, so a budget below one frame keeps sinks + that frame.
    // 0 = unbounded. Policy is applied by Attention::commit, reported in AttentionStats::evicted.
    // budget_slack (low-water mark): an eviction goes on until the cache is at most (1 − budget_slack) × the budget,
    // so a cache that grows a few hundred tokens a frame is compacted once every many frames instead of every frame
    // (each compaction copies the cache and invalidates AnnSA's bucket layout). 0 = evict just enough.
    int64_t max_tokens = 0;
    int64_t max_bytes = 0;
    int64_t sink_frames = 0;
    double budget_slack = 0.0;

private:
    friend struct KvCacheAccess;   // the implementations in attention/*.cpp
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
    // With measure_recall: −1 = every block measures; t ≥ 0 = one block measures, and the blocks take turns: AnnSA's
    // sparse blocks (the last ones) when AnnSA is on, else every block, from the last, turn t picking the
    // (t mod count)-th from the end.
    int64_t recall_turn = -1;
};

// What one call (or a frame, when accumulated) did. Counters add up across calls; ratios are recomputed.
struct AttentionStats {
    int64_t calls = 0;
    int64_t query_rows = 0;         // queries × heads processed
    int64_t keys_available = 0;     // Σ over query rows of keys they could attend (cache + frame)
    int64_t keys_attended = 0;      // Σ over query rows of keys actually scored
    double recall_sum = 0;          // Σ recall over measured self-attention calls (fraction of dense mass kept)
    int64_t recall_calls = 0;       // only approximate (sparse AnnSA) calls are measured
    int64_t cross_available = 0;    // prompt tokens available (valid, × heads) over cross calls
    int64_t cross_kept = 0;         // prompt tokens kept by AnnCA (× heads)
    double cross_recall_sum = 0;    // Σ recall over measured AnnCA calls
    int64_t cross_recall_calls = 0;
    int64_t committed = 0;          // tokens offered to the cache by commits
    int64_t merged = 0;             // of those, merged into an existing group (TempCache)
    int64_t evicted = 0;            // tokens evicted by window/budget
    // Counts still on the device: CUDA calls add their keys_attended / cross_kept here instead of waiting for the
    // GPU, and measured recalls their sums; resolve() reads them back (Session::step does, once a frame). density(),
    // recall(), cross_kept_fraction() and cross_recall() refuse unresolved stats.
    at::Tensor pending_keys_attended, pending_cross_kept;   // int64 scalars on the device, or undefined
    at::Tensor pending_recall_sum, pending_cross_recall_sum;   // float64 scalars on the device, or undefined
    double density() const;         // keys_attended / keys_available (1 for dense)
    double recall() const;          // mean recall over measured calls, or -1 when none measured
    double cross_kept_fraction() const;   // 1 when no cross call ran
    double cross_recall() const;    // mean AnnCA recall, or -1 when none measured
    double merge_rate() const;      // merged / committed
    void add(const AttentionStats& other);
    void add_pending(const at::Tensor& keys_attended, const at::Tensor& cross_kept);   // device scalars or undefined
    // One measured call's recall (a scalar tensor): counted at once from a CPU tensor, left pending from a GPU one.
    void add_recall(const at::Tensor& recall, bool cross);
    void resolve();                 // folds pending into the counters (one device synchronisation)
};

// ---- parameters (the JSON sub-objects of AttentionSpec::params_json; defaults are the documented choices) --------

struct TempCacheParams {
    double tau = 0.9;               // cosine threshold to merge; paper's 0.9. Range [0, 2]: > 1 never merges
    int64_t lookback = 1;           // candidates: entries of frames ≥ frame − lookback; 1 = the previous frame's
                                    // tokens (after a commit the newest frame holds exactly one entry per token)
    std::string match_index = "exact";   // "exact" | "lsh" | "sq8": top-1 search among many candidates; exact is
                                    // one matmul for ≤ index_min_candidates and needs no tuning
    int64_t index_min_candidates = 4096;   // use match_index only from this many candidates (below, exact is
                                    // cheaper than building an index)
};

struct DenseParams {
    std::string kernel = "auto";    // "auto": the CUDA split-KV kernel on CUDA tensors, torch ops on the CPU;
                                    // "torch": torch ops on every device (chunked online softmax), the baseline
};

struct WindowParams {
    int64_t frames = 16;            // keep the newest 16 frames (Self-Forcing/Matrix-Game use a window of this size)
    int64_t sinks = 0;              // plus this many oldest frames (attention sinks); 0 = plain sliding window
};

struct AnnSAParams {
    int bits = 6;                   // LSH hyperplanes per head, 2^bits buckets (1..16). With probes = 8 it scores
                                    // 14–33% of the cache at 68–85% recall on the bench's drifting frames and is
                                    // faster than dense on the CPU from ~2k cached keys (bench/attention_bench.md)
    int probes = 8;                 // buckets per query, cheapest bit flips first (multi-probe); ≥ 2^bits = all.
                                    // 1 probe kept only 38% of the attention mass at 6 bits
    double dense_step_fraction = 0.3;    // steps with step < ceil(f·n_steps) run dense (paper: first ~30%)
    double sparse_block_fraction = 0.7;  // the last round(f·n_layers) blocks run sparse (paper: ~70% of blocks)
    int64_t min_cache_tokens = 2048;     // smaller caches run dense: exact, and on the CPU no slower than
                                         // bucketing (measured crossover ≈ 1–2k keys at 6 bits × 8 probes)
    uint64_t seed = 0x5eed5a;       // hyperplanes of layer l come from seed + l (fixed, so runs are reproducible)
    std::string index = "lsh";      // "lsh": bucket codes (fast path, CUDA kernel); "sq8" | "exact": each query
                                    // attends to its top_k cached keys found through that ANN index (CPU only)
    int64_t top_k = 256;            // keys per query in the top-k modes (index "sq8" or "exact")
};

struct AnnCAParams {
    int bits = 12;                  // LSH hyperplanes per head for queries and prompt keys (1..16); with probes = 4
                                    // it kept 39% of prompt tokens at 94% recall on the bench's synthetic prompt
                                    // (paper: 30–45% kept at 85–94% recall)
    int probes = 4;                 // buckets per query (as AnnSA); ≥ 2^bits keeps every valid token
    uint64_t seed = 0xca5eed;       // hyperplanes of layer l come from seed + l
    std::string index = "lsh";      // "lsh": shared buckets; "sq8" | "exact": keep each query's top_k prompt tokens
    int64_t top_k = 4;              // prompt tokens kept per query in the top-k modes
};

// A parsed spec: which parts are on and all parameters.
struct AttentionConfig {
    bool tempcache = false, window = false, annsa = false, annca = false;
    DenseParams dense_params;       // applies to whichever calls run dense
    TempCacheParams tempcache_params;
    WindowParams window_params;
    AnnSAParams annsa_params;
    AnnCAParams annca_params;
};

struct AttentionSpec {
    std::string type = "dense";
    std::string params_json = "{}";                 // JSON object (see header comment)
    // Validates type and params (throws dc::Error saying what was expected and what was found).
    static AttentionSpec parse(const std::string& type, const std::string& params_json = "{}");
    static AttentionSpec from_config(const AttentionConfig& config);   // every parameter written out
    AttentionConfig config() const;                 // parsed and validated
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
    // valid: [B, P] bool (false = padding). Returns [B, H, N, D]. A row with no valid token returns zeros.
    virtual at::Tensor cross_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& valid, const AttentionContext& ctx, AttentionStats* stats) = 0;

    // True when cross_attend on CUDA tensors under ctx may be captured into a CUDA graph and replayed: once it has
    // run eagerly on a prompt mask, a call with that same mask tensor (never changed in place) waits for nothing on
    // the host, its work depends on ctx only through ctx.layer, and its host-side statistics depend only on the
    // shapes and on that mask; device-side counts go through AttentionStats::add_pending. The CUDA inference pass
    // then runs cross-attention inside its graphs (world_model/cuda_graphs.h). Default: false (always eager).
    virtual bool cross_capturable(const AttentionContext& ctx) const {
        (void)ctx;
        return false;
    }

    // Writes the committed (clean) frame into the cache: q, k, v [1, H, N, D] from the commit pass.
    // Dense appends; Window appends and evicts; TempCache merges each new token into its matched group when the
    // similarity passes tau, else appends; the budget (cache.max_tokens/max_bytes) is enforced afterwards.
    virtual void commit(KvCache& cache, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const AttentionContext& ctx, AttentionStats* stats) = 0;

    // Several commits at once — a commit pass's layers, each into its own cache — with the same result as commit()
    // on each job in order. The tensors must stay unchanged until it returns. TempCache on CUDA starts every job's
    // match before applying any, so the host waits for the device once per pass instead of once per layer.
    struct CommitJob {
        KvCache* cache = nullptr;
        at::Tensor q, k, v;
        AttentionContext ctx;
    };
    virtual void commit_many(const std::vector<CommitJob>& jobs, AttentionStats* stats) {
        for (const CommitJob& j : jobs) commit(*j.cache, j.q, j.k, j.v, j.ctx, stats);
    }
};

// Builds an implementation; throws dc::Error on an unknown type or bad parameters, listing what is accepted.
Attention::Ptr make_attention(const AttentionSpec& spec);
// The registered types, for tests and the GUI: "dense", "window", "tempcache", "annsa", "annca",
// "tempcache+annsa+annca".
std::vector<std::string> attention_types();
// Every part's parameters with their defaults, as a JSON object (for the GUI and `--help`).
std::string default_attention_params_json();

// Reference dense attention with per-key bias (the ground truth every kernel is tested against).
// q [B,H,N,D], k/v [B,H,T,D], bias [B,H,T] float or undefined, key_mask [B,T] bool or undefined → [B,H,N,D].
// Computed in float32 (float64 for float64 inputs); rows whose keys are all masked give zeros.
at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                           const at::Tensor& key_mask);

}  // namespace dc
