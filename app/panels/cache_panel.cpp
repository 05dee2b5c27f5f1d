// KV cache: tokens and bytes of all layers (numbers and plots), per layer (bars), against the budget.
#include <imgui.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

void draw_cache_panel(OverlayState& s) {
    const EngineStats& st = s.stats;
    if (st.cache_tokens < 0) {
        ImGui::TextDisabled("KV cache: n/a (%s)", s.neural ? "no frame dreamed yet" : "no model in this engine");
        return;
    }
    const int n_layers = static_cast<int>(st.layer_tokens.size());
    ImGui::Text("%" PRId64 " tokens   %s   %d layers", st.cache_tokens, format_bytes(st.cache_bytes).c_str(), n_layers);
    if (st.budget_tokens > 0 && n_layers > 0) {
        const double used = static_cast<double>(st.cache_tokens) / (static_cast<double>(st.budget_tokens) * n_layers);
        char over[96];
        std::snprintf(over, sizeof(over), "%.0f%% of the budget (%" PRId64 " tokens/layer)", used * 100,
                      st.budget_tokens);
        ImGui::ProgressBar(static_cast<float>(std::min(1.0, used)), ImVec2(-1, 0), over);
    } else {
        ImGui::TextDisabled("budget: unbounded (Toggles sets one)");
    }
    char label[96];
    std::snprintf(label, sizeof(label), "tokens %" PRId64, st.cache_tokens);
    plot_history("##cache_tokens", s.cache_tokens, label, 256.f);
    std::snprintf(label, sizeof(label), "%s", format_bytes(st.cache_bytes).c_str());
    plot_history("##cache_mb", s.cache_mb, label, 0.1f);
    if (n_layers > 0) {
        std::vector<float> per(n_layers);
        int64_t lo = st.layer_tokens[0], hi = st.layer_tokens[0];
        for (int l = 0; l < n_layers; ++l) {
            per[l] = static_cast<float>(st.layer_tokens[l]);
            lo = std::min(lo, st.layer_tokens[l]);
            hi = std::max(hi, st.layer_tokens[l]);
        }
        const float top = st.budget_tokens > 0 ? static_cast<float>(st.budget_tokens)
                                               : std::max(1.f, *std::max_element(per.begin(), per.end()) * 1.1f);
        std::snprintf(label, sizeof(label), "per layer %" PRId64 "-%" PRId64 " tokens, %s each", lo, hi,
                      format_bytes(st.layer_bytes.empty() ? -1 : st.layer_bytes[0]).c_str());
        ImGui::PlotHistogram("##layer_tokens", per.data(), n_layers, 0, label, 0.f, top,
                             ImVec2(ImGui::GetContentRegionAvail().x, 36));
        if (ImGui::IsItemHovered()) {
            ImGui::BeginTooltip();
            for (int l = 0; l < n_layers; ++l)
                ImGui::Text("layer %d: %" PRId64 " tokens, %s", l, st.layer_tokens[l],
                            format_bytes(l < static_cast<int>(st.layer_bytes.size()) ? st.layer_bytes[l] : -1).c_str());
            ImGui::EndTooltip();
        }
    }
}

}  // namespace dc::app
