// `dreamcaster bench`: timing of the parts of a frame. Modes are subcommands of `bench`; `bench game` times the
// reference renderer, `bench attention` the attention parts, `bench rollout` long rollouts of the model
// (app/rollout_bench.h). More modes register here as their own functions.
#include <CLI/CLI.hpp>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "app/commands.h"
#ifdef DC_HAVE_WORLD_MODEL
#include "app/rollout_bench.h"
#include "attention/attention_bench.h"
#endif
#include "common/common.h"
#include "game/game.h"

namespace dc::app {

namespace {

struct BenchGameOptions {
    std::string level = "e1m1";          // level to render
    std::string prompt;                  // style prompt ("" = default look)
    std::string agent = "random_walk";   // scripted agent that moves the player (game.h agent_names())
    uint64_t seed = 1;                   // game and agent seed
    int frames = 2000;                   // timed frames (~1 s at ~0.5 ms/frame; enough for a stable median)
    int warmup = 100;                    // untimed frames first (caches, first-frame allocation)
    bool pin = true;                     // run on one core (the CPU the process starts on)
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
    return v[i];
}

double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / v.size();
}

void run_bench_game(const BenchGameOptions& o) {
    DC_CHECK(o.frames > 0, "--frames: expected a positive frame count, found " << o.frames);
    std::string core = "not pinned";
    if (o.pin) {
        const int cpu = sched_getcpu();
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (cpu >= 0 && sched_setaffinity(0, sizeof(set), &set) == 0) core = "pinned to CPU " + std::to_string(cpu);
    }
    const game::Vocabulary vocab = game::Vocabulary::load_default();
    game::Game g(game::Level::load_named(o.level));
    if (!o.prompt.empty()) g.set_prompt(o.prompt, vocab);
    g.reset(o.seed);
    auto agent = game::make_agent(o.agent, o.seed);
    game::Image frame;
    for (int i = 0; i < o.warmup; ++i) {
        g.step(agent->act(g));
        g.render(frame);
    }
    using clock = std::chrono::steady_clock;
    std::vector<double> step_ms, render_ms;
    step_ms.reserve(o.frames);
    render_ms.reserve(o.frames);
    const auto start = clock::now();
    for (int i = 0; i < o.frames; ++i) {
        const game::Action a = agent->act(g);
        const auto t0 = clock::now();
        g.step(a);
        const auto t1 = clock::now();
        g.render(frame);
        const auto t2 = clock::now();
        step_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        render_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    const double wall_ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
    std::vector<double> total(step_ms.size());
    for (size_t i = 0; i < total.size(); ++i) total[i] = step_ms[i] + render_ms[i];
    std::printf("bench game: level %s, %dx%d, agent %s, %d frames after %d warm-up, one thread (%s)\n",
                o.level.c_str(), frame.width, frame.height, o.agent.c_str(), o.frames, o.warmup, core.c_str());
    std::printf("  %-8s %10s %10s %10s %12s\n", "part", "mean ms", "median ms", "p99 ms", "fps (mean)");
    auto line = [](const char* name, const std::vector<double>& v) {
        const double m = mean(v);
        std::printf("  %-8s %10.4f %10.4f %10.4f %12.0f\n", name, m, percentile(v, 0.5), percentile(v, 0.99),
                    m > 0 ? 1000.0 / m : 0.0);
    };
    line("step", step_ms);
    line("render", render_ms);
    line("total", total);
    std::printf("  wall: %.1f ms for %d frames (agent included) = %.0f fps\n", wall_ms, o.frames,
                wall_ms > 0 ? o.frames * 1000.0 / wall_ms : 0.0);
}

void add_bench_game(CLI::App& bench) {
    auto o = std::make_shared<BenchGameOptions>();
    CLI::App* cmd = bench.add_subcommand("game", "Time the reference game: ms/frame and fps of step and render on "
                                                 "one core");
    cmd->add_option("--frames", o->frames, "Timed frames")->capture_default_str();
    cmd->add_option("--warmup", o->warmup, "Untimed frames first")->capture_default_str();
    cmd->add_option("--level", o->level, "Level name")->capture_default_str();
    cmd->add_option("--prompt", o->prompt, "Style prompt");
    cmd->add_option("--agent", o->agent, "Scripted agent that moves the player")->capture_default_str();
    cmd->add_option("--seed", o->seed, "Game and agent seed")->capture_default_str();
    auto no_pin = std::make_shared<bool>(false);
    cmd->add_flag("--no-pin", *no_pin, "Do not pin the process to one CPU");
    cmd->callback([o, no_pin] {
        o->pin = !*no_pin;
        run_bench_game(*o);
    });
}

#ifdef DC_HAVE_WORLD_MODEL
// `bench attention`: the attention parts on synthetic model-shaped frames (attention/attention_bench.h).
void add_bench_attention(CLI::App& bench) {
    auto o = std::make_shared<AttentionBenchConfig>();
    auto out = std::make_shared<std::string>();
    CLI::App* cmd = bench.add_subcommand("attention", "Time Dense/Window/TempCache/AnnSA/AnnCA on synthetic "
                                                      "model-shaped frames: per-call ms, speedup, density, recall");
    cmd->add_option("--frames", o->frames, "Frames committed before timing (cache = frames x 256 tokens)")
        ->capture_default_str();
    cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "float32 or bfloat16")->capture_default_str();
    cmd->add_option("--configs", o->configs, "Attention types to time")->capture_default_str();
    cmd->add_option("--params", o->params_json, "JSON attention parameters applied to every configuration");
    cmd->add_option("--repeats", o->repeats, "Timed calls per measurement (median reported)")->capture_default_str();
    cmd->add_flag("--sweep", o->sweep, "Also sweep annsa bits/probes and annca bits");
    cmd->add_option("--out", *out, "Also write the markdown to this file (e.g. bench/results/attention-cpu.md)");
    cmd->callback([o, out] {
        const std::string table = run_attention_bench(*o);
        std::fputs(table.c_str(), stdout);
        if (!out->empty()) {
            std::ofstream f(*out);
            DC_CHECK(f, "cannot write '" << *out << "'");
            f << table;
            DC_CHECK(f, "writing '" << *out << "' failed");
        }
    });
}

// `bench rollout`: the long-rollout matrix (app/rollout_bench.h).
void add_bench_rollout(CLI::App& bench) {
    auto o = std::make_shared<RolloutBenchConfig>();
    CLI::App* cmd = bench.add_subcommand(
        "rollout", "Long rollout of the model under each attention configuration on one card: per-frame latency, "
                   "fps, memory, cache, density/recall/merge, PSNR/SSIM vs dense and vs the real game; CSV, plots, "
                   "markdown summary");
    cmd->add_option("--model", o->model_path, "Model config (default: the shipped assets/models/default.json)");
    cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--frames", o->frames, "Frames per configuration")->capture_default_str();
    cmd->add_option("--configs", o->configs,
                    "Configurations: dense, dense-torch, window16, tempcache, annsa, annca, all, windowN, or an "
                    "attention type (dense always runs first: it is the reference)")
        ->capture_default_str();
    cmd->add_option("--steps", o->steps, "S denoising steps per frame")->capture_default_str();
    cmd->add_option("--seed", o->seed, "Noise, game and agent seed")->capture_default_str();
    cmd->add_option("--level", o->level, "Level of the real game")->capture_default_str();
    cmd->add_option("--prompt", o->prompt, "Style prompt")->capture_default_str();
    cmd->add_option("--script", o->script, "Action script (default: the held-out agent); repeats when shorter");
    cmd->add_option("--agent", o->agent, "Scripted agent when no --script is given")->capture_default_str();
    cmd->add_option("--out-dir", o->out_dir, "Folder for rollout.csv, summary.md, plots")->capture_default_str();
    cmd->add_option("--summary", o->summary_path, "Also copy summary.md here (e.g. bench/results/rollout-h100.md)");
    cmd->add_option("--gnuplot-script", o->gnuplot_script, "Plot script (default: bench/rollout.gp)");
    cmd->add_flag("--revisit", o->revisit, "Also run the revisit test (TempCache vs windows on a scripted return)");
    cmd->add_option("--revisit-at", o->revisit_at, "The revisit walk is back in the spawn room at this frame or later")
        ->capture_default_str();
    cmd->add_option("--revisit-configs", o->revisit_configs, "Configurations of the revisit test (window-eq: a "
                                                             "window of TempCache's bytes)")
        ->capture_default_str();
    cmd->add_option("--config-timeout", o->config_timeout_s,
                    "Stop a configuration after this many seconds (0 = never); the summary says so")
        ->capture_default_str();
    cmd->add_option("--trace-at", o->trace_at,
                    "Write a Chrome trace of frames N..N+2 of each configuration (CUDA builds)")
        ->capture_default_str();
    cmd->add_option("--recall-every", o->recall_every, "Measure AnnSA recall on every Nth frame (0 = never)")
        ->capture_default_str();
    cmd->add_option("--ssim-every", o->ssim_every, "SSIM on every Nth frame (PSNR on every frame)")
        ->capture_default_str();
    cmd->add_flag("--quiet", o->quiet, "No progress lines");
    cmd->callback([o] {
        const RolloutBenchResult r = run_rollout_bench(*o);
        std::fputs(r.summary.c_str(), stdout);
    });
}
#endif

}  // namespace

void add_bench_command(CLI::App& root) {
    CLI::App* bench = root.add_subcommand("bench", "Benchmarks (modes: game, attention, rollout)");
    bench->require_subcommand(1);
    add_bench_game(*bench);
#ifdef DC_HAVE_WORLD_MODEL
    add_bench_attention(*bench);
    add_bench_rollout(*bench);
#endif
}

}  // namespace dc::app
