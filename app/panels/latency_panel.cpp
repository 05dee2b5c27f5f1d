// Latency: the split of one frame (denoise, commit, decode, present) as numbers and a stacked scrolling plot, the
// frame path (CUDA-GL interop or host upload, which present includes), and input-to-photon (action sampled -> frame
// presented) as a number and a plot.
#include <imgui.h>

#include <algorithm>
#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

namespace {

struct Series {
    const char* name;
    const History* h;
    double now;  // the newest frame's value (-1 = n/a)
    ImU32 color;
};

// Stacked lines: series k is drawn at the sum of series 0..k, so the top line is the whole frame.
void plot_stacked(const char* id, const Series* series, int n, float height) {
    const ImVec2 p = ImGui::GetCursorScreenPos();
    const float w = ImGui::GetContentRegionAvail().x;
    ImGui::InvisibleButton(id, ImVec2(w, height));
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(p, ImVec2(p.x + w, p.y + height), ImGui::GetColorU32(ImGuiCol_FrameBg));
    int count = 0;
    for (int k = 0; k < n; ++k)
        if (series[k].h->count() > 0) count = count == 0 ? series[k].h->count() : std::min(count, series[k].h->count());
    if (count < 2) return;
    std::vector<float> sum(count, 0.f);
    std::vector<std::vector<float>> tops;
    for (int k = 0; k < n; ++k) {
        const History& h = *series[k].h;
        if (h.count() == 0) {
            tops.push_back(sum);
            continue;
        }
        for (int i = 0; i < count; ++i) sum[i] += h.at(h.count() - count + i);
        tops.push_back(sum);
    }
    const float top = std::max(1.f, *std::max_element(sum.begin(), sum.end()) * 1.15f);
    for (int k = 0; k < n; ++k) {
        if (series[k].h->count() == 0) continue;
        std::vector<ImVec2> pts(count);
        for (int i = 0; i < count; ++i)
            pts[i] = ImVec2(p.x + w * i / (count - 1), p.y + height - height * tops[k][i] / top);
        dl->AddPolyline(pts.data(), count, series[k].color, 0, 1.5f);
    }
    char label[32];
    std::snprintf(label, sizeof(label), "%.0f ms", top);
    dl->AddText(ImVec2(p.x + 2, p.y + 1), ImGui::GetColorU32(ImGuiCol_TextDisabled), label);
}

void value(const char* name, double v, ImU32 color) {
    ImGui::PushStyleColor(ImGuiCol_Text, color);
    if (v >= 0)
        ImGui::Text("%s %.2f ms", name, v);
    else
        ImGui::Text("%s n/a", name);
    ImGui::PopStyleColor();
}

}  // namespace

void draw_latency_panel(OverlayState& s) {
    const Series series[] = {
        {"denoise", &s.denoise_ms, s.stats.denoise_ms, IM_COL32(90, 170, 255, 255)},
        {"commit", &s.commit_ms, s.stats.commit_ms, IM_COL32(255, 190, 60, 255)},
        {"decode", &s.decode_ms, s.stats.decode_ms, IM_COL32(120, 220, 120, 255)},
        {"present", &s.present_hist_ms, s.present_ms, IM_COL32(230, 110, 230, 255)},
    };
    for (int k = 0; k < 4; ++k) {
        value(series[k].name, series[k].now, series[k].color);
        if (k % 2 == 0) ImGui::SameLine(ImGui::GetContentRegionAvail().x * 0.5f);
    }
    plot_stacked("##latency_split", series, 4, 48.f);
    if (!s.frame_path.empty()) ImGui::TextWrapped("frame path: %s", s.frame_path.c_str());   // reasons can be long
    char label[96];
    if (s.input_to_photon_ms >= 0)
        std::snprintf(label, sizeof(label), "input-to-photon %.1f ms (mean %.1f)", s.input_to_photon_ms,
                      s.latency_ms.mean());
    else
        std::snprintf(label, sizeof(label), "input-to-photon n/a");
    plot_history("##input_to_photon", s.latency_ms, label, 10.f);
}

}  // namespace dc::app
