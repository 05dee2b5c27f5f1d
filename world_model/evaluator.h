// world_model/evaluator.h — `dreamcaster eval`: fidelity of the world model against the real game (no torch types).
//
//   dc::EvalOptions o;  o.model_path = "assets/models/default.json";  o.clips = 8;
//   dc::EvalReport r = dc::evaluate_world_model(o);
//   std::cout << r.table();  r.write_csv("eval.csv");
//
// Clips are held out: their seeds (agent, spawn, warm-up, prompt) have bit 63 set, which training never uses
// (world_model/data_impl.h). Agents play at full speed (their own actions, one model frame per game tick). Rows, each
// with PSNR and SSIM against the real game frames:
//   ae_ceiling          decode(encode(real)) — no latent model can beat it
//   copy_last           the previous real frame as the next frame (h = 1), or the start frame held for h frames
//   teacher_forced      next frame from real context frames (the frame after each real frame, all frames of a clip)
//   autoregressive      frame h of a rollout from one real start frame driven by the real actions
//   vs_dense            (when --attention is not dense) accelerated rollout vs the dense rollout at frame h
//   restyle             the first frame after a prompt change (other held-out clips, which switch prompt at a random
//                       frame), teacher-forced with the new prompt; restyle_old_prompt: the same frame with the old
//                       prompt kept (equal figures = the prompt is ignored); restyle_copy_last: the frame before it
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dc {

struct EvalOptions {
    std::string model_path;              // model JSON file
    std::string device = "cpu";
    int clips = 8;                       // held-out clips
    std::vector<int> horizons{1, 8, 32, 128};   // autoregressive horizons (clip length = max + 1)
    std::vector<std::string> agents;     // empty = all scripted agents (cycled over clips)
    std::vector<std::string> levels;     // empty = all levels
    int n_steps = 0;                     // Euler steps S (0 = the model's default)
    float ctx_noise = -1.f;              // previous-frame noise level at inference (-1 = the model's default)
    std::string attention = "dense";     // attention spec type for the rollouts
    std::string attention_params = "{}";
    uint64_t seed = 7;                   // evaluation stream seed (held-out bit is always set)
    int teacher_forced_frames = 32;      // frames per clip scored teacher-forced (0 = skip)
    int restyle_clips = 8;               // prompt-change clips for the restyle rows (0 = skip)
    int speed_frames = 0;                // > 0: only time one rollout of this many frames (ms per frame vs cache)
    int threads = 0;                     // CPU intra-op threads for the model (0 = leave LibTorch's default)
    bool quiet = false;
};

struct EvalRow {
    std::string metric;                  // ae_ceiling, copy_last, teacher_forced, autoregressive, vs_dense, restyle*
    int horizon = 0;                     // frames ahead (0 where not applicable)
    double psnr = 0, ssim = 0;           // means over scored frames
    int64_t n = 0;                       // scored frames
};

// One timed frame of a speed run (--speed-frames).
struct SpeedRow {
    int64_t frame = 0, cache_tokens = 0;   // cache tokens per layer after this frame's commit
    double denoise_ms = 0, commit_ms = 0, decode_ms = 0;
};

struct EvalReport {
    std::vector<EvalRow> rows;
    std::vector<SpeedRow> speed;
    std::string model_description;
    double ms_per_frame = 0;             // mean rollout step time
    std::string table() const;           // aligned text table
    void write_csv(const std::string& path) const;
};

EvalReport evaluate_world_model(const EvalOptions& options);

}  // namespace dc
