// world_model/cuda_graphs.h — the inference DiT pass and the decoder replayed from CUDA graphs (private to
// world_model).
//
// One frame of the DiT is hundreds of small kernels (256 tokens, width 256); launched one by one through LibTorch,
// the host's dispatch, not the GPU, sets the frame time (bench/results/rollout-h100.md: 34 ms a frame against a
// roofline floor under 1 ms). DitGraphs captures each DitPass stage between two attention calls (with the
// conditioning MLP in the first) once per Session and replays it; attention — whose cache grows every frame and
// whose accelerations choose keys on the fly — still runs eagerly between the replays, so every attention
// configuration works unchanged. Inputs are copied into static buffers; stage outputs are the graphs' own tensors.
//
//   wm::DitGraphs g(net);                                                  // CUDA nets only
//   g.capture_dit(x);  g.capture_decoder(x);                               // once; throw if capture fails
//   wm::CachedAttention ca(net, prompt, caches, attn, ctx, false, &stats);
//   at::Tensor x0 = g.run(x, prev, t, ctx_noise, action, ca);              // == net.dit_cached(x, prev, cond, …)
//   at::Tensor img = g.decode(x0);                                         // == net.decode(x0)
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <memory>

#include "world_model/model_impl.h"

namespace dc::wm {

class DitGraphs {
public:
    static bool available();   // this build can capture CUDA graphs (a CUDA LibTorch)
    explicit DitGraphs(const Net& net);   // net on a CUDA device; nothing is captured yet
    ~DitGraphs();
    DitGraphs(const DitGraphs&) = delete;
    DitGraphs& operator=(const DitGraphs&) = delete;

    // Captures the DiT stages for inputs shaped like x [1, C, h, w] / the decoder for latents shaped like z. Throws
    // dc::Error or a CUDA error when capturing fails (the caller then runs without graphs); run/decode need them.
    void capture_dit(const at::Tensor& x);
    void capture_decoder(const at::Tensor& z);
    bool dit_ready() const;
    bool decoder_ready() const;

    // x, prev [1, C, h, w]; t, ctx_noise: the frame's flow time and context-noise level; action (forward, strafe,
    // turn, use) — as Net::cond takes them. Returns x0_hat [1, C, h, w] fp32 (a fresh tensor), or an undefined
    // tensor for a commit pass (it stops after the last block's commit). Errors of the attention calls propagate
    // (the graphs stay valid).
    at::Tensor run(const at::Tensor& x, const at::Tensor& prev, float t, float ctx_noise,
                   const std::array<float, 4>& action, CachedAttention& attention);
    at::Tensor decode(const at::Tensor& z);   // z [1, C, h, w] -> [1, 3, H, W] fp32 (a fresh tensor)

private:
    struct Impl;
    std::unique_ptr<Impl> m;
};

}  // namespace dc::wm
