// Changes: every settings change with the frame it applied from (newest last); refusals in red.
#include <imgui.h>

#include <string>

#include "app/panels/panels.h"

namespace dc::app {

void draw_changes_panel(OverlayState& s) {
    if (s.changes.empty()) {
        ImGui::TextDisabled("no changes yet");
        return;
    }
    const size_t first = s.changes.size() > 6 ? s.changes.size() - 6 : 0;  // the newest six
    for (size_t i = first; i < s.changes.size(); ++i) {
        const ChangeEntry& c = s.changes[i];
        if (c.error) ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.35f, 0.3f, 1.f));
        const std::string text = c.text.size() > 140 ? c.text.substr(0, 137) + "..." : c.text;  // params are long
        ImGui::TextWrapped("frame %lld: %s", static_cast<long long>(c.frame), text.c_str());
        if (c.error) ImGui::PopStyleColor();
    }
}

}  // namespace dc::app
