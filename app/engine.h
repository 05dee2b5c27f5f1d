// app/engine.h — what produces the frames the app shows: the reference game, the neural world model, or both.
//
//   dc::app::EngineConfig config;  config.level = "e1m1";  config.model_path = "assets/models/default.json";
//   auto engine = dc::app::make_engine("neural", config);   // throws dc::Error (unknown name, model load failure)
//   dc::game::Image frame;
//   engine->reset(/*seed=*/0, frame);                // frame 0 (neural: the real spawn view the model starts from)
//   engine->step(action, frame);                     // frame 1, 2, ...
//   engine->set_prompt("the floor is mossy green");  // throws dc::Error (bad words); the old style stays
//   engine->redraw(frame);                           // the current state in the new style, where possible
//   engine->set_attention("tempcache+annsa", "{}");  // neural only: from the next frame; throws on a bad spec
//
// Engines are created by name (`dreamcaster play --engine NAME`): "reference" (the game), "neural" (the world model
// dreams every frame, dc::Session of world_model/world_model.h) and "side-by-side" (the same actions go into both:
// one image twice as wide, the dream on the left and the real game on the right, with PSNR/SSIM of dream vs real).
// This build's names come from engine_names(); the full set is known_engine_names() so that a name this build lacks
// gets a clear error, not "unknown". No torch types here: the neural engines live in engine_neural.cpp and
// engine_side_by_side.cpp behind make_engine.
//
// Threads: an Engine is used by one thread at a time (EngineRunner's worker); all calls below, controls included,
// happen between steps.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "game/game.h"
#include "world_model/device_frame.h"   // plain struct, no torch: usable in builds without the world model

namespace dc::app {

struct EngineConfig {
    std::string level = "e1m1";  // level name in assets/levels/ (the first map is the default start)
    std::string prompt;          // style prompt; "" = the game's default look
    uint64_t seed = 0;           // game seed (sprite phase) and, for the neural engine, its noise seed
    // Neural engines only.
    std::string model_path;  // model file (JSON); "" = asset_path("models/default.json")
    std::string device;      // "cpu" | "cuda" | "cuda:N"; "" = cuda when this build and machine have it, else cpu
    int n_steps = 4;         // S Euler steps per frame (1..16); 4 = DESIGN.md's default speed/quality point
    std::string attention_type = "dense";  // attention spec type, e.g. "tempcache+annsa+annca"
    std::string attention_params = "{}";   // its JSON params ({"tempcache": {"tau": 0.9}, ...})
    int64_t max_cache_tokens = 0;          // per-layer KV cache budget in tokens; 0 = unbounded
    int64_t inject_oom_at = -1;  // testing: throw a simulated out-of-memory error when making this frame (-1 = never)
};

// Per-step figures for the overlay, metrics files and benchmarks. Engines fill what they have; the ones they do not
// have keep the "n/a" value (-1), which the overlay shows as n/a and the metrics CSV leaves empty.
struct EngineStats {
    int64_t frame = 0;       // frames since reset (the reset frame is 0)
    double step_ms = 0;      // wall time of the last reset/step, all of it
    double render_ms = 0;    // of which producing the image (reference: raycasting; neural: decode)
    double simulate_ms = 0;  // of which advancing the state (reference: game tick; neural: denoise + commit)
    // Neural: the latency split of Session::step.
    double denoise_ms = -1, commit_ms = -1, decode_ms = -1;
    // Neural: KV cache (all layers, and per layer) and its budget.
    int64_t cache_tokens = -1, cache_bytes = -1;
    std::vector<int64_t> layer_tokens, layer_bytes;
    int64_t budget_tokens = -1;  // per-layer budget; 0 = unbounded, -1 = n/a
    // Memory.
    int64_t rss_bytes = 0;                                      // host resident set (/proc/self/statm), every engine
    int64_t gpu_allocated_bytes = -1, gpu_reserved_bytes = -1;  // -1 = n/a (not on a GPU)
    // Neural: attention figures of the last frame (AttentionStats of attention/attention.h).
    double density = -1;        // AnnSA: keys scored / keys available (1 = dense)
    double recall = -1;         // AnnSA: attention mass kept, when measured
    double merge_rate = -1;     // TempCache: merged / committed tokens
    double kept_fraction = -1;  // AnnCA: prompt tokens kept (1 = all)
    // Side-by-side: dream vs real game of the same frame.
    double psnr = -1, ssim = -1;
    // Neural: settings in force for this frame.
    int n_steps = 0;
    std::string attention;         // spec type, e.g. "tempcache+annsa" ("" = n/a)
    std::string attention_params;  // every parameter, JSON
    std::string device;            // "cpu", "cuda", ... ("" = n/a)
};

class Engine {
public:
    virtual ~Engine() = default;
    virtual std::string name() const = 0;
    virtual void reset(uint64_t seed, game::Image& out) = 0;              // back to the level start: frame 0
    virtual void step(const game::Action& action, game::Image& out) = 0;  // one tick -> the next frame
    virtual void set_prompt(const std::string& prompt) = 0;               // throws dc::Error; keeps the old style
    virtual const std::string& prompt() const = 0;
    // The current state drawn again (after a prompt change or a resync). False when the engine can only show the
    // change from its next frame (the neural engine).
    virtual bool redraw(game::Image& out) = 0;
    virtual std::optional<game::Pose> pose() const = 0;  // the player's pose when the engine knows it
    virtual float tick_hz() const = 0;                   // frames per second of game time
    virtual const EngineStats& stats() const = 0;

    // Neural settings, from the next frame. The reference engine has none: they throw dc::Error saying so.
    virtual bool has_model() const { return false; }
    virtual void set_attention(const std::string& type, const std::string& params_json);  // throws on a bad spec
    virtual void set_steps(int n_steps);                                                  // 1..16
    // A per-layer budget (0 = unbounded). The session's caches take it at a reset, so the dream restarts from the
    // last frame shown (its cache is rebuilt from there).
    virtual void set_cache_budget(int64_t max_tokens_per_layer);
    // Side-by-side: restart the dream from the current real frame (the model's context becomes that frame).
    virtual void resync();
    virtual std::string describe() const { return name(); }  // one line for the overlay (model, device)
    // The frame of the last step() also in GPU memory (neural on CUDA: Session::device_frame, with its ring rule);
    // empty for other engines, on the CPU, and after reset/restart until the next step.
    virtual DeviceFrame device_frame() const { return {}; }
};

const std::vector<std::string>& known_engine_names();  // reference, neural, side-by-side
std::vector<std::string> engine_names();               // those this build has
// Throws dc::Error for an unknown name or one this build lacks (listing engine_names()), and when the model of a
// neural engine cannot be loaded (saying why).
std::unique_ptr<Engine> make_engine(const std::string& name, const EngineConfig& config);

// The model file play uses when none is named: asset_path("models/default.json") ("" when there is no assets
// folder at all).
std::string default_model_path();
// The device the neural engine uses when none is named: "cuda" when this build and machine have one, else "cpu".
std::string default_device();

// Host memory in use by this process (resident set, from /proc/self/statm); 0 where unknown.
int64_t host_rss_bytes();

}  // namespace dc::app
