// `dreamcaster train`: trains the world model (autoencoder, then DiT) on clips the reference game renders on CPU
// threads; resumable in chunks (--minutes, --resume). See world_model/trainer.h.
#ifdef DC_HAVE_WORLD_MODEL
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>

#include "app/commands.h"
#include "common/common.h"
#include "world_model/distributed.h"
#include "world_model/trainer.h"

namespace dc::app {

void add_train_command(CLI::App& root) {
    auto* cmd = root.add_subcommand(
        "train",
        "Train the world model. Phases: ae (autoencoder), dit (diffusion transformer on the frozen autoencoder), "
        "both. A run folder gets run.json, checkpoint/ and model.json + model-NNNNN.safetensors (EMA weights, bf16).");
    auto o = std::make_shared<TrainOptions>();
    auto print_config = std::make_shared<bool>(false);
    cmd->add_option("--preset", o->preset, "Model + training preset to start from")
        ->check(CLI::IsMember({"tiny", "default"}))
        ->capture_default_str();
    cmd->add_option("--config", o->config_path, "JSON file overriding the preset: {\"model\": {...}, \"train\": {...}}")
        ->check(CLI::ExistingFile);
    cmd->add_option("--set", o->set, "Override one field, e.g. --set train.dit.lr=2e-4 (repeatable)");
    cmd->add_option("--out", o->out_dir, "Run folder (with --resume: defaults to the resumed folder)")
        ->capture_default_str();
    cmd->add_option("--resume", o->resume_dir, "Continue the run in this folder exactly where it stopped")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--init", o->init_model, "Start from the weights of this model file (e.g. a trained autoencoder)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--export", o->export_path,
                    "Also write the final EMA model to this file (e.g. assets/models/default.json); with --resume "
                    "of a finished run it only exports");
    cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--phase", o->phase, "ae, dit or both")
        ->check(CLI::IsMember({"ae", "dit", "both"}))
        ->capture_default_str();
    cmd->add_option("--steps", o->steps, "Target steps of the selected phase (dit for 'both'); default: the config");
    cmd->add_option("--minutes", o->minutes, "Stop cleanly (checkpoint + model export) after this wall-clock time");
    cmd->add_option("--checkpoint-minutes", o->checkpoint_minutes, "Checkpoint period (default: the config)");
    cmd->add_option("--threads", o->threads, "Game data threads (0 = all cores but two; default: the config)");
    cmd->add_option("--log-every", o->log_every, "Progress line every N steps (default: the config)");
    cmd->add_option("--nproc", o->nproc,
                    "Data-parallel ranks on this host (one GPU each with --device cuda; Gloo on the CPU). Ranks "
                    "started by another launcher (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) need no --nproc")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    cmd->add_option("--dist-timeout", o->dist_timeout_s,
                    "Seconds a rank waits for the others in a collective before the run stops with an error")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_flag("--print-config", *print_config, "Print the preset's resolved configuration as JSON and exit");
    cmd->callback([o, print_config] {
        if (*print_config) {
            std::cout << train_config_json(o->preset) << "\n";
            return;
        }
        if (o->nproc > 1 && !started_as_rank()) {
            const std::string dir = o->resume_dir.empty() || o->out_dir != TrainOptions().out_dir ? o->out_dir
                                                                                                  : o->resume_dir;
            const bool cuda = o->device.rfind("cuda", 0) == 0;
            set_exit_code(launch_local_ranks(o->nproc, dir, cuda) == 0 ? kExitOk : kExitError);
            return;
        }
        const TrainResult r = train_world_model(*o);
        if (dist_env_from_environment().rank != 0) return;   // rank 0 reports for the group
        std::printf("trained: ae step %lld, dit step %lld (%s)\n", static_cast<long long>(r.ae_step),
                    static_cast<long long>(r.dit_step), r.finished ? "all requested steps done" : "stopped early");
        if (r.ae_first_loss > 0)
            std::printf("  ae loss %.5f -> %.5f\n", r.ae_first_loss, r.ae_last_loss);
        if (r.dit_first_loss > 0)
            std::printf("  dit loss %.5f -> %.5f\n", r.dit_first_loss, r.dit_last_loss);
        if (r.world_size > 1) std::printf("  ranks: %d (parameters verified identical)\n", r.world_size);
        std::printf("  model: %s\n", r.model_path.c_str());
    });
}

}  // namespace dc::app
#endif  // DC_HAVE_WORLD_MODEL
