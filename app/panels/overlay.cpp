// The side panel: one ImGui window holding every section, and the shared overlay state.
#include <imgui.h>

#include <algorithm>

#include "app/panels/panels.h"

namespace dc::app {

void History::push(float v) {
    m_values[m_next] = v;
    m_next = (m_next + 1) % size();
    m_count = std::min(m_count + 1, size());
}

float History::last() const { return m_count ? m_values[(m_next + size() - 1) % size()] : 0.f; }

float History::mean() const {
    if (!m_count) return 0.f;
    double sum = 0;
    for (int i = 0; i < m_count; ++i) sum += m_values[(m_next + size() - 1 - i) % size()];
    return static_cast<float>(sum / m_count);
}

float History::max() const {
    float m = 0.f;
    for (int i = 0; i < m_count; ++i) m = std::max(m, m_values[(m_next + size() - 1 - i) % size()]);
    return m;
}

void OverlayState::post(const std::string& text, bool error) {
    messages.push_back({text, now, error});
    while (messages.size() > 8) messages.pop_front();
}

void draw_overlay(OverlayState& s, int x, int y, int w, int h) {
    ImGui::SetNextWindowPos(ImVec2(static_cast<float>(x), static_cast<float>(y)));
    ImGui::SetNextWindowSize(ImVec2(static_cast<float>(w), static_cast<float>(h)));
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                                   ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus;
    ImGui::Begin("Dreamcaster", nullptr, flags);
    draw_performance_panel(s);
    ImGui::Separator();
    draw_game_panel(s);
    ImGui::Separator();
    draw_prompt_panel(s);
    ImGui::Separator();
    draw_input_panel(s);
    ImGui::Separator();
    draw_messages_panel(s);
    ImGui::End();
}

}  // namespace dc::app
