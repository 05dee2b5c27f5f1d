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
//   g.drop_fused();                                                        // before the Attention object goes away
//
// Two graph sets share the static inputs (x, prev, t, context noise, action, the self-attention outputs):
//   * the split set (capture_dit): 1 + 2·depth graphs — begin+qkv(0), then per block after_self(l) and
//     after_cross(l)+qkv(l+1); self- and cross-attention run eagerly between them. Works with every attention.
//   * the fused set: 1 + depth graphs — begin+qkv(0), then per block after_self(l) → cross-attention(l) →
//     after_cross(l) → qkv(l+1); only self-attention (its cache grows every frame) runs eagerly. run() uses it for
//     a pass whose Attention::cross_capturable(ctx) is true (dense cross-attention, AnnCA "lsh" on CUDA, not on
//     recall frames), and the split set otherwise.
// The fused set is captured lazily by the first such pass after capture_dit, and again by the first such pass
// after the prompt or the Attention changed: it holds its own copies of the prompt's K/V/mask (fresh tensors each
// capture, because Attention counts a mask once per tensor identity), and the host-side statistics of its
// cross-attention calls (calls, prompt tokens available, …) are computed once at capture. A change is seen by
// tensor identity of the session's PromptKV and by the Attention's address; since an address can be reused, the
// owner of the Attention calls drop_fused() before replacing it. Each fused capture uses a memory pool of its own,
// so recapturing never touches memory the split set relies on. Capture costs (a device synchronisation, one eager
// warm-up and the capture of 1 + depth graphs) fall on those passes only.
// Statistics stay exact: per block, what cross_attend added at capture is kept as a host template (added after each
// replay of that block); its device-side counts (AttentionStats::add_pending) are summed inside the graphs into
// two device scalars, zeroed by the begin graph, and added once per pass to the pass's stats (one copy kernel, no
// host wait). A commit pass replays the blocks before the last one only, as the eager path stops there too.
// A fused capture that fails turns the fused set off for the rest of this DitGraphs (logged once); the split set
// and the pass go on unchanged.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
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

    // Captures the split DiT stages for inputs shaped like x [1, C, h, w] / the decoder for latents shaped like z.
    // Throws dc::Error or a CUDA error when capturing fails (the caller then runs without graphs); run/decode need
    // them. capture_dit also drops the fused set (it reads the static inputs capture_dit allocates).
    void capture_dit(const at::Tensor& x);
    void capture_decoder(const at::Tensor& z);
    bool dit_ready() const;
    bool decoder_ready() const;

    // x, prev [1, C, h, w]; t, ctx_noise: the frame's flow time and context-noise level; action (forward, strafe,
    // turn, use) — as Net::cond takes them. Returns x0_hat [1, C, h, w] fp32 (a fresh tensor), or an undefined
    // tensor for a commit pass (it stops after the last block's commit). Runs the fused set when the pass allows
    // it (capturing it first when needed; see above), else the split set. Errors of the attention calls propagate
    // (the graphs stay valid).
    at::Tensor run(const at::Tensor& x, const at::Tensor& prev, float t, float ctx_noise,
                   const std::array<float, 4>& action, CachedAttention& attention);
    at::Tensor decode(const at::Tensor& z);   // z [1, C, h, w] -> [1, 3, H, W] fp32 (a fresh tensor)

    // Forgets the fused set (it is captured again when next usable). Call before the Attention used by run() is
    // destroyed or replaced: the fused graphs read tensors that Attention owns (its LSH planes).
    void drop_fused();
    int64_t fused_passes() const;   // passes run through the fused set so far
    bool fused_failed() const;      // a fused capture failed: the fused set stays off

private:
    struct Impl;
    std::unique_ptr<Impl> m;
};

}  // namespace dc::wm
