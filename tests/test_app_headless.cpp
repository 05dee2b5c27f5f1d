// Headless play: the same frames as the game itself, metrics, frame dumps; the fixed-rate clock and the layout.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "app/engine.h"
#include "app/engine_runner.h"
#include "common/common.h"
#include "app/play.h"
#include "game/game.h"
#include "test_app_util.h"
#if DC_GUI
#include <stb_image.h>
#endif

namespace {

const char* kScript =
    "# forward strafe turn use\n"
    "1 0 0.3 0\n"
    "repeat 4\n"
    "0 0.5 -0.5 0\n"
    "repeat 4\n"
    "0.6 0 0 1\n"
    "0 0 1 0\n";   // 12 actions

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
}

}  // namespace

TEST_CASE("headless play runs the actions file with metrics per frame and frames identical to the game's own", "[app]") {
    dc_test::TempDir dir("headless");
    const std::string script = dir.file("walk.txt");
    dc_test::write_file(script, kScript);
    const auto r = dc_test::run_dreamcaster("play --headless --engine reference --actions '" + script +
                                            "' --metrics '" +
                                            dir.file("m.csv") + "' --dump-frames '" + dir.file("frames") +
                                            "' --screenshot-at 7 --screenshot '" + dir.file("shot.png") + "'");
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.output, Catch::Contains("12 frames headless with the reference engine"));

    // Ground truth: the game stepped directly with the same actions.
    const auto actions = dc::game::load_action_script(script);
    REQUIRE(actions.size() == 12);
    dc::game::Game game(dc::game::Level::load_named("e1m1"));
    game.reset(0);
    std::vector<dc::game::Image> truth(1);
    std::vector<dc::game::Pose> poses{game.pose()};
    game.render(truth[0]);
    for (const auto& a : actions) {
        game.step(a);
        truth.emplace_back();
        game.render(truth.back());
        poses.push_back(game.pose());
    }

    const auto lines = read_lines(dir.file("m.csv"));
    REQUIRE(lines.size() == 14);   // header + frames 0..12
    CHECK_THAT(lines[0], Catch::StartsWith("frame,x,y,angle,step_ms,display_ms,"));   // then the neural columns
    for (int f = 0; f <= 12; ++f) {
        std::istringstream row(lines[f + 1]);
        std::string cell;
        std::vector<std::string> cells;
        while (std::getline(row, cell, ',')) cells.push_back(cell);
        REQUIRE(cells.size() >= 6);
        CHECK(std::stoi(cells[0]) == f);
        CHECK(std::stof(cells[1]) == Approx(poses[f].x).margin(1e-4));
        CHECK(std::stof(cells[2]) == Approx(poses[f].y).margin(1e-4));
        CHECK(std::stof(cells[3]) == Approx(poses[f].angle).margin(1e-4));
        CHECK(std::stod(cells[4]) >= 0.0);
    }
    CHECK(poses[12].x != poses[0].x);   // the script really moves the player

    for (int f = 0; f <= 12; ++f) {
        char name[32];
        std::snprintf(name, sizeof(name), "frame_%06d.png", f);
        REQUIRE(std::filesystem::exists(dir.path() / "frames" / name));
    }
    REQUIRE(std::filesystem::exists(dir.file("shot.png")));
#if DC_GUI
    for (int f : {0, 7, 12}) {
        char name[32];
        std::snprintf(name, sizeof(name), "frames/frame_%06d.png", f);
        int w = 0, h = 0, n = 0;
        uint8_t* px = stbi_load(dir.file(name).c_str(), &w, &h, &n, 3);
        REQUIRE(px);
        CHECK((w == truth[f].width && h == truth[f].height));
        CHECK(std::vector<uint8_t>(px, px + size_t(w) * h * 3) == truth[f].rgb);
        stbi_image_free(px);
    }
    int w = 0, h = 0, n = 0;
    uint8_t* shot = stbi_load(dir.file("shot.png").c_str(), &w, &h, &n, 3);
    REQUIRE(shot);
    CHECK(std::vector<uint8_t>(shot, shot + size_t(w) * h * 3) == truth[7].rgb);
    stbi_image_free(shot);
#endif
}

TEST_CASE("the reference engine applies prompts live and keeps the old style on a bad one", "[app]") {
    auto engine = dc::app::make_engine("reference", dc::app::EngineConfig{});
    dc::game::Image a, b, c;
    engine->reset(0, a);
    const std::string good = "the floor is mossy green";
    engine->set_prompt(good);
    REQUIRE(engine->redraw(b));
    CHECK(b.rgb != a.rgb);   // restyled without stepping
    CHECK(engine->stats().frame == 0);
    CHECK_THROWS_AS(engine->set_prompt("the floor is plaid sparkles"), dc::Error);
    CHECK(engine->prompt() == good);
    engine->redraw(c);
    CHECK(c.rgb == b.rgb);
}

TEST_CASE("the game clock ticks at its fixed rate whatever the display rate and caps the backlog", "[app]") {
    auto ticks_over = [](double display_hz, double seconds) {
        dc::app::TickClock clock(1.0 / 15.0);
        int ticks = 0;
        const int frames = static_cast<int>(seconds * display_hz + 0.5);
        for (int i = 0; i < frames; ++i) {
            clock.add(1.0 / display_hz);
            while (clock.due()) {
                clock.consume();
                ++ticks;
            }
        }
        return ticks;
    };
    CHECK(std::abs(ticks_over(60, 2.0) - 30) <= 1);
    CHECK(std::abs(ticks_over(144, 2.0) - 30) <= 1);
    CHECK(std::abs(ticks_over(24, 2.0) - 30) <= 1);
    CHECK(std::abs(ticks_over(7, 2.0) - 30) <= 1);   // slower than the game: several ticks per display frame

    dc::app::TickClock clock(1.0 / 15.0, 4);
    clock.add(3.0);   // a 3 s stall
    int ticks = 0;
    while (clock.due()) {
        clock.consume();
        ++ticks;
    }
    CHECK(ticks == 4);
}

TEST_CASE("the window layout keeps the game view crisp and left of the panel", "[app]") {
    int w = 0, h = 0;
    dc::app::default_window_size(128, 128, 5, true, w, h);
    CHECK((w == 640 + dc::app::kPanelWidth && h == 640));
    dc::app::default_window_size(128, 128, 3, false, w, h);
    CHECK((w == 384 && h == 384));
    auto l = dc::app::compute_layout(640 + dc::app::kPanelWidth, 640, 128, 128, true, false);
    CHECK((l.game_x == 0 && l.game_y == 0 && l.game_w == 640 && l.game_h == 640));
    CHECK((l.panel_x == 640 && l.panel_w == dc::app::kPanelWidth && l.panel_h == 640));
    l = dc::app::compute_layout(1920, 1080, 128, 128, true, false);   // fullscreen: 8x, centred in the game area
    CHECK((l.game_w == 1024 && l.game_h == 1024 && l.game_y == 28));
    CHECK(l.game_x + l.game_w <= l.panel_x);
    l = dc::app::compute_layout(1920, 1080, 128, 128, false, true);   // smooth, no panel: fills the height
    CHECK((l.game_w == 1080 && l.panel_w == 0));
}

TEST_CASE("the engine runner steps on its worker thread and gives the same frames as the engine", "[app]") {
    dc::app::EngineConfig config;
    auto direct = dc::app::make_engine("reference", config);
    dc::app::EngineRunner runner(dc::app::make_engine("reference", config), 0);
    dc::game::Image expected, got;
    dc::app::FrameSnapshot snap;
    direct->reset(0, expected);
    REQUIRE(runner.take_frame(got, snap));
    CHECK(snap.kind == dc::app::FrameSnapshot::Kind::reset);
    CHECK(got.rgb == expected.rgb);
    CHECK_FALSE(runner.take_frame(got, snap));   // nothing newer yet

    dc::game::Action a;
    a.forward = 1.f;
    a.turn = 0.4f;
    for (int i = 1; i <= 5; ++i) {
        REQUIRE(runner.try_step(a));
        CHECK(runner.submitted_frame() == i);
        runner.wait_idle();
        REQUIRE(runner.take_frame(got, snap));
        direct->step(a, expected);
        CHECK(snap.kind == dc::app::FrameSnapshot::Kind::step);
        CHECK(snap.stats.frame == i);
        CHECK(got.rgb == expected.rgb);
        REQUIRE(snap.pose);
        CHECK(snap.pose->x == direct->pose()->x);
    }
    // One step in flight at most.
    REQUIRE(runner.try_step(a));
    const bool second = runner.try_step(a);
    runner.wait_idle();
    CHECK(runner.submitted_frame() == (second ? 7 : 6));

    CHECK_THROWS_AS(runner.set_prompt("the floor is plaid sparkles"), dc::Error);
    runner.set_prompt("the floor is blue");
    CHECK(runner.prompt() == "the floor is blue");
    runner.reset(0);
    REQUIRE(runner.take_frame(got, snap));
    CHECK(snap.kind == dc::app::FrameSnapshot::Kind::reset);
    CHECK(snap.stats.frame == 0);
    CHECK(runner.submitted_frame() == 0);
}
