// `dreamcaster play` in a window (needs a display: CI runs [gui] tests under xvfb-run): the screenshot's game view,
// downscaled, equals the headless frame of the same state, and the overlay panel is drawn beside it.
#include <catch2/catch.hpp>

#if DC_GUI

#include <cstdio>
#include <memory>
#include <regex>

#include "app/play.h"
#include "test_app_util.h"

namespace {

using dc_test::load_png;
using dc_test::Png;

const char* kScript =
    "1 0 0.25 0\n"
    "repeat 5\n"
    "0.5 -0.5 0 1\n"
    "repeat 5\n";   // 12 actions: every frame up to 12 comes from the file, none from keys or gamepads

}  // namespace

TEST_CASE("play in a window shows the headless render in the game view and draws the overlay", "[app][gui]") {
    dc_test::TempDir dir("window");
    const std::string script = dir.file("walk.txt");
    dc_test::write_file(script, kScript);
    const int scale = 3;

    // Headless ground truth: frame 12 of the same actions.
    auto r = dc_test::run_dreamcaster("play --headless --engine reference --actions '" + script +
                                      "' --frames 12 --dump-frames '" +
                                      dir.file("frames") + "'");
    REQUIRE(r.code == 0);
    const Png truth = load_png(dir.file("frames/frame_000012.png"));
    REQUIRE(truth.w == 128);

    // The window: 12 ticks at 15 Hz (~0.8 s), screenshot of frame 12 with the overlay, then exit.
    r = dc_test::run_dreamcaster("play --engine reference --actions '" + script +
                                 "' --frames 12 --screenshot-at 12 --screenshot '" +
                                 dir.file("shot.png") + "' --scale " + std::to_string(scale));
    INFO(r.output);
    REQUIRE(r.code == 0);
    std::smatch m;
    const std::regex where(R"(game view at x=(\d+) y=(\d+) (\d+)x(\d+))");
    REQUIRE(std::regex_search(r.output, m, where));
    const int gx = std::stoi(m[1]), gy = std::stoi(m[2]), gw = std::stoi(m[3]), gh = std::stoi(m[4]);
    CHECK((gw == 128 * scale && gh == 128 * scale));
    const Png shot = load_png(dir.file("shot.png"));
    int ww = 0, wh = 0;
    dc::app::default_window_size(128, 128, scale, true, ww, wh);
    REQUIRE((shot.w == ww && shot.h == wh));

    // Game view: every screen pixel equals its game pixel (nearest upscaling; tolerance 1 level per channel for
    // any driver rounding; llvmpipe gives 0).
    int worst = 0, off_pixels = 0;
    for (int y = 0; y < gh; ++y)
        for (int x = 0; x < gw; ++x) {
            const uint8_t* s = shot.at(gx + x, gy + y);
            const uint8_t* t = truth.at(x / scale, y / scale);
            int d = 0;
            for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(int(s[c]) - int(t[c])));
            worst = std::max(worst, d);
            if (d > 1) ++off_pixels;
        }
    CHECK(worst <= 1);
    CHECK(off_pixels == 0);

    // Overlay: the panel right of the game view is ImGui's window (dark grey ~14 over black) with text on it.
    int panel_bg = 0, bright = 0, total = 0;
    for (int y = 0; y < shot.h; ++y)
        for (int x = gx + gw; x < shot.w; ++x) {
            const uint8_t* p = shot.at(x, y);
            ++total;
            if (p[0] >= 10 && p[0] <= 20 && p[1] >= 10 && p[1] <= 20 && p[2] >= 10 && p[2] <= 20) ++panel_bg;
            if (p[0] > 180 && p[1] > 180 && p[2] > 180) ++bright;
        }
    REQUIRE(total > 0);
    CHECK(panel_bg > total / 3);   // the rest: section headers, plot frames, text
    CHECK(bright > total / 200);

    // Without the overlay, the same window size shows no panel there: only the black letterbox beside the game.
    r = dc_test::run_dreamcaster("play --engine reference --actions '" + script +
                                 "' --frames 2 --screenshot-at 2 --screenshot '" +
                                 dir.file("plain.png") + "' --no-overlay --size " + std::to_string(ww) + "x" +
                                 std::to_string(wh));
    REQUIRE(r.code == 0);
    const Png plain = load_png(dir.file("plain.png"));
    REQUIRE((plain.w == ww && plain.h == wh));
    int plain_bg = 0;
    for (int y = 0; y < plain.h; ++y)
        for (int x = plain.w - 40; x < plain.w; ++x)
            if (plain.at(x, y)[0] >= 10 && plain.at(x, y)[0] <= 20) ++plain_bg;
    CHECK(plain_bg == 0);
    CHECK(plain.at(plain.w - 1, plain.h / 2)[0] == 0);
}
#endif
