// app/panels/panels.h — the ImGui overlay of `dreamcaster play`: one panel per file, all reading one OverlayState.
//
//   dc::app::OverlayState state;                 // the frame loop fills it every display frame
//   draw_overlay(state, panel_x, panel_y, panel_w, panel_h);   // the side panel: every section below, in order
//   if (state.show_help) draw_help_panel(state, game_x, game_y, game_w, game_h);
//   if (state.prompt_apply) { ... apply state.prompt_edit, set state.prompt_error on failure ... }
//
// Panels only draw and record what the user asked for (flags in OverlayState); the loop acts on them. A new panel:
// a file here with draw_<name>_panel(OverlayState&), declared below and called from overlay.cpp.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "game/game.h"
#include "input/input.h"

namespace dc::app {

// A fixed-length history for the scrolling plots.
class History {
public:
    explicit History(int length = 240) : m_values(length, 0.f) {}
    void push(float v);
    const float* data() const { return m_values.data(); }
    int size() const { return static_cast<int>(m_values.size()); }
    int offset() const { return m_next; }   // index of the oldest value (ImGui::PlotLines' values_offset)
    int count() const { return m_count; }   // values pushed so far, up to size()
    float last() const;
    float mean() const;                     // over the values pushed so far
    float max() const;

private:
    std::vector<float> m_values;
    int m_next = 0;
    int m_count = 0;
};

struct OverlayMessage {
    std::string text;
    double time = 0;      // when it was posted (Presenter::time)
    bool error = false;   // red
};

struct OverlayState {
    // engine and game
    std::string engine_name;
    std::string level;
    int64_t frame = 0;
    bool paused = false;
    bool scripted = false;              // the action file drives the game (keys take over after its end)
    int64_t script_length = 0;
    std::optional<game::Pose> pose;
    float tick_hz = 15.f;
    // performance
    History display_ms;                 // ms per displayed frame
    History step_ms;                    // ms per engine step
    float fps = 0;                      // displayed frames per second (smoothed)
    // prompt box: the panel sets prompt_apply when Enter is pressed; the loop applies prompt_edit
    std::string prompt_edit;
    std::string prompt_applied;         // the style in use
    std::string prompt_error;           // shown in red under the box; "" = none
    bool prompt_apply = false;
    // input
    std::string gamepad_name;           // "" = none connected
    std::string gamepad_lost;           // name of the pad that was unplugged (until one connects again)
    game::Action last_action;
    const input::Bindings* bindings = nullptr;
    bool keyboard_captured = false;     // a text box has the keyboard: game keys are ignored
    // view
    bool smooth = false;
    bool show_help = false;
    std::string last_screenshot;
    std::deque<OverlayMessage> messages;   // newest last; the loop drops old ones
    double now = 0;

    void post(const std::string& text, bool error = false);
};

void draw_overlay(OverlayState& s, int x, int y, int w, int h);   // the side panel with every section
void draw_performance_panel(OverlayState& s);   // fps, frame time: numbers and scrolling plots
void draw_game_panel(OverlayState& s);          // engine, level, frame, pose, paused
void draw_prompt_panel(OverlayState& s);        // editable prompt (Enter applies); errors in red
void draw_input_panel(OverlayState& s);         // gamepad status, the current action
void draw_messages_panel(OverlayState& s);      // screenshots saved, gamepads plugged/unplugged, errors
void draw_help_panel(OverlayState& s, int x, int y, int w, int h);   // keys and gamepad, centred over the game

}  // namespace dc::app
