// Game: engine, level, frame number, pose, paused state; why the engine asked for is not running; step failures.
#include <imgui.h>

#include <cinttypes>

#include "app/panels/panels.h"

namespace dc::app {

void draw_game_panel(OverlayState& s) {
    if (!s.engine_notice.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.55f, 0.3f, 1.f));
        ImGui::TextWrapped("%s", s.engine_notice.c_str());
        ImGui::PopStyleColor();
    }
    if (!s.engine_failure.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.35f, 0.3f, 1.f));
        ImGui::TextWrapped("engine stopped: %s (R resets)", s.engine_failure.c_str());
        ImGui::PopStyleColor();
    }
    ImGui::Text("engine: %s   level: %s", s.engine_name.c_str(), s.level.c_str());
    ImGui::Text("frame %" PRId64 "%s", s.frame, s.paused ? "   PAUSED (P resumes, N steps)" : "");
    if (s.scripted)
        ImGui::TextDisabled("actions file: %s", s.frame < s.script_length ? "playing" : "done, keys take over");
    if (s.pose)
        ImGui::Text("pose: x %.2f  y %.2f  angle %.0f deg", s.pose->x, s.pose->y, s.pose->angle * 57.29578f);
    else
        ImGui::TextDisabled("pose: unknown to this engine");
    ImGui::Checkbox("smooth upscaling", &s.smooth);
    ImGui::SameLine();
    if (ImGui::SmallButton("help (H)")) s.show_help = !s.show_help;
}

}  // namespace dc::app
