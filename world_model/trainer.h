// world_model/trainer.h — the world-model trainer behind `dreamcaster train` (no torch types here).
//
//   dc::TrainOptions o;  o.preset = "tiny";  o.out_dir = "runs/tiny";  o.minutes = 1;
//   dc::TrainResult r = dc::train_world_model(o);     // writes runs/tiny/model.json + shards, checkpoint/
//   // later, continue exactly where it stopped (weights, EMA, AdamW moments, step counters, data position):
//   o.resume_dir = "runs/tiny";  dc::train_world_model(o);
//
// Phases: "ae" trains the autoencoder (L1 + MSE on frames); "dit" freezes the autoencoder (its EMA weights), measures
// the latent statistics once, then trains the DiT + prompt encoder with rectified flow and diffusion forcing on clips
// from a replay buffer of pre-encoded clips that is refreshed from the game threads every step; "both" runs ae then
// dit. A run folder holds run.json (the resolved configuration), checkpoint/ (state.json, params/ema/adam tensors as
// safetensors) and model.json + model-NNNNN.safetensors (the EMA weights in bf16, written at every checkpoint).
// Several ranks (TrainOptions::nproc, world_model/distributed.h) train one model data-parallel: identical parameters,
// per-rank data, one all-reduce of the flat gradient per step; rank 0 writes the run folder.
// Exact resume: the data stream is a pure function of (seed, clip index) and the step's noise of (seed, step), so a
// resumed run continues the same sequence (bit-exact on the CPU; on CUDA up to kernel nondeterminism).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dc {

struct TrainOptions {
    std::string preset = "default";      // "tiny" | "default": model + training configuration to start from
    std::string config_path;             // optional JSON file overriding the preset ({"model":…, "train":…})
    std::vector<std::string> set;        // overrides "train.dit.lr=1e-4", "model.dit.depth=8", … (JSON values)
    std::string out_dir = "runs/world_model";   // run folder
    std::string resume_dir;              // continue from <dir>/checkpoint (out_dir defaults to it)
    std::string init_model;              // start from a model file's weights (e.g. a trained autoencoder)
    std::string export_path;             // also write the final EMA model here (e.g. assets/models/default.json;
                                         // its shards are named after the file: default-NNNNN.safetensors)
    std::string device = "cpu";          // "cpu" | "cuda" | "cuda:N"
    std::string phase = "both";          // "ae" | "dit" | "both"
    int64_t steps = -1;                  // target steps of the selected phase (dit for "both"); -1 = config
    double minutes = 0;                  // stop cleanly (checkpoint + export) after this wall-clock time; 0 = none
    double checkpoint_minutes = -1;      // checkpoint period; -1 = config
    int threads = -1;                    // data threads; -1 = config (0 = all cores but two)
    int log_every = -1;                  // progress line period in steps; -1 = config
    bool quiet = false;                  // no progress lines (tests)
    // Data parallel (world_model/distributed.h): --nproc N starts N ranks on this host; a process started by a
    // launcher (WORLD_SIZE, RANK, … in the environment) joins its group. The configured batch is the global batch,
    // split evenly over the ranks.
    int nproc = 1;
    double dist_timeout_s = 120;         // a collective waiting longer than this fails the run
};

struct TrainResult {
    int64_t ae_step = 0, dit_step = 0;   // steps done so far (totals over resumed chunks)
    double ae_first_loss = 0, ae_last_loss = 0;     // mean over the first / last logging windows of this call
    double dit_first_loss = 0, dit_last_loss = 0;
    double samples_per_s = 0;            // training clips (dit) or frames (ae) per second, last phase of this call
    double data_frames_per_s = 0;        // game frames generated per second by the data threads
    bool finished = false;               // all requested steps are done
    std::string model_path;              // model.json written
    int world_size = 1;                  // ranks that trained together
};

TrainResult train_world_model(const TrainOptions& options);

// The resolved run configuration of a preset as JSON text ({"model":…, "train":…}), for --print-config.
std::string train_config_json(const std::string& preset);

}  // namespace dc
