// `dreamcaster play`: options -> PlayOptions -> run_play (play.cpp / play_window.cpp).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "app/engine.h"
#include "app/play.h"
#include "common/common.h"

namespace dc::app {

void add_play_command(CLI::App& root) {
    auto o = std::make_shared<PlayOptions>();
    auto size = std::make_shared<std::string>();
    CLI::App* cmd = root.add_subcommand("play", "Play in a window (keys: H or F1 for help), or --headless from an "
                                                "actions file.");
    cmd->footer(
        "Keys: WASD/arrows move and turn, E/Space use, P pause, N single step, R reset, T resync (side-by-side), "
        "F12 screenshot, F9 record, F11 fullscreen, H/F1 help, Esc quit (rebind in assets/bindings.json). Gamepad: left stick move/strafe, right "
        "stick turn, A use, Start pause, Back reset.\nWithout a display: dreamcaster play --headless --actions FILE, "
        "or xvfb-run -a dreamcaster play.");
    std::string engines;
    for (const auto& n : engine_names()) engines += (engines.empty() ? "" : ", ") + n;
    cmd->add_option("--engine", o->engine,
                    "What makes the frames (this build: " + engines +
                        "). Default: neural when the model file exists, else reference (with a message)");
    cmd->add_option("--model", o->model_path, "World model file (default: assets/models/default.json)");
    cmd->add_option("--device", o->device, "cpu, cuda or cuda:N (default: cuda when this build and machine have it)");
    cmd->add_option("--steps", o->steps, "Euler steps S per dreamed frame (1-16)")->capture_default_str();
    cmd->add_option("--set", o->set,
                    "Setting KEY=VALUE at the start (repeatable): attention=tempcache+annsa+annca, tempcache=off, "
                    "tempcache.tau=0.85, window.frames=8, annsa.bits=8, annsa.probes=4, annca=on, steps=8, "
                    "budget=TOKENS (per layer), prompt=TEXT, attention.params=JSON");
    cmd->add_option("--toggles", o->toggles_path,
                    "Toggle script: lines 'frame N set KEY=VALUE', 'frame N prompt TEXT', 'frame N resync', "
                    "'frame N reset' (applied before frame N is made)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--level", o->level, "Level name (assets/levels/NAME.txt)")->capture_default_str();
    cmd->add_option("--prompt", o->prompt, "Style prompt, e.g. \"the brick walls are dark red; thick fog\"");
    cmd->add_option("--seed", o->seed, "Game seed")->capture_default_str();
    cmd->add_option("--scale", o->scale,
                    "Window scale: game pixels to screen pixels (1-16; default 5, side-by-side 3)");
    cmd->add_option("--size", *size, "Window size WIDTHxHEIGHT (overrides --scale)");
    cmd->add_option("--actions", o->actions_path,
                    "Scripted actions file: one 'forward strafe turn use' line per frame, 'repeat N'; in a window "
                    "the keys take over after its end")
        ->check(CLI::ExistingFile);
    cmd->add_option("--frames", o->frames, "Stop after frame N (headless default: the actions file's length)");
    cmd->add_option("--screenshot-at", o->screenshot_at, "Save a screenshot of frame N, then go on (or stop at --frames)");
    cmd->add_option("--screenshot", o->screenshot_path,
                    "Where --screenshot-at saves (PNG; default dreamcaster-frameN.png). In a window: the whole window "
                    "with the overlay; headless: the game frame");
    cmd->add_flag("--headless", o->headless, "No window: run the actions as fast as possible (no GLFW/SDL)");
    cmd->add_option("--metrics", o->metrics_path,
                    "Write per-frame CSV: frame, pose, latency split, cache, memory, attention figures, settings "
                    "(columns: app/play.h)");
    cmd->add_option("--dump-frames", o->dump_frames_dir, "Headless: write every frame as DIR/frame_NNNNNN.png");
    cmd->add_flag("--fullscreen", o->fullscreen, "Start fullscreen (F11 toggles)");
    cmd->add_flag("--smooth", o->smooth, "Smooth (bilinear) upscaling instead of crisp nearest-neighbour");
    auto no_overlay = std::make_shared<bool>(false);
    cmd->add_flag("--no-overlay", *no_overlay, "Hide the side panel (stats, prompt box, messages)");
    cmd->add_option("--bindings", o->bindings_path, "Key bindings file (default assets/bindings.json)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--record", o->record_dir,
                    "Record the run into folder DIR (session.json, actions, frames, metrics.csv, video.mp4; replay it "
                    "with `dreamcaster replay DIR`). In a window F9 starts and stops recording");
    cmd->add_option("--record-video", o->record_video, "Video of the recording: h264, lossless or none")
        ->capture_default_str();
    cmd->add_option("--record-scale", o->record_scale, "Upscale the recording's video by N (nearest, 1-16)")
        ->capture_default_str();
    cmd->callback([o, size, no_overlay] {
        o->overlay = !*no_overlay;
        if (!size->empty()) {
            int w = 0, h = 0;
            char x = 0, extra = 0;
            const int n = std::sscanf(size->c_str(), "%d%c%d%c", &w, &x, &h, &extra);
            DC_CHECK(n == 3 && (x == 'x' || x == 'X') && w >= 64 && h >= 64 && w <= 16384 && h <= 16384,
                     "--size: expected WIDTHxHEIGHT like 1000x640 (each 64-16384), found \"" << *size << "\"");
            o->window_width = w;
            o->window_height = h;
        }
        set_exit_code(run_play(*o));
    });
}

}  // namespace dc::app
