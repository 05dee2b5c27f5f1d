// Model: frames per second the model makes, steps S, device, what the model is.
#include <imgui.h>

#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

void draw_model_panel(OverlayState& s) {
    ImGui::TextWrapped("%s", s.engine_describe.c_str());
    if (!s.neural) {
        ImGui::TextDisabled("model fps, S, device: n/a (no model)");
        return;
    }
    const double engine_fps = s.stats.step_ms > 0 ? 1000.0 / s.stats.step_ms : 0.0;
    ImGui::Text("model %.1f fps (engine %.1f)   S=%d   %s", s.model_fps, engine_fps, s.stats.n_steps,
                s.stats.device.c_str());
    char label[96];
    std::snprintf(label, sizeof(label), "model fps %.1f (1000 / step ms)", s.model_fps_hist.last());
    plot_history("##model_fps", s.model_fps_hist, label, 1.f);
}

}  // namespace dc::app
