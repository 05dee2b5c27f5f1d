// `dreamcaster bench attention` and the synthetic frames shared with the tests.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <utility>

#include "attention/ann.h"
#include "attention/attention.h"
#include "attention/attention_bench.h"
#include "common/common.h"

#ifdef DC_HAVE_CUDA
#include <torch/version.h>

#include "attention/cuda/cuda_ops.h"
#endif

namespace dc {

// ---- synthetic frames -------------------------------------------------------------------------------------------

struct SyntheticFrames::Impl {
    int64_t H, D, N, P, P_valid;
    double drift, replace, focus;
    at::Generator gen;
    at::Tensor content, vstate;   // [H, N, D]
    at::Tensor pk, pv;            // [H, P, D]
    at::Tensor valid;             // [P] bool
    std::vector<int64_t> in_view; // prompt tokens "in view"
    int64_t frame = 0;

    at::Tensor randn(at::IntArrayRef size) { return at::randn(size, gen, at::TensorOptions().dtype(at::kFloat)); }
    int64_t randint(int64_t hi) { return at::randint(hi, {1}, gen, at::TensorOptions().dtype(at::kLong)).item<int64_t>(); }
    at::Tensor renorm(const at::Tensor& x) const {
        return x / x.norm(2, {-1}, true).clamp_min(1e-12) * std::sqrt(static_cast<double>(D));
    }
};

SyntheticFrames::SyntheticFrames(int64_t heads, int64_t head_dim, int64_t tokens, double drift,
                                 double replace_fraction, double query_focus, uint64_t seed, int64_t prompt_tokens,
                                 int64_t prompt_valid) {
    DC_CHECK(heads >= 1 && head_dim >= 1 && tokens >= 1 && prompt_tokens >= 1 && prompt_valid >= 1 &&
                 prompt_valid <= prompt_tokens,
             "SyntheticFrames expects positive sizes and 1 ≤ prompt_valid ≤ prompt_tokens, found H=" << heads << " D="
                 << head_dim << " N=" << tokens << " P=" << prompt_tokens << " valid=" << prompt_valid);
    m_impl = std::make_unique<Impl>();
    Impl& m = *m_impl;
    m.H = heads, m.D = head_dim, m.N = tokens, m.P = prompt_tokens, m.P_valid = prompt_valid;
    m.drift = drift, m.replace = replace_fraction, m.focus = query_focus;
    m.gen = at::detail::createCPUGenerator(seed);
    m.pk = m.randn({m.H, m.P, m.D});
    m.pv = m.randn({m.H, m.P, m.D});
    m.valid = at::arange(m.P).lt(m.P_valid);
    const int64_t n_view = std::max<int64_t>(1, std::llround(0.3 * static_cast<double>(m.P_valid)));
    at::Tensor perm = at::randperm(m.P_valid, m.gen, at::TensorOptions().dtype(at::kLong));
    for (int64_t i = 0; i < n_view; ++i) m.in_view.push_back(perm[i].item<int64_t>());
}
SyntheticFrames::~SyntheticFrames() = default;
SyntheticFrames::SyntheticFrames(SyntheticFrames&&) noexcept = default;

SyntheticFrames::Frame SyntheticFrames::next() {
    Impl& m = *m_impl;
    if (m.frame == 0) {
        m.content = m.renorm(m.randn({m.H, m.N, m.D}));
        m.vstate = m.randn({m.H, m.N, m.D});
    } else {
        m.content = m.renorm(m.content + m.drift * m.randn({m.H, m.N, m.D}));
        m.vstate = m.vstate + m.drift * m.randn({m.H, m.N, m.D});
        const int64_t n_rep = std::llround(m.replace * static_cast<double>(m.N));
        if (n_rep > 0) {
            at::Tensor idx = at::randperm(m.N, m.gen, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, n_rep);
            m.content.index_copy_(1, idx, m.renorm(m.randn({m.H, n_rep, m.D})));
            m.vstate.index_copy_(1, idx, m.randn({m.H, n_rep, m.D}));
        }
        // The view changes slowly: every 4th frame one in-view prompt token is swapped for another valid one.
        if (m.frame % 4 == 0 && static_cast<int64_t>(m.in_view.size()) < m.P_valid) {
            int64_t cand = m.randint(m.P_valid);
            while (std::find(m.in_view.begin(), m.in_view.end(), cand) != m.in_view.end())
                cand = (cand + 1) % m.P_valid;
            m.in_view[static_cast<size_t>(m.randint(static_cast<int64_t>(m.in_view.size())))] = cand;
        }
    }
    ++m.frame;
    Frame f;
    f.k = m.content.unsqueeze(0).clone();
    f.v = m.vstate.unsqueeze(0).clone();
    f.q = (m.focus * m.content + m.randn({m.H, m.N, m.D})).unsqueeze(0);
    at::Tensor view = at::tensor(m.in_view, at::TensorOptions().dtype(at::kLong));
    at::Tensor pick = view.index_select(
        0, at::randint(static_cast<int64_t>(m.in_view.size()), {m.N}, m.gen, at::TensorOptions().dtype(at::kLong)));
    f.cq = (m.focus * m.pk.index_select(1, pick) + m.randn({m.H, m.N, m.D})).unsqueeze(0);
    return f;
}

at::Tensor SyntheticFrames::prompt_k() const { return m_impl->pk.unsqueeze(0); }
at::Tensor SyntheticFrames::prompt_v() const { return m_impl->pv.unsqueeze(0); }
at::Tensor SyntheticFrames::prompt_valid() const { return m_impl->valid.unsqueeze(0); }

// ---- benchmark --------------------------------------------------------------------------------------------------

namespace {

struct Row {
    std::string name;
    double self_first_ms = 0, self_ms = 0, cross_ms = 0, commit_ms = 0;
    double density = 1, recall = -1, kept = 1, cross_recall = -1, merge_rate = 0;
    int64_t tokens = 0, bytes = 0, index_bytes = 0;
};

void sync(const at::Tensor& t) {   // waits for the queued kernels
#ifdef DC_HAVE_CUDA
    if (t.is_cuda()) cuda::synchronize();
#else
    (void)t;
#endif
}

template <class F>
double time_ms(F&& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

Row run_one(const AttentionBenchConfig& c, const std::string& type, const std::string& params) {
    const at::Device dev = c.device == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
    const at::ScalarType dt = c.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
    auto attn = make_attention(AttentionSpec::parse(type, params));
    KvCache cache(c.heads, c.head_dim, dt, dev);
    SyntheticFrames gen(c.heads, c.head_dim, c.tokens, c.drift, c.replace_fraction, c.query_focus, c.seed,
                        c.prompt_tokens, c.prompt_valid);
    at::Tensor pk = gen.prompt_k().to(dev, dt), pv = gen.prompt_v().to(dev, dt), valid = gen.prompt_valid().to(dev);
    AttentionContext ctx;
    ctx.n_layers = c.n_layers;
    ctx.layer = c.n_layers - 1;
    ctx.n_steps = c.n_steps;
    AttentionStats commit_stats, s;   // s: density and recall over the last recall_frames frames
    for (int64_t f = 0; f < c.frames; ++f) {
        auto fr = gen.next();
        ctx.frame = f;
        if (f >= c.frames - c.recall_frames) {   // measured sparse calls; they also make codes incremental
            ctx.step = c.n_steps - 1;
            ctx.measure_recall = true;   // dense kernels have nothing to measure: skip them (saves minutes)
            if (attn->spec().config().annsa)
                attn->self_attend(fr.q.to(dev, dt), fr.k.to(dev, dt), fr.v.to(dev, dt), cache, ctx, &s);
            if (attn->spec().config().annca) attn->cross_attend(fr.cq.to(dev, dt), pk, pv, valid, ctx, &s);
            ctx.measure_recall = false;
        }
        ctx.step = c.n_steps;
        attn->commit(cache, fr.q.to(dev, dt), fr.k.to(dev, dt), fr.v.to(dev, dt), ctx, &commit_stats);
    }
    auto fr = gen.next();
    at::Tensor q = fr.q.to(dev, dt), k = fr.k.to(dev, dt), v = fr.v.to(dev, dt), cq = fr.cq.to(dev, dt);
    ctx.frame = c.frames;
    ctx.step = c.n_steps - 1;
    Row r;
    r.name = type;
    at::Tensor out;
    r.self_first_ms = time_ms([&] {   // includes building per-frame index data (bucket-sorted cache)
        out = attn->self_attend(q, k, v, cache, ctx, nullptr);
        sync(out);
    });
    std::vector<double> ts, tc;
    for (int i = 0; i < c.repeats; ++i) {
        ts.push_back(time_ms([&] {
            out = attn->self_attend(q, k, v, cache, ctx, nullptr);
            sync(out);
        }));
        tc.push_back(time_ms([&] {
            out = attn->cross_attend(cq, pk, pv, valid, ctx, nullptr);
            sync(out);
        }));
    }
    r.self_ms = median(ts);
    r.cross_ms = median(tc);
    s.resolve();
    r.density = s.density();
    r.recall = s.recall();
    r.kept = s.cross_kept_fraction();
    r.cross_recall = s.cross_recall();
    ctx.step = c.n_steps;
    r.commit_ms = time_ms([&] {
        attn->commit(cache, q, k, v, ctx, &commit_stats);
        sync(cache.keys());
    });
    r.merge_rate = commit_stats.merge_rate();
    r.tokens = cache.size();
    r.bytes = cache.bytes();
    r.index_bytes = cache.index_bytes();
    return r;
}

std::string fmt(const char* f, double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, x);
    return buf;
}
std::string opt(double x, const char* f = "%.3f") { return x < 0 ? std::string("–") : fmt(f, x); }

#ifdef DC_HAVE_CUDA
// Dense self-attention of one frame over a cache of `frames` frames: the split-KV kernel's achieved bandwidth on the
// keys, values and bias it must read, against the card's device-to-device copy bandwidth, and torch's own attention
// (scaled_dot_product_attention, without the per-key bias) on the same tensors.
std::string dense_bandwidth_section(const AttentionBenchConfig& c) {
    const at::ScalarType dt = c.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
    const auto o = at::TensorOptions().device(at::kCUDA).dtype(dt);
    const int64_t H = c.heads, D = c.head_dim, N = c.tokens, T = c.frames * c.tokens;
    at::manual_seed(c.seed);
    KvCache cache(H, D, dt, at::Device(at::kCUDA));
    for (int64_t f0 = 0; f0 < c.frames; f0 += 256) {   // appended in chunks (frame ids do not matter here)
        const int64_t n = std::min<int64_t>(256, c.frames - f0) * N;
        cache.append(at::randn({1, H, n, D}, o), at::randn({1, H, n, D}, o), f0);
    }
    at::Tensor q = at::randn({1, H, N, D}, o), k = at::randn({1, H, N, D}, o), v = at::randn({1, H, N, D}, o);
    auto attn = make_attention(AttentionSpec::parse("dense"));
    AttentionContext ctx;
    ctx.frame = c.frames;
    auto timed = [&](auto&& f) {
        f();
        sync(q);
        std::vector<double> ts;
        for (int i = 0; i < std::max(c.repeats, 10); ++i)
            ts.push_back(time_ms([&] {
                at::Tensor out = f();
                sync(out);
            }));
        return median(ts);
    };
    const double dense_ms = timed([&] { return attn->self_attend(q, k, v, cache, ctx, nullptr); });
    const double esize = static_cast<double>(c10::elementSize(dt));
    const double kv_bytes = static_cast<double>(T) * H * (2 * D * esize + 4);   // keys + values + f32 bias
    // Copy bandwidth: read + write of a buffer as large as the cache.
    at::Tensor src = at::empty({static_cast<int64_t>(kv_bytes)}, at::TensorOptions().device(at::kCUDA).dtype(at::kByte));
    at::Tensor dst = at::empty_like(src);
    const double copy_ms = timed([&] { return dst.copy_(src); });
    const double copy_gbs = 2 * kv_bytes / (copy_ms * 1e6), dense_gbs = kv_bytes / (dense_ms * 1e6);
    std::ostringstream os;
    os << "\nDense kernel bandwidth at " << c.frames << " frames (" << T << " cached keys, " << H << " heads × " << D
       << ", " << c.dtype << "): split-KV kernel " << fmt("%.3f", dense_ms) << " ms for " << fmt("%.0f", kv_bytes / 1e6)
       << " MB of keys, values and bias = " << fmt("%.0f", dense_gbs) << " GB/s; device copy (read + write) "
       << fmt("%.0f", copy_gbs) << " GB/s; kernel / copy = " << fmt("%.0f%%", 100 * dense_gbs / copy_gbs) << ".";
    if (dt == at::kBFloat16) {
        // The same call on each bf16 kernel (dense_attention picks wgmma where it runs, else mma_sync).
        for (auto [kernel, name] : {std::pair{dc::cuda::DenseKernel::mma_sync, "mma_sync"},
                                    std::pair{dc::cuda::DenseKernel::wgmma, "wgmma"}}) {
            if (kernel == dc::cuda::DenseKernel::wgmma && !dc::cuda::dense_wgmma_available(D)) continue;
            const double ms = timed([&] {
                return dc::cuda::dense_attention_using(kernel, q, cache.keys(), cache.values(), cache.bias(),
                                                       cache.frames(), k, v, at::Tensor(), c.frames);
            });
            os << " Kernel " << name << ": " << fmt("%.3f", ms) << " ms = " << fmt("%.0f", kv_bytes / (ms * 1e6))
               << " GB/s = " << fmt("%.0f%%", 100 * kv_bytes / (ms * 1e6) / copy_gbs) << " of copy.";
        }
    }
#if TORCH_VERSION_MAJOR >= 2
    {
        at::Tensor kk = at::cat({cache.keys(), k}, 2), vv = at::cat({cache.values(), v}, 2);
        const double sdpa_ms = timed([&] { return at::scaled_dot_product_attention(q, kk, vv); });
        os << " torch scaled_dot_product_attention on the same keys (no bias): " << fmt("%.3f", sdpa_ms) << " ms = "
           << fmt("%.0f", static_cast<double>(T) * H * 2 * D * esize / (sdpa_ms * 1e6)) << " GB/s; split-KV kernel "
           << fmt("%.1f×", sdpa_ms / dense_ms) << " faster.";
    }
#endif
    os << "\n";
    return os.str();
}
#endif

}  // namespace

std::string run_attention_bench(const AttentionBenchConfig& c) {
    DC_CHECK(c.device == "cpu" || c.device == "cuda", "bench device must be \"cpu\" or \"cuda\", found \"" << c.device
                                                                                                       << "\"");
    DC_CHECK(c.dtype == "float32" || c.dtype == "bfloat16",
             "bench dtype must be \"float32\" or \"bfloat16\", found \"" << c.dtype << "\"");
    DC_CHECK(c.frames >= 1 && c.repeats >= 1 && c.n_layers >= 1 && c.n_steps >= 1,
             "bench expects frames, repeats, n_layers, n_steps ≥ 1, found " << c.frames << ", " << c.repeats << ", "
                                                                            << c.n_layers << ", " << c.n_steps);
    if (c.device == "cuda") {
#ifdef DC_HAVE_CUDA
        DC_CHECK(at::hasCUDA(), "bench device \"cuda\" requested but no CUDA device is visible");
#else
        DC_FAIL("bench device \"cuda\" requested but this build has no CUDA kernels (build with a CUDA LibTorch)");
#endif
    }
    std::string device = c.device;
#ifdef DC_HAVE_CUDA
    if (c.device == "cuda") device = "cuda, " + cuda::device_name(0);
#endif
    std::ostringstream os;
    os << "Attention bench: device " << device << " (" << c.dtype << ", " << at::get_num_threads()
       << " torch threads), " << c.heads << " heads × " << c.head_dim << ", " << c.tokens << " tokens/frame, "
       << "measured at frame " << c.frames << " (layer " << c.n_layers - 1 << "/" << c.n_layers << ", step "
       << c.n_steps - 1 << "/" << c.n_steps << "), drift " << c.drift << ", " << c.replace_fraction * 100
       << "% tokens replaced/frame, prompt " << c.prompt_valid << "/" << c.prompt_tokens << ", FAISS "
       << (ann_have_faiss() ? "on" : "off") << ", params " << c.params_json << "\n\n";
    std::vector<Row> rows;
    for (const auto& type : c.configs) rows.push_back(run_one(c, type, c.params_json));
    const Row* dense = nullptr;
    for (const auto& r : rows)
        if (r.name == "dense") dense = &r;
    os << "| config | self ms | first self ms | self × dense | cross ms | cross × dense | commit ms | density | "
          "recall | cross kept | cross recall | merge rate | cache tokens | cache MB | index MB |\n"
       << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : rows) {
        os << "| " << r.name << " | " << fmt("%.2f", r.self_ms) << " | " << fmt("%.2f", r.self_first_ms) << " | "
           << (dense ? fmt("%.1f×", dense->self_ms / r.self_ms) : "–") << " | " << fmt("%.3f", r.cross_ms) << " | "
           << (dense ? fmt("%.2f×", dense->cross_ms / r.cross_ms) : "–") << " | " << fmt("%.2f", r.commit_ms)
           << " | " << fmt("%.3f", r.density) << " | " << opt(r.recall) << " | " << fmt("%.3f", r.kept) << " | "
           << opt(r.cross_recall) << " | " << fmt("%.3f", r.merge_rate) << " | " << r.tokens << " | "
           << fmt("%.1f", static_cast<double>(r.bytes) / 1e6) << " | "
           << fmt("%.1f", static_cast<double>(r.index_bytes) / 1e6) << " |\n";
    }
#ifdef DC_HAVE_CUDA
    if (c.device == "cuda") os << dense_bandwidth_section(c);
#endif
    if (c.sweep) {
        os << "\nAnnSA sweep (self-attention; dense cache and TempCache cache; sparse at any cache size):\n\n"
           << "| cache | bits | probes | self ms | first self ms | density | recall |\n|---|---|---|---|---|---|---|\n";
        for (const char* type : {"annsa", "tempcache+annsa"})
            for (auto bp : std::vector<std::pair<int, int>>{
                     {2, 1}, {3, 1}, {4, 1}, {6, 1}, {4, 4}, {5, 6}, {6, 8}, {6, 16}, {8, 16}, {8, 32}, {8, 48}}) {
                std::string params = "{\"annsa\": {\"bits\": " + std::to_string(bp.first) +
                                     ", \"probes\": " + std::to_string(bp.second) + ", \"min_cache_tokens\": 0}}";
                Row r = run_one(c, type, params);
                os << "| " << (std::string(type) == "annsa" ? "dense" : "tempcache") << " | " << bp.first << " | "
                   << bp.second << " | " << fmt("%.2f", r.self_ms) << " | " << fmt("%.2f", r.self_first_ms) << " | "
                   << fmt("%.4f", r.density) << " | " << opt(r.recall) << " |\n";
            }
        os << "\nAnnSA vs dense by cache size (default bits/probes, min_cache_tokens 0; the crossover sets "
              "annsa.min_cache_tokens):\n\n| frames | cache tokens | dense self ms | annsa self ms | annsa first ms |\n"
              "|---|---|---|---|---|\n";
        for (int64_t frames : {4, 8, 16, 32, 64, 128}) {
            AttentionBenchConfig cc = c;
            cc.frames = frames;
            Row d = run_one(cc, "dense", "{}");
            Row a = run_one(cc, "annsa", "{\"annsa\": {\"min_cache_tokens\": 0}}");
            os << "| " << frames << " | " << d.tokens - c.tokens << " | " << fmt("%.2f", d.self_ms) << " | "
               << fmt("%.2f", a.self_ms) << " | " << fmt("%.2f", a.self_first_ms) << " |\n";
        }
        os << "\nAnnCA sweep (cross-attention):\n\n| bits | probes | cross ms | kept | recall |\n|---|---|---|---|---|\n";
        AttentionBenchConfig cc = c;
        cc.frames = std::max<int64_t>(cc.recall_frames, 16);
        cc.configs = {"annca"};
        for (auto bp : std::vector<std::pair<int, int>>{{4, 1}, {6, 1}, {8, 1}, {9, 1}, {10, 1}, {12, 1}, {9, 2},
                                                        {10, 3}, {11, 3}, {12, 4}, {12, 6}}) {
            Row r = run_one(cc, "annca", "{\"annca\": {\"bits\": " + std::to_string(bp.first) +
                                             ", \"probes\": " + std::to_string(bp.second) + "}}");
            os << "| " << bp.first << " | " << bp.second << " | " << fmt("%.3f", r.cross_ms) << " | "
               << fmt("%.3f", r.kept) << " | " << opt(r.cross_recall) << " |\n";
        }
    }
    return os.str();
}

}  // namespace dc
