// Attention: TempCache merge rate, AnnSA density and recall, AnnCA kept fraction of the newest frame; plots.
#include <imgui.h>

#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

namespace {

void figure(const char* id, const char* what, double v, const History& h, const char* why_na) {
    char label[128];
    if (v >= 0)
        std::snprintf(label, sizeof(label), "%s %.3f", what, v);
    else
        std::snprintf(label, sizeof(label), "%s n/a (%s)", what, why_na);
    plot_history(id, h, label, 1.f, 26.f);
}

}  // namespace

void draw_attention_panel(OverlayState& s) {
    const EngineStats& st = s.stats;
    if (!s.neural) {
        ImGui::TextDisabled("merge rate, density, recall, kept: n/a (no model)");
        return;
    }
    ImGui::Text("attention: %s", st.attention.c_str());
    figure("##merge", "TempCache merge rate", st.merge_rate, s.merge_rate, "nothing committed");
    figure("##density", "AnnSA density", st.density, s.density, "no self-attention");
    figure("##recall", "AnnSA recall", st.recall, s.recall, "not measured");
    figure("##kept", "AnnCA kept fraction", st.kept_fraction, s.kept_fraction, "no prompt tokens");
}

}  // namespace dc::app
