// Toggles: Dense / Window / TempCache / AnnSA / AnnCA on and off with their parameters, steps S and the cache budget.
// Every edit queues a control (a checkbox at once, a slider when it is released); the engine applies it before its
// next frame, and the change log shows the frame it took effect at, or why it was refused (then in red here too).
#include <imgui.h>

#include <cinttypes>

#include "app/panels/panels.h"

namespace dc::app {

namespace {

nlohmann::json& part_params(OverlayState& s, const char* part) {
    nlohmann::json& p = s.toggles.params;
    if (!p.is_object()) p = nlohmann::json::object();
    if (!p.contains(part) || !p[part].is_object()) p[part] = nlohmann::json::object();
    return p[part];
}

// A float parameter; true when an edit was finished (slider released or value typed).
bool edit_float(OverlayState& s, const char* part, const char* field, const char* label, float lo, float hi,
                double fallback) {
    nlohmann::json& p = part_params(s, part);
    float v = static_cast<float>(p.contains(field) && p[field].is_number() ? p[field].get<double>() : fallback);
    ImGui::SetNextItemWidth(150);
    if (ImGui::SliderFloat(label, &v, lo, hi, "%.2f")) p[field] = static_cast<double>(v);
    return ImGui::IsItemDeactivatedAfterEdit();
}

bool edit_int(OverlayState& s, const char* part, const char* field, const char* label, int lo, int hi,
              int64_t fallback) {
    nlohmann::json& p = part_params(s, part);
    int v = static_cast<int>(p.contains(field) && p[field].is_number() ? p[field].get<int64_t>() : fallback);
    ImGui::SetNextItemWidth(150);
    if (ImGui::SliderInt(label, &v, lo, hi)) p[field] = v;
    return ImGui::IsItemDeactivatedAfterEdit();
}

}  // namespace

void draw_toggles_panel(OverlayState& s) {
    if (!s.neural) {
        ImGui::TextDisabled("toggles apply to the neural and side-by-side engines");
        ImGui::BeginDisabled();
    }
    NeuralSettings& t = s.toggles;
    bool changed = false;
    bool dense = !t.tempcache && !t.window && !t.annsa && !t.annca;
    if (ImGui::Checkbox("Dense", &dense) && dense) {
        t.tempcache = t.window = t.annsa = t.annca = false;
        changed = true;
    }
    ImGui::SameLine();
    changed |= ImGui::Checkbox("Window", &t.window);
    ImGui::SameLine();
    changed |= ImGui::Checkbox("TempCache", &t.tempcache);
    changed |= ImGui::Checkbox("AnnSA", &t.annsa);
    ImGui::SameLine();
    changed |= ImGui::Checkbox("AnnCA", &t.annca);
    ImGui::Indent();
    if (t.tempcache) changed |= edit_float(s, "tempcache", "tau", "tau (merge cosine)", 0.f, 1.f, 0.9);
    if (t.window) {
        changed |= edit_int(s, "window", "frames", "window frames", 1, 128, 16);
        changed |= edit_int(s, "window", "sinks", "sink frames", 0, 16, 0);
    }
    if (t.annsa) {
        changed |= edit_int(s, "annsa", "bits", "SA hash bits", 1, 16, 8);
        changed |= edit_int(s, "annsa", "probes", "SA probes", 1, 256, 32);
        changed |= edit_float(s, "annsa", "dense_step_fraction", "dense-step fraction", 0.f, 1.f, 0.3);
        changed |= edit_int(s, "annsa", "min_cache_tokens", "SA from cache tokens", 0, 65536, 8192);
    }
    if (t.annca) {
        changed |= edit_int(s, "annca", "bits", "CA hash bits", 1, 16, 12);
        changed |= edit_int(s, "annca", "probes", "CA probes", 1, 256, 4);
    }
    ImGui::Unindent();
    if (changed) s.controls.push_back(t.attention_control());

    ImGui::SetNextItemWidth(150);
    ImGui::SliderInt("steps S", &t.n_steps, 1, 16);
    if (ImGui::IsItemDeactivatedAfterEdit()) {
        Control c;
        c.kind = Control::Kind::steps;
        c.value = t.n_steps;
        s.controls.push_back(c);
    }
    ImGui::SetNextItemWidth(150);
    const int64_t step = 256, fast = 4096;
    ImGui::InputScalar("budget tok/layer", ImGuiDataType_S64, &t.budget_tokens, &step, &fast, "%" PRId64);
    if (ImGui::IsItemDeactivatedAfterEdit()) {
        if (t.budget_tokens < 0) t.budget_tokens = 0;
        Control c;
        c.kind = Control::Kind::budget;
        c.value = t.budget_tokens;
        s.controls.push_back(c);
    }
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::TextWrapped("budget 0 = unbounded; a new budget restarts the dream from the frame shown. spec: %s",
                       t.type().c_str());
    ImGui::PopStyleColor();
    if (!s.neural) ImGui::EndDisabled();
    if (!s.toggle_error.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.35f, 0.3f, 1.f));
        ImGui::TextWrapped("%s", s.toggle_error.c_str());
        ImGui::PopStyleColor();
    }
}

}  // namespace dc::app
