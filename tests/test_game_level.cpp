// Levels (assets/levels/README.md) and action scripts.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/common.h"
#include "game/game.h"

using namespace dc::game;

namespace {
std::string parse_error(const std::string& text) {
    try {
        Level::parse(text, "t");
    } catch (const dc::Error& e) {
        return e.message();
    }
    return "(no error)";
}
}  // namespace

TEST_CASE("levels parse: cells, comments, spawn direction", "[game]") {
    const Level lv = Level::parse(
        "# a comment line\n"
        "\n"
        "12345\n"
        "6v.o1\n"
        "11D11\n"
        "1...1\n"
        "11111   \n"
        "\n",
        "tiny");
    CHECK(lv.name == "tiny");
    CHECK(lv.width == 5);
    CHECK(lv.height == 5);
    CHECK(lv.at(0, 0) == '1');
    CHECK(lv.at(4, 0) == '5');
    CHECK(lv.at(2, 2) == 'D');
    CHECK(lv.at(-1, 2) == '1');  // outside reads as wall
    CHECK(lv.at(2, 99) == '1');
    Game g(lv);
    CHECK(g.pose().x == 1.5f);
    CHECK(g.pose().y == 1.5f);
    CHECK(g.pose().angle == Approx(M_PI / 2));  // 'v' faces south
    CHECK(g.doors().size() == 1);
    CHECK(g.sprites().size() == 1);
}

TEST_CASE("level errors give line:column and what was expected", "[game]") {
    CHECK_THAT(parse_error("111\n1S1\n11\n"), Catch::Contains("t:3:3: expected 3 columns like line 1, found 2"));
    CHECK_THAT(parse_error("1111\n1Sx1\n1111\n"),
               Catch::Contains("t:2:3: expected a cell: '1'..'6' (wall materials), '.' (floor), 'D' (door)"));
    CHECK_THAT(parse_error("1111\n1Sx1\n1111\n"), Catch::Contains("found 'x'"));
    CHECK_THAT(parse_error("1111\n1S..\n1111\n"),
               Catch::Contains("t:2:4: expected a wall '1'..'6' on the border, found '.'"));
    CHECK_THAT(parse_error("1111\n1..1\n1111\n"), Catch::Contains("expected one spawn"));
    CHECK_THAT(parse_error("11111\n1S.>1\n11111\n"),
               Catch::Contains("t:2:4: expected one spawn ('S' '>' 'v' '<' '^'), found a second one"));
    CHECK_THAT(parse_error("11111\n1SD.1\n1...1\n11111\n"),
               Catch::Contains("t:2:3: expected a door between walls on exactly two opposite sides"));
    CHECK_THAT(parse_error("111\n1S1\n\n111\n"), Catch::Contains("t:3:1: expected a grid row"));
    CHECK_THAT(parse_error("# only a comment\n"), Catch::Contains("found no rows"));
    CHECK_THAT(parse_error("1111\n1S\t1\n1111\n"), Catch::Contains("found a tab"));
    CHECK_THROWS_WITH(Level::load_named("no_such_level"), Catch::Contains("expected one of: e1m1, e1m2"));
}

TEST_CASE("shipped levels load, use all six materials, and the large one is large", "[game]") {
    const auto names = Level::names();
    CHECK(std::find(names.begin(), names.end(), "e1m1") != names.end());
    CHECK(std::find(names.begin(), names.end(), "e1m2") != names.end());
    for (const auto& name : names) {
        INFO(name);
        const Level lv = Level::load_named(name);
        CHECK(lv.name == name);
        std::set<char> walls;
        int doors = 0, sprites = 0;
        for (char c : lv.cells) {
            if (c >= '1' && c <= '6') walls.insert(c);
            doors += c == 'D';
            sprites += c == 'o';
        }
        CHECK(walls.size() == 6);
        CHECK(doors >= 2);
        CHECK(sprites >= 2);
        CHECK_NOTHROW(Game(lv));
    }
    const Level big = Level::load_named("e1m2");
    CHECK(big.width >= 48);
    CHECK(big.height >= 48);
}

TEST_CASE("action scripts: one action per line, comments, repeat", "[game]") {
    const auto acts = parse_action_script(
        "# walk, turn, open\n"
        "1 0 0 0\n"
        "repeat 3\n"
        "\n"
        "0.5 -0.25 1 1   # half speed, strafe left, turn right, use\n"
        "repeat 0\n",
        "walk.txt");
    REQUIRE(acts.size() == 5);
    for (int i = 0; i < 4; ++i) {
        CHECK(acts[size_t(i)].forward == 1.f);
        CHECK(acts[size_t(i)].turn == 0.f);
        CHECK_FALSE(acts[size_t(i)].use);
    }
    CHECK(acts[4].forward == 0.5f);
    CHECK(acts[4].strafe == -0.25f);
    CHECK(acts[4].turn == 1.f);
    CHECK(acts[4].use);
    CHECK(parse_action_script("", "empty").empty());
}

TEST_CASE("action script errors name file:line", "[game]") {
    CHECK_THROWS_WITH(parse_action_script("1 0 0 0\n1 0 0\n", "a.txt"),
                      Catch::Contains("a.txt:2: expected 4 fields 'forward strafe turn use' (or 'repeat N'), found 3"));
    CHECK_THROWS_WITH(parse_action_script("fast 0 0 0\n", "a.txt"),
                      Catch::Contains("a.txt:1: expected forward as a number in [-1, 1], found 'fast'"));
    CHECK_THROWS_WITH(parse_action_script("0 0 2 0\n", "a.txt"),
                      Catch::Contains("a.txt:1: expected turn as a number in [-1, 1], found '2'"));
    CHECK_THROWS_WITH(parse_action_script("0 0 0 yes\n", "a.txt"), Catch::Contains("a.txt:1: expected use as 0 or 1"));
    CHECK_THROWS_WITH(parse_action_script("# c\nrepeat 4\n", "a.txt"),
                      Catch::Contains("a.txt:2: expected an action line before 'repeat'"));
    CHECK_THROWS_WITH(parse_action_script("0 0 0 0\nrepeat -1\n", "a.txt"),
                      Catch::Contains("a.txt:2: expected a whole number"));
    CHECK_THROWS_WITH(parse_action_script("0 0 0 0\nrepeat\n", "a.txt"),
                      Catch::Contains("a.txt:2: expected 'repeat N'"));

    const auto path = std::filesystem::temp_directory_path() / "dc_script_test.txt";
    std::ofstream(path) << "0 1 0 0\nrepeat 2\n0 0 0 x\n";
    CHECK_THROWS_WITH(load_action_script(path.string()), Catch::Contains("dc_script_test.txt:3:"));
    std::ofstream(path) << "0 1 0 0\nrepeat 2\n";
    CHECK(load_action_script(path.string()).size() == 3);
    std::filesystem::remove(path);
    CHECK_THROWS_WITH(load_action_script("/nonexistent/dc.txt"), Catch::Contains("/nonexistent/dc.txt"));
}

TEST_CASE("a replayed script gives the same frames", "[game]") {
    const auto acts = parse_action_script("1 0 0.3 0\nrepeat 20\n0.6 0.5 -0.4 1\nrepeat 20\n", "s");
    auto run = [&] {
        Game g(Level::load_named("e1m1"));
        g.reset(3);
        Image im;
        uint64_t h = 0;
        for (const Action& a : acts) {
            g.step(a);
            g.render(im);
            h = h * 31u + im.hash();
        }
        return h;
    };
    CHECK(run() == run());
}
