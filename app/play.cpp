// `dreamcaster play`: option checks, the headless loop and the pieces both loops share.
#include "app/play.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <filesystem>

#include "app/commands.h"
#include "app/engine.h"
#include "app/recording.h"
#include "common/common.h"

namespace dc::app {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// ---- PNG (stored deflate) -------------------------------------------------------------------------------------

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void put_chunk(std::vector<uint8_t>& out, const char type[4], const std::vector<uint8_t>& data) {
    put_be32(out, static_cast<uint32_t>(data.size()));
    const size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    put_be32(out, crc32(out.data() + start, out.size() - start));
}

}  // namespace

void write_png_rgb(const std::string& path, const game::Image& image) {
    DC_CHECK(image.width > 0 && image.height > 0 &&
                 image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
             "write_png_rgb " << path << ": expected an RGB image, found " << image.width << "x" << image.height
                              << " with " << image.rgb.size() << " bytes");
    // Raw scanlines, each with filter byte 0.
    std::vector<uint8_t> raw;
    const size_t row = static_cast<size_t>(image.width) * 3;
    raw.reserve((row + 1) * image.height);
    for (int y = 0; y < image.height; ++y) {
        raw.push_back(0);
        raw.insert(raw.end(), image.rgb.begin() + row * y, image.rgb.begin() + row * (y + 1));
    }
    // zlib stream of stored deflate blocks.
    std::vector<uint8_t> z{0x78, 0x01};
    for (size_t pos = 0; pos < raw.size() || pos == 0;) {
        const size_t n = std::min<size_t>(65535, raw.size() - pos);
        const bool last = pos + n >= raw.size();
        z.push_back(last ? 1 : 0);
        z.push_back(static_cast<uint8_t>(n & 0xFF));
        z.push_back(static_cast<uint8_t>(n >> 8));
        z.push_back(static_cast<uint8_t>(~n & 0xFF));
        z.push_back(static_cast<uint8_t>((~n >> 8) & 0xFF));
        z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + n);
        pos += n;
        if (last) break;
    }
    uint32_t a = 1, b = 0;
    for (uint8_t v : raw) {
        a = (a + v) % 65521;
        b = (b + a) % 65521;
    }
    put_be32(z, (b << 16) | a);

    std::vector<uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<uint8_t> ihdr;
    put_be32(ihdr, static_cast<uint32_t>(image.width));
    put_be32(ihdr, static_cast<uint32_t>(image.height));
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});   // 8-bit, truecolour RGB, deflate, no filter, no interlace
    put_chunk(png, "IHDR", ihdr);
    put_chunk(png, "IDAT", z);
    put_chunk(png, "IEND", {});

    std::FILE* f = std::fopen(path.c_str(), "wb");
    DC_CHECK(f, "could not create the PNG file " << path << " (does its folder exist and is it writable?)");
    const size_t written = std::fwrite(png.data(), 1, png.size(), f);
    const bool ok = std::fclose(f) == 0 && written == png.size();
    DC_CHECK(ok, "could not write the PNG file " << path << " (disk full?)");
}

// ---- metrics --------------------------------------------------------------------------------------------------

const char* const kMetricsColumns =
    "frame,x,y,angle,step_ms,display_ms,denoise_ms,commit_ms,decode_ms,present_ms,input_to_photon_ms,model_fps,"
    "cache_tokens,cache_bytes,budget_tokens,layer_tokens,layer_bytes,rss_bytes,gpu_allocated_bytes,"
    "gpu_reserved_bytes,density,recall,merge_rate,kept_fraction,psnr,ssim,steps,attention,attention_params,upload";

MetricsWriter::MetricsWriter(const std::string& path) {
    if (path.empty()) return;
    std::FILE* f = std::fopen(path.c_str(), "w");
    DC_CHECK(f, "could not create the metrics file " << path << " (does its folder exist and is it writable?)");
    std::fprintf(f, "%s\n", kMetricsColumns);
    m_file = f;
}

MetricsWriter::~MetricsWriter() {
    if (m_file) std::fclose(static_cast<std::FILE*>(m_file));
}

std::string csv_num(double v, int precision) {
    if (v < 0) return "";
    char b[64];
    std::snprintf(b, sizeof(b), "%.*f", precision, v);
    return b;
}

std::string csv_num(int64_t v) { return v < 0 ? "" : std::to_string(v); }

std::string csv_list(const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ";" : "") + std::to_string(v[i]);
    return s;
}

namespace {

std::string quoted(const std::string& s) {
    if (s.empty()) return "";
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

}  // namespace

void MetricsWriter::row(const MetricsRow& r) {
    if (!m_file || !r.stats) return;
    auto* f = static_cast<std::FILE*>(m_file);
    const EngineStats& s = *r.stats;
    std::string line = std::to_string(s.frame) + ",";
    if (r.pose) {
        char b[96];
        std::snprintf(b, sizeof(b), "%.5f,%.5f,%.5f,", r.pose->x, r.pose->y, r.pose->angle);
        line += b;
    } else {
        line += ",,,";
    }
    const std::vector<std::string> cells{
        csv_num(s.step_ms), csv_num(r.display_ms), csv_num(s.denoise_ms), csv_num(s.commit_ms),
        csv_num(s.decode_ms), csv_num(r.present_ms), csv_num(r.input_to_photon_ms),
        csv_num(s.step_ms > 0 ? 1000.0 / s.step_ms : -1.0, 2), csv_num(s.cache_tokens), csv_num(s.cache_bytes),
        csv_num(s.budget_tokens), csv_list(s.layer_tokens), csv_list(s.layer_bytes), csv_num(s.rss_bytes),
        csv_num(s.gpu_allocated_bytes), csv_num(s.gpu_reserved_bytes), csv_num(s.density, 5), csv_num(s.recall, 5),
        csv_num(s.merge_rate, 5), csv_num(s.kept_fraction, 5), csv_num(s.psnr, 3), csv_num(s.ssim, 5),
        s.n_steps > 0 ? std::to_string(s.n_steps) : "", s.attention, quoted(s.attention_params), r.upload};
    for (size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + cells[i];
    std::fprintf(f, "%s\n", line.c_str());
    std::fflush(f);
}

// ---- clock and layout -----------------------------------------------------------------------------------------

TickClock::TickClock(double tick_seconds, int max_backlog_ticks)
    : m_tick(tick_seconds), m_max(tick_seconds * std::max(1, max_backlog_ticks)) {
    DC_CHECK(tick_seconds > 0, "tick length must be positive, found " << tick_seconds);
}

void TickClock::add(double seconds) { m_acc = std::min(m_acc + std::max(0.0, seconds), m_max); }

Layout compute_layout(int fb_width, int fb_height, int frame_w, int frame_h, bool overlay, bool smooth) {
    Layout l;
    const int panel = overlay ? std::min(kPanelWidth, fb_width / 2) : 0;
    const int area_w = std::max(0, fb_width - panel);
    if (overlay) {
        l.panel_x = area_w;
        l.panel_w = panel;
        l.panel_h = fb_height;
    }
    if (frame_w <= 0 || frame_h <= 0 || area_w <= 0 || fb_height <= 0) return l;
    const double s = std::min(static_cast<double>(area_w) / frame_w, static_cast<double>(fb_height) / frame_h);
    // Nearest upscaling stays crisp at whole-number scales.
    const double scale = (!smooth && s >= 1.0) ? std::floor(s) : s;
    l.game_w = std::max(1, static_cast<int>(frame_w * scale));
    l.game_h = std::max(1, static_cast<int>(frame_h * scale));
    l.game_x = (area_w - l.game_w) / 2;
    l.game_y = (fb_height - l.game_h) / 2;
    return l;
}

void default_window_size(int frame_w, int frame_h, int scale, bool overlay, int& width, int& height) {
    width = frame_w * scale + (overlay ? kPanelWidth : 0);
    height = frame_h * scale;
    if (overlay) height = std::max(height, kMinWindowHeight);
}

std::vector<game::Action> load_actions(const std::string& path) {
    if (path.empty()) return {};
    return game::load_action_script(path);
}

// ---- play -----------------------------------------------------------------------------------------------------

namespace {

std::string frame_file(const std::string& dir, int64_t frame) {
    char name[64];
    std::snprintf(name, sizeof(name), "frame_%06" PRId64 ".png", frame);
    return (std::filesystem::path(dir) / name).string();
}

bool build_has(const std::string& engine) {
    const auto names = engine_names();
    return std::find(names.begin(), names.end(), engine) != names.end();
}

}  // namespace

EngineConfig start_config(const PlayOptions& o, NeuralSettings& settings, std::vector<ToggleEntry>& later) {
    EngineConfig c;
    c.level = o.level;
    c.prompt = o.prompt;
    c.seed = o.seed;
    c.model_path = o.model_path;
    c.device = o.device;
    DC_CHECK(o.steps >= 1 && o.steps <= 16, "--steps: expected 1 to 16 Euler steps per frame, found " << o.steps);
    settings.n_steps = o.steps;
    auto take = [&](const std::vector<Control>& controls) {
        for (const Control& k : controls)
            if (k.kind == Control::Kind::prompt) c.prompt = k.text;
    };
    for (const std::string& kv : o.set) take(apply_setting(settings, kv));
    later.clear();
    if (!o.toggles_path.empty()) {
        later = load_toggles(o.toggles_path);
        size_t next = 0;
        take(due_controls(settings, later, next, 0, o.seed, o.toggles_path));   // frame 0: part of the start
        later.erase(later.begin(), later.begin() + static_cast<std::ptrdiff_t>(next));
        // Every later line must make sense to the app now; what the engine refuses shows when it is applied.
        NeuralSettings scratch = settings;
        size_t all = 0;
        due_controls(scratch, later, all, INT64_MAX, o.seed, o.toggles_path);
    }
    c.n_steps = settings.n_steps;
    c.attention_type = settings.type();
    c.attention_params = settings.params_json();
    c.max_cache_tokens = settings.budget_tokens;
    c.inject_oom_at = settings.inject_oom_at;
    return c;
}

EngineChoice choose_engine(const PlayOptions& o, const EngineConfig& config, bool strict) {
    EngineChoice choice;
    std::string name = o.engine;
    if (name.empty()) {
        if (!build_has("neural")) {
            choice.engine = make_engine("reference", config);
            return choice;
        }
        const std::string path = config.model_path.empty() ? default_model_path() : config.model_path;
        if (path.empty() || !std::filesystem::exists(path)) {
            choice.notice = "no world model at " + (path.empty() ? std::string("assets/models/default.json") : path) +
                            ": playing the reference game instead (train one with `dreamcaster train`, or pass "
                            "--model FILE)";
            choice.engine = make_engine("reference", config);
            return choice;
        }
        name = "neural";
        strict = false;   // the default engine always falls back
    }
    if (name == "reference" || !build_has(name)) {
        choice.engine = make_engine(name, config);   // an unknown name throws, listing this build's engines
        return choice;
    }
    try {
        choice.engine = make_engine(name, config);
    } catch (const dc::Error& e) {
        if (strict) throw;
        choice.notice = "the " + name + " engine could not start: " + e.message() + " -- playing the reference game";
        choice.engine = make_engine("reference", config);
    }
    return choice;
}

void print_no_display(const std::string& why) {
    std::fprintf(stderr,
                 "dreamcaster: no display found (%s), so `play` cannot open a window.\n"
                 "  Run without a window:       dreamcaster play --headless --actions FILE [--frames N] "
                 "[--metrics FILE] [--dump-frames DIR]\n"
                 "  Or under a virtual display: xvfb-run -a dreamcaster play\n",
                 why.c_str());
}

namespace {

int run_play_headless(const PlayOptions& o) {
    const std::vector<game::Action> script = load_actions(o.actions_path);
    DC_CHECK(o.frames >= 0 || !o.actions_path.empty(),
             "--headless needs --actions FILE (the actions to play) or --frames N (how many frames to run)");
    const int64_t n_frames = o.frames >= 0 ? o.frames : static_cast<int64_t>(script.size());
    NeuralSettings settings;
    std::vector<ToggleEntry> toggles;
    const EngineConfig config = start_config(o, settings, toggles);
    EngineChoice choice = choose_engine(o, config, /*strict=*/true);
    if (!choice.notice.empty()) dc::log(LogLevel::warn, choice.notice);
    Engine& engine = *choice.engine;
    if (!o.dump_frames_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(o.dump_frames_dir, ec);
        DC_CHECK(!ec, "could not create the folder " << o.dump_frames_dir << " for --dump-frames: " << ec.message());
    }
    MetricsWriter metrics(o.metrics_path);
    const std::string shot_path =
        o.screenshot_path.empty() ? "dreamcaster-frame" + std::to_string(o.screenshot_at) + ".png" : o.screenshot_path;

    game::Image frame;
    double total_step_ms = 0;
    auto after_frame = [&](double loop_ms, double latency_ms) {
        const EngineStats& s = engine.stats();
        const auto pose = engine.pose();
        MetricsRow row;
        row.stats = &s;
        row.pose = pose ? &*pose : nullptr;
        row.display_ms = loop_ms;
        row.input_to_photon_ms = latency_ms;
        metrics.row(row);
        if (!o.dump_frames_dir.empty()) write_png_rgb(frame_file(o.dump_frames_dir, s.frame), frame);
        if (s.frame == o.screenshot_at) {
            write_png_rgb(shot_path, frame);
            std::printf("dreamcaster: screenshot of frame %" PRId64 " saved to %s (%dx%d, the game frame without "
                        "overlay)\n",
                        s.frame, shot_path.c_str(), frame.width, frame.height);
        }
    };
    auto t0 = std::chrono::steady_clock::now();
    engine.reset(o.seed, frame);
    after_frame(ms_since(t0), ms_since(t0));
    const auto recorder = start_play_recording(o, engine, config, frame);   // --record DIR (app/recording.h)
    size_t next_toggle = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n_frames; ++i) {
        t0 = std::chrono::steady_clock::now();
        // Changes for this frame, between the steps (as the window applies them on the engine's thread).
        const NeuralSettings before = settings;
        for (const Control& c : due_controls(settings, toggles, next_toggle, i + 1, o.seed, o.toggles_path)) {
            try {
                const bool redrawn = apply_control(engine, c, frame);
                dc::log(LogLevel::info, "frame " + std::to_string(i + 1) + ": " + c.describe());
                if (recorder) recorder->on_change(c);
                if (c.kind == Control::Kind::reset && redrawn) after_frame(ms_since(t0), ms_since(t0));
            } catch (const dc::Error& err) {
                dc::log(LogLevel::error,
                        "frame " + std::to_string(i + 1) + ": " + c.describe() + " refused: " + err.message());
                // The engine kept its settings: so do later lines.
                if (c.kind == Control::Kind::attention) {
                    NeuralSettings kept = before;
                    kept.n_steps = settings.n_steps;
                    kept.budget_tokens = settings.budget_tokens;
                    settings = kept;
                }
                if (c.kind == Control::Kind::steps) settings.n_steps = before.n_steps;
                if (c.kind == Control::Kind::budget) settings.budget_tokens = before.budget_tokens;
            }
        }
        t0 = std::chrono::steady_clock::now();   // the action is sampled now
        const game::Action a = i < static_cast<int64_t>(script.size()) ? script[i] : game::Action{};
        engine.step(a, frame);
        if (recorder) recorder->on_frame(frame, &a, engine.stats(), ms_since(t0));
        total_step_ms += engine.stats().step_ms;
        after_frame(ms_since(t0), ms_since(t0));
    }
    const double wall_ms = ms_since(start);
    if (recorder) recorder->stop();   // finishes video.mp4, marks session.json complete
    const auto pose = engine.pose();
    std::printf("dreamcaster: %" PRId64 " frames headless with the %s engine: %.3f ms/frame in the engine, %.3f "
                "ms/frame in all",
                n_frames, engine.name().c_str(), n_frames ? total_step_ms / n_frames : 0.0,
                n_frames ? wall_ms / n_frames : 0.0);
    if (pose) std::printf("; final pose x=%.3f y=%.3f angle=%.3f", pose->x, pose->y, pose->angle);
    const EngineStats& last = engine.stats();
    if (last.cache_tokens >= 0)
        std::printf("; KV cache %" PRId64 " tokens, %.2f MB (%s, S=%d)", last.cache_tokens, last.cache_bytes / 1e6,
                    last.attention.c_str(), last.n_steps);
    std::printf("\n");
    if (!choice.notice.empty()) std::printf("dreamcaster: note: %s\n", choice.notice.c_str());
    if (metrics.enabled()) std::printf("dreamcaster: metrics written to %s\n", o.metrics_path.c_str());
    if (!o.dump_frames_dir.empty())
        std::printf("dreamcaster: frames 0-%" PRId64 " written to %s/\n", n_frames, o.dump_frames_dir.c_str());
    return kExitOk;
}

}  // namespace

int run_play(const PlayOptions& o) {
    DC_CHECK(o.scale >= 0 && o.scale <= 16, "--scale: expected a whole number from 1 to 16 (0 = automatic), found "
                                                 << o.scale);
    DC_CHECK(o.frames >= -1, "--frames: expected a frame count >= 0, found " << o.frames);
    DC_CHECK(o.screenshot_at >= -1, "--screenshot-at: expected a frame number >= 0, found " << o.screenshot_at);
    DC_CHECK(o.frames < 0 || o.screenshot_at <= o.frames,
             "--screenshot-at " << o.screenshot_at << " is after the last frame (--frames " << o.frames << ")");
    DC_CHECK(o.screenshot_path.empty() || o.screenshot_at >= 0,
             "--screenshot PATH needs --screenshot-at N (which frame); F12 takes screenshots during play");
    if (o.headless) return run_play_headless(o);
    DC_CHECK(o.dump_frames_dir.empty(), "--dump-frames works with --headless only");
#if DC_GUI
    // Check for a display before loading anything, so the message comes at once.
    const char* x11 = std::getenv("DISPLAY");
    const char* wayland = std::getenv("WAYLAND_DISPLAY");
    if (!((x11 && *x11) || (wayland && *wayland))) {
        print_no_display("neither DISPLAY nor WAYLAND_DISPLAY is set");
        return kExitNoDisplay;
    }
    return run_play_window(o);   // prints the no-display message itself when the window cannot open
#else
    std::fprintf(stderr,
                 "dreamcaster: this build has no window (it was built with DC_GUI=OFF); `play` supports only "
                 "--headless here:\n  dreamcaster play --headless --actions FILE [--frames N] [--metrics FILE] "
                 "[--dump-frames DIR]\n");
    return kExitNoDisplay;
#endif
}

}  // namespace dc::app
