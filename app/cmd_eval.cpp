// `dreamcaster eval`: PSNR/SSIM of the world model against the real game on held-out clips, beside the copy-last
// and autoencoder-ceiling baselines. See world_model/evaluator.h.
#ifdef DC_HAVE_WORLD_MODEL
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

#include "app/commands.h"
#include "common/common.h"
#include "world_model/evaluator.h"

namespace dc::app {

void add_eval_command(CLI::App& root) {
    auto* cmd = root.add_subcommand(
        "eval",
        "Score the world model against the reference game on held-out clips (seeds training never uses): "
        "autoencoder ceiling, copy-last-frame, teacher-forced next frame, autoregressive horizons.");
    auto o = std::make_shared<EvalOptions>();
    auto csv = std::make_shared<std::string>();
    cmd->add_option("--model", o->model_path, "Model file (default: assets/models/default.json)");
    cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--clips", o->clips, "Held-out clips (agents cycle over the scripted agents)")
        ->capture_default_str();
    cmd->add_option("--horizons", o->horizons, "Autoregressive horizons in frames")->capture_default_str();
    cmd->add_option("--agents", o->agents, "Scripted agents to use (default: all)");
    cmd->add_option("--levels", o->levels, "Levels to use (default: all)");
    cmd->add_option("--steps", o->n_steps, "Euler steps per frame (default: the model's)");
    cmd->add_option("--ctx-noise", o->ctx_noise, "Previous-frame noise level at inference (default: the model's)");
    cmd->add_option("--attention", o->attention, "Attention spec for the rollouts (e.g. tempcache+annsa)")
        ->capture_default_str();
    cmd->add_option("--attention-params", o->attention_params, "JSON parameters of the attention spec");
    cmd->add_option("--seed", o->seed, "Evaluation stream seed (held out regardless)")->capture_default_str();
    cmd->add_option("--tf-frames", o->teacher_forced_frames, "Frames per clip scored teacher-forced (0 = skip)")
        ->capture_default_str();
    cmd->add_option("--restyle-clips", o->restyle_clips, "Prompt-change clips scored at the changed frame (0 = skip)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--speed-frames", o->speed_frames,
                    "Only time one rollout of N frames: ms per frame as the KV cache grows (2^k rows, CSV: all)");
    cmd->add_option("--threads", o->threads, "CPU intra-op threads of the model (default: LibTorch's)");
    cmd->add_option("--csv", *csv, "Also write the table as CSV to this file");
    cmd->callback([o, csv] {
        if (o->model_path.empty()) o->model_path = asset_path("models/default.json");
        const EvalReport r = evaluate_world_model(*o);
        std::cout << r.table();
        if (!csv->empty()) {
            r.write_csv(*csv);
            std::cout << "wrote " << *csv << "\n";
        }
    });
}

}  // namespace dc::app
#endif  // DC_HAVE_WORLD_MODEL
