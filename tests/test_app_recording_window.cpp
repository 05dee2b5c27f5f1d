// Recording from the window loop (needs a display: CI runs [gui] tests under xvfb-run): play --record in a window
// gives a recording that replays bit-exactly, the same as a headless one.
#include <catch2/catch.hpp>

#if DC_GUI
#include "app/recording.h"
#include "test_app_util.h"

TEST_CASE("play --record in a window records every model frame and replays bit-exactly", "[app][gui]") {
    dc_test::TempDir dir("window_rec");
    dc_test::write_file(dir.file("walk.txt"), "1 0 0.25 0\nrepeat 14\n0.5 -0.5 0 1\nrepeat 14\n");  // 30 actions
    dc_test::write_file(dir.file("toggles.txt"), "frame 12 prompt thick fog\n");
    const std::string rec = dir.file("rec");
    auto run = dc_test::run_dreamcaster("play --engine reference --actions '" + dir.file("walk.txt") + "' --toggles '" +
                                        dir.file("toggles.txt") + "' --frames 30 --record '" + rec + "'");
    INFO(run.output);
    REQUIRE(run.code == 0);
    const auto r = dc::app::load_recording(rec);
    CHECK(r.status == "complete");
    CHECK(r.start.source == "play");
    CHECK(r.last_frame() == 30);  // every model frame, whatever the display showed
    REQUIRE(r.changes.size() == 1);
    CHECK(r.changes[0].frame == 12);
    run = dc_test::run_dreamcaster("replay '" + rec + "'");
    INFO(run.output);
    CHECK(run.code == 0);
    CHECK_THAT(run.output, Catch::Contains("bit-exact: all 31 frames match"));
}
#endif
