// Performance: display fps and frame time, engine step time; numbers and scrolling plots; freeze and clear plots.
#include <imgui.h>

#include <cinttypes>
#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

void draw_performance_panel(OverlayState& s) {
    ImGui::Checkbox("freeze plots", &s.plots_frozen);
    ImGui::SameLine();
    if (ImGui::SmallButton("clear plots")) s.clear_plots();
    ImGui::SameLine();
    ImGui::TextDisabled("%" PRId64 " drawn", s.display_frames);
    ImGui::Text("display %.0f fps (%.1f ms)   game %.0f ticks/s", s.fps, s.display_ms.mean(), s.tick_hz);
    char label[96];
    std::snprintf(label, sizeof(label), "display frame %.1f ms", s.display_ms.last());
    plot_history("##display_ms", s.display_ms, label, 20.f);
    std::snprintf(label, sizeof(label), "%s step %.3f ms (mean %.3f)", s.engine_name.c_str(), s.step_ms.last(),
                  s.step_ms.mean());
    plot_history("##step_ms", s.step_ms, label, 0.5f);
}

}  // namespace dc::app
