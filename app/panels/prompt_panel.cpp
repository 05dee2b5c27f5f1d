// Prompt: the style prompt, editable; Enter applies it (restyles live), errors show in red and keep the old style.
#include <imgui.h>
#include <imgui_stdlib.h>

#include "app/panels/panels.h"

namespace dc::app {

void draw_prompt_panel(OverlayState& s) {
    ImGui::TextUnformatted("prompt (Enter applies):");
    ImGui::SetNextItemWidth(-1);
    if (ImGui::InputTextMultiline("##prompt", &s.prompt_edit, ImVec2(-1, ImGui::GetTextLineHeight() * 3.5f),
                                  ImGuiInputTextFlags_EnterReturnsTrue | ImGuiInputTextFlags_CtrlEnterForNewLine))
        s.prompt_apply = true;
    if (s.keyboard_captured) ImGui::TextDisabled("typing: game keys paused (click outside or Esc to leave)");
    if (!s.prompt_error.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.35f, 0.3f, 1.f));
        ImGui::TextWrapped("%s", s.prompt_error.c_str());
        ImGui::PopStyleColor();
    } else if (s.prompt_edit != s.prompt_applied) {
        ImGui::TextDisabled("edited: press Enter to apply");
    }
}

}  // namespace dc::app
