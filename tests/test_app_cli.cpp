// The dreamcaster executable: help on every subcommand, error format and exit codes, play without a display.
#include <catch2/catch.hpp>

#include "test_app_util.h"

using dc_test::run_dreamcaster;

TEST_CASE("dreamcaster and each subcommand answer --help", "[app]") {
    auto r = run_dreamcaster("--help");
    CHECK(r.code == 0);
    CHECK_THAT(r.output, Catch::Contains("play") && Catch::Contains("bench"));
    r = run_dreamcaster("play --help");
    CHECK(r.code == 0);
    CHECK_THAT(r.output, Catch::Contains("--headless") && Catch::Contains("--actions") &&
                             Catch::Contains("--screenshot-at") && Catch::Contains("--engine"));
    r = run_dreamcaster("bench --help");
    CHECK(r.code == 0);
    CHECK_THAT(r.output, Catch::Contains("game"));
    r = run_dreamcaster("bench game --help");
    CHECK(r.code == 0);
    CHECK_THAT(r.output, Catch::Contains("--frames"));
}

TEST_CASE("errors print dreamcaster error and the message and exit 1", "[app]") {
#ifdef DC_HAVE_WORLD_MODEL
    const std::string engines = "reference, neural, side-by-side";
    auto r = run_dreamcaster("play --headless --frames 1 --engine neural --model /no/such/model.json");
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("dreamcaster: error: could not load the world model /no/such/model.json"));
#else
    const std::string engines = "reference";
    auto r = run_dreamcaster("play --headless --frames 1 --engine neural");
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("dreamcaster: error: engine 'neural' is not in this build; this build has: "
                                         "reference"));
#endif
    r = run_dreamcaster("play --headless --frames 1 --engine dreamy");
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("dreamcaster: error: unknown engine 'dreamy'; this build has: " + engines));
    r = run_dreamcaster("play --headless --frames 1 --level no_such_level");
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::StartsWith("dreamcaster: error: ") && Catch::Contains("no_such_level"));
    r = run_dreamcaster("play --headless");
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("--headless needs --actions FILE"));
    r = run_dreamcaster("play --headless --frames 3 --screenshot-at 5");
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("--screenshot-at 5 is after the last frame"));
    r = run_dreamcaster("play --no-such-option");
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::StartsWith("dreamcaster: error: "));
}

TEST_CASE("play without a display says so and names --headless and xvfb-run and exits 2", "[app]") {
    const auto r = run_dreamcaster("play --frames 1", "env -u DISPLAY -u WAYLAND_DISPLAY");
    CHECK(r.code == 2);
#if DC_GUI
    CHECK_THAT(r.output, Catch::Contains("no display found") && Catch::Contains("--headless") &&
                             Catch::Contains("xvfb-run -a dreamcaster play"));
    // A display that cannot be reached ends the same way (GLFW fails to connect).
    const auto bad = run_dreamcaster("play --frames 1", "env -u WAYLAND_DISPLAY DISPLAY=:4321");
    CHECK(bad.code == 2);
    CHECK_THAT(bad.output, Catch::Contains("no display found") && Catch::Contains("xvfb-run -a dreamcaster play"));
#else
    CHECK_THAT(r.output, Catch::Contains("built with DC_GUI=OFF") && Catch::Contains("--headless"));
#endif
    // --headless needs no display at all.
    const auto headless = run_dreamcaster("play --headless --frames 3", "env -u DISPLAY -u WAYLAND_DISPLAY");
    CHECK(headless.code == 0);
    CHECK_THAT(headless.output, Catch::Contains("3 frames headless"));
}
