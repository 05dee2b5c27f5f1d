// A/B: one click compares the mean latency and memory of the N model frames before the last applied change with
// the N frames after it.
#include <imgui.h>

#include <cstdio>
#include <string>

#include "app/panels/panels.h"

namespace dc::app {

namespace {

void row(const char* what, double before, double after, const char* unit) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(what);
    ImGui::TableNextColumn();
    ImGui::Text("%.2f %s", before, unit);
    ImGui::TableNextColumn();
    ImGui::Text("%.2f %s", after, unit);
    ImGui::TableNextColumn();
    if (before > 0)
        ImGui::Text("x%.2f", after / before);
    else
        ImGui::TextDisabled("-");
}

}  // namespace

void draw_ab_panel(OverlayState& s) {
    const ChangeEntry* last = nullptr;
    for (auto it = s.changes.rbegin(); it != s.changes.rend(); ++it)
        if (!it->error) {
            last = &*it;
            break;
        }
    ImGui::SetNextItemWidth(100);
    ImGui::SliderInt("frames N", &s.ab_window, 5, 300);
    ImGui::SameLine();
    if (ImGui::Button("A/B last change") && last) {
        s.ab = compute_ab(s.records, *last, s.ab_window);
        s.ab_shown = true;
    }
    if (!last) {
        ImGui::TextDisabled("no change applied yet (use Toggles)");
        return;
    }
    if (!s.ab_shown) {
        const std::string text = last->text.size() > 100 ? last->text.substr(0, 97) + "..." : last->text;
        ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
        ImGui::TextWrapped("last change at frame %lld: %s", static_cast<long long>(last->frame), text.c_str());
        ImGui::PopStyleColor();
        return;
    }
    const AbResult& r = s.ab;
    ImGui::TextWrapped("%s", (r.change.size() > 100 ? r.change.substr(0, 97) + "..." : r.change).c_str());
    if (!r.valid) {
        ImGui::TextDisabled("needs frames on both sides (before %d, after %d)", r.n_before, r.n_after);
        return;
    }
    ImGui::Text("means over %d frames before, %d after", r.n_before, r.n_after);
    if (ImGui::BeginTable("ab", 4, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingStretchProp)) {
        ImGui::TableSetupColumn("");
        ImGui::TableSetupColumn("before");
        ImGui::TableSetupColumn("after");
        ImGui::TableSetupColumn("ratio");
        ImGui::TableHeadersRow();
        row("step", r.step_before, r.step_after, "ms");
        row("in-to-photon", r.latency_before, r.latency_after, "ms");
        row("KV cache", r.cache_before, r.cache_after, "MB");
        row("host RSS", r.rss_before, r.rss_after, "MB");
        if (r.gpu_before > 0 || r.gpu_after > 0) row("GPU reserved", r.gpu_before, r.gpu_after, "MB");
        ImGui::EndTable();
    }
}

}  // namespace dc::app
