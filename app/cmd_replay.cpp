// `dreamcaster replay DIR`: options -> ReplayOptions -> run_replay (replay.cpp); prints the summary.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "app/engine.h"
#include "app/replay.h"
#include "common/common.h"

namespace dc::app {

void add_replay_command(CLI::App& root) {
    auto o = std::make_shared<ReplayOptions>();
    auto headless = std::make_shared<bool>(true);
    CLI::App* cmd = root.add_subcommand(
        "replay",
        "Replay a recording (play --record DIR, or F9 in the window): check it frame by frame, or compare "
        "other settings or engines against it.");
    cmd->footer(
        "Exact replay (no --set, same engine and model): every frame's hash must match the recording; on the CPU a "
        "difference is an error (exit code 3). With --set or another --engine/--model: an A/B replay that writes "
        "per-frame PSNR, latency and memory to comparison.csv.\nExamples:\n"
        "  dreamcaster replay rec/                              # bit-exact check\n"
        "  dreamcaster replay rec/ --engine reference           # the same actions through the real game\n"
        "  dreamcaster replay rec/ --set attention=tempcache    # A/B against the recorded settings\n"
        "  dreamcaster replay rec/ --set steps=2 --baseline video --record rec-s2/");
    cmd->add_option("dir", o->dir, "The recording folder (session.json, actions, frames, metrics.csv, video.mp4)")
        ->required();
    std::string engines;
    for (const auto& n : engine_names()) engines += (engines.empty() ? "" : ", ") + n;
    cmd->add_option("--engine", o->engine,
                    "Replay through this engine (this build: " + engines + "; default: the recorded one)");
    cmd->add_option("--model", o->model_path,
                    "Model file (default: the recorded one, whose SHA-256 must match; another model makes an A/B "
                    "replay)");
    cmd->add_option("--device", o->device, "cpu, cuda or cuda:N (default: the recorded device when present, else cpu)");
    cmd->add_option("--set", o->set,
                    "Setting KEY=VALUE for an A/B replay (repeatable; keys as for play): attention=tempcache, "
                    "tempcache.tau=0.85, annsa=on, steps=2, budget=TOKENS, prompt=TEXT. Applied at the start and "
                    "again over each recorded change of that setting");
    cmd->add_option("--baseline", o->baseline,
                    "What A/B frames are compared with: replay (the recorded settings regenerated in lockstep and "
                    "checked against the hashes: exact, twice the time) or video (video.mp4 decoded: cheaper, lossy "
                    "unless recorded lossless)")
        ->capture_default_str();
    cmd->add_option("--comparison", o->comparison_path, "Where the A/B CSV goes (default DIR/comparison.csv)");
    cmd->add_option("--frames", o->frames, "Stop after frame N (default: the last complete frame)");
    cmd->add_option("--record", o->record_dir, "Record the replay into a new folder (a recording like play's)");
    cmd->add_option("--record-video", o->record_video, "Video of --record: h264, lossless or none")
        ->capture_default_str();
    cmd->add_option("--record-scale", o->record_scale, "Upscale the video of --record by N (nearest)")
        ->capture_default_str();
    cmd->add_flag("--headless,!--window", *headless,
                  "No window (the default; replays run headless as fast as they can)");
    cmd->callback([o, headless] {
        DC_CHECK(*headless,
                 "replay runs headless only (there is no replay window yet); watch the recording's "
                 "video.mp4 instead");
        const ReplayResult r = run_replay(*o);
        for (const std::string& line : r.lines) std::printf("dreamcaster: %s\n", line.c_str());
        std::fflush(stdout);
        set_exit_code(r.exact && r.strict && r.mismatches > 0 ? kExitReplayMismatch : kExitOk);
    });
}

}  // namespace dc::app
