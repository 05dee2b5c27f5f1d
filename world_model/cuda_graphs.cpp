// world_model/cuda_graphs.cpp — DitGraphs (see cuda_graphs.h).
#include "world_model/cuda_graphs.h"

#include <ATen/ATen.h>

#include <functional>
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
    void capture(std::vector<std::unique_ptr<at::cuda::CUDAGraph>>& out,
                 const std::vector<std::function<void()>>& stages) {
        c10::cuda::device_synchronize();   // the static inputs were written on the current stream
        const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, net.device().index());
        c10::cuda::CUDAStreamGuard guard(side);
        for (const auto& f : stages) f();
        side.synchronize();
        if (pool.first == 0 && pool.second == 0) pool = at::cuda::graph_pool_handle();
        for (const auto& f : stages) {
            out.push_back(std::make_unique<at::cuda::CUDAGraph>());
            at::cuda::CUDAGraph& g = *out.back();
            g.capture_begin(pool, cudaStreamCaptureModeThreadLocal);   // other threads (the UI's GL interop) go on
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
        capture(graphs, stages);
    }

    const Net& net;
    c10::cuda::MempoolId_t pool{0, 0};
    // Graphs before the tensors they write: members are destroyed in reverse order.
    std::vector<std::unique_ptr<at::cuda::CUDAGraph>> graphs;   // begin, then per block: after-self, after-cross
    std::vector<std::unique_ptr<at::cuda::CUDAGraph>> dec_graph;   // one graph
    DitPass pass;
    at::Tensor x_in, prev_in, t_in, cn_in, act_in;   // static inputs: [1, C, h, w] x2, [1, 1], [1, 1], [1, 1, 4]
    std::vector<at::Tensor> o_in, c_in;               // per block: attention outputs copied in between replays
    std::vector<DitPass::Qkv> qkv;                    // per block: [1, H, N, D] each
    std::vector<at::Tensor> cq;                       // per block: [1, 1, N, H, D]
    at::Tensor x0;                                    // [1, 1, C, h, w] fp32
    at::Tensor z_in, img;                             // decoder: [1, C, h, w] -> [1, 3, H, W]
};

bool DitGraphs::available() { return true; }

DitGraphs::DitGraphs(const Net& net) : m(std::make_unique<Impl>(net)) {
    DC_CHECK(net.device().is_cuda(), "CUDA graphs need the model on a CUDA device, found " << net.device());
}

DitGraphs::~DitGraphs() = default;

void DitGraphs::capture_dit(const at::Tensor& x) {
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
        g.capture(g.dec_graph, {[&g] { g.img = g.net.decode(g.z_in); }});
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
    g.x_in.copy_(x);
    g.prev_in.copy_(prev);
    g.t_in.fill_(t);   // fills, not host-to-device copies: no stream synchronisation
    g.cn_in.fill_(ctx_noise);
    for (int64_t i = 0; i < 4; ++i) g.act_in.select(2, i).fill_(action[static_cast<size_t>(i)]);
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

#endif

}  // namespace dc::wm
