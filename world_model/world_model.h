// world_model/world_model.h — the neural engine: an action-conditioned autoregressive latent diffusion model.
//
//   auto model = dc::WorldModel::load(dc::asset_path("models/default.json"), "cpu");   // checks names/shapes/sha
//   dc::Session session(model, dc::SessionConfig{});
//   session.reset(start_frame, "the brick walls are dark red");        // start from a real frame of the game
//   dc::game::Image frame;  dc::FrameStats stats;
//   session.step(action, frame, &stats);                                // one model frame (S denoising steps)
//   session.set_attention(dc::AttentionSpec::parse("tempcache+annsa"));  // applies from the next frame
//   dc::DeviceFrame gpu = session.device_frame();                        // CUDA: the same frame, RGBA8 on the GPU
//
// The model (weights, immutable, shareable across threads) is separate from the Session (per-run state: KV caches,
// prompt encoding, RNG), like llama.cpp's model vs context. No torch types in this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "game/game.h"
#include "world_model/device_frame.h"

namespace dc {

class WorldModel;
namespace wm {
class SessionAccess;   // evaluator hooks (teacher forcing), world_model/world_model_impl.h
}
using WorldModelPtr = std::shared_ptr<const WorldModel>;

// Timings and sizes of one Session::step, for the overlay, recordings and benchmarks.
struct FrameStats {
    int64_t frame = 0;
    double denoise_ms = 0, commit_ms = 0, decode_ms = 0;
    int64_t cache_tokens = 0, cache_bytes = 0;          // all layers
    std::vector<int64_t> layer_tokens, layer_bytes;     // per layer
    AttentionStats attention;                           // accumulated over the frame's calls
    int64_t gpu_allocated_bytes = 0, gpu_reserved_bytes = 0;   // CUDA only
};

struct SessionConfig {
    int n_steps = 4;                       // S Euler steps per frame (1..16)
    AttentionSpec attention;               // dense by default
    uint64_t seed = 0;                     // noise seed; same seed + inputs => same frames on CPU
    int64_t max_cache_tokens = 0;          // per-layer budget (0 = unbounded); evicts down to 7/8 of it
    float ctx_noise = -1.f;                // noise level given to the previous-frame channels, 0..0.3 (higher =
                                           // more robust long rollouts, less detail); -1 = the model's default
    bool cuda_graphs = true;               // CUDA: replay the DiT's stages and the decoder from CUDA graphs captured on
                                           // the first frame (self-attention runs between the replays; cross-attention
                                           // inside them unless it needs the host, e.g. on recall frames); false
                                           // launches every op from the host (slower; for comparison)
    int recall_every = 64;                 // measure sparse-attention recall (≤ 32 sampled rows vs dense) on every
                                           // Nth frame, in one block (the blocks take turns), for the overlay and
                                           // metrics; 0 = never. A measuring frame costs several normal ones (a
                                           // dense reference over the sampled rows, cross-attention out of the
                                           // graphs): 89 ms against 15 on an H100 when every block measured
};

class WorldModel {
public:
    // Loads the JSON config + safetensors shards it names; verifies names, shapes, dtypes and SHA-256, and throws
    // dc::Error saying exactly what mismatched. device: "cpu" or "cuda[:N]".
    static WorldModelPtr load(const std::string& config_path, const std::string& device = "cpu");
    virtual ~WorldModel() = default;
    virtual std::string describe() const = 0;   // one line: params, layers, width, training steps
    virtual std::string device() const = 0;
    virtual int n_layers() const = 0;
    virtual int frame_width() const = 0;
    virtual int frame_height() const = 0;
};

class Session {
public:
    Session(WorldModelPtr model, SessionConfig config);
    ~Session();
    // Starts a run from a real frame (encoded into the first context frame) and a prompt (throws on bad words).
    void reset(const game::Image& start_frame, const std::string& prompt);
    // Generates the next frame for this action.
    void step(const game::Action& action, game::Image& out, FrameStats* stats = nullptr);
    void set_prompt(const std::string& prompt);        // from the next frame; throws dc::Error on unknown words
    void set_attention(const AttentionSpec& spec);     // from the next frame; throws on bad spec
    void set_steps(int n_steps);                       // 1..16
    const SessionConfig& config() const;
    int64_t frame() const;

    // The frame of the last step() (or teacher-forced step) as RGBA8 [H, W, 4] in device memory, for showing it
    // without a trip through the host (CUDA–GL interop). Empty (false) on a CPU session, and after reset() until the
    // next step. The host frame of step() is unchanged by this.
    // Lifetime: a CUDA session keeps a ring of kDeviceFrameRing buffers and its Nth step writes buffer
    // N % kDeviceFrameRing, so the frame of step N stays as it is while steps N+1 and N+2 run and is overwritten by
    // step N+3. Its work is complete when step() returns (the session's stream has been synchronized), so any
    // thread or stream may read it from then on. `owner` keeps the memory allocated past the session's end (reset by
    // a new session, fallbacks); only the contents follow the ring rule. The window copies each frame before it asks
    // for the step after next (one step in flight at most), so it always reads the frame it was given.
    static constexpr int kDeviceFrameRing = DeviceFrame::kRing;
    DeviceFrame device_frame() const;

private:
    friend class wm::SessionAccess;
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace dc
