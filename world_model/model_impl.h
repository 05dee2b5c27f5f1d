// world_model/model_impl.h — the networks (private to world_model): configuration, parameter store, autoencoder,
// prompt encoder and causal DiT, written with ATen ops only (no torch::nn), so the same code trains and infers.
//
//   dc::wm::ModelConfig cfg = dc::wm::ModelConfig::preset("default");
//   dc::wm::Net net(cfg);                          // parameters initialised from cfg.seed
//   at::Tensor z = net.encode(img);                // img [B, 3, 128, 128] in [0, 1] -> z [B, C, 16, 16] (normalised)
//   at::Tensor x0 = net.dit_masked(x, prev, cond, prompt, frame_prompt);   // training: [B, K, C, 16, 16]
//   at::Tensor y = net.dit_cached(x, prev, cond, prompt_kv, caches, attn, ctx, commit, &stats);   // one frame
//
// Model (DESIGN.md §4, decisions written next to each field):
//   * Autoencoder: conv ResNet, 8x down, 128x128x3 <-> 16x16xC, GroupNorm + SiLU; the latent is normalised by a
//     per-channel mean/std measured once before the DiT phase (buffers ae.latent_mean / ae.latent_std).
//   * DiT token input: concat(noisy latent x_t, previous frame's latent) -> 3x3 conv -> width W. The output predicts
//     the clean latent as a residual over the previous latent: x0_hat = prev + F(…), F zero-initialised, so an
//     untrained model is exactly copy-last-frame and training only has to learn the change.
//   * Block: adaLN(cond) -> self-attention over [cache ‖ frame] (QK RMS-norm, 2-D RoPE in the frame, per-head slope
//     on frame distance as an additive logit bias: -slope_h * (frame_q - frame_k)) -> cross-attention to the prompt
//     -> adaLN -> MLP with a depthwise 3x3 conv on the 16x16 grid between its two linears (convolutional mixing),
//     SiLU activations (erf-GELU costs ~10x more on the CPU player).
//   * Conditioning: cond = MLP(sin(t)) + MLP(sin(context-noise level)) + MLP(action); t is the flow time
//     (x_t = (1 - t) x0 + t eps, t = 1 is noise), per frame.
//   * Temporal position only enters through the slope bias, never the keys, so TempCache can merge keys of different
//     frames; slopes are fixed (ALiBi-like geometric series, buffer dit.temporal_slope) so SDPA's bias needs no grad.
// Mixed precision: parameters are fp32 masters; linears/convs cast inputs and weights to the compute dtype
// (bf16 on CUDA, fp32 on the CPU) and norms/softmax run in fp32 — a hand-written autocast that behaves the same on
// LibTorch 1.13 and 2.x.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/attention.h"

namespace dc::wm {

struct AeConfig {
    int latent_channels = 16;                        // C; 16 raises the reconstruction ceiling over 8 (MEASURED: 8 ch
                                                     // gave 32.2 dB) at a small DiT cost
    std::vector<int> enc_channels{64, 128, 192, 256};   // widths at 128, 64, 32, 16 px; encoder runs once per reset
    std::vector<int> dec_channels{192, 128, 64, 32};    // widths at 16, 32, 64, 128 px; kept narrow at high
                                                        // resolution because decode runs every frame on the CPU
    int dec_blocks_low = 2;                          // residual blocks at 16x16 in the decoder (cheap, most capacity)
    int groups = 16;                                 // GroupNorm groups (batch-independent, deterministic)
};

struct DitConfig {
    int width = 256;            // W; 256 keeps the CPU player near 4 fps (see docs/world_model.md)
    int depth = 6;              // blocks
    int head_dim = 64;          // heads = W / head_dim (DESIGN: heads of 64)
    int mlp_hidden = 768;       // 3 W: a little under the usual 4 W for CPU speed; the dw-conv adds capacity
    int prompt_len = 128;       // tokens per prompt (padded), Vocabulary::tokenize's max_len
    int prompt_layers = 2;      // bidirectional transformer layers of the prompt encoder (run once per prompt)
    int vocab_size = 0;         // Vocabulary::size() at training time (checked at load)
    std::string vocab_sha256;   // SHA-256 of the vocabulary words joined by '\n' (checked at load)
    float rope_base = 100.f;    // 2-D RoPE base; 16 positions per axis need only low frequencies
    float slope_max = 0.5f;     // temporal slopes: slope_max * 2^-h for head h (0.5, 0.25, … logits per frame)
    int heads() const { return width / head_dim; }
};

// Sampling defaults stored with the model (Session uses them).
struct SamplerConfig {
    int n_steps = 4;            // S Euler steps per frame (DESIGN default)
    float ctx_noise = 0.f;      // noise level given to the previous-frame channels at inference (trained on 0..max)
    float commit_t = 0.f;       // flow time of the commit pass (0 = clean)
};

struct ModelConfig {
    int frame_width = 128;      // pixels (the game renders 128x128)
    int frame_height = 128;
    int downsample = 8;         // autoencoder factor: 16x16 latent grid, 256 tokens per frame
    uint64_t seed = 1;          // parameter initialisation seed
    AeConfig ae;
    DitConfig dit;
    SamplerConfig sampler;
    int grid_h() const { return frame_height / downsample; }
    int grid_w() const { return frame_width / downsample; }
    int tokens() const { return grid_h() * grid_w(); }

    static ModelConfig preset(const std::string& name);   // "tiny" | "default"; throws listing names
    nlohmann::json to_json() const;
    static ModelConfig from_json(const nlohmann::json& j);   // missing fields keep defaults; bad types throw
};

// A named parameter in the flat fp32 master buffer.
struct ParamInfo {
    std::string name;
    std::vector<int64_t> shape;
    int64_t offset = 0, numel = 0;
    bool decay = true;          // AdamW weight decay (matrices yes, norms/biases/gains no)
};

// All trainable parameters are views into one flat buffer (so optimizer, EMA and checkpoints work on a single
// tensor); buffers (latent statistics, temporal slopes) are separate, not trained.
class ParamStore {
public:
    using Init = std::function<at::Tensor(const std::vector<int64_t>&)>;
    void declare(const std::string& name, std::vector<int64_t> shape, Init init, bool decay);
    void declare_buffer(const std::string& name, const at::Tensor& value);
    void allocate();                                   // builds the flat buffer from the inits (CPU, fp32)
    void to(at::Device device, at::ScalarType dtype);  // moves/casts flat + buffers; rebuilds views
    // Inference only: every parameter gets a storage of its own and flat() becomes empty (to() packs them again).
    // The flat buffer packs parameters back to back, so most views start at offsets that are not 16-byte aligned
    // (the decoder's 3-channel output bias shifts all that follows), and cuBLAS then falls back to its
    // element-aligned GEMM kernels; own storages are aligned by the allocator.
    void own_views();
    void set_requires_grad(bool on);
    const at::Tensor& get(const std::string& name) const;   // throws on unknown names
    at::Tensor& buffer(const std::string& name);
    const std::vector<ParamInfo>& infos() const { return m_infos; }
    const std::map<std::string, at::Tensor>& buffers() const { return m_buffers; }
    at::Tensor& flat() { return m_flat; }            // [P]
    const at::Tensor& flat() const { return m_flat; }
    void rebuild_views();
    // Parameters then buffers, in declaration order / name order; for saving.
    std::vector<std::pair<std::string, at::Tensor>> named_tensors() const;
    std::vector<at::Tensor> views() const;
    int64_t numel() const { return m_numel; }
    int64_t numel_prefix(const std::string& prefix) const;   // parameters whose names start with prefix
    at::Tensor decay_mask() const;                  // [P] float 1 where decay applies

private:
    std::vector<ParamInfo> m_infos;
    std::vector<Init> m_inits;
    std::map<std::string, size_t> m_index;
    std::vector<at::Tensor> m_views;
    std::map<std::string, at::Tensor> m_buffers;
    at::Tensor m_flat;
    int64_t m_numel = 0;
};

// Per-layer prompt keys/values for cross-attention, computed once per prompt.
struct PromptKV {
    std::vector<at::Tensor> k, v;   // per layer [B, H, P, D]
    at::Tensor valid;               // [B, P] bool (index 0 always valid: it carries the empty prompt)
};

class Net {
public:
    explicit Net(const ModelConfig& cfg);
    const ModelConfig& config() const { return m_cfg; }
    ParamStore& params() { return m_params; }
    const ParamStore& params() const { return m_params; }
    // Moves parameters; compute dtype is what linears/convs run in (kBFloat16 on CUDA for speed, kFloat on the CPU).
    void to(at::Device device, at::ScalarType param_dtype, at::ScalarType compute_dtype);
    at::Device device() const;
    at::ScalarType compute_dtype() const { return m_cdt; }

    // ---- autoencoder ----
    at::Tensor encode_raw(const at::Tensor& img) const;   // [B, 3, H, W] in [0, 1] -> [B, C, h, w]
    at::Tensor decode_raw(const at::Tensor& z) const;     // [B, C, h, w] -> [B, 3, H, W] (unclamped)
    at::Tensor normalize(const at::Tensor& z) const;      // raw -> unit-variance latent
    at::Tensor denormalize(const at::Tensor& z) const;
    at::Tensor encode(const at::Tensor& img) const { return normalize(encode_raw(img)); }
    at::Tensor decode(const at::Tensor& z) const { return decode_raw(denormalize(z)); }

    // ---- prompt ----
    // tokens [B, P] int64, valid [B, P] bool (false = padding; index 0 must be valid) -> [B, P, W] fp32
    at::Tensor encode_prompt(const at::Tensor& tokens, const at::Tensor& valid) const;
    PromptKV prompt_kv(const at::Tensor& feats, const at::Tensor& valid) const;   // feats [B, P, W]

    // ---- DiT ----
    // t, ctx_noise: [B, K] float; action: [B, K, 4] (forward, strafe, turn, use) -> [B, K, W] fp32
    at::Tensor cond(const at::Tensor& t, const at::Tensor& ctx_noise, const at::Tensor& action) const;
    // Training path, block-causal over K frames with plain torch ops (SDPA on LibTorch 2.x CUDA).
    // x, prev: [B, K, C, h, w]; cond: [B, K, W]; prompt: PromptKV over B*K rows (one prompt per frame).
    // Returns x0_hat [B, K, C, h, w] fp32.
    at::Tensor dit_masked(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond,
                          const PromptKV& prompt) const;
    // Inference path for one frame over per-layer caches. x, prev: [1, C, h, w]; cond: [1, 1, W].
    // commit = true also writes this frame's K/V into the caches (Attention::commit) and skips the unused tail.
    at::Tensor dit_cached(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond,
                          const PromptKV& prompt, std::vector<KvCache>& caches, Attention& attn,
                          AttentionContext ctx, bool commit, AttentionStats* stats) const;
    at::Tensor temporal_slope() const;   // [H] float32

private:
    friend class DitPass;
    at::Tensor dit_body(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond,
                        const std::function<at::Tensor(int, const at::Tensor&, const at::Tensor&, const at::Tensor&)>&
                            self_attn,
                        const std::function<at::Tensor(int, const at::Tensor&)>& cross_attn, int stop_after) const;
    at::Tensor lin(const at::Tensor& x, const std::string& p, bool bias = true) const;
    at::Tensor conv(const at::Tensor& x, const std::string& p, int64_t stride = 1, int64_t groups = 1) const;
    at::Tensor gn(const at::Tensor& x, const std::string& p) const;
    at::Tensor resblock(const at::Tensor& x, const std::string& p) const;
    at::Tensor rope(const at::Tensor& x) const;   // [B, K, N, H, D]
    const at::Tensor& P(const std::string& name) const { return m_params.get(name); }

    ModelConfig m_cfg;
    ParamStore m_params;
    at::ScalarType m_cdt;
    at::Tensor m_rope_cos, m_rope_sin;   // [N, D]
};

// One DiT forward split at its attention calls, so a caller runs attention between the stages: dit_body runs them
// in order with any attention; on CUDA the inference path captures each stage once in a CUDA graph and replays it
// (world_model/cuda_graphs.h). Shapes: x, prev [B, K, C, h, w]; cond [B, K, W]; N = h·w tokens per frame.
//
//   DitPass p(net);  p.begin(x, prev, cond);
//   for (int l = 0; l < depth; ++l) {
//       auto [q, k, v] = p.qkv(l);                                   // [B, H, K*N, D] compute dtype
//       at::Tensor cq = p.after_self(l, self_attention(q, k, v));   // -> cross-attention queries [B, K, N, H, D]
//       p.after_cross(l, cross_attention(cq));                       // [B, K, N, W]
//   }
//   at::Tensor x0 = p.end();                                         // [B, K, C, h, w] fp32
class DitPass {
public:
    explicit DitPass(const Net& net) : m_net(net) {}
    struct Qkv {
        at::Tensor q, k, v;   // [B, H, K*N, D] in the compute dtype
    };
    void begin(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond);
    Qkv qkv(int l);
    at::Tensor after_self(int l, const at::Tensor& o);   // o [B, H, K*N, D] -> cq [B, K, N, H, D]
    void after_cross(int l, const at::Tensor& c);        // c [B, K, N, W]: cross-attention output, pre-projection
    at::Tensor end();                                    // x0_hat [B, K, C, h, w] fp32

private:
    const Net& m_net;
    int64_t m_B = 0, m_K = 0, m_C = 0, m_gh = 0, m_gw = 0;
    at::Tensor m_prev, m_xs, m_cs;     // prev latent; residual stream [B, K, N, W] fp32; SiLU(cond) [B, K, W]
    std::vector<at::Tensor> m_mod;     // this block's adaLN: 6 x [B, K, 1, W]
};

// The attention calls of one inference pass (one frame, B = K = 1) over per-layer KV caches: what dit_cached runs
// between the DitPass stages, and what the CUDA-graph pass (cuda_graphs.h) runs between its replays.
struct CachedAttention {
    CachedAttention(const Net& net, const PromptKV& prompt, std::vector<KvCache>& caches, Attention& attn,
                    AttentionContext ctx, bool commit, AttentionStats* stats);
    // q, k, v [1, H, N, D] -> [1, H, N, D]; a commit pass also commits k/v, and returns undefined in the last block.
    at::Tensor self(int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
    at::Tensor cross(int l, const at::Tensor& cq);   // cq [1, 1, N, H, D] -> [1, 1, N, H*D]
    // The same over another copy of the prompt's K/V and mask, adding to stats_out (the CUDA graphs' static
    // buffers and per-block statistics).
    at::Tensor cross(int l, const at::Tensor& cq, const PromptKV& prompt_kv, AttentionStats* stats_out);
    int stop_after() const { return commit ? depth - 1 : -1; }   // block after which a commit pass stops

    const PromptKV& prompt;
    std::vector<KvCache>& caches;
    Attention& attn;
    AttentionContext ctx;
    bool commit;
    AttentionStats* stats;
    int depth;
    std::vector<Attention::CommitJob> pending_commits;   // a commit pass's layers so far (see self())
};

// Attention with an additive float bias and/or key mask, plain ops (and SDPA on LibTorch >= 2 for CUDA tensors).
// q [B, H, Lq, D], k/v [B, H, Lk, D], bias broadcastable to [B, H, Lq, Lk] or undefined, key_valid [B, Lk] bool or
// undefined -> [B, H, Lq, D] in q's dtype.
at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                            const at::Tensor& key_valid);
// Block-causal bias for K frames of N tokens: [1, H, K*N, K*N] float, -slope_h * (fq - fk) or -inf for fk > fq.
at::Tensor block_causal_bias(const at::Tensor& slope, int64_t K, int64_t N);

// Sinusoidal embedding of scalars [..] -> [.., dim].
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim);

}  // namespace dc::wm
