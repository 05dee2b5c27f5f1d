// Messages: screenshots, gamepads plugged in and out, errors; the newest at the bottom.
#include <imgui.h>

#include "app/panels/panels.h"

namespace dc::app {

void draw_messages_panel(OverlayState& s) {
    if (!s.last_screenshot.empty()) ImGui::TextWrapped("last screenshot: %s", s.last_screenshot.c_str());
    for (const OverlayMessage& m : s.messages) {
        if (m.error) ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.35f, 0.3f, 1.f));
        ImGui::TextWrapped("%s", m.text.c_str());
        if (m.error) ImGui::PopStyleColor();
    }
}

}  // namespace dc::app
