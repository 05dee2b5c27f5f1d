// Scripted agents: reproducible from their seed, varied across seeds, always moving, analog.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "common/common.h"
#include "game/game.h"

using namespace dc::game;

namespace {

struct Run {
    std::vector<uint64_t> frames;  // frame hash every 10 ticks
    std::vector<Pose> poses;       // pose every tick
    std::vector<Action> actions;
};

Run run_agent(const std::string& level, const std::string& name, uint64_t seed, int ticks) {
    Game g(Level::load_named(level));
    g.reset(seed);
    auto agent = make_agent(name, seed);
    Run r;
    Image im;
    for (int t = 0; t < ticks; ++t) {
        const Action a = agent->act(g);
        r.actions.push_back(a);
        g.step(a);
        r.poses.push_back(g.pose());
        if (t % 10 == 9) {
            g.render(im);
            r.frames.push_back(im.hash());
        }
    }
    return r;
}

}  // namespace

TEST_CASE("agent names and the factory", "[game]") {
    const auto& names = agent_names();
    for (const char* n : {"random_walk", "wall_follow", "explore", "turn360", "go_and_return", "door_use"}) {
        CHECK(std::find(names.begin(), names.end(), n) != names.end());
    }
    for (const auto& n : names) CHECK(make_agent(n, 1)->name() == n);
    CHECK_THROWS_WITH(make_agent("teleport", 1),
                      Catch::Contains("unknown agent 'teleport'; expected one of: random_walk"));
}

TEST_CASE("every agent is reproducible from its seed, differs across seeds and keeps moving", "[game]") {
    for (const auto& name : agent_names()) {
        for (const char* level : {"e1m1", "e1m2"}) {
            INFO(name << " on " << level);
            const Run a = run_agent(level, name, 11, 300);
            const Run b = run_agent(level, name, 11, 300);
            const Run c = run_agent(level, name, 12, 300);
            CHECK(a.frames == b.frames);
            CHECK(a.poses.back().x == b.poses.back().x);
            CHECK(a.poses.back().angle == b.poses.back().angle);
            CHECK(a.frames != c.frames);

            // Not stuck: it travels at a reasonable share of play speed, reaches several cells, never stands still
            // for long (turn360 turns in place for up to ~5 s by design).
            double path = 0.0;
            int still = 0, max_still = 0;
            std::set<std::pair<int, int>> cells;
            for (size_t i = 1; i < a.poses.size(); ++i) {
                const double d = std::hypot(a.poses[i].x - a.poses[i - 1].x, a.poses[i].y - a.poses[i - 1].y);
                path += d;
                still = d < 1e-3 ? still + 1 : 0;
                max_still = std::max(max_still, still);
                cells.insert({int(a.poses[i].x), int(a.poses[i].y)});
            }
            const double seconds = 300.0 / 15.0;
            CHECK(path / seconds > (name == "turn360" ? 0.4 : 0.9));  // cells per second (max 2.4)
            CHECK(cells.size() >= 8);
            CHECK(max_still <= (name == "turn360" ? 80 : 30));

            // Analog input, not just -1/0/1.
            int analog = 0;
            for (const Action& act : a.actions) {
                for (float v : {act.forward, act.turn}) analog += std::fabs(v) > 0.02f && std::fabs(v) < 0.98f;
                CHECK(std::fabs(act.forward) <= 1.f);
                CHECK(std::fabs(act.turn) <= 1.f);
                CHECK(std::fabs(act.strafe) <= 1.f);
            }
            CHECK(analog > 100);
        }
    }
}

TEST_CASE("go_and_return comes back to where it started", "[game]") {
    const Run r = run_agent("e1m1", "go_and_return", 4, 900);
    const Pose start{3.5f, 3.5f, 0.f};
    // It leaves (goes at least 2 cells away) and later comes back within a cell of the start.
    size_t left = 0;
    for (size_t i = 0; i < r.poses.size(); ++i) {
        if (std::hypot(r.poses[i].x - start.x, r.poses[i].y - start.y) > 2.0) {
            left = i;
            break;
        }
    }
    REQUIRE(left > 0);
    bool back = false;
    for (size_t i = left; i < r.poses.size(); ++i) {
        back = back || std::hypot(r.poses[i].x - start.x, r.poses[i].y - start.y) < 1.0;
    }
    CHECK(back);
}

TEST_CASE("door_use and explore open doors", "[game]") {
    for (const char* name : {"door_use", "explore"}) {
        INFO(name);
        Game g(Level::load_named("e1m1"));
        g.reset(2);
        auto agent = make_agent(name, 2);
        int uses = 0;
        for (int t = 0; t < 900; ++t) {
            const Action a = agent->act(g);
            uses += a.use;
            g.step(a);
        }
        int open = 0;
        for (const DoorState& d : g.doors()) open += d.open >= 1.f;
        CHECK(uses >= 1);
        CHECK(open >= 1);
    }
}
