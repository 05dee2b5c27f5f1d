// Input: gamepad status (and the loss of one), the action of the last tick.
#include <imgui.h>

#include "app/panels/panels.h"

namespace dc::app {

void draw_input_panel(OverlayState& s) {
    if (!s.gamepad_name.empty()) {
        ImGui::Text("gamepad: %s", s.gamepad_name.c_str());
    } else if (!s.gamepad_lost.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.75f, 0.3f, 1.f));
        ImGui::TextWrapped("gamepad disconnected: %s (keyboard still works; plug one in at any time)",
                           s.gamepad_lost.c_str());
        ImGui::PopStyleColor();
    } else {
        ImGui::TextDisabled("gamepad: none (plug one in at any time)");
    }
    const game::Action& a = s.last_action;
    ImGui::Text("action: fwd %+.2f  strafe %+.2f  turn %+.2f%s", a.forward, a.strafe, a.turn, a.use ? "  use" : "");
}

}  // namespace dc::app
