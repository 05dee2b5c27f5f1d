// The overlay with a model (needs a display: CI runs [gui] tests under xvfb-run): every panel renders, and the window
// keeps drawing while a deliberately slow model dreams.
#include <catch2/catch.hpp>

#if DC_GUI && defined(DC_HAVE_WORLD_MODEL)

#include <map>
#include <regex>

#include "test_app_model.h"
#include "test_app_util.h"

namespace {

using dc_test::load_png;
using dc_test::Png;

struct Rect {
    int x = 0, y = 0, w = 0, h = 0;
};

}  // namespace

TEST_CASE("every overlay panel renders with the side-by-side engine", "[app][gui]") {
    const std::string model = dc_test::tiny_model();
    dc_test::TempDir dir("overlay_panels");
    dc_test::write_file(dir.file("toggles.txt"),
                        "frame 0 set annsa.min_cache_tokens=0\n"
                        "frame 2 set attention=tempcache+annsa+annca\n"
                        "frame 3 prompt the brick walls are dark red; the floor is mossy green; thick fog\n"
                        "frame 5 resync\n");
    // A window tall enough for every section unscrolled (the panel scrolls in a normal window).
    const auto r = dc_test::run_dreamcaster("play --engine side-by-side --model '" + model +
                                            "' --frames 8 --screenshot-at 8 --screenshot '" + dir.file("shot.png") +
                                            "' --toggles '" + dir.file("toggles.txt") + "' --size 1100x1900");
    INFO(r.output);
    REQUIRE(r.code == 0);
    const Png shot = load_png(dir.file("shot.png"));
    REQUIRE((shot.w == 1100 && shot.h == 1900));

    std::map<std::string, Rect> panels;
    const std::regex line(R"(panel (\w+) at x=(\d+) y=(\d+) (\d+)x(\d+))");
    for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), line); it != std::sregex_iterator(); ++it)
        panels[(*it)[1]] = Rect{std::stoi((*it)[2]), std::stoi((*it)[3]), std::stoi((*it)[4]), std::stoi((*it)[5])};
    for (const char* name : {"game", "performance", "model", "latency", "cache", "memory", "attention", "quality",
                             "toggles", "ab", "changes", "prompt", "input", "messages"}) {
        INFO("panel " << name);
        REQUIRE(panels.count(name));
        const Rect& p = panels[name];
        REQUIRE((p.w > 0 && p.h > 0 && p.x >= 0 && p.y >= 0 && p.x + p.w <= shot.w && p.y + p.h <= shot.h));
        // Non-empty: text or plot lines, i.e. pixels far from the panel's dark background.
        int ink = 0;
        for (int y = p.y; y < p.y + p.h; ++y)
            for (int x = p.x; x < p.x + p.w; ++x) {
                const uint8_t* c = shot.at(x, y);
                if (c[0] + c[1] + c[2] > 3 * 110) ++ink;
            }
        CHECK(ink >= 40);
    }
    // The plots have data in them: the latency, cache and attention panels hold more ink than a line of text.
    CHECK(panels["latency"].h > 60);
    CHECK(panels["cache"].h > 60);
    CHECK(panels["attention"].h > 60);
    CHECK(panels["toggles"].h > 150);  // the parameters of the parts the script switched on
    CHECK_THAT(r.output, Catch::Contains("frame 2: attention tempcache+annsa+annca") &&
                             Catch::Contains("frame 3: prompt") && Catch::Contains("frame 5: resync"));
}

TEST_CASE("the window keeps drawing while a slow model dreams", "[app][gui]") {
    const std::string model = dc_test::tiny_model();
    dc_test::TempDir dir("overlay_responsive");
    // Changes during the run go through the engine's thread too and must not stall the display.
    dc_test::write_file(dir.file("toggles.txt"),
                        "frame 2 set attention=tempcache+annca\n"
                        "frame 3 prompt the floor is mossy green\n"
                        "frame 4 set steps=12\n");
    const auto r =
        dc_test::run_dreamcaster("play --engine neural --model '" + model + "' --steps 16 --frames 6 --toggles '" +
                                 dir.file("toggles.txt") + "' --scale 2");
    INFO(r.output);
    REQUIRE(r.code == 0);
    std::smatch m;
    REQUIRE(std::regex_search(r.output, m, std::regex(R"((\d+) display frames, (\d+) model frames)")));
    const int display = std::stoi(m[1]), model_frames = std::stoi(m[2]);
    CHECK(model_frames == 6);
    // The display loop runs at its own rate: many frames drawn for each dreamed one (a loop that waited for the
    // model would draw about one per model frame).
    CHECK(display >= 3 * model_frames);
    CHECK_THAT(r.output, Catch::Contains("frame 3: prompt \"the floor is mossy green\""));
}
#endif
