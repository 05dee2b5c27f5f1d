// Movement, turning, collision, doors and sprites of the reference game.
#include <catch2/catch.hpp>

#include <cmath>

#include "common/common.h"
#include "game/game.h"

using namespace dc::game;

namespace {

// A 9x7 room, spawn in the middle facing east.
const char* kRoom =
    "111111111\n"
    "1.......1\n"
    "1.......1\n"
    "1...S...1\n"
    "1.......1\n"
    "1.......1\n"
    "111111111\n";

// A corridor running east with a door at x = 5 (walls north and south of it).
const char* kDoorCorridor =
    "111111111\n"
    "111111111\n"
    "1>...D..1\n"
    "111111111\n"
    "111111111\n";

bool overlaps_solid(const Game& g) {
    const float r = g.config().player_radius;
    const Pose& p = g.pose();
    for (float dx : {-r, 0.f, r}) {
        for (float dy : {-r, 0.f, r}) {
            if (g.is_solid(p.x + dx, p.y + dy)) return true;
        }
    }
    return false;
}

Action act(float forward, float strafe, float turn, bool use = false) {
    Action a;
    a.forward = forward;
    a.strafe = strafe;
    a.turn = turn;
    a.use = use;
    return a;
}

}  // namespace

TEST_CASE("forward moves along the facing direction by move_speed / tick_hz", "[game]") {
    Game g(Level::parse(kRoom, "room"));
    const float step = g.config().move_speed / g.config().tick_hz;
    for (float angle : {0.f, 0.7f, -2.2f, 2.9f}) {
        g.set_pose({4.5f, 3.5f, angle});
        g.step(act(1.f, 0.f, 0.f));
        CHECK(g.pose().x - 4.5f == Approx(step * std::cos(angle)).margin(1e-5));
        CHECK(g.pose().y - 3.5f == Approx(step * std::sin(angle)).margin(1e-5));
        CHECK(g.pose().angle == Approx(angle).margin(1e-6));
    }
    // Half stick: half the distance; backwards: the other way.
    g.set_pose({4.5f, 3.5f, 0.f});
    g.step(act(0.5f, 0.f, 0.f));
    CHECK(g.pose().x - 4.5f == Approx(0.5f * step).margin(1e-5));
    g.set_pose({4.5f, 3.5f, 0.f});
    g.step(act(-1.f, 0.f, 0.f));
    CHECK(g.pose().x - 4.5f == Approx(-step).margin(1e-5));
}

TEST_CASE("strafe moves to the right of the facing direction, diagonal speed is capped", "[game]") {
    Game g(Level::parse(kRoom, "room"));
    const float step = g.config().move_speed / g.config().tick_hz;
    g.set_pose({4.5f, 3.5f, 0.f});  // facing east: right is south (+y)
    g.step(act(0.f, 1.f, 0.f));
    CHECK(g.pose().x == Approx(4.5f).margin(1e-5));
    CHECK(g.pose().y - 3.5f == Approx(step).margin(1e-5));
    g.set_pose({4.5f, 3.5f, 0.f});
    g.step(act(1.f, 1.f, 0.f));
    const float moved = std::hypot(g.pose().x - 4.5f, g.pose().y - 3.5f);
    CHECK(moved == Approx(step).margin(1e-5));
}

TEST_CASE("turning changes the angle by turn_speed / tick_hz, axes are clamped", "[game]") {
    Game g(Level::parse(kRoom, "room"));
    const float per_tick = g.config().turn_speed / g.config().tick_hz;
    g.set_pose({4.5f, 3.5f, 0.f});
    g.step(act(0.f, 0.f, 1.f));
    CHECK(g.pose().angle == Approx(per_tick).margin(1e-6));
    g.step(act(0.f, 0.f, -0.5f));
    CHECK(g.pose().angle == Approx(0.5f * per_tick).margin(1e-6));
    g.step(act(0.f, 0.f, 7.f));  // clamped to 1
    CHECK(g.pose().angle == Approx(1.5f * per_tick).margin(1e-6));
    CHECK(g.pose().x == 4.5f);  // turning in place does not move
    // A full turn's worth of ticks comes back to the start angle (wrapped into [-pi, pi)).
    g.set_pose({4.5f, 3.5f, 0.3f});
    const int n = int(std::lround(2.0 * M_PI / per_tick));
    GameConfig cfg;
    cfg.turn_speed = float(2.0 * M_PI / n) * cfg.tick_hz;
    Game g2(Level::parse(kRoom, "room"), cfg);
    g2.set_pose({4.5f, 3.5f, 0.3f});
    for (int i = 0; i < n; ++i) {
        g2.step(act(0.f, 0.f, 1.f));
        CHECK(g2.pose().angle >= -float(M_PI));
        CHECK(g2.pose().angle < float(M_PI));
    }
    CHECK(g2.pose().angle == Approx(0.3f).margin(1e-4));
}

TEST_CASE("walking into a wall stops at the wall and never enters a solid cell", "[game]") {
    Game g(Level::parse(kRoom, "room"));
    const float r = g.config().player_radius;
    g.set_pose({4.5f, 3.5f, 0.f});
    for (int i = 0; i < 60; ++i) {
        g.step(act(1.f, 0.f, 0.f));
        REQUIRE_FALSE(overlaps_solid(g));
    }
    // The east wall is the cell x = 8: the player's edge stops just short of it.
    CHECK(g.pose().x + r <= 8.f);
    CHECK(g.pose().x + r > 7.99f);
    CHECK(g.pose().y == Approx(3.5f).margin(1e-5));
}

TEST_CASE("walking diagonally into a wall slides along it", "[game]") {
    Game g(Level::parse(kRoom, "room"));
    g.set_pose({7.5f, 2.f, 0.5f});  // facing east-south-east next to the east wall
    float last_y = g.pose().y;
    int slid = 0;
    for (int i = 0; i < 60; ++i) {
        g.step(act(1.f, 0.f, 0.f));
        REQUIRE_FALSE(overlaps_solid(g));
        CHECK(g.pose().x + g.config().player_radius <= 8.f);
        if (g.pose().y > last_y + 0.05f) ++slid;
        last_y = g.pose().y;
    }
    CHECK(slid >= 40);  // kept moving south along the wall at sin(0.5) of full speed
    // ...until the south-east corner stops it completely.
    CHECK(g.pose().y + g.config().player_radius <= 6.f);
    CHECK(g.pose().y > 5.5f);
}

TEST_CASE("corners: no tunnelling at any angle, even at high speed", "[game]") {
    GameConfig fast;
    fast.move_speed = 30.f;  // 2 cells per tick: sub-stepped
    Game g(Level::parse(kRoom, "room"), fast);
    for (int k = 0; k < 16; ++k) {
        g.set_pose({4.5f, 3.5f, float(k) * 0.3927f});
        for (int i = 0; i < 10; ++i) {
            g.step(act(1.f, (k % 3) - 1.f, 0.f));
            REQUIRE_FALSE(overlaps_solid(g));
        }
    }
}

TEST_CASE("use in front of a door opens it and the player can pass, it stays open", "[game]") {
    Game g(Level::parse(kDoorCorridor, "door"));
    REQUIRE(g.doors().size() == 1);
    CHECK(g.doors()[0].x == 5);
    CHECK(g.doors()[0].y == 2);
    CHECK(g.is_solid(5.5f, 2.5f));
    // Without use the door blocks.
    for (int i = 0; i < 40; ++i) g.step(act(1.f, 0.f, 0.f));
    CHECK(g.pose().x + g.config().player_radius <= 5.f);
    CHECK(g.doors()[0].open == 0.f);
    const float stopped_x = g.pose().x;
    // Use: the door slides open over kDoorOpenSeconds (1 s), then the player walks through.
    g.step(act(0.f, 0.f, 0.f, true));
    CHECK(g.doors()[0].opening);
    CHECK(g.doors()[0].open > 0.f);
    for (int i = 0; i < 20; ++i) g.step(act(0.f, 0.f, 0.f));
    CHECK(g.doors()[0].open == 1.f);
    CHECK_FALSE(g.doors()[0].opening);
    CHECK_FALSE(g.is_solid(5.5f, 2.5f));
    for (int i = 0; i < 20; ++i) {
        g.step(act(1.f, 0.f, 0.f));
        REQUIRE_FALSE(overlaps_solid(g));
    }
    CHECK(g.pose().x > 6.f);
    CHECK(g.pose().x > stopped_x + 1.f);
    for (int i = 0; i < 300; ++i) g.step(act(0.f, 0.f, 0.f));
    CHECK(g.doors()[0].open == 1.f);  // doors stay open
    g.reset(0);
    CHECK(g.doors()[0].open == 0.f);  // until reset
}

TEST_CASE("use does nothing out of reach or when not facing the door", "[game]") {
    Game g(Level::parse(kDoorCorridor, "door"));
    g.set_pose({2.5f, 2.5f, 0.f});  // door centre 3 cells away
    g.step(act(0.f, 0.f, 0.f, true));
    CHECK_FALSE(g.doors()[0].opening);
    g.set_pose({4.5f, 2.5f, float(M_PI)});  // next to the door, facing away
    g.step(act(0.f, 0.f, 0.f, true));
    CHECK_FALSE(g.doors()[0].opening);
    g.set_pose({4.5f, 2.5f, 0.f});  // next to it, facing it
    g.step(act(0.f, 0.f, 0.f, true));
    CHECK(g.doors()[0].opening);
}

TEST_CASE("ray_distance measures to the first solid cell", "[game]") {
    Game g(Level::parse(kRoom, "room"));
    g.set_pose({4.5f, 3.5f, 0.f});
    CHECK(g.ray_distance(0.f) == Approx(3.5f).margin(1e-5));               // east wall at x = 8
    CHECK(g.ray_distance(float(M_PI)) == Approx(3.5f).margin(1e-5));       // west wall at x = 1
    CHECK(g.ray_distance(float(M_PI / 2)) == Approx(2.5f).margin(1e-5));   // south wall at y = 6
    CHECK(g.ray_distance(float(-M_PI / 2)) == Approx(2.5f).margin(1e-5));  // north wall at y = 1
    Game d(Level::parse(kDoorCorridor, "door"));
    d.set_pose({2.5f, 2.5f, 0.f});
    CHECK(d.ray_distance(0.f) == Approx(2.5f).margin(1e-5));  // a closed door counts as solid
}

TEST_CASE("sprites patrol deterministically along their corridor", "[game]") {
    const char* text =
        "1111111111\n"
        "1S.......1\n"
        "1111111111\n"
        "1...o....1\n"
        "1111111111\n";
    Game g(Level::parse(text, "sprites"));
    REQUIRE(g.sprites().size() == 1);
    std::vector<float> xs;
    for (int i = 0; i < 200; ++i) {
        g.step({});
        const SpriteState s = g.sprites()[0];
        CHECK(s.y == Approx(3.5f));
        CHECK(s.x >= 1.5f - 1e-5f);
        CHECK(s.x <= 8.5f + 1e-5f);
        xs.push_back(s.x);
    }
    // It moves every tick and turns around at the ends (visits both halves).
    int moved = 0;
    for (size_t i = 1; i < xs.size(); ++i) moved += xs[i] != xs[i - 1];
    CHECK(moved >= 195);
    CHECK(*std::min_element(xs.begin(), xs.end()) < 2.f);
    CHECK(*std::max_element(xs.begin(), xs.end()) > 8.f);
    // Same seed, same positions; another seed, another phase.
    g.reset(5);
    Game g2(Level::parse(text, "sprites"));
    g2.reset(5);
    for (int i = 0; i < 50; ++i) {
        g.step({});
        g2.step({});
    }
    CHECK(g.sprites()[0].x == g2.sprites()[0].x);
    g2.reset(6);
    for (int i = 0; i < 50; ++i) g2.step({});
    CHECK(g.sprites()[0].x != g2.sprites()[0].x);
}

TEST_CASE("GameConfig is validated", "[game]") {
    GameConfig bad;
    bad.width = 0;
    CHECK_THROWS_WITH(Game(Level::parse(kRoom, "room"), bad), Catch::Contains("width and height"));
    GameConfig bad_tick;
    bad_tick.tick_hz = 0.f;
    CHECK_THROWS_WITH(Game(Level::parse(kRoom, "room"), bad_tick), Catch::Contains("tick_hz"));
}
