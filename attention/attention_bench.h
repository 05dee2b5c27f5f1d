// attention/attention_bench.h — `dreamcaster bench attention`: the attention parts on synthetic model-shaped frames.
//
//   dc::AttentionBenchConfig cfg;  cfg.frames = 300;  cfg.device = "cpu";
//   std::string table = dc::run_attention_bench(cfg);   // markdown: one row per configuration
//
// Each configuration commits `frames` synthetic frames through its cache policy, then times one frame of
// self-attention (a sparse step of a sparse block: the case AnnSA accelerates), cross-attention and the commit, and
// reports per-call time, speedup vs dense, density, recall, merge rate and cache size. All configurations see the
// same frames (same seed). SyntheticFrames is also what the tests use.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dc {

struct AttentionBenchConfig {
    int64_t frames = 300;           // frames committed before measuring (a dense cache then holds 300·256 tokens)
    int64_t tokens = 256;           // tokens per frame: the model's 16×16 latent grid
    int64_t heads = 6;              // 6 heads of 64: the model-like shape (width 384)
    int64_t head_dim = 64;
    int64_t prompt_tokens = 128;    // padded prompt length (DESIGN §3)
    int64_t prompt_valid = 48;      // valid prompt tokens: a prompt of a few clauses
    double drift = 0.1;             // per-frame key drift (consecutive keys of a kept token have cosine ≈ 0.995)
    double replace_fraction = 0.05; // tokens replaced by new content each frame (motion reveals new surfaces)
    double query_focus = 1.5;       // query = focus · own key + noise: how peaked attention is on a token's history
    int n_layers = 8;               // the measured call is the last layer (sparse under the default fractions)
    int n_steps = 4;                // and the last denoising step (sparse)
    int repeats = 5;                // timed calls per measurement; the median is reported
    int64_t recall_frames = 8;      // density/recall averaged over sparse calls of the last 8 frames (256 rows)
    std::string device = "cpu";     // "cpu" or "cuda"
    std::string dtype = "float32";  // "float32" or "bfloat16"
    uint64_t seed = 1;
    std::vector<std::string> configs = {"dense", "window", "tempcache", "annsa", "annca", "tempcache+annsa+annca"};
    std::string params_json = "{}"; // attention params applied to every configuration
    bool sweep = false;             // also sweep annsa.bits/probes and annca.bits (tables after the main one)
};

// Runs the benchmark and returns markdown (a header line naming device and shape, then the tables).
// Throws dc::Error for a bad config (unknown device, CUDA requested without a CUDA build, bad attention type).
std::string run_attention_bench(const AttentionBenchConfig& config);

// Deterministic synthetic frames shaped like the model's: per token a content vector per head (N(0,1) entries)
// that drifts by `drift`·N(0,1) per frame (renormalised), `replace_fraction` of tokens replaced by fresh content
// each frame; k = content, v = a second drifting state, q = focus·content + N(0,1). Cross-attention: prompt keys
// N(0,1), `prompt_valid` of `prompt_tokens` valid; 30% of the valid tokens are "in view" (the set changes slowly)
// and each query is focus·(one in-view prompt key) + N(0,1). All tensors float32 on the CPU.
class SyntheticFrames {
public:
    SyntheticFrames(int64_t heads, int64_t head_dim, int64_t tokens, double drift, double replace_fraction,
                    double query_focus, uint64_t seed, int64_t prompt_tokens = 128, int64_t prompt_valid = 48);
    ~SyntheticFrames();
    SyntheticFrames(SyntheticFrames&&) noexcept;
    struct Frame {
        at::Tensor q, k, v;          // [1, H, N, D] self-attention inputs of the frame
        at::Tensor cq;               // [1, H, N, D] cross-attention queries
    };
    Frame next();                    // advances one frame
    at::Tensor prompt_k() const;     // [1, H, P, D]
    at::Tensor prompt_v() const;     // [1, H, P, D]
    at::Tensor prompt_valid() const; // [1, P] bool

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace dc
