// Dream vs real (side-by-side engine): PSNR and SSIM of the dreamed frame against the real game's, and resync.
#include <imgui.h>

#include <cstdio>

#include "app/panels/panels.h"

namespace dc::app {

void draw_quality_panel(OverlayState& s) {
    if (!s.side_by_side) {
        ImGui::TextDisabled("PSNR/SSIM of dream vs real: n/a (play --engine side-by-side)");
        return;
    }
    const EngineStats& st = s.stats;
    char label[96];
    if (st.psnr >= 0)
        std::snprintf(label, sizeof(label), "PSNR %.2f dB (mean %.2f)", st.psnr, s.psnr.mean());
    else
        std::snprintf(label, sizeof(label), "PSNR n/a");
    plot_history("##psnr", s.psnr, label, 40.f, 36.f);
    if (st.ssim >= 0)
        std::snprintf(label, sizeof(label), "SSIM %.3f (mean %.3f)", st.ssim, s.ssim.mean());
    else
        std::snprintf(label, sizeof(label), "SSIM n/a");
    plot_history("##ssim", s.ssim, label, 1.f, 36.f);
    if (ImGui::Button("resync (T)")) {
        Control c;
        c.kind = Control::Kind::resync;
        s.controls.push_back(c);
    }
    ImGui::SameLine();
    ImGui::TextDisabled("dream restarts from the real");
}

}  // namespace dc::app
