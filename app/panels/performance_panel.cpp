// Performance: display fps and frame time, engine step time; numbers and scrolling plots.
#include <imgui.h>

#include <algorithm>
#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

namespace {
// A scrolling plot of a History: only the values pushed so far, oldest on the left.
void plot(const char* id, const History& h, const char* overlay, float min_top) {
    const bool full = h.count() == h.size();
    ImGui::PlotLines(id, h.data(), full ? h.size() : h.count(), full ? h.offset() : 0, overlay, 0.f,
                     std::max(min_top, h.max() * 1.25f), ImVec2(ImGui::GetContentRegionAvail().x, 48));
}
}  // namespace

void draw_performance_panel(OverlayState& s) {
    ImGui::Text("%.0f fps   %.2f ms/frame   game %.0f ticks/s", s.fps, s.display_ms.mean(), s.tick_hz);
    char label[96];
    std::snprintf(label, sizeof(label), "frame time %.1f ms", s.display_ms.last());
    plot("##display_ms", s.display_ms, label, 20.f);
    std::snprintf(label, sizeof(label), "%s step %.3f ms (mean %.3f)", s.engine_name.c_str(), s.step_ms.last(),
                  s.step_ms.mean());
    plot("##step_ms", s.step_ms, label, 0.5f);
}

}  // namespace dc::app
