// `dreamcaster replay`: exact replays (hash check) and A/B replays (PSNR, latency, memory) of a recording.
#include "app/replay.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "app/controls.h"
#include "app/engine.h"
#include "app/play.h"
#include "app/recording.h"
#include "app/video_encoder.h"
#include "common/common.h"

namespace dc::app {

namespace {

namespace fs = std::filesystem;

// 10 log10(1 / MSE) on [0, 1] values over all channels; identical images give 100 (as image_metrics.h).
double frame_psnr(const game::Image& a, const game::Image& b) {
    DC_CHECK(a.width == b.width && a.height == b.height && a.rgb.size() == b.rgb.size(),
             "cannot compare a " << a.width << "x" << a.height << " frame with a " << b.width << "x" << b.height
                                 << " frame");
    double se = 0;
    for (size_t i = 0; i < a.rgb.size(); ++i) {
        const double d = (static_cast<double>(a.rgb[i]) - b.rgb[i]) / 255.0;
        se += d * d;
    }
    if (se == 0) return 100.0;
    const double mse = se / static_cast<double>(a.rgb.size());
    return std::min(100.0, 10.0 * std::log10(1.0 / mse));
}

// The part of a frame that is compared: side-by-side frames compare their dream (left half).
game::Image dream_part(const game::Image& image, const std::string& engine) {
    if (engine != "side-by-side") return image;
    game::Image out;
    out.width = image.width / 2;
    out.height = image.height;
    out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
    const size_t row = static_cast<size_t>(out.width) * 3;
    for (int y = 0; y < out.height; ++y)
        std::memcpy(&out.rgb[row * y], &image.rgb[static_cast<size_t>(image.width) * 3 * y], row);
    return out;
}

bool has_model(const std::string& engine) {
    return engine == "neural" || engine == "side-by-side";
}

std::string mb(int64_t bytes) {
    if (bytes < 0) return "n/a";
    char b[32];
    std::snprintf(b, sizeof(b), "%.2f MB", bytes / 1e6);
    return b;
}

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof(b), f, v);
    return b;
}

// The replay's settings: the recording's, with the overrides on top (again after each recorded change).
class Overrides {
public:
    Overrides(const RecordingStart& s, std::vector<std::string> set) : m_set(std::move(set)) {
        m_settings.set_type(s.attention_type);
        try {
            m_settings.params = nlohmann::json::parse(s.attention_params.empty() ? "{}" : s.attention_params);
        } catch (const nlohmann::json::exception&) {
            DC_FAIL("the recording's attention params are not JSON: " << s.attention_params);
        }
        m_settings.n_steps = s.n_steps;
        m_settings.budget_tokens = s.budget_tokens;
        m_prompt = s.prompt;
        for (const std::string& kv : m_set) {
            const auto controls = apply_setting(m_settings, kv);  // throws naming the accepted keys
            for (const Control& c : controls) {
                if (c.kind == Control::Kind::prompt) {
                    m_prompt = c.text;
                    m_pins_prompt = true;
                }
            }
        }
    }
    bool any() const { return !m_set.empty(); }
    const NeuralSettings& settings() const { return m_settings; }
    const std::string& prompt() const { return m_prompt; }

    // A recorded change as the replay applies it (nullopt: ignored because an override pins that setting).
    std::optional<Control> transform(const Control& recorded) {
        if (m_set.empty()) return recorded;
        Control c = recorded;
        switch (recorded.kind) {
            case Control::Kind::prompt:
                if (m_pins_prompt) return std::nullopt;
                return c;
            case Control::Kind::reset:
            case Control::Kind::resync: return c;
            case Control::Kind::attention:
                m_settings.set_type(recorded.text);
                try {
                    m_settings.params = nlohmann::json::parse(recorded.params.empty() ? "{}" : recorded.params);
                } catch (const nlohmann::json::exception&) {
                    DC_FAIL("a recorded attention change has params that are not JSON: " << recorded.params);
                }
                break;
            case Control::Kind::steps: m_settings.n_steps = static_cast<int>(recorded.value); break;
            case Control::Kind::budget: m_settings.budget_tokens = recorded.value; break;
        }
        for (const std::string& kv : m_set) apply_setting(m_settings, kv);
        switch (recorded.kind) {
            case Control::Kind::attention: return m_settings.attention_control();
            case Control::Kind::steps: c.value = m_settings.n_steps; return c;
            case Control::Kind::budget: c.value = m_settings.budget_tokens; return c;
            default: return c;
        }
    }

private:
    std::vector<std::string> m_set;
    NeuralSettings m_settings;
    std::string m_prompt;
    bool m_pins_prompt = false;
};

bool engine_takes(const Engine& engine, const Control& c) {
    switch (c.kind) {
        case Control::Kind::reset:
        case Control::Kind::prompt: return true;
        case Control::Kind::attention:
        case Control::Kind::steps:
        case Control::Kind::budget: return engine.has_model();
        case Control::Kind::resync: return engine.name() == "side-by-side";
    }
    return false;
}

}  // namespace

ReplayResult run_replay(const ReplayOptions& o) {
    DC_CHECK(o.baseline == "replay" || o.baseline == "video",
             "--baseline: expected replay or video, found \"" << o.baseline << "\"");
    DC_CHECK(o.record_video == "h264" || o.record_video == "lossless" || o.record_video == "none",
             "--record-video: expected h264, lossless or none, found \"" << o.record_video << "\"");
    const Recording rec = load_recording(o.dir);
    ReplayResult res;
    auto say = [&](const std::string& line) { res.lines.push_back(line); };
    const RecordingStart& s = rec.start;
    int64_t last = rec.last_frame();
    if (o.frames >= 0) last = std::min(last, o.frames);
    if (!rec.cut_note.empty()) say("note: " + rec.cut_note + "; replaying frames 0-" + std::to_string(last));

    // The recorded engine's configuration.
    EngineConfig base;
    base.level = s.level;
    base.prompt = s.prompt;
    base.seed = s.seed;
    base.n_steps = s.n_steps;
    base.attention_type = s.attention_type;
    base.attention_params = s.attention_params;
    base.max_cache_tokens = s.budget_tokens;
    std::string device_note;
    bool same_model = true;
    if (has_model(s.engine)) {
        base.model_path = s.model_path;
        base.device = s.device.empty() ? "cpu" : s.device;
        if (base.device != "cpu" && default_device() == "cpu") {
            device_note = "the recording was made on " + base.device + "; this replay runs on the CPU";
            base.device = "cpu";
        }
        if (!o.model_path.empty()) {
            const std::string sha = sha256_file(o.model_path);
            same_model = sha == s.model_sha256;
            if (!same_model)
                say("note: --model " + o.model_path + " has SHA-256 " + sha + ", the recording's model had " +
                    s.model_sha256 + ": an A/B replay against the recorded frames");
        } else {
            DC_CHECK(fs::exists(s.model_path), "the recording's model file "
                                                   << s.model_path
                                                   << " is missing; pass --model FILE (a copy with "
                                                      "SHA-256 "
                                                   << s.model_sha256 << ")");
            const std::string sha = sha256_file(s.model_path);
            DC_CHECK(sha == s.model_sha256, "the model file "
                                                << s.model_path << " has changed since the recording (SHA-256 " << sha
                                                << ", recorded " << s.model_sha256
                                                << "); pass --model FILE with the original, or --model " << s.model_path
                                                << " to compare this model against the recording");
        }
    }
    if (!device_note.empty()) say("note: " + device_note);

    // The replay's configuration: engine, model, device and overrides.
    Overrides overrides(s, o.set);
    const std::string engine_name = o.engine.empty() ? s.engine : o.engine;
    EngineConfig var = base;
    var.prompt = overrides.prompt();
    if (!o.model_path.empty()) var.model_path = o.model_path;
    if (has_model(engine_name) && !has_model(s.engine)) var.model_path = o.model_path;  // "" = default model
    if (!o.device.empty()) var.device = o.device;
    if (overrides.any()) {
        var.n_steps = overrides.settings().n_steps;
        var.attention_type = overrides.settings().type();
        var.attention_params = overrides.settings().params_json();
        var.max_cache_tokens = overrides.settings().budget_tokens;
        var.inject_oom_at = overrides.settings().inject_oom_at;
    }
    // Exact: the recorded engine, model and settings. Strict (a difference is an error): on the CPU both times.
    res.exact = engine_name == s.engine && same_model && !overrides.any();
    res.strict = res.exact && (!has_model(engine_name) || (var.device == "cpu" && s.device == "cpu"));

    std::unique_ptr<Engine> engine = make_engine(engine_name, var);
    std::unique_ptr<Engine> baseline;
    DecodedVideo video;
    std::map<int64_t, size_t> video_index;  // frame -> index into video.frames
    int video_scale = 1;
    if (!res.exact) {
        if (o.baseline == "replay") {
            baseline = make_engine(s.engine, base);
        } else {
            DC_CHECK(rec.video.is_object() && rec.video.contains("file"),
                     "--baseline video: the recording " << o.dir << " has no video ("
                                                        << rec.session.value("video_note", std::string("none")) << ")");
            const std::string path = (fs::path(o.dir) / rec.video["file"].get<std::string>()).string();
            video = decode_video(path);
            video_scale = rec.video.value("scale", 1);
            const int64_t first = rec.video.value("first_frame", int64_t(0));
            for (size_t i = 0; i < video.frames.size(); ++i) video_index[video.frames[i].first + first] = i;
            if (!video.note.empty()) say("note: " + path + ": " + video.note);
        }
    }

    // Comparison CSV (A/B, or when asked for).
    std::FILE* csv = nullptr;
    if (!res.exact || !o.comparison_path.empty()) {
        res.comparison_path =
            o.comparison_path.empty() ? (fs::path(o.dir) / "comparison.csv").string() : o.comparison_path;
        csv = std::fopen(res.comparison_path.c_str(), "w");
        DC_CHECK(csv, "could not create " << res.comparison_path << ": " << std::strerror(errno));
        std::fprintf(csv,
                     "frame,psnr,identical,recorded_step_ms,baseline_step_ms,replay_step_ms,recorded_cache_tokens,"
                     "replay_cache_tokens,recorded_cache_bytes,replay_cache_bytes,recorded_rss_bytes,"
                     "replay_rss_bytes,recorded_gpu_allocated_bytes,replay_gpu_allocated_bytes\n");
    }
    struct CsvCloser {
        std::FILE*& f;
        ~CsvCloser() {
            if (f) std::fclose(f);
        }
    } closer{csv};

    game::Image frame, base_frame;
    std::unique_ptr<Recorder> recorder;
    double psnr_sum = 0;
    int64_t psnr_n = 0, identical = 0;
    double step_sum = 0, base_step_sum = 0, rec_step_sum = 0;
    int64_t step_n = 0, base_step_n = 0, rec_step_n = 0;
    int64_t peak_cache = -1, rec_peak_cache = -1, peak_rss = -1, rec_peak_rss = -1;

    auto check = [&](int64_t t) {
        const EngineStats& st = engine->stats();
        if (t > 0) {
            step_sum += st.step_ms;
            ++step_n;
        }
        peak_cache = std::max(peak_cache, st.cache_bytes);
        peak_rss = std::max(peak_rss, st.rss_bytes);
        const auto m = rec.metrics.find(t);
        if (m != rec.metrics.end()) {
            if (t > 0 && m->second.step_ms >= 0) {
                rec_step_sum += m->second.step_ms;
                ++rec_step_n;
            }
            rec_peak_cache = std::max(rec_peak_cache, m->second.cache_bytes);
            rec_peak_rss = std::max(rec_peak_rss, m->second.rss_bytes);
        }
        ++res.frames_checked;
        if (res.exact) {
            const uint64_t h = frame.hash();
            if (h != rec.frames[t].hash) {
                if (res.first_mismatch < 0) {
                    res.first_mismatch = t;
                    say("frame " + std::to_string(t) + " differs from the recording (recorded hash " +
                        hash_hex(rec.frames[t].hash) + ", replayed " + hash_hex(h) + ")");
                }
                ++res.mismatches;
            }
        }
        double p = -1;
        bool same = false;
        double base_ms = -1;
        if (!res.exact) {
            const game::Image* ref = nullptr;
            game::Image decoded;
            if (baseline) {
                if (base_frame.hash() != rec.frames[t].hash) ++res.baseline_mismatches;
                ref = &base_frame;
                base_ms = baseline->stats().step_ms;
                if (t > 0) {
                    base_step_sum += base_ms;
                    ++base_step_n;
                }
            } else {
                const auto it = video_index.find(t);
                if (it != video_index.end()) {
                    decoded = downscale(video.frames[it->second].second, video_scale);
                    ref = &decoded;
                }
            }
            if (ref) {
                const game::Image a = dream_part(*ref, s.engine);
                const game::Image b = dream_part(frame, engine_name);
                p = frame_psnr(a, b);
                same = a.rgb == b.rgb;
                if (same) ++identical;
                psnr_sum += p;
                ++psnr_n;
                if (res.min_psnr < 0 || p < res.min_psnr) {
                    res.min_psnr = p;
                    res.min_psnr_frame = t;
                }
                res.last_psnr = p;
            }
        }
        if (csv) {
            const MetricsSample none;
            const MetricsSample& r = m != rec.metrics.end() ? m->second : none;
            const std::string row = std::to_string(t) + "," + csv_num(p, 3) + "," + (p < 0 ? "" : (same ? "1" : "0")) +
                                    "," + csv_num(r.step_ms) + "," + csv_num(base_ms) + "," + csv_num(st.step_ms) +
                                    "," + csv_num(r.cache_tokens) + "," + csv_num(st.cache_tokens) + "," +
                                    csv_num(r.cache_bytes) + "," + csv_num(st.cache_bytes) + "," +
                                    csv_num(r.rss_bytes) + "," + csv_num(st.rss_bytes) + "," +
                                    csv_num(r.gpu_allocated_bytes) + "," + csv_num(st.gpu_allocated_bytes) + "\n";
            DC_CHECK(std::fputs(row.c_str(), csv) >= 0, "could not write " << res.comparison_path << " (disk full?)");
        }
    };

    engine->reset(s.seed, frame);
    if (baseline) baseline->reset(s.seed, base_frame);
    if (!o.record_dir.empty()) {
        recorder = make_recorder(*engine, var, frame, o.set, "replay of " + o.dir);
        RecorderOptions ro;
        ro.dir = o.record_dir;
        ro.video = o.record_video != "none";
        ro.video_lossless = o.record_video == "lossless";
        ro.video_scale = o.record_scale;
        ro.video_wait = true;  // headless: keep every frame
        recorder->start(ro);
        recorder->on_frame(frame, nullptr, engine->stats());
    }
    check(0);
    size_t ci = 0;
    for (int64_t t = 1; t <= last; ++t) {
        for (; ci < rec.changes.size() && rec.changes[ci].frame <= t; ++ci) {
            const Control& c = rec.changes[ci].control;
            if (baseline) {
                try {
                    apply_control(*baseline, c, base_frame);
                } catch (const dc::Error& e) {
                    say("warning: frame " + std::to_string(t) + ": the recorded engine refused " + c.describe() + ": " +
                        e.message());
                }
            }
            if (!engine_takes(*engine, c)) {
                ++res.skipped_changes;
                continue;
            }
            const auto v = overrides.transform(c);
            if (!v) {
                ++res.pinned_changes;
                continue;
            }
            try {
                apply_control(*engine, *v, frame);
                if (recorder) recorder->on_change(*v);
            } catch (const dc::Error& e) {
                say("warning: frame " + std::to_string(t) + ": " + v->describe() + " was refused: " + e.message());
            }
        }
        const game::Action& a = rec.frames[t].action;
        try {
            engine->step(a, frame);
            if (baseline) baseline->step(a, base_frame);
        } catch (const dc::Error& e) {
            DC_FAIL("replay failed at frame " << t << ": " << e.message());
        }
        if (recorder) recorder->on_frame(frame, &a, engine->stats());
        check(t);
    }
    if (recorder) {
        recorder->stop();
        for (const auto& m : recorder->take_messages()) say(m.first);
    }
    res.last_frame = last;

    // Summary.
    std::ostringstream head;
    head << "replayed frames 0-" << last << " of " << o.dir << " with the " << engine_name << " engine";
    if (has_model(engine_name))
        head << " (starting with " << var.attention_type << ", S=" << var.n_steps << ", on "
             << (var.device.empty() ? default_device() : var.device) << ")";
    if (!o.set.empty()) {
        head << "; settings:";
        for (const auto& kv : o.set) head << " " << kv;
    }
    say(head.str());
    if (res.skipped_changes > 0)
        say(std::to_string(res.skipped_changes) + " recorded change(s) skipped: not settings of the " + engine_name +
            " engine");
    if (res.pinned_changes > 0)
        say(std::to_string(res.pinned_changes) + " recorded change(s) ignored: --set pins that setting");
    if (res.exact) {
        if (res.mismatches == 0) {
            say("bit-exact: all " + std::to_string(res.frames_checked) + " frames match the recording's hashes");
        } else {
            say(std::to_string(res.mismatches) + " of " + std::to_string(res.frames_checked) +
                " frames differ from the recording; the first is frame " + std::to_string(res.first_mismatch) +
                (res.strict ? "" : " (expected on a GPU: its kernels are not bit-reproducible)"));
        }
    } else {
        if (baseline) {
            say("baseline: the recorded settings replayed in lockstep; " +
                (res.baseline_mismatches == 0
                     ? std::string("all its frames match the recording's hashes (exact recorded frames)")
                     : std::to_string(res.baseline_mismatches) + " of its frames differ from the recording's hashes"));
        } else {
            say("baseline: video.mp4 decoded (" + rec.video.value("codec", std::string("?")) + "; " +
                std::to_string(psnr_n) + " of " + std::to_string(res.frames_checked) + " frames in the video)" +
                (rec.video.value("lossless", false) ? "" : ": lossy, PSNR is capped near the codec's own"));
        }
        if (psnr_n > 0) {
            res.mean_psnr = psnr_sum / static_cast<double>(psnr_n);
            say("PSNR vs the recording: mean " + fmt("%.2f", res.mean_psnr) + " dB, min " + fmt("%.2f", res.min_psnr) +
                " dB (frame " + std::to_string(res.min_psnr_frame) + "), last frame " + fmt("%.2f", res.last_psnr) +
                " dB; " + std::to_string(identical) + " of " + std::to_string(psnr_n) + " frames identical");
        }
    }
    auto mean = [](double sum, int64_t n) { return n > 0 ? sum / static_cast<double>(n) : -1.0; };
    std::string lat =
        "step ms per frame: recorded " + (rec_step_n ? fmt("%.3f", mean(rec_step_sum, rec_step_n)) : "n/a");
    if (baseline) lat += ", baseline " + fmt("%.3f", mean(base_step_sum, base_step_n));
    lat += ", replay " + (step_n ? fmt("%.3f", mean(step_sum, step_n)) : std::string("n/a"));
    if (rec_step_n && step_n && mean(step_sum, step_n) > 0)
        lat += " (" + fmt("%.2f", mean(rec_step_sum, rec_step_n) / mean(step_sum, step_n)) + "x the recorded speed)";
    say(lat);
    say("peak KV cache: recorded " + mb(rec_peak_cache) + ", replay " + mb(peak_cache) + "; peak host RSS: recorded " +
        mb(rec_peak_rss) + ", replay " + mb(peak_rss) + (baseline ? " (both engines in one process)" : ""));
    if (!res.comparison_path.empty()) say("comparison written to " + res.comparison_path);
    return res;
}

}  // namespace dc::app
