// The composed attention implementation: cache policy (dense/window/tempcache) × self kernel (dense/annsa) ×
// cross kernel (dense/annca), with CPU torch paths and CUDA dispatch.
#include <c10/core/GradMode.h>
#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <unordered_map>

#include "attention/attention_impl.h"
#include "common/common.h"

#ifdef DC_HAVE_CUDA
#include "attention/cuda/cuda_ops.h"
#endif

namespace dc {

namespace {

uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (z ^ (z >> 31)) | 1;   // never 0 (0 means "no codes")
}

void check_frame_qkv(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const KvCache& cache,
                     const char* what) {
    DC_CHECK(q.defined() && k.defined() && v.defined(), what << " expects defined q, k, v");
    DC_CHECK(q.dim() == 4 && q.size(0) == 1 && q.size(1) == cache.n_heads() && q.size(3) == cache.head_dim() &&
                 q.size(2) >= 1,
             what << " expects q [1, " << cache.n_heads() << ", N ≥ 1, " << cache.head_dim() << "] (B = 1 with a "
                  << "cache), found " << q.sizes());
    DC_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes(),
             what << " expects k and v shaped like q " << q.sizes() << ", found " << k.sizes() << " and "
                  << v.sizes());
    DC_CHECK(q.device() == cache.device() && k.device() == cache.device() && v.device() == cache.device(),
             what << " expects q, k, v on the cache's device " << cache.device() << ", found " << q.device());
}

void check_ctx(const AttentionContext& ctx) {
    DC_CHECK(ctx.n_layers >= 1 && ctx.layer >= 0 && ctx.layer < ctx.n_layers,
             "AttentionContext expects 0 ≤ layer < n_layers, found layer " << ctx.layer << " of " << ctx.n_layers);
    DC_CHECK(ctx.n_steps >= 1 && ctx.step >= 0 && ctx.step <= ctx.n_steps,
             "AttentionContext expects 0 ≤ step ≤ n_steps (n_steps = commit pass), found step "
                 << ctx.step << " of " << ctx.n_steps);
}

// The CPU bucket store for these planes: built on first use, then kept in sync by the cache itself.
std::shared_ptr<const BucketStore> cpu_bucket_store(const KvCache& cache, const at::Tensor& planes, uint64_t tag,
                                                    int bits, at::ScalarType dt) {
    CacheImpl& m = KvCacheAccess::impl(cache);
    cache.key_codes(planes, tag);   // codes for this tag (a new tag drops the old store)
    if (!m.store || m.store->tag != tag || m.store->dt != dt || m.store->bits != bits)
        m.store = build_bucket_store(m, bits, dt);
    return m.store;
}

#ifdef DC_HAVE_CUDA
std::shared_ptr<const BucketLayout> cuda_bucket_layout(const KvCache& cache, const at::Tensor& planes, uint64_t tag,
                                                       int bits) {
    RECORD_USER_SCOPE("dc::bucket_layout");
    CacheImpl& m = KvCacheAccess::impl(cache);
    at::Tensor codes = cache.key_codes(planes, tag);   // [1, H, T] int32
    if (m.layout && m.layout->tag == tag && m.layout->version == m.version && m.layout->offsets_t.defined())
        return m.layout;
    auto lay = std::make_shared<BucketLayout>();
    lay->tag = tag;
    lay->bits = bits;
    lay->version = m.version;
    std::tie(lay->perm, lay->offsets_t) = dc::cuda::bucket_sort(codes.contiguous(), bits);
    m.layout = lay;
    return lay;
}
#endif

// Top-k indexes over the cache (one per head), for annsa.index "sq8"/"exact". Keys are augmented with their
// additive term so that the index ranks by the full logit: [k, kadd·√D] · [q, 1] = q·k + √D·kadd.
using HeadIndexes = std::vector<std::unique_ptr<AnnIndex>>;

std::shared_ptr<HeadIndexes> topk_indexes(const KvCache& cache, const std::string& kind, const at::Tensor& kadd,
                                          const AttentionContext& ctx) {
    CacheImpl& m = KvCacheAccess::impl(cache);
    const std::string key = "sa-topk:" + kind + ":" + std::to_string(ctx.layer) + ":" + std::to_string(ctx.frame);
    auto it = m.derived.find(key);
    if (it != m.derived.end()) return std::static_pointer_cast<HeadIndexes>(it->second);
    auto idx = std::make_shared<HeadIndexes>();
    const double sd = std::sqrt(static_cast<double>(m.head_dim));
    at::Tensor keys = cache.keys()[0].to(at::kFloat);   // [H, T, D]
    for (int64_t h = 0; h < m.n_heads; ++h) {
        idx->push_back(make_ann_index(kind, m.head_dim + 1));
        at::Tensor aug = at::cat({keys[h], kadd[h].to(at::kFloat).mul(sd).unsqueeze(1)}, 1);   // [T, D + 1]
        idx->back()->add(aug);
    }
    m.derived[key] = idx;
    return idx;
}

// A TempCache match of one frame's tokens (ComposedAttention::tempcache_match_start).
struct TempCacheMatch {
    at::Tensor cand_t;        // [C] candidate rows on the cache's device; undefined: no candidates (append all)
    at::Tensor match, cosv;   // host path: [N] int64 best candidate row, [N] double cosine
    at::Tensor device_plan;   // device path: [2 + N] int64 (M, R, merged entries) in pinned host memory
};

class ComposedAttention final : public Attention {
public:
    explicit ComposedAttention(AttentionSpec spec) : m_spec(std::move(spec)), m_cfg(m_spec.config()) {}
    const AttentionSpec& spec() const override { return m_spec; }

    at::Tensor self_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const KvCache& cache,
                           const AttentionContext& ctx, AttentionStats* stats) override;
    at::Tensor cross_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& valid,
                            const AttentionContext& ctx, AttentionStats* stats) override;
    void commit(KvCache& cache, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                const AttentionContext& ctx, AttentionStats* stats) override;
    void commit_many(const std::vector<CommitJob>& jobs, AttentionStats* stats) override;
    // Dense cross-attention, and AnnCA with the "lsh" index where its CUDA kernels run (probes within the probe
    // kernel's range); never while recall is measured (that reads values back).
    bool cross_capturable(const AttentionContext& ctx) const override {
        if (ctx.measure_recall) return false;
        if (!m_cfg.annca) return true;
#ifdef DC_HAVE_CUDA
        const AnnCAParams& cp = m_cfg.annca_params;
        const int64_t probes = std::min<int64_t>(cp.probes, int64_t{1} << cp.bits);
        return cp.index == "lsh" && (probes <= dc::cuda::kMaxLshProbes || probes == (int64_t{1} << cp.bits));
#else
        return false;
#endif
    }

private:
    bool annsa_sparse(const AttentionContext& ctx, int64_t cache_tokens) const;
    int64_t sparse_blocks(int64_t n_layers) const {
        return std::llround(m_cfg.annsa_params.sparse_block_fraction * static_cast<double>(n_layers) + 1e-9);
    }
    bool measuring(const AttentionContext& ctx) const {   // this call measures recall (AttentionContext::recall_turn)
        if (!ctx.measure_recall) return false;
        if (ctx.recall_turn < 0) return true;
        const int64_t span = std::max<int64_t>(1, m_cfg.annsa ? sparse_blocks(ctx.n_layers) : ctx.n_layers);
        return ctx.layer == ctx.n_layers - 1 - ctx.recall_turn % span;
    }
    const at::Tensor& planes(std::map<std::tuple<int, int64_t, int64_t>, at::Tensor>& store, int layer, int64_t H,
                             int64_t D, int bits, uint64_t seed, at::Device device);
    uint64_t sa_tag(int layer, int64_t H, int64_t D) const {
        return mix(mix(mix(m_cfg.annsa_params.seed + static_cast<uint64_t>(layer), 0x5a), m_cfg.annsa_params.bits),
                   static_cast<uint64_t>(H * 4099 + D));
    }
    // TempCache's commit, host path (the CPU; the reference the device path is tested against): the match of the
    // new tokens against the candidates, then the one-to-one rule, the merges and the appends.
    TempCacheMatch tempcache_match_start(KvCache& cache, const at::Tensor& q, const at::Tensor& k,
                                         const AttentionContext& ctx) const;
    int64_t tempcache_apply(KvCache& cache, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const AttentionContext& ctx, TempCacheMatch& match);
    bool tempcache_merges() const { return m_cfg.tempcache && m_cfg.tempcache_params.tau <= 1.0; }
    // Device path (CUDA): the whole commit on the device — match, the one-to-one rule (tempcache_resolve), the
    // merges, and the new rows written after the live ones; device_plan brings M, R and the merged entries back to
    // pinned memory, and tempcache_device_finish (after the device wait) updates the host mirrors. The same result
    // as the host path. commit_many starts every layer's commit before finishing any, so a commit pass waits for
    // the device once, not once per layer.
#ifdef DC_HAVE_CUDA
    TempCacheMatch tempcache_device_start(KvCache& cache, const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const AttentionContext& ctx) const;
#endif
    int64_t tempcache_device_finish(KvCache& cache, const AttentionContext& ctx, const TempCacheMatch& r) const;
    // Valid prompt tokens in a mask, for the statistics. A prompt's mask lives as long as the prompt and every
    // cross-attention call of every frame passes the same one: counted once, not read back from the device per call.
    int64_t valid_count(const at::Tensor& valid) {
        if (!m_valid_seen.is_same(valid)) {   // (masks are never changed in place)
            m_valid_seen = valid;
            m_valid_count = valid.sum().item<int64_t>();
        }
        return m_valid_count;
    }

    AttentionSpec m_spec;
    AttentionConfig m_cfg;
    std::map<std::tuple<int, int64_t, int64_t>, at::Tensor> m_sa_planes, m_ca_planes;   // per (layer, H, D)
    at::Tensor m_valid_seen;   // the last prompt mask counted, [B, P] bool
    int64_t m_valid_count = 0;
};

bool ComposedAttention::annsa_sparse(const AttentionContext& ctx, int64_t cache_tokens) const {
    if (!m_cfg.annsa || cache_tokens == 0) return false;
    const AnnSAParams& p = m_cfg.annsa_params;
    if (cache_tokens < p.min_cache_tokens) return false;
    const int64_t dense_steps =
        static_cast<int64_t>(std::ceil(p.dense_step_fraction * static_cast<double>(ctx.n_steps) - 1e-9));
    if (ctx.step < dense_steps) return false;
    return ctx.layer >= ctx.n_layers - sparse_blocks(ctx.n_layers);
}

const at::Tensor& ComposedAttention::planes(std::map<std::tuple<int, int64_t, int64_t>, at::Tensor>& store,
                                            int layer, int64_t H, int64_t D, int bits, uint64_t seed,
                                            at::Device device) {
    auto key = std::make_tuple(layer, H, D);
    auto it = store.find(key);
    if (it == store.end()) it = store.emplace(key, lsh_planes(H, D, bits, seed + static_cast<uint64_t>(layer))).first;
    if (it->second.device() != device) it->second = it->second.to(device);   // kept where the queries are: no copy
    return it->second;                                                       // per call
}

at::Tensor ComposedAttention::self_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const KvCache& cache, const AttentionContext& ctx, AttentionStats* stats) {
    RECORD_USER_SCOPE("dc::self_attend");
    check_frame_qkv(q, k, v, cache, "self_attend");
    check_ctx(ctx);
    const int64_t H = q.size(1), N = q.size(2), D = q.size(3), T = cache.size();
    const bool sparse = annsa_sparse(ctx, T);
    const AnnSAParams& sp = m_cfg.annsa_params;
    AttentionStats st;
    st.calls = 1;
    st.query_rows = H * N;
    st.keys_available = H * N * (T + N);
    st.keys_attended = st.keys_available;
    at::Tensor out;
    const auto dt = compute_dtype(q.scalar_type());
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));

    // What the sparse call attended, for the recall measurement: per sampled row, cached keys scored.
    std::vector<std::vector<int64_t>> rows;
    std::vector<at::Tensor> attended;
    at::Tensor probes, codes;   // [H, N, P], [H, T]

#ifdef DC_HAVE_CUDA
    // dense.kernel "torch": dense calls take the torch-ops path below on CUDA tensors too (the kernel's baseline).
    if (q.is_cuda() && (sparse || m_cfg.dense_params.kernel != "torch")) {
        at::Tensor slope;
        if (ctx.temporal_slope.defined()) slope = ctx.temporal_slope.to(q.device(), at::kFloat).contiguous();
        if (!sparse) {
            out = dc::cuda::dense_attention(q.contiguous(), cache.keys(), cache.values(), cache.bias(),
                                            cache.frames(), k.contiguous(), v.contiguous(), slope, ctx.frame);
        } else {
            DC_CHECK(sp.index == "lsh", "annsa.index \"" << sp.index << "\" runs on the CPU only; use \"lsh\" with "
                                                         << "CUDA tensors");
            const at::Tensor& pl = planes(m_sa_planes, ctx.layer, H, D, sp.bits, sp.seed, q.device());
            const uint64_t tag = sa_tag(ctx.layer, H, D);
            auto lay = cuda_bucket_layout(cache, pl, tag, sp.bits);
            at::Tensor pr = lsh_probe_codes(q, pl, sp.probes).contiguous();   // [1, H, N, P] int32 on q's device
            auto res = dc::cuda::bucketed_attention(q.contiguous(), pr, cache.keys(), cache.values(), cache.bias(),
                                                    cache.frames(), lay->perm, lay->offsets_t, k.contiguous(),
                                                    v.contiguous(), slope, ctx.frame);
            out = res.first;
            st.keys_attended = H * N * N;   // the frame's own keys; the cached keys scored are counted on the device
            st.add_pending(res.second.sum(), at::Tensor());
            probes = pr[0];
            codes = cache.key_codes(pl, tag)[0];
        }
        if (sparse && measuring(ctx)) {
            at::Tensor qs = q[0].to(at::kFloat).mul(scale);
            at::Tensor kadd = cache_key_add(cache, ctx, at::kFloat);
            rows = recall_rows(H, N);
            for (int64_t h = 0; h < H; ++h) {
                if (rows[h].empty()) {
                    attended.emplace_back();
                    continue;
                }
                at::Tensor ri = index_tensor(rows[h], q.device());
                at::Tensor pr = probes[h].index_select(0, ri);   // [R, P]
                attended.push_back(codes[h].view({1, T, 1}).eq(pr.unsqueeze(1)).any(2));
            }
            st.add_recall(self_recall(qs, cache.keys()[0], kadd, k[0].to(at::kFloat), rows, attended), false);
        }
        if (stats) stats->add(st);
        return out;
    }
#endif

    at::Tensor qs = q[0].to(dt).mul(scale);   // [H, N, D]
    at::Tensor kc = k[0].to(dt), vc = v[0].to(dt);
    at::Tensor kadd = cache_key_add(cache, ctx, dt);   // [H, T]
    at::Tensor ck = cache.keys()[0], cv = cache.values()[0];
    if (!sparse) {
        out = attend_dense_chunked(qs, ck, cv, kadd, kc, vc);
    } else if (sp.index == "lsh") {
        const at::Tensor& pl = planes(m_sa_planes, ctx.layer, H, D, sp.bits, sp.seed, q.device());
        const uint64_t tag = sa_tag(ctx.layer, H, D);
        auto store = cpu_bucket_store(cache, pl, tag, sp.bits, dt);
        probes = lsh_probe_codes(q, pl, sp.probes)[0];   // [H, N, P]
        auto res = attend_bucketed_cpu(qs, *store, kadd, probes, kc, vc);
        out = res.first;
        st.keys_attended = res.second.sum().item<int64_t>() + H * N * N;
        if (measuring(ctx)) {
            codes = cache.key_codes(pl, tag)[0];
            rows = recall_rows(H, N);
            for (int64_t h = 0; h < H; ++h) {
                at::Tensor ri = at::tensor(rows[h], at::TensorOptions().dtype(at::kLong));
                at::Tensor pr = probes[h].index_select(0, ri);   // [R, P]
                attended.push_back(codes[h].view({1, T, 1}).eq(pr.unsqueeze(1)).any(2));
            }
        }
    } else {
        auto idx = topk_indexes(cache, sp.index, kadd, ctx);
        const int64_t kk = std::min<int64_t>(sp.top_k, T);
        std::vector<at::Tensor> ids;
        at::Tensor qaug = at::cat({q[0].to(at::kFloat), at::ones({H, N, 1}, at::kFloat)}, 2);   // [H, N, D + 1]
        int64_t scored = 0;
        for (int64_t h = 0; h < H; ++h) {
            ids.push_back((*idx)[static_cast<size_t>(h)]->search(qaug[h], kk).second);   // [N, kk]
            scored += ids.back().ge(0).sum().item<int64_t>();
        }
        out = attend_selected_cpu(qs, ck, cv, kadd, ids, kc, vc);
        st.keys_attended = scored + H * N * N;
        if (measuring(ctx)) {
            rows = recall_rows(H, N);
            for (int64_t h = 0; h < H; ++h) {
                at::Tensor mask = at::zeros({static_cast<int64_t>(rows[h].size()), T}, at::kBool);
                for (size_t r = 0; r < rows[h].size(); ++r) {
                    at::Tensor id = ids[static_cast<size_t>(h)][rows[h][r]];
                    mask[static_cast<int64_t>(r)].index_fill_(0, id.masked_select(id.ge(0)), true);
                }
                attended.push_back(mask);
            }
        }
    }
    if (sparse && measuring(ctx)) {
        st.add_recall(self_recall(qs, ck, kadd, kc, rows, attended), false);
    }
    if (stats) stats->add(st);
    return out.unsqueeze(0).to(q.scalar_type());
}

at::Tensor ComposedAttention::cross_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& valid, const AttentionContext& ctx,
                                           AttentionStats* stats) {
    RECORD_USER_SCOPE("dc::cross_attend");
    DC_CHECK(q.defined() && q.dim() == 4, "cross_attend expects q [B, H, N, D], found " << q.sizes());
    const int64_t B = q.size(0), H = q.size(1), N = q.size(2), D = q.size(3);
    DC_CHECK(k.dim() == 4 && k.size(0) == B && k.size(1) == H && k.size(3) == D && v.sizes() == k.sizes(),
             "cross_attend expects k, v [" << B << ", " << H << ", P, " << D << "], found " << k.sizes() << " and "
                                           << v.sizes());
    const int64_t P = k.size(2);
    DC_CHECK(valid.defined() && valid.dim() == 2 && valid.size(0) == B && valid.size(1) == P,
             "cross_attend expects valid [" << B << ", " << P << "] bool, found "
                                            << (valid.defined() ? valid.sizes() : at::IntArrayRef{}));
    check_ctx(ctx);
    at::Tensor vb = valid.to(at::kBool);
    AttentionStats st;
    st.calls = 1;
    const int64_t n_valid = valid_count(vb);
    st.cross_available = H * n_valid;
    st.cross_kept = st.cross_available;
    if (!m_cfg.annca || P == 0) {
        at::Tensor out = masked_attention(q, k, v, vb.unsqueeze(1)).to(q.scalar_type());
        if (stats) stats->add(st);
        return out;
    }
    const AnnCAParams& cp = m_cfg.annca_params;
    at::Tensor keep;   // [B, H, P] bool
    if (cp.index == "lsh") {
        const at::Tensor& pl = planes(m_ca_planes, ctx.layer, H, D, cp.bits, cp.seed, q.device());
        at::Tensor kcodes = lsh_codes(k, pl);   // [B, H, P]
#ifdef DC_HAVE_CUDA
        if (q.is_cuda()) {
            at::Tensor qc = cp.probes == 1 ? lsh_codes(q, pl) : lsh_probe_codes(q, pl, cp.probes).reshape({B, H, -1});
            keep = dc::cuda::annca_keep(qc.contiguous(), kcodes.contiguous(), vb.contiguous());
        }
#endif
        if (!keep.defined()) {
            at::Tensor qc = lsh_probe_codes(q, pl, cp.probes).reshape({B, H, -1}).to(at::kCPU).contiguous();
            at::Tensor kc = kcodes.to(at::kCPU).contiguous();
            at::Tensor vh = vb.to(at::kCPU).contiguous();
            keep = at::zeros({B, H, P}, at::kBool);
            const int64_t nq = qc.size(2);
            const int32_t* qp = qc.data_ptr<int32_t>();
            const int32_t* kp = kc.data_ptr<int32_t>();
            const bool* vp = vh.data_ptr<bool>();
            bool* op = keep.data_ptr<bool>();
            std::vector<uint8_t> seen(size_t{1} << cp.bits);
            for (int64_t bh = 0; bh < B * H; ++bh) {
                std::fill(seen.begin(), seen.end(), 0);
                for (int64_t i = 0; i < nq; ++i) seen[static_cast<size_t>(qp[bh * nq + i])] = 1;
                const int64_t b = bh / H;
                for (int64_t p = 0; p < P; ++p)
                    op[bh * P + p] = vp[b * P + p] && seen[static_cast<size_t>(kp[bh * P + p])];
            }
            keep = keep.to(q.device());
        }
    } else {
        DC_CHECK(!q.is_cuda(), "annca.index \"" << cp.index << "\" runs on the CPU only; use \"lsh\" with CUDA "
                                                << "tensors");
        keep = at::zeros({B, H, P}, at::kBool);
        const int64_t kk = std::min<int64_t>(cp.top_k, P);
        for (int64_t b = 0; b < B; ++b) {
            at::Tensor vid = vb[b].nonzero().view({-1});   // [Pv] valid prompt positions
            if (vid.numel() == 0) continue;
            for (int64_t h = 0; h < H; ++h) {
                auto index = make_ann_index(cp.index, D);
                index->add(k[b][h].index_select(0, vid));
                at::Tensor ids = index->search(q[b][h], std::min<int64_t>(kk, vid.numel())).second;   // [N, k]
                ids = ids.masked_select(ids.ge(0));
                keep[b][h].index_fill_(0, vid.index_select(0, ids), true);
            }
        }
    }
    // A head that keeps nothing would attend to nothing: it falls back to every valid token (dense).
    at::Tensor none = keep.any(2, true).logical_not();                    // [B, H, 1]
    keep = keep.logical_or(none.logical_and(vb.unsqueeze(1)));
    at::Tensor out;
    if (q.is_cuda()) {
        // On the GPU the unkept tokens are masked out in place: gathering them away would need the kept count on
        // the host (a wait for the GPU every call) to save a few of ≤ 128 prompt keys. Counted on the device.
        st.cross_kept = 0;
        st.add_pending(at::Tensor(), keep.sum());
        out = masked_attention(q, k, v, keep).to(q.scalar_type());
    } else {
        st.cross_kept = keep.sum().item<int64_t>();
        // Gather the kept tokens to the front (stable), padded to the largest kept count.
        const int64_t pk = std::max<int64_t>(1, keep.sum(2).max().item<int64_t>());
        at::Tensor order = std::get<1>(at::sort(keep.to(at::kInt), /*stable=*/true, /*dim=*/2, /*descending=*/true));
        at::Tensor idx = order.narrow(2, 0, pk);                                          // [B, H, pk]
        at::Tensor gmask = keep.gather(2, idx);                                           // [B, H, pk]
        at::Tensor gidx = idx.unsqueeze(3).expand({B, H, pk, D});
        out = masked_attention(q, k.gather(2, gidx), v.gather(2, gidx), gmask).to(q.scalar_type());
    }
    if (measuring(ctx)) {
        st.add_recall(cross_recall(q, k, vb, keep), true);
    }
    (void)N;
    if (stats) stats->add(st);
    return out;
}

TempCacheMatch ComposedAttention::tempcache_match_start(KvCache& cache, const at::Tensor& q, const at::Tensor& k,
                                                      const AttentionContext& ctx) const {
    RECORD_USER_SCOPE("dc::tempcache_match");
    CacheImpl& m = KvCacheAccess::impl(cache);
    const TempCacheParams& tp = m_cfg.tempcache_params;
    const int64_t N = q.size(2), HD = q.size(1) * q.size(3);
    TempCacheMatch r;
    std::vector<int64_t> cand;   // rows of frames ≥ frame − lookback, ascending (from the write log when it reaches)
    const int64_t lo = ctx.frame - tp.lookback;
    if (!m.rows_since(lo, cand))
        for (int64_t t = 0; t < m.size; ++t)
            if (m.host_frames[static_cast<size_t>(t)] >= lo) cand.push_back(t);
    if (cand.empty()) return r;
    const int64_t C = static_cast<int64_t>(cand.size());
    r.cand_t = index_tensor(cand, m.device);
    const auto dt = compute_dtype(k.scalar_type());
    at::Tensor qf = q[0].permute({1, 0, 2}).reshape({N, HD}).to(dt);                                        // [N, HD]
    at::Tensor kn = k[0].permute({1, 0, 2}).reshape({N, HD}).to(dt);                                        // [N, HD]
    at::Tensor kc = cache.keys()[0].index_select(1, r.cand_t).permute({1, 0, 2}).reshape({C, HD}).to(dt);   // [C, HD]
    at::Tensor pos;   // [N] candidate position
    if (C >= tp.index_min_candidates && tp.match_index != "exact") {
        auto index = make_ann_index(tp.match_index, HD);
        index->add(kc);
        pos = index->search(qf, 1).second.select(1, 0).clamp_min(0);
    } else {
        pos = qf.mm(kc.t()).argmax(1);
    }
    at::Tensor km = kc.index_select(0, pos);   // [N, HD]
    r.cosv = ((kn * km).sum(1) / (kn.norm(2, {1}) * km.norm(2, {1})).clamp_min(1e-30)).to(at::kCPU, at::kDouble);
    r.match = r.cand_t.index_select(0, pos).to(at::kCPU);
    return r;
}

int64_t ComposedAttention::tempcache_apply(KvCache& cache, const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v, const AttentionContext& ctx, TempCacheMatch& r) {
    RECORD_USER_SCOPE("dc::tempcache_apply");
    CacheImpl& m = KvCacheAccess::impl(cache);
    const TempCacheParams& tp = m_cfg.tempcache_params;
    const int64_t N = q.size(2);
    if (!r.cand_t.defined()) {   // no candidates
        cache.append(k, v, ctx.frame);
        return 0;
    }
    at::Tensor match = r.match, cosv = r.cosv;   // [N] int64 cache index, [N] cosine (CPU)
    // One-to-one: each cache entry takes at most one new token, the most similar (lowest index on ties).
    match = match.contiguous();
    cosv = cosv.contiguous();
    const int64_t* mp = match.data_ptr<int64_t>();
    const double* cp = cosv.data_ptr<double>();
    std::unordered_map<int64_t, int64_t> best;   // cache index → token
    for (int64_t i = 0; i < N; ++i) {
        const double c = std::min(1.0, cp[i]);
        if (!(c >= tp.tau)) continue;
        auto it = best.find(mp[i]);
        if (it == best.end())
            best.emplace(mp[i], i);
        else if (c > std::min(1.0, cp[it->second]))
            it->second = i;
    }
    std::vector<int64_t> src, idx, rest;
    std::vector<bool> merged(static_cast<size_t>(N), false);
    for (const auto& kv : best) merged[static_cast<size_t>(kv.second)] = true;
    for (int64_t i = 0; i < N; ++i) {
        if (merged[static_cast<size_t>(i)]) {
            src.push_back(i);
            idx.push_back(mp[i]);
        } else {
            rest.push_back(i);
        }
    }
    const int64_t M = static_cast<int64_t>(src.size());
    // idx, src and rest in one index tensor.
    std::vector<int64_t> rows = idx;
    rows.insert(rows.end(), src.begin(), src.end());
    rows.insert(rows.end(), rest.begin(), rest.end());
    const at::Tensor rows_t = index_tensor(rows, m.device);
    if (M > 0) {
        at::Tensor idx_t = rows_t.narrow(0, 0, M);
        at::Tensor src_t = rows_t.narrow(0, M, M);
        const auto dt = compute_dtype(cache.dtype());
        at::Tensor g = cache.group_sizes().index_select(0, idx_t).to(dt).view({1, 1, M, 1});   // [1, 1, M, 1]
        at::Tensor v_old = cache.values().index_select(2, idx_t).to(dt);                        // [1, H, M, D]
        at::Tensor v_new = (v_old * g + v.index_select(2, src_t).to(dt)) / (g + 1);            // running mean
        at::Tensor g_new = cache.group_sizes().index_select(0, idx_t) + 1;                     // [M] int32
        cache.update(idx_t, k.index_select(2, src_t), v_new.to(cache.dtype()), ctx.frame, g_new);
    }
    if (!rest.empty()) {
        const at::Tensor rest_t = rows_t.narrow(0, 2 * M, static_cast<int64_t>(rest.size()));
        cache.append(k.index_select(2, rest_t), v.index_select(2, rest_t), ctx.frame);
    }
    return M;
}

#ifdef DC_HAVE_CUDA
TempCacheMatch ComposedAttention::tempcache_device_start(KvCache& cache, const at::Tensor& q, const at::Tensor& k,
                                                       const at::Tensor& v, const AttentionContext& ctx) const {
    RECORD_USER_SCOPE("dc::tempcache_device_start");
    TempCacheMatch r;
    CacheImpl& m = KvCacheAccess::impl(cache);
    const int64_t N = k.size(2), T = m.size;
    std::vector<int64_t> cand;   // rows of frames ≥ frame − lookback, ascending
    const int64_t lo = ctx.frame - m_cfg.tempcache_params.lookback;
    if (!m.rows_since(lo, cand))
        for (int64_t t = 0; t < T; ++t)
            if (m.host_frames[static_cast<size_t>(t)] >= lo) cand.push_back(t);
    if (cand.empty()) return r;   // finish appends the frame (no device_plan)
    r.cand_t = index_tensor(cand, m.device);
    const at::Tensor kd = k.to(m.dtype).contiguous(), vd = v.to(m.dtype).contiguous();
    auto mc = dc::cuda::tempcache_match(q.contiguous(), kd, cache.keys(), r.cand_t);
    const at::Tensor plan = dc::cuda::tempcache_resolve(mc.first, mc.second, m_cfg.tempcache_params.tau);
    const at::Tensor idx_t = plan.narrow(0, 2, N), src_t = plan.narrow(0, 2 + N, N), rest_t = plan.narrow(0, 2 + 2 * N, N);
    m.reserve(T + N);   // before the views below: it may move the storage
    at::Tensor kc = m.k.narrow(2, 0, T), vc = m.v.narrow(2, 0, T), bc = m.bias.narrow(2, 0, T);
    at::Tensor fc = m.frames.narrow(0, 0, T), gc = m.group.narrow(0, 0, T);
    dc::cuda::tempcache_merge(kc, vc, bc, fc, gc, idx_t, src_t, kd, vd, ctx.frame);   // idx −1: skipped
    // All N rows after the live ones are written; the first R are the appended tokens (adopted by finish).
    m.k.narrow(2, T, N).copy_(kd.index_select(2, rest_t));
    m.v.narrow(2, T, N).copy_(vd.index_select(2, rest_t));
    m.bias.narrow(2, T, N).zero_();
    m.frames.narrow(0, T, N).fill_(ctx.frame);
    m.group.narrow(0, T, N).fill_(1);
    if (m.code_tag != 0) {
        const at::Tensor nc = lsh_codes(kd, m.code_planes);   // [1, H, N] codes of the new keys
        // Merged entries take their token's code; the padding after M lands on row T + N − 1, which the append
        // copy just below writes again.
        const at::Tensor dst = at::where(idx_t.ge(0), idx_t, at::full_like(idx_t, T + N - 1));
        m.codes.index_copy_(2, dst, nc.index_select(2, src_t));
        m.codes.narrow(2, T, N).copy_(nc.index_select(2, rest_t));
    }
    r.device_plan = at::empty({2 + N}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
    r.device_plan.copy_(plan.narrow(0, 0, 2 + N), /*non_blocking=*/true);
    return r;
}
#endif

int64_t ComposedAttention::tempcache_device_finish(KvCache& cache, const AttentionContext& ctx,
                                                   const TempCacheMatch& r) const {
    CacheImpl& m = KvCacheAccess::impl(cache);
    const int64_t* pp = r.device_plan.data_ptr<int64_t>();   // landed: the caller waited for the device
    const int64_t M = pp[0], R = pp[1];
    const int64_t* idx = pp + 2;
    m.log_written(ctx.frame, idx, M);
    for (int64_t j = 0; j < M; ++j) {
        const size_t t = static_cast<size_t>(idx[j]);
        if (--m.frame_count[m.host_frames[t]] == 0) m.frame_count.erase(m.host_frames[t]);
        m.host_frames[t] = ctx.frame;
        ++m.frame_count[ctx.frame];
        m.host_group[t] += 1;
    }
    m.adopt_appended(R, ctx.frame);
    if (R == 0 && M > 0) m.touched();
    m.store.reset();   // a CPU-side bucket store (never kept for CUDA caches) is rebuilt when next needed
    return M;
}

// Evicts whole frames: keeps `sinks` oldest and the frames chosen by keep_frame; returns tokens evicted.
int64_t evict_frames(KvCache& cache, const std::vector<int64_t>& drop_frames) {
    RECORD_USER_SCOPE("dc::evict_frames");
    if (drop_frames.empty()) return 0;
    CacheImpl& m = KvCacheAccess::impl(cache);
    std::vector<int64_t> sorted = drop_frames;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> keep;
    keep.reserve(static_cast<size_t>(m.size));
    for (int64_t t = 0; t < m.size; ++t)
        if (!std::binary_search(sorted.begin(), sorted.end(), m.host_frames[static_cast<size_t>(t)])) keep.push_back(t);
    const int64_t n = m.size - static_cast<int64_t>(keep.size());
    cache.compact(keep);
    return n;
}

int64_t apply_window(KvCache& cache, const WindowParams& w) {
    std::vector<int64_t> ids = cache.frame_ids();   // ascending
    const int64_t n = static_cast<int64_t>(ids.size());
    if (n <= w.frames + w.sinks) return 0;
    std::vector<int64_t> drop(ids.begin() + w.sinks, ids.end() - w.frames);
    return evict_frames(cache, drop);
}

int64_t apply_budget(KvCache& cache) {
    if (cache.max_tokens <= 0 && cache.max_bytes <= 0) return 0;
    CacheImpl& m = KvCacheAccess::impl(cache);
    if (m.size == 0) return 0;
    const int64_t per_entry = cache.bytes() / m.size;
    std::map<int64_t, int64_t> count = m.frame_count;   // frame → tokens
    std::vector<int64_t> ids;
    for (const auto& kv : count) ids.push_back(kv.first);
    int64_t tokens = m.size;
    auto over = [&](double fraction) {
        return (cache.max_tokens > 0 && static_cast<double>(tokens) > fraction * static_cast<double>(cache.max_tokens)) ||
               (cache.max_bytes > 0 &&
                static_cast<double>(tokens * per_entry) > fraction * static_cast<double>(cache.max_bytes));
    };
    if (!over(1.0)) return 0;
    const double low = 1.0 - std::clamp(cache.budget_slack, 0.0, 1.0);
    std::vector<int64_t> drop;
    const int64_t first = std::max<int64_t>(0, cache.sink_frames);
    for (int64_t i = first; i + 1 < static_cast<int64_t>(ids.size()) && over(low); ++i) {   // newest frame stays
        drop.push_back(ids[static_cast<size_t>(i)]);
        tokens -= count[ids[static_cast<size_t>(i)]];
    }
    return evict_frames(cache, drop);
}

void ComposedAttention::commit(KvCache& cache, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const AttentionContext& ctx, AttentionStats* stats) {
    commit_many({CommitJob{&cache, q, k, v, ctx}}, stats);
}

void ComposedAttention::commit_many(const std::vector<CommitJob>& jobs, AttentionStats* stats) {
    RECORD_USER_SCOPE("dc::commit_many");
    c10::NoGradGuard no_grad;
    std::vector<TempCacheMatch> matches(jobs.size());
    std::vector<bool> merging(jobs.size(), false);
#ifdef DC_HAVE_CUDA
    bool wait = false;   // a device commit is in flight
#endif
    for (size_t i = 0; i < jobs.size(); ++i) {
        const CommitJob& j = jobs[i];
        DC_CHECK(j.cache != nullptr, "commit: job " << i << " has no cache");
        check_frame_qkv(j.q, j.k, j.v, *j.cache, "commit");
        check_ctx(j.ctx);
        merging[i] = tempcache_merges() && j.cache->size() > 0;
        if (!merging[i]) continue;
#ifdef DC_HAVE_CUDA
        if (j.k.is_cuda()) {
            matches[i] = tempcache_device_start(*j.cache, j.q.detach(), j.k.detach(), j.v.detach(), j.ctx);
            wait = wait || matches[i].device_plan.defined();
            continue;
        }
#endif
        matches[i] = tempcache_match_start(*j.cache, j.q.detach(), j.k.detach(), j.ctx);
    }
#ifdef DC_HAVE_CUDA
    if (wait) dc::cuda::synchronize();   // every layer's device_plan has landed
#endif
    for (size_t i = 0; i < jobs.size(); ++i) {
        const CommitJob& j = jobs[i];
        AttentionStats st;
        st.committed = j.k.size(2);
        if (merging[i] && matches[i].device_plan.defined())
            st.merged = tempcache_device_finish(*j.cache, j.ctx, matches[i]);
        else if (merging[i])
            st.merged = tempcache_apply(*j.cache, j.q.detach(), j.k.detach(), j.v.detach(), j.ctx, matches[i]);
        else
            j.cache->append(j.k.detach(), j.v.detach(), j.ctx.frame);
        if (m_cfg.window) st.evicted += apply_window(*j.cache, m_cfg.window_params);
        st.evicted += apply_budget(*j.cache);
        if (stats) stats->add(st);
    }
}

}  // namespace

namespace {

void add_count(at::Tensor& pending, const at::Tensor& n) {   // a device scalar into a running device sum, no wait
    if (n.defined()) pending = pending.defined() ? pending + n : n.to(at::kLong);
}

int64_t take_count(at::Tensor& pending) {
    const int64_t v = pending.defined() ? pending.item<int64_t>() : 0;
    pending = at::Tensor();
    return v;
}

}  // namespace

void AttentionStats::add_pending(const at::Tensor& keys_attended_n, const at::Tensor& cross_kept_n) {
    add_count(pending_keys_attended, keys_attended_n);
    add_count(pending_cross_kept, cross_kept_n);
}

void AttentionStats::add_recall(const at::Tensor& recall, bool cross) {
    (cross ? cross_recall_calls : recall_calls) += 1;
    if (recall.is_cuda()) {
        at::Tensor& pending = cross ? pending_cross_recall_sum : pending_recall_sum;
        const at::Tensor r = recall.to(at::kDouble);
        pending = pending.defined() ? pending + r : r;
    } else {
        (cross ? cross_recall_sum : recall_sum) += recall.item<double>();
    }
}

void AttentionStats::resolve() {
    keys_attended += take_count(pending_keys_attended);
    cross_kept += take_count(pending_cross_kept);
    for (auto [pending, sum] : {std::pair{&pending_recall_sum, &recall_sum},
                                std::pair{&pending_cross_recall_sum, &cross_recall_sum}}) {
        if (!pending->defined()) continue;
        *sum += pending->item<double>();
        *pending = at::Tensor();
    }
}

Attention::Ptr make_attention(const AttentionSpec& spec) {
    AttentionSpec s = AttentionSpec::parse(spec.type, spec.params_json);   // validates (throws with the reason)
    return std::make_unique<ComposedAttention>(std::move(s));
}

}  // namespace dc
