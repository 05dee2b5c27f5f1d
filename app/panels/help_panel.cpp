// Help (H or F1): the keys as bound now, and the gamepad, centred over the game view.
#include <imgui.h>

#include "app/panels/panels.h"

namespace dc::app {

namespace {
// "left stick up": the stick direction that drives a command (positive: the command's + direction).
std::string describe_axis(const input::AxisBinding& a, bool positive) {
    static const char* sticks[input::kNumPadAxes] = {"left stick", "left stick", "right stick",
                                                     "right stick", "left trigger", "right trigger"};
    const int i = static_cast<int>(a.axis);
    const bool raw_positive = positive != a.invert;
    const bool is_x = a.axis == input::PadAxis::left_x || a.axis == input::PadAxis::right_x;
    const bool is_y = a.axis == input::PadAxis::left_y || a.axis == input::PadAxis::right_y;
    const char* dir = is_x ? (raw_positive ? "right" : "left")
                      : is_y ? (raw_positive ? "down" : "up")
                             : (raw_positive ? "pressed" : "(released)");
    return std::string(sticks[i]) + " " + dir;
}
}  // namespace

void draw_help_panel(OverlayState& s, int x, int y, int w, int h) {
    ImGui::SetNextWindowPos(ImVec2(x + w * 0.5f, y + h * 0.5f), ImGuiCond_Always, ImVec2(0.5f, 0.5f));
    ImGui::SetNextWindowBgAlpha(0.92f);
    const ImGuiWindowFlags flags = ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoSavedSettings |
                                   ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoMove;
    if (!ImGui::Begin("Keys (H or F1 closes)", &s.show_help, flags)) {
        ImGui::End();
        return;
    }
    if (s.bindings && ImGui::BeginTable("keys", 3, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit)) {
        ImGui::TableSetupColumn("what");
        ImGui::TableSetupColumn("keys");
        ImGui::TableSetupColumn("gamepad");
        ImGui::TableHeadersRow();
        for (int c = 0; c < input::kNumCommands; ++c) {
            const auto cmd = static_cast<input::Command>(c);
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(input::command_label(cmd));
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(s.bindings->describe_keys(cmd).c_str());
            ImGui::TableNextColumn();
            std::string pad = s.bindings->describe_buttons(cmd);
            const input::Bindings& b = *s.bindings;
            if (cmd == input::Command::forward) pad = describe_axis(b.forward, true);
            if (cmd == input::Command::back) pad = describe_axis(b.forward, false);
            if (cmd == input::Command::strafe_right) pad = describe_axis(b.strafe, true);
            if (cmd == input::Command::strafe_left) pad = describe_axis(b.strafe, false);
            if (cmd == input::Command::turn_right) pad = describe_axis(b.turn, true);
            if (cmd == input::Command::turn_left) pad = describe_axis(b.turn, false);
            ImGui::TextUnformatted(pad.c_str());
        }
        ImGui::EndTable();
    }
    ImGui::Spacing();
    ImGui::TextDisabled("Keys are rebound in assets/bindings.json (or play --bindings FILE).");
    ImGui::TextDisabled("While the prompt box has the keyboard, game keys are ignored.");
    ImGui::End();
}

}  // namespace dc::app
