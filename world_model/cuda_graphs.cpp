// world_model/cuda_graphs.cpp — DitGraphs (see cuda_graphs.h).
#include "world_model/cuda_graphs.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/common.h"

#if defined(DC_HAVE_CUDA) && __has_include(<ATen/cuda/CUDAGraph.h>)
#define DC_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace dc::wm {

#ifdef DC_CUDA_GRAPHS

struct DitGraphs::Impl {
    explicit Impl(const Net& n) : net(n), pass(n) {}

    // Captures the stages into graphs, in order, on a side stream (capture needs one). All stages first run once
    // eagerly, in the same order (warm-up: cuBLAS/cuDNN handles and workspaces, kernel loading); only then are they
    // captured one after another, so that each graph reads the tensors the previous graph's capture produced.
    // Allocations made during capture live in the shared pool, replayed in capture order.
    // Graphs go into pool_id (a fresh pool when it is {0, 0}).
    void capture(std::vector<std::unique_ptr<at::cuda::CUDAGraph>>& out,
                 const std::vector<std::function<void()>>& stages, c10::cuda::MempoolId_t& pool_id) {
        c10::cuda::device_synchronize();   // the static inputs were written on the current stream
        const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, net.device().index());
        c10::cuda::CUDAStreamGuard guard(side);
        for (const auto& f : stages) f();
        side.synchronize();
        if (pool_id.first == 0 && pool_id.second == 0) pool_id = at::cuda::graph_pool_handle();
        for (const auto& f : stages) {
            out.push_back(std::make_unique<at::cuda::CUDAGraph>());
            at::cuda::CUDAGraph& g = *out.back();
            g.capture_begin(pool_id, cudaStreamCaptureModeThreadLocal);   // other threads (the UI's GL interop) go on
            try {
                f();
            } catch (...) {
                try {
                    g.capture_end();
                } catch (...) {
                }
                throw;
            }
            g.capture_end();
        }
    }

    void capture_dit(const at::Tensor& x) {
        const at::Tensor& prev = x;   // same shape
        const auto& d = net.config().dit;
        const int64_t N = x.size(2) * x.size(3), H = d.heads(), D = d.head_dim, W = d.width;
        const at::TensorOptions f32 = x.options().dtype(at::kFloat), cdt = f32.dtype(net.compute_dtype());
        x_in = at::zeros(x.sizes(), f32);     // [1, C, h, w]
        prev_in = at::zeros(prev.sizes(), f32);
        t_in = at::zeros({1, 1}, f32);
        cn_in = at::zeros({1, 1}, f32);
        act_in = at::zeros({1, 1, 4}, f32);
        qkv.assign(static_cast<size_t>(d.depth), DitPass::Qkv{});
        cq.assign(static_cast<size_t>(d.depth), at::Tensor());
        o_in.clear();
        c_in.clear();
        for (int l = 0; l < d.depth; ++l) {
            o_in.push_back(at::zeros({1, H, N, D}, cdt));    // self-attention output
            c_in.push_back(at::zeros({1, 1, N, W}, cdt));    // cross-attention output, before its projection
        }
        graphs.clear();
        std::vector<std::function<void()>> stages;
        stages.emplace_back([this] {
            at::Tensor c = net.cond(t_in, cn_in, act_in);   // [1, 1, W]
            pass.begin(x_in.unsqueeze(1), prev_in.unsqueeze(1), c);
            qkv[0] = pass.qkv(0);
        });
        for (int l = 0; l < d.depth; ++l) {
            const auto i = static_cast<size_t>(l);
            stages.emplace_back([this, l, i] { cq[i] = pass.after_self(l, o_in[i]); });
            stages.emplace_back([this, l, i, depth = d.depth] {
                pass.after_cross(l, c_in[i]);
                if (l + 1 < depth) qkv[i + 1] = pass.qkv(l + 1);
                else x0 = pass.end();   // [1, 1, C, h, w]
            });
        }
        capture(graphs, stages, pool);
    }

    // ---- the fused set (cuda_graphs.h) ----

    // The fused set was captured for this Attention object and this prompt (the same tensors) and spec.
    bool fused_matches(const CachedAttention& a) const {
        if (fgraphs.empty() || f_attn != &a.attn) return false;
        const AttentionSpec& sp = a.attn.spec();
        if (sp.type != f_spec.type || sp.params_json != f_spec.params_json) return false;
        if (!f_src.valid.is_same(a.prompt.valid) || f_src.k.size() != a.prompt.k.size() ||
            f_src.v.size() != a.prompt.v.size())
            return false;
        for (size_t l = 0; l < f_src.k.size(); ++l)
            if (!f_src.k[l].is_same(a.prompt.k[l]) || !f_src.v[l].is_same(a.prompt.v[l])) return false;
        return true;
    }

    void drop_fused() {
        fgraphs.clear();   // first: the graphs release their pool
        fpass.reset();
        fqkv.clear();
        fx0 = at::Tensor();
        ftmpl.clear();
        acc_keys = acc_cross = at::Tensor();
        f_pending_keys = f_pending_cross = false;
        fprompt = PromptKV{};
        f_src = PromptKV{};
        f_attn = nullptr;
        f_spec = AttentionSpec{};
        fpool = {0, 0};
    }

    // Captures the fused set for this pass's Attention and prompt. Throws when capturing fails.
    void capture_fused(CachedAttention& a) {
        drop_fused();
        const int depth = net.config().dit.depth;
        DC_CHECK(static_cast<int>(a.prompt.k.size()) == depth && static_cast<int>(a.prompt.v.size()) == depth &&
                     a.prompt.valid.defined(),
                 "CUDA graphs: expected prompt K/V for " << depth << " blocks and a mask, found " << a.prompt.k.size()
                                                         << " and " << a.prompt.v.size());
        // Fresh copies each capture: Attention counts a mask once per tensor identity (cuda_graphs.h).
        for (int l = 0; l < depth; ++l) {
            const auto i = static_cast<size_t>(l);
            fprompt.k.push_back(a.prompt.k[i].clone(at::MemoryFormat::Contiguous));   // [1, H, P, D]
            fprompt.v.push_back(a.prompt.v[i].clone(at::MemoryFormat::Contiguous));   // [1, H, P, D]
        }
        fprompt.valid = a.prompt.valid.clone(at::MemoryFormat::Contiguous);            // [1, P] bool
        f_src = a.prompt;
        f_attn = &a.attn;
        f_spec = a.attn.spec();
        fpass = std::make_unique<DitPass>(net);
        fqkv.assign(static_cast<size_t>(depth), DitPass::Qkv{});
        ftmpl.assign(static_cast<size_t>(depth), AttentionStats{});
        const at::TensorOptions i64 = x_in.options().dtype(at::kLong);
        acc_keys = at::zeros({}, i64);    // [] int64
        acc_cross = at::zeros({}, i64);   // [] int64
        std::vector<std::function<void()>> stages;
        stages.emplace_back([this] {
            at::Tensor c = net.cond(t_in, cn_in, act_in);   // [1, 1, W]
            fpass->begin(x_in.unsqueeze(1), prev_in.unsqueeze(1), c);
            acc_keys.zero_();
            acc_cross.zero_();
            fqkv[0] = fpass->qkv(0);
        });
        for (int l = 0; l < depth; ++l) {
            const auto i = static_cast<size_t>(l);
            stages.emplace_back([this, &a, l, i, depth] {
                at::Tensor q = fpass->after_self(l, o_in[i]);    // [1, 1, N, H, D]
                AttentionStats st;
                at::Tensor c = a.cross(l, q, fprompt, &st);      // [1, 1, N, W]
                // Device-side counts: this replay's values, summed in the graph; the host part is the template.
                if (st.pending_keys_attended.defined()) {
                    acc_keys.add_(st.pending_keys_attended);
                    f_pending_keys = true;
                }
                if (st.pending_cross_kept.defined()) {
                    acc_cross.add_(st.pending_cross_kept);
                    f_pending_cross = true;
                }
                st.pending_keys_attended = st.pending_cross_kept = at::Tensor();
                ftmpl[i] = st;
                fpass->after_cross(l, c);
                if (l + 1 < depth) fqkv[i + 1] = fpass->qkv(l + 1);
                else fx0 = fpass->end();   // [1, 1, C, h, w]
            });
        }
        capture(fgraphs, stages, fpool);
    }

    // The fused set for this pass, captured first when needed; false when the pass must use the split set.
    bool use_fused(CachedAttention& a) {
        if (ffailed || !a.attn.cross_capturable(a.ctx)) return false;
        if (fused_matches(a)) return true;
        try {
            capture_fused(a);
            return true;
        } catch (const std::exception& e) {
            drop_fused();
            ffailed = true;
            (void)cudaGetLastError();   // a failed capture leaves its (non-sticky) error behind: clear it
            dc::log(dc::LogLevel::warn,
                    std::string("CUDA graphs: cross-attention runs between the replays for this session (capturing "
                                "it failed): ") +
                        e.what());
            return false;
        }
    }

    at::Tensor run_fused(CachedAttention& a) {
        fgraphs[0]->replay();
        size_t blocks = 0;   // blocks whose cross-attention ran (a commit pass stops before the last one's)
        for (int l = 0; l < a.depth; ++l) {
            const auto i = static_cast<size_t>(l);
            at::Tensor o = a.self(l, fqkv[i].q, fqkv[i].k, fqkv[i].v);   // [1, H, N, D]
            if (l == a.stop_after()) break;
            o_in[i].copy_(o);
            fgraphs[1 + i]->replay();
            ++blocks;
        }
        if (a.stats) {
            for (size_t b = 0; b < blocks; ++b) a.stats->add(ftmpl[b]);
            // Copies: the sums are rewritten by the next replay, and add_pending may keep the tensor it is given.
            if (blocks > 0 && (f_pending_keys || f_pending_cross))
                a.stats->add_pending(f_pending_keys ? acc_keys.clone() : at::Tensor(),
                                     f_pending_cross ? acc_cross.clone() : at::Tensor());
        }
        ++n_fused;
        if (a.stop_after() >= 0) return at::Tensor();
        return fx0[0].clone();   // [1, C, h, w]: a fresh tensor, the graph's own is rewritten by the next run
    }

    const Net& net;
    c10::cuda::MempoolId_t pool{0, 0};    // the split set's and the decoder's
    c10::cuda::MempoolId_t fpool{0, 0};   // the fused set's, fresh for each capture
    // Graphs before the tensors they write: members are destroyed in reverse order.
    std::vector<std::unique_ptr<at::cuda::CUDAGraph>> graphs;   // begin, then per block: after-self, after-cross
    std::vector<std::unique_ptr<at::cuda::CUDAGraph>> dec_graph;   // one graph
    std::vector<std::unique_ptr<at::cuda::CUDAGraph>> fgraphs;     // fused: begin, then one per block
    DitPass pass;
    at::Tensor x_in, prev_in, t_in, cn_in, act_in;   // static inputs: [1, C, h, w] x2, [1, 1], [1, 1], [1, 1, 4]
    std::vector<at::Tensor> o_in, c_in;               // per block: attention outputs copied in between replays
    std::vector<DitPass::Qkv> qkv;                    // per block: [1, H, N, D] each
    std::vector<at::Tensor> cq;                       // per block: [1, 1, N, H, D]
    at::Tensor x0;                                    // [1, 1, C, h, w] fp32
    at::Tensor z_in, img;                             // decoder: [1, C, h, w] -> [1, 3, H, W]

    // The fused set's state (valid while fgraphs is not empty).
    std::unique_ptr<DitPass> fpass;
    std::vector<DitPass::Qkv> fqkv;                   // per block: [1, H, N, D] each
    at::Tensor fx0;                                   // [1, 1, C, h, w] fp32
    std::vector<AttentionStats> ftmpl;                // per block: host counters of its cross-attention call
    at::Tensor acc_keys, acc_cross;                   // [] int64: the pass's device-side counts
    bool f_pending_keys = false, f_pending_cross = false;   // the calls produce device-side counts
    PromptKV fprompt;                                 // static copies: per block [1, H, P, D] x2, mask [1, P]
    PromptKV f_src;                                   // the session's tensors they were copied from (identity)
    const Attention* f_attn = nullptr;                // the Attention captured
    AttentionSpec f_spec;                             // and its spec
    bool ffailed = false;                             // a fused capture failed: the fused set stays off
    int64_t n_fused = 0;                              // passes run through the fused set
};

bool DitGraphs::available() { return true; }

DitGraphs::DitGraphs(const Net& net) : m(std::make_unique<Impl>(net)) {
    DC_CHECK(net.device().is_cuda(), "CUDA graphs need the model on a CUDA device, found " << net.device());
}

DitGraphs::~DitGraphs() = default;

void DitGraphs::capture_dit(const at::Tensor& x) {
    m->drop_fused();
    m->graphs.clear();
    try {
        m->capture_dit(x);
    } catch (...) {
        m->graphs.clear();
        throw;
    }
}

void DitGraphs::capture_decoder(const at::Tensor& z) {
    Impl& g = *m;
    g.dec_graph.clear();
    g.z_in = at::zeros(z.sizes(), z.options().dtype(at::kFloat));
    try {
        g.capture(g.dec_graph, {[&g] { g.img = g.net.decode(g.z_in); }}, g.pool);
    } catch (...) {
        g.dec_graph.clear();
        throw;
    }
}

bool DitGraphs::dit_ready() const { return !m->graphs.empty(); }
bool DitGraphs::decoder_ready() const { return !m->dec_graph.empty(); }

at::Tensor DitGraphs::run(const at::Tensor& x, const at::Tensor& prev, float t, float ctx_noise,
                          const std::array<float, 4>& action, CachedAttention& attention) {
    Impl& g = *m;
    DC_CHECK(dit_ready(), "DitGraphs::run before capture_dit");
    const bool fused = g.use_fused(attention);   // may capture (before the inputs are written: it runs stages)
    g.x_in.copy_(x);
    g.prev_in.copy_(prev);
    g.t_in.fill_(t);   // fills, not host-to-device copies: no stream synchronisation
    g.cn_in.fill_(ctx_noise);
    for (int64_t i = 0; i < 4; ++i) g.act_in.select(2, i).fill_(action[static_cast<size_t>(i)]);
    if (fused) return g.run_fused(attention);
    g.graphs[0]->replay();
    for (int l = 0; l < attention.depth; ++l) {
        const auto i = static_cast<size_t>(l);
        at::Tensor o = attention.self(l, g.qkv[i].q, g.qkv[i].k, g.qkv[i].v);   // [1, H, N, D]
        if (l == attention.stop_after()) return at::Tensor();
        g.o_in[i].copy_(o);
        g.graphs[1 + 2 * i]->replay();
        g.c_in[i].copy_(attention.cross(l, g.cq[i]));   // [1, 1, N, W]
        g.graphs[2 + 2 * i]->replay();
    }
    return g.x0[0].clone();   // [1, C, h, w]: a fresh tensor, the graph's own is rewritten by the next run
}

void DitGraphs::drop_fused() { m->drop_fused(); }
int64_t DitGraphs::fused_passes() const { return m->n_fused; }
bool DitGraphs::fused_failed() const { return m->ffailed; }

at::Tensor DitGraphs::decode(const at::Tensor& z) {
    Impl& g = *m;
    DC_CHECK(decoder_ready(), "DitGraphs::decode before capture_decoder");
    g.z_in.copy_(z);
    g.dec_graph[0]->replay();
    return g.img.clone();
}

#else   // a CPU LibTorch: no CUDA graphs; Session never asks for them (DitGraphs::available() is false)

struct DitGraphs::Impl {};

bool DitGraphs::available() { return false; }

DitGraphs::DitGraphs(const Net&) {
    DC_FAIL("CUDA graphs need a CUDA build of Dreamcaster (this one uses a CPU LibTorch)");
}

DitGraphs::~DitGraphs() = default;

void DitGraphs::capture_dit(const at::Tensor&) { DC_FAIL("CUDA graphs need a CUDA build of Dreamcaster"); }
void DitGraphs::capture_decoder(const at::Tensor&) { DC_FAIL("CUDA graphs need a CUDA build of Dreamcaster"); }
bool DitGraphs::dit_ready() const { return false; }
bool DitGraphs::decoder_ready() const { return false; }

at::Tensor DitGraphs::run(const at::Tensor&, const at::Tensor&, float, float, const std::array<float, 4>&,
                          CachedAttention&) {
    DC_FAIL("CUDA graphs need a CUDA build of Dreamcaster");
}

at::Tensor DitGraphs::decode(const at::Tensor&) { DC_FAIL("CUDA graphs need a CUDA build of Dreamcaster"); }
void DitGraphs::drop_fused() {}
int64_t DitGraphs::fused_passes() const { return 0; }
bool DitGraphs::fused_failed() const { return false; }

#endif

}  // namespace dc::wm
