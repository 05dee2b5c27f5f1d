// app/play.h — `dreamcaster play`: the frame loop, windowed (GLFW + ImGui) or headless, on any Engine.
//
//   dc::app::PlayOptions options;  options.headless = true;  options.frames = 100;
//   int code = dc::app::run_play(options);      // 0 ok, 2 no display (windowed); throws dc::Error otherwise
//
// One loop, two front ends (like instant-ngp's --no-gui): the headless loop steps the engine as fast as it can
// from the scripted actions; the windowed loop ticks the game at its fixed rate (15 Hz) with an accumulator while
// drawing at the display's rate, so a slow or fast monitor changes smoothness, never game speed.
//
// Frame numbering: frame 0 is the level start (after reset); frame N is the image after N ticks. --frames N stops
// after frame N is shown; --screenshot-at N saves frame N; the actions file gives the action of tick i on line i.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "app/controls.h"
#include "app/engine.h"
#include "game/game.h"

namespace dc::app {

struct PlayOptions {
    std::string engine;                 // reference | neural | side-by-side; "" = neural when the model file exists,
                                        // else reference (with a message saying why)
    std::string model_path;             // world model file; "" = assets/models/default.json
    std::string device;                 // cpu | cuda | cuda:N; "" = cuda when this build and machine have it, else cpu
    int steps = 4;                      // S Euler steps per frame (1..16); DESIGN.md's default
    std::vector<std::string> set;       // KEY=VALUE settings at the start (controls.h: attention, tempcache.tau, ...)
    std::string toggles_path;           // toggle script: changes at given frames (controls.h)
    std::string level = "e1m1";         // level in assets/levels/
    std::string prompt;                 // style prompt ("" = default look); editable live in the overlay
    uint64_t seed = 0;                  // game seed
    int scale = 0;                      // game pixels -> screen pixels; 0 = 5 (5 x 128 = 640 fits a 720p screen),
                                        // 3 for side-by-side (two views)
    int window_width = 0;               // window size; 0 = from scale (game view + side panel)
    int window_height = 0;
    std::string actions_path;           // scripted actions (game.h format); windowed: keys take over after the end
    int64_t frames = -1;                // stop after this frame (-1 = until quit; headless: the script's length)
    int64_t screenshot_at = -1;         // save a screenshot of this frame (-1 = none)
    std::string screenshot_path;        // where; "" = dreamcaster-frameN.png
    bool headless = false;              // no window, no GLFW/SDL: run the script as fast as possible
    std::string metrics_path;           // per-frame CSV (frame, pose, timings, cache, memory, attention); "" = none
    std::string dump_frames_dir;        // headless: every frame as DIR/frame_000000.png
    bool fullscreen = false;            // start fullscreen (F11 toggles)
    bool smooth = false;                // bilinear upscaling instead of nearest
    bool overlay = true;                // the ImGui side panel (stats, toggles, prompt, messages)
    std::string bindings_path;          // key bindings; "" = assets/bindings.json
    // Recording (app/recording.h).
    std::string record_dir;             // record the run into this folder from the start ("" = none; F9 in a window)
    std::string record_video = "h264";  // video.mp4: h264 (plays anywhere) | lossless (bit-exact RGB) | none
    int record_scale = 1;               // video upscale factor (nearest); 1 = native 128x128 pixels
};

// Runs play; returns the exit code (kExitOk, kExitNoDisplay). Throws dc::Error for bad options and files.
int run_play(const PlayOptions& options);

// Fixed-rate game clock for a variable-rate display loop: add() each display frame's duration, then consume one
// tick while due(). After a stall the backlog is capped (the game slows down instead of racing to catch up).
class TickClock {
public:
    explicit TickClock(double tick_seconds, int max_backlog_ticks = 4);
    void add(double seconds);
    bool due() const { return m_acc >= m_tick; }
    void consume() { m_acc -= m_tick; }
    void reset() { m_acc = 0; }
    double tick_seconds() const { return m_tick; }

private:
    double m_tick;
    double m_max;
    double m_acc = 0;
};

// Layout of the window: the game view on the left, the overlay panel on the right (when shown).
struct Layout {
    int game_x = 0, game_y = 0, game_w = 0, game_h = 0;     // where the frame is drawn
    int panel_x = 0, panel_y = 0, panel_w = 0, panel_h = 0;  // the overlay panel (w = 0 when hidden)
};
constexpr int kPanelWidth = 360;   // px; room for the plots and a readable prompt box
constexpr int kMinWindowHeight = 480;   // px; the panel's sections fit without scrolling
Layout compute_layout(int fb_width, int fb_height, int frame_w, int frame_h, bool overlay, bool smooth);
// The window size `dreamcaster play` asks for: the game view at `scale` plus the panel.
void default_window_size(int frame_w, int frame_h, int scale, bool overlay, int& width, int& height);

// The action file's actions ([] when path is empty).
std::vector<game::Action> load_actions(const std::string& path);

// Writes an RGB8 PNG without external libraries (stored deflate): headless builds have no stb.
void write_png_rgb(const std::string& path, const game::Image& image);

// One row of the metrics CSV: the frame's engine figures plus what the loop measured around it.
struct MetricsRow {
    const EngineStats* stats = nullptr;   // the frame's engine figures (frame number, latency split, cache, ...)
    const game::Pose* pose = nullptr;     // nullptr when the engine has no pose
    double display_ms = 0;                // window: display frame time; headless: the loop's time for the frame
    double present_ms = -1;               // upload + draw + swap of the frame (-1 = n/a: headless)
    double input_to_photon_ms = -1;       // action sampled -> frame presented (headless: -> frame ready)
    std::string upload;                   // how the frame reached the screen: "cuda-gl" (interop), "host"; "" headless
};

// Per-frame CSV, one row per frame (reset and step frames), in this column order (kMetricsColumns):
//   frame,x,y,angle,step_ms,display_ms,denoise_ms,commit_ms,decode_ms,present_ms,input_to_photon_ms,model_fps,
//   cache_tokens,cache_bytes,budget_tokens,layer_tokens,layer_bytes,rss_bytes,gpu_allocated_bytes,
//   gpu_reserved_bytes,density,recall,merge_rate,kept_fraction,psnr,ssim,steps,attention,attention_params,upload
// Values an engine does not have (n/a) are empty; layer_* are ';'-separated per-layer lists; attention_params is a
// quoted JSON object. model_fps = 1000 / step_ms. upload: cuda-gl (CUDA–GL interop) or host (RGB8 from host
// memory); empty headless.
extern const char* const kMetricsColumns;
// CSV cells shared by the metrics, recording and replay files: n/a (negative) values are empty, numbers have
// `precision` decimals, per-layer lists are ';'-separated.
std::string csv_num(double v, int precision = 4);
std::string csv_num(int64_t v);
std::string csv_list(const std::vector<int64_t>& v);
class MetricsWriter {
public:
    explicit MetricsWriter(const std::string& path);   // "" = disabled; throws dc::Error if it cannot be created
    ~MetricsWriter();
    void row(const MetricsRow& r);
    bool enabled() const { return m_file != nullptr; }

private:
    void* m_file = nullptr;   // FILE*
};

// The engine play starts with: the one asked for, or for "" the neural engine when the model file exists. When the
// model cannot be loaded, `strict` throws dc::Error; otherwise the reference engine is returned and `notice` says
// why (shown in the overlay and the log). An explicit --engine neural is strict headless (benchmarks must not
// measure the wrong engine) and falls back in a window.
struct EngineChoice {
    std::unique_ptr<Engine> engine;
    std::string notice;   // "" when the engine asked for is the one running
};
EngineChoice choose_engine(const PlayOptions& options, const EngineConfig& config, bool strict);

// The start settings: --steps, every --set, then the toggle script's frame-0 lines (which also may set the prompt).
// The remaining entries (frame >= 1) are returned in `later`.
EngineConfig start_config(const PlayOptions& options, NeuralSettings& settings, std::vector<ToggleEntry>& later);

// The message (stderr) for `play` without a display: why, and how to run headless or under xvfb-run.
void print_no_display(const std::string& why);

#if DC_GUI
int run_play_window(const PlayOptions& options);   // play_window.cpp
#endif

}  // namespace dc::app
