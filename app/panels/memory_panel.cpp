// Memory: host resident set (/proc/self/statm) and GPU memory allocated/reserved (n/a off the GPU).
#include <imgui.h>

#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

void draw_memory_panel(OverlayState& s) {
    const EngineStats& st = s.stats;
    char label[96];
    std::snprintf(label, sizeof(label), "host RSS %s", format_bytes(st.rss_bytes).c_str());
    plot_history("##rss", s.rss_mb, label, 1.f, 36.f);
    if (st.gpu_allocated_bytes < 0 && st.gpu_reserved_bytes < 0) {
        ImGui::TextDisabled("GPU allocated n/a   reserved n/a (%s)",
                            st.device.empty() ? "no model" : st.device.c_str());
        return;
    }
    ImGui::Text("GPU allocated %s   reserved %s", format_bytes(st.gpu_allocated_bytes).c_str(),
                format_bytes(st.gpu_reserved_bytes).c_str());
    std::snprintf(label, sizeof(label), "GPU allocated %s", format_bytes(st.gpu_allocated_bytes).c_str());
    plot_history("##gpu_alloc", s.gpu_allocated_mb, label, 1.f, 36.f);
    std::snprintf(label, sizeof(label), "GPU reserved %s", format_bytes(st.gpu_reserved_bytes).c_str());
    plot_history("##gpu_reserved", s.gpu_reserved_mb, label, 1.f, 36.f);
}

}  // namespace dc::app
