// The side panel: one scrolling ImGui window holding every section, the shared overlay state and plot helpers.
#include <imgui.h>

#include <algorithm>
#include <cstdio>

#include "app/panels/panels.h"
#include "common/common.h"

namespace dc::app {

void History::push(float v) {
    m_values[m_next] = v;
    m_next = (m_next + 1) % size();
    m_count = std::min(m_count + 1, size());
}

void History::clear() {
    std::fill(m_values.begin(), m_values.end(), 0.f);
    m_next = 0;
    m_count = 0;
}

float History::at(int i) const {
    return m_values[(m_next + size() - m_count + i) % size()];
}

float History::last() const {
    return m_count ? m_values[(m_next + size() - 1) % size()] : 0.f;
}

float History::mean() const {
    if (!m_count) return 0.f;
    double sum = 0;
    for (int i = 0; i < m_count; ++i) sum += m_values[(m_next + size() - 1 - i) % size()];
    return static_cast<float>(sum / m_count);
}

float History::max() const {
    float m = 0.f;
    for (int i = 0; i < m_count; ++i) m = std::max(m, m_values[(m_next + size() - 1 - i) % size()]);
    return m;
}

void OverlayState::post(const std::string& text, bool error) {
    messages.push_back({text, now, error});
    while (messages.size() > 8) messages.pop_front();
}

void OverlayState::record_frame(const EngineStats& st, double present, double input_to_photon) {
    stats = st;
    present_ms = present;
    input_to_photon_ms = input_to_photon;
    ++model_frames;
    FrameRecord r;
    r.index = model_frames;
    r.step_ms = st.step_ms;
    r.latency_ms = std::max(0.0, input_to_photon);
    r.cache_mb = st.cache_bytes > 0 ? st.cache_bytes / 1e6 : 0.0;
    r.rss_mb = st.rss_bytes / 1e6;
    r.gpu_mb = st.gpu_reserved_bytes > 0 ? st.gpu_reserved_bytes / 1e6 : 0.0;
    records.push_back(r);
    while (records.size() > kMaxRecords) records.pop_front();
    if (plots_frozen) return;
    auto put = [](History& h, double v) {
        if (v >= 0) h.push(static_cast<float>(v));
    };
    put(step_ms, st.step_ms);
    put(denoise_ms, st.denoise_ms);
    put(commit_ms, st.commit_ms);
    put(decode_ms, st.decode_ms);
    put(present_hist_ms, present);
    put(latency_ms, input_to_photon);
    put(model_fps_hist, st.step_ms > 0 ? 1000.0 / st.step_ms : -1.0);
    put(cache_tokens, static_cast<double>(st.cache_tokens));
    put(cache_mb, st.cache_bytes >= 0 ? st.cache_bytes / 1e6 : -1.0);
    put(rss_mb, st.rss_bytes / 1e6);
    put(gpu_allocated_mb, st.gpu_allocated_bytes >= 0 ? st.gpu_allocated_bytes / 1e6 : -1.0);
    put(gpu_reserved_mb, st.gpu_reserved_bytes >= 0 ? st.gpu_reserved_bytes / 1e6 : -1.0);
    put(merge_rate, st.merge_rate);
    put(density, st.density);
    put(recall, st.recall);
    put(kept_fraction, st.kept_fraction);
    put(psnr, st.psnr);
    put(ssim, st.ssim);
}

void OverlayState::clear_plots() {
    for (History* h : {&display_ms, &step_ms, &denoise_ms, &commit_ms, &decode_ms, &present_hist_ms, &latency_ms,
                       &model_fps_hist, &cache_tokens, &cache_mb, &rss_mb, &gpu_allocated_mb, &gpu_reserved_mb,
                       &merge_rate, &density, &recall, &kept_fraction, &psnr, &ssim})
        h->clear();
}

void OverlayState::log_change(const ControlResult& r) {
    ChangeEntry e;
    e.frame = r.frame;
    e.index = model_frames;
    e.error = !r.error.empty();
    e.text = e.error ? "refused " + r.control.describe() + ": " + r.error : r.control.describe();
    changes.push_back(e);
    while (changes.size() > 200) changes.pop_front();
    const bool toggle = r.control.kind == Control::Kind::attention || r.control.kind == Control::Kind::steps ||
                        r.control.kind == Control::Kind::budget;
    if (toggle) toggle_error = r.error;
    if (r.control.kind == Control::Kind::prompt) {
        if (e.error) {
            prompt_error = r.error;  // the old style stays
        } else {
            if (prompt_edit == prompt_applied) prompt_edit = r.control.text;  // the box follows unless being edited
            prompt_applied = r.control.text;
            prompt_error.clear();
        }
    }
}

std::vector<Control> OverlayState::take_controls() {
    std::vector<Control> out;
    out.swap(controls);
    return out;
}

AbResult compute_ab(const std::deque<FrameRecord>& records, const ChangeEntry& change, int window) {
    AbResult r;
    r.change = change.text;
    double sb[5] = {0, 0, 0, 0, 0}, sa[5] = {0, 0, 0, 0, 0};
    for (const FrameRecord& f : records) {
        const double v[5] = {f.step_ms, f.latency_ms, f.cache_mb, f.rss_mb, f.gpu_mb};
        if (f.index <= change.index && f.index > change.index - window) {
            ++r.n_before;
            for (int i = 0; i < 5; ++i) sb[i] += v[i];
        } else if (f.index > change.index && f.index <= change.index + window) {
            ++r.n_after;
            for (int i = 0; i < 5; ++i) sa[i] += v[i];
        }
    }
    r.valid = r.n_before > 0 && r.n_after > 0;
    const double nb = std::max(1, r.n_before), na = std::max(1, r.n_after);
    r.step_before = sb[0] / nb;
    r.step_after = sa[0] / na;
    r.latency_before = sb[1] / nb;
    r.latency_after = sa[1] / na;
    r.cache_before = sb[2] / nb;
    r.cache_after = sa[2] / na;
    r.rss_before = sb[3] / nb;
    r.rss_after = sa[3] / na;
    r.gpu_before = sb[4] / nb;
    r.gpu_after = sa[4] / na;
    return r;
}

void plot_history(const char* id, const History& h, const char* overlay, float min_top, float height) {
    const bool full = h.count() == h.size();
    ImGui::PlotLines(id, h.data(), full ? h.size() : h.count(), full ? h.offset() : 0, overlay, 0.f,
                     std::max(min_top, h.max() * 1.25f), ImVec2(ImGui::GetContentRegionAvail().x, height));
}

std::string format_bytes(int64_t bytes) {
    if (bytes < 0) return "n/a";
    char b[32];
    if (bytes >= 1000000000)
        std::snprintf(b, sizeof(b), "%.2f GB", bytes / 1e9);
    else if (bytes >= 1000000)
        std::snprintf(b, sizeof(b), "%.1f MB", bytes / 1e6);
    else
        std::snprintf(b, sizeof(b), "%.1f kB", bytes / 1e3);
    return b;
}

namespace {

struct Section {
    const char* title;
    const char* name;  // PanelRect name (tests look for it)
    void (*draw)(OverlayState&);
};

const Section kSections[] = {
    {"Game", "game", draw_game_panel},
    {"Performance", "performance", draw_performance_panel},
    {"Model", "model", draw_model_panel},
    {"Latency", "latency", draw_latency_panel},
    {"KV cache", "cache", draw_cache_panel},
    {"Memory", "memory", draw_memory_panel},
    {"Attention", "attention", draw_attention_panel},
    {"Dream vs real", "quality", draw_quality_panel},
    {"Toggles", "toggles", draw_toggles_panel},
    {"A/B", "ab", draw_ab_panel},
    {"Changes", "changes", draw_changes_panel},
    {"Prompt", "prompt", draw_prompt_panel},
    {"Input", "input", draw_input_panel},
    {"Messages", "messages", draw_messages_panel},
};

}  // namespace

void draw_overlay(OverlayState& s, int x, int y, int w, int h) {
    ImGui::SetNextWindowPos(ImVec2(static_cast<float>(x), static_cast<float>(y)));
    ImGui::SetNextWindowSize(ImVec2(static_cast<float>(w), static_cast<float>(h)));
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                                   ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus |
                                   ImGuiWindowFlags_NoTitleBar;
    s.panel_rects.clear();
    ImGui::Begin("Dreamcaster", nullptr, flags);
    for (const Section& sec : kSections) {
        if (!ImGui::CollapsingHeader(sec.title, ImGuiTreeNodeFlags_DefaultOpen)) continue;
        ImGui::PushID(sec.name);
        ImGui::BeginGroup();
        sec.draw(s);
        ImGui::EndGroup();
        ImGui::PopID();
        const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
        s.panel_rects.push_back({sec.name, static_cast<int>(a.x), static_cast<int>(a.y), static_cast<int>(b.x - a.x),
                                 static_cast<int>(b.y - a.y)});
    }
    ImGui::End();
}

}  // namespace dc::app
