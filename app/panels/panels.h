// app/panels/panels.h — the ImGui overlay of `dreamcaster play`: one panel per file, all reading one OverlayState.
//
//   dc::app::OverlayState state;                 // the frame loop fills it every display frame
//   state.record_frame(snapshot.stats, present_ms, input_to_photon_ms);   // per model frame: plots, A/B records
//   draw_overlay(state, panel_x, panel_y, panel_w, panel_h);   // the side panel: every section below, in order
//   if (state.show_help) draw_help_panel(state, game_x, game_y, game_w, game_h);
//   if (state.prompt_apply) { ... post a prompt control; its result sets prompt_applied or prompt_error ... }
//   for (const Control& c : state.take_controls()) runner.post(c);   // what the toggles panel asked for
//
// Panels only draw and record what the user asked for (flags and controls in OverlayState); the loop acts on them.
// Each section of the side panel is a collapsing header; draw_overlay records where each one's content landed
// (panel_rects, for screenshots and tests). Plots can be frozen (the loop stops feeding them) and cleared.
// A new panel: a file here with draw_<name>_panel(OverlayState&), declared below and listed in overlay.cpp.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "app/controls.h"
#include "app/engine.h"
#include "game/game.h"
#include "input/input.h"

namespace dc::app {

// A fixed-length history for the scrolling plots.
class History {
public:
    explicit History(int length = 240) : m_values(length, 0.f) {}
    void push(float v);
    void clear();
    const float* data() const { return m_values.data(); }
    int size() const { return static_cast<int>(m_values.size()); }
    int offset() const { return m_next; }  // index of the oldest value (ImGui::PlotLines' values_offset)
    int count() const { return m_count; }  // values pushed so far, up to size()
    float at(int i) const;                 // the i-th oldest of the values pushed (0 <= i < count())
    float last() const;
    float mean() const;  // over the values pushed so far
    float max() const;

private:
    std::vector<float> m_values;
    int m_next = 0;
    int m_count = 0;
};

struct OverlayMessage {
    std::string text;
    double time = 0;     // when it was posted (Presenter::time)
    bool error = false;  // red
};

// One model frame, kept for the A/B comparison.
struct FrameRecord {
    int64_t index = 0;      // model frames shown since start (never restarts)
    double step_ms = 0;     // the engine's wall time for the frame
    double latency_ms = 0;  // input-to-photon
    double cache_mb = 0;    // KV cache, all layers (0 when n/a)
    double rss_mb = 0;      // host resident set
    double gpu_mb = 0;      // GPU memory reserved (0 when n/a)
};

// A settings change as the change log shows it.
struct ChangeEntry {
    int64_t frame = 0;  // the first frame made with it
    int64_t index = 0;  // model frames shown when it was applied (FrameRecord::index)
    std::string text;   // Control::describe(), or why it was refused
    bool error = false;
};

// Mean figures over the N model frames before and after the last applied change.
struct AbResult {
    bool valid = false;
    std::string change;  // what changed
    int n_before = 0, n_after = 0;
    double step_before = 0, step_after = 0, latency_before = 0, latency_after = 0;
    double cache_before = 0, cache_after = 0, rss_before = 0, rss_after = 0, gpu_before = 0, gpu_after = 0;
};
AbResult compute_ab(const std::deque<FrameRecord>& records, const ChangeEntry& change, int window);

// Where a section's content was drawn (framebuffer pixels), recorded every frame by draw_overlay.
struct PanelRect {
    std::string name;
    int x = 0, y = 0, w = 0, h = 0;
};

struct OverlayState {
    // engine and game
    std::string engine_name;
    std::string engine_describe;  // model and device, or "reference game"
    std::string engine_notice;    // why the engine asked for is not running (fallback); shown in red at the top
    std::string engine_failure;   // why the last step failed (R resets); red
    bool neural = false;          // the engine has a model: toggles and neural figures apply
    bool side_by_side = false;    // dream and real frames: PSNR/SSIM and resync apply
    std::string level;
    int64_t frame = 0;
    bool paused = false;
    bool scripted = false;  // the action file drives the game (keys take over after its end)
    int64_t script_length = 0;
    std::optional<game::Pose> pose;
    float tick_hz = 15.f;
    EngineStats stats;               // the newest frame's engine figures
    double present_ms = -1;          // upload + draw + swap of the newest frame
    double input_to_photon_ms = -1;  // its action sampled -> presented
    std::string frame_path;          // how it reached its texture: "CUDA-GL interop" or "host upload (why)"
    double model_fps = 0;            // model frames shown per second (smoothed)
    // plots (fed by record_frame unless frozen)
    bool plots_frozen = false;
    History display_ms;  // ms per displayed frame
    History step_ms;     // ms per engine step
    History denoise_ms, commit_ms, decode_ms, present_hist_ms, latency_ms, model_fps_hist;
    History cache_tokens, cache_mb, rss_mb, gpu_allocated_mb, gpu_reserved_mb;
    History merge_rate, density, recall, kept_fraction, psnr, ssim;
    float fps = 0;               // displayed frames per second (smoothed)
    int64_t display_frames = 0;  // frames drawn since start
    // A/B and change log
    std::deque<FrameRecord> records;  // the last kMaxRecords model frames
    int64_t model_frames = 0;         // model frames shown since start
    std::deque<ChangeEntry> changes;  // newest last
    int ab_window = 30;               // N frames before/after
    AbResult ab;                      // the last A/B the user asked for
    bool ab_shown = false;
    // toggles: the widgets edit `toggles`; every edit queues a control for the loop
    NeuralSettings toggles;
    std::vector<Control> controls;  // to post (the loop takes them)
    std::string toggle_error;       // the last refusal of a toggle change; red
    // prompt box: the panel sets prompt_apply when Enter is pressed; the loop applies prompt_edit
    std::string prompt_edit;
    std::string prompt_applied;  // the style in use
    std::string prompt_error;    // shown in red under the box; "" = none
    bool prompt_apply = false;
    // input
    std::string gamepad_name;  // "" = none connected
    std::string gamepad_lost;  // name of the pad that was unplugged (until one connects again)
    game::Action last_action;
    const input::Bindings* bindings = nullptr;
    bool keyboard_captured = false;  // a text box has the keyboard: game keys are ignored
    // view
    bool smooth = false;
    bool show_help = false;
    std::string last_screenshot;
    std::deque<OverlayMessage> messages;  // newest last; the loop drops old ones
    std::vector<PanelRect> panel_rects;   // this frame's sections
    double now = 0;

    static constexpr size_t kMaxRecords = 4000;
    void post(const std::string& text, bool error = false);
    void record_frame(const EngineStats& s, double present, double input_to_photon);  // one model frame
    void clear_plots();
    void log_change(const ControlResult& r);  // a control's outcome -> change log (and toggle/prompt errors)
    std::vector<Control> take_controls();
};

// Shared drawing helpers (overlay.cpp).
void plot_history(const char* id, const History& h, const char* overlay, float min_top, float height = 34.f);
std::string format_bytes(int64_t bytes);  // "12.3 MB"; "n/a" for negative values

void draw_overlay(OverlayState& s, int x, int y, int w, int h);  // the side panel with every section
void draw_game_panel(OverlayState& s);         // engine, level, frame, pose, paused; fallback notice, failures
void draw_performance_panel(OverlayState& s);  // display fps, frame time, step time; freeze/clear plots
void draw_model_panel(OverlayState& s);        // model fps, steps S, device, the model itself
void draw_latency_panel(OverlayState& s);      // denoise, commit, decode, present, frame path, input-to-photon
void draw_cache_panel(OverlayState& s);        // KV cache tokens and MB, total and per layer, against the budget
void draw_memory_panel(OverlayState& s);       // host RSS, GPU allocated/reserved
void draw_attention_panel(OverlayState& s);    // TempCache merge rate, AnnSA density/recall, AnnCA kept fraction
void draw_quality_panel(OverlayState& s);      // side-by-side: PSNR/SSIM of dream vs real, resync
void draw_toggles_panel(OverlayState& s);      // attention parts and parameters, S, budget (live)
void draw_ab_panel(OverlayState& s);           // mean latency/memory before vs after the last change
void draw_changes_panel(OverlayState& s);      // the change log with frame numbers
void draw_prompt_panel(OverlayState& s);       // editable prompt (Enter applies); errors in red
void draw_input_panel(OverlayState& s);        // gamepad status, the current action
void draw_messages_panel(OverlayState& s);     // screenshots saved, gamepads plugged/unplugged, errors
void draw_help_panel(OverlayState& s, int x, int y, int w, int h);  // keys and gamepad, centred over the game

}  // namespace dc::app
