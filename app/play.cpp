// `dreamcaster play`: option checks, the headless loop and the pieces both loops share.
#include "app/play.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "app/commands.h"
#include "app/engine.h"
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

MetricsWriter::MetricsWriter(const std::string& path) {
    if (path.empty()) return;
    std::FILE* f = std::fopen(path.c_str(), "w");
    DC_CHECK(f, "could not create the metrics file " << path << " (does its folder exist and is it writable?)");
    std::fprintf(f, "frame,x,y,angle,step_ms,display_ms\n");
    m_file = f;
}

MetricsWriter::~MetricsWriter() {
    if (m_file) std::fclose(static_cast<std::FILE*>(m_file));
}

void MetricsWriter::row(int64_t frame, const game::Pose* pose, double step_ms, double display_ms) {
    if (!m_file) return;
    auto* f = static_cast<std::FILE*>(m_file);
    if (pose)
        std::fprintf(f, "%" PRId64 ",%.5f,%.5f,%.5f,%.4f,%.4f\n", frame, pose->x, pose->y, pose->angle, step_ms,
                     display_ms);
    else
        std::fprintf(f, "%" PRId64 ",,,,%.4f,%.4f\n", frame, step_ms, display_ms);
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

EngineConfig engine_config(const PlayOptions& o) {
    EngineConfig c;
    c.level = o.level;
    c.prompt = o.prompt;
    c.seed = o.seed;
    return c;
}

std::string frame_file(const std::string& dir, int64_t frame) {
    char name[64];
    std::snprintf(name, sizeof(name), "frame_%06" PRId64 ".png", frame);
    return (std::filesystem::path(dir) / name).string();
}

}  // namespace

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
    auto engine = make_engine(o.engine, engine_config(o));
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
    auto after_frame = [&](double loop_ms) {
        const EngineStats& s = engine->stats();
        const auto pose = engine->pose();
        metrics.row(s.frame, pose ? &*pose : nullptr, s.step_ms, loop_ms);
        if (!o.dump_frames_dir.empty()) write_png_rgb(frame_file(o.dump_frames_dir, s.frame), frame);
        if (s.frame == o.screenshot_at) {
            write_png_rgb(shot_path, frame);
            std::printf("dreamcaster: screenshot of frame %" PRId64 " saved to %s (%dx%d, the game frame without "
                        "overlay)\n",
                        s.frame, shot_path.c_str(), frame.width, frame.height);
        }
    };
    auto t0 = std::chrono::steady_clock::now();
    engine->reset(o.seed, frame);
    after_frame(ms_since(t0));
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n_frames; ++i) {
        t0 = std::chrono::steady_clock::now();
        const game::Action a = i < static_cast<int64_t>(script.size()) ? script[i] : game::Action{};
        engine->step(a, frame);
        total_step_ms += engine->stats().step_ms;
        after_frame(ms_since(t0));
    }
    const double wall_ms = ms_since(start);
    const auto pose = engine->pose();
    std::printf("dreamcaster: %" PRId64 " frames headless with the %s engine: %.3f ms/frame in the engine, %.3f "
                "ms/frame in all",
                n_frames, engine->name().c_str(), n_frames ? total_step_ms / n_frames : 0.0,
                n_frames ? wall_ms / n_frames : 0.0);
    if (pose) std::printf("; final pose x=%.3f y=%.3f angle=%.3f", pose->x, pose->y, pose->angle);
    std::printf("\n");
    if (metrics.enabled()) std::printf("dreamcaster: metrics written to %s\n", o.metrics_path.c_str());
    if (!o.dump_frames_dir.empty())
        std::printf("dreamcaster: frames 0-%" PRId64 " written to %s/\n", n_frames, o.dump_frames_dir.c_str());
    return kExitOk;
}

}  // namespace

int run_play(const PlayOptions& o) {
    DC_CHECK(o.scale >= 1 && o.scale <= 16, "--scale: expected a whole number from 1 to 16, found " << o.scale);
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
