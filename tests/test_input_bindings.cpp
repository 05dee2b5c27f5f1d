// Bindings: the shipped file, rebinding, malformed files, and the mapping of keys and sticks to actions.
#include <catch2/catch.hpp>

#include <string>

#include "common/common.h"
#include "input/input.h"

using dc::input::Bindings;
using dc::input::Command;
using dc::input::HeldCommands;
using dc::input::PadAxis;
using dc::input::PadState;

namespace {

const std::string kShipped = std::string(DC_SOURCE_DIR) + "/assets/bindings.json";

int key(const char* name) { return dc::input::key_from_name(name); }

// The message of the dc::Error that parsing `json` throws ("" when it does not throw).
std::string parse_error(const std::string& json) {
    try {
        Bindings::parse(json, "my_bindings.json");
    } catch (const dc::Error& e) {
        return e.message();
    }
    return "";
}

HeldCommands held(std::initializer_list<Command> commands) {
    HeldCommands h{};
    for (Command c : commands) h[static_cast<int>(c)] = true;
    return h;
}

}  // namespace

TEST_CASE("the shipped bindings.json gives the documented keys and equals the built-in defaults", "[input]") {
    const Bindings b = Bindings::load(kShipped);
    const Bindings d = Bindings::defaults();
    for (int c = 0; c < dc::input::kNumCommands; ++c) {
        INFO(dc::input::command_name(static_cast<Command>(c)));
        CHECK(b.keys[c] == d.keys[c]);
        CHECK(b.buttons[c] == d.buttons[c]);
    }
    CHECK(b.dead_zone == d.dead_zone);
    CHECK(b.command_for_key(key("W")) == Command::forward);
    CHECK(b.command_for_key(key("up")) == Command::forward);   // names are case-insensitive
    CHECK(b.command_for_key(key("A")) == Command::strafe_left);
    CHECK(b.command_for_key(key("Left")) == Command::turn_left);
    CHECK(b.command_for_key(key("Space")) == Command::use);
    CHECK(b.command_for_key(key("E")) == Command::use);
    CHECK(b.command_for_key(key("F12")) == Command::screenshot);
    CHECK(b.command_for_key(key("F1")) == Command::help);
    CHECK(b.command_for_key(key("Escape")) == Command::quit);
    CHECK(b.command_for_button(dc::input::PadButton::start) == Command::pause);
    CHECK(b.command_for_button(dc::input::PadButton::back) == Command::reset);
    CHECK(b.command_for_button(dc::input::PadButton::a) == Command::use);
    CHECK(b.forward.axis == PadAxis::left_y);
    CHECK(b.forward.invert);
    CHECK(b.describe_keys(Command::forward) == "W / Up");
}

TEST_CASE("rebinding a key moves it to the new command", "[input]") {
    SECTION("in code") {
        Bindings b = Bindings::defaults();
        b.rebind(Command::forward, {key("I")});
        CHECK(b.command_for_key(key("I")) == Command::forward);
        CHECK_FALSE(b.command_for_key(key("W")).has_value());
        CHECK_FALSE(b.command_for_key(key("Up")).has_value());
        b.rebind(Command::use, {key("I")});   // taken from forward
        CHECK(b.command_for_key(key("I")) == Command::use);
        CHECK(b.keys[static_cast<int>(Command::forward)].empty());
        CHECK(b.describe_keys(Command::forward) == "(unbound)");
    }
    SECTION("through a file: a key the file binds leaves the default command that had it") {
        const Bindings b = Bindings::parse(R"({"keyboard": {"use": ["W"], "forward": ["I", "Up"]}})", "mine.json");
        CHECK(b.command_for_key(key("W")) == Command::use);
        CHECK(b.command_for_key(key("I")) == Command::forward);
        CHECK_FALSE(b.command_for_key(key("E")).has_value());   // the file's list replaces use's defaults
        CHECK(b.command_for_key(key("S")) == Command::back);     // commands the file does not name keep theirs
        const auto forward = dc::input::make_action(held({Command::forward}), PadState{}, b);
        CHECK(forward.forward == 1.f);
    }
    SECTION("to_json writes a file that reads back to the same bindings") {
        Bindings b = Bindings::defaults();
        b.rebind(Command::pause, {key("Tab")});
        b.dead_zone = 0.3f;
        const Bindings r = Bindings::parse(b.to_json(), "roundtrip.json");
        CHECK(r.keys == b.keys);
        CHECK(r.buttons == b.buttons);
        CHECK(r.dead_zone == Approx(0.3f));
    }
}

TEST_CASE("a malformed bindings file gives an error naming the file and the field", "[input]") {
    std::string e;
    e = parse_error(R"({"keyboard": {"forward": ["W", "Foo"]}})");
    CHECK_THAT(e, Catch::Contains("my_bindings.json") && Catch::Contains("keyboard.forward[1]") &&
                      Catch::Contains("\"Foo\"") && Catch::Contains("letters A-Z"));
    e = parse_error(R"({"keyboard": {"jump": ["J"]}})");
    CHECK_THAT(e, Catch::Contains("keyboard.jump") && Catch::Contains("forward, back"));
    e = parse_error(R"({"keyboard": {"use": 5}})");
    CHECK_THAT(e, Catch::Contains("keyboard.use") && Catch::Contains("list of key names"));
    e = parse_error(R"({"keyboard": {"use": ["E"], "pause": ["E"]}})");
    CHECK_THAT(e, Catch::Contains("bound twice") && Catch::Contains("keyboard.use[0]") &&
                      Catch::Contains("keyboard.pause[0]"));
    e = parse_error(R"({"keybaord": {}})");
    CHECK_THAT(e, Catch::Contains("unknown field \"keybaord\""));
    e = parse_error(R"({"gamepad": {"dead_zone": 2}})");
    CHECK_THAT(e, Catch::Contains("gamepad.dead_zone") && Catch::Contains("[0, 0.95]"));
    e = parse_error(R"({"gamepad": {"axes": {"turn": "middlestick"}}})");
    CHECK_THAT(e, Catch::Contains("gamepad.axes.turn") && Catch::Contains("rightx"));
    e = parse_error(R"({"gamepad": {"buttons": {"pause": ["z"]}}})");
    CHECK_THAT(e, Catch::Contains("gamepad.buttons.pause[0]") && Catch::Contains("start"));
    e = parse_error(R"({"version": 2})");
    CHECK_THAT(e, Catch::Contains("version") && Catch::Contains("expected 1"));
    e = parse_error(R"({"keyboard": {"forward": ["W"],}})");
    CHECK_THAT(e, Catch::Contains("my_bindings.json") && Catch::Contains("not valid JSON"));
    try {
        Bindings::load("/nonexistent/bindings.json");
        FAIL("no error for a missing file");
    } catch (const dc::Error& err) {
        CHECK_THAT(err.message(), Catch::Contains("/nonexistent/bindings.json"));
    }
}

TEST_CASE("sticks stay analog outside the dead zone and add to held keys up to full deflection", "[input]") {
    using dc::input::apply_dead_zone;
    CHECK(apply_dead_zone(0.15f, 0.2f) == 0.f);
    CHECK(apply_dead_zone(-0.2f, 0.2f) == 0.f);
    CHECK(apply_dead_zone(0.6f, 0.2f) == Approx(0.5f));
    CHECK(apply_dead_zone(-0.6f, 0.2f) == Approx(-0.5f));
    CHECK(apply_dead_zone(1.f, 0.2f) == 1.f);
    CHECK(apply_dead_zone(1.5f, 0.2f) == 1.f);

    const Bindings b = Bindings::defaults();
    PadState pad;
    pad.connected = true;
    pad.axes[static_cast<int>(PadAxis::left_y)] = -0.6f;   // stick pushed up 60%
    pad.axes[static_cast<int>(PadAxis::left_x)] = 0.1f;    // resting drift: inside the dead zone
    pad.axes[static_cast<int>(PadAxis::right_x)] = -1.f;   // full left
    auto a = dc::input::make_action(HeldCommands{}, pad, b);
    CHECK(a.forward == Approx(0.5f));
    CHECK(a.strafe == 0.f);
    CHECK(a.turn == Approx(-1.f));
    CHECK_FALSE(a.use);
    a = dc::input::make_action(held({Command::forward, Command::strafe_right}), pad, b);
    CHECK(a.forward == 1.f);   // 1 + 0.5, clamped
    CHECK(a.strafe == 1.f);
    a = dc::input::make_action(held({Command::forward, Command::back}), PadState{}, b);
    CHECK(a.forward == 0.f);
    pad.connected = false;   // a disconnected pad's stale values are ignored
    a = dc::input::make_action(HeldCommands{}, pad, b);
    CHECK(a.forward == 0.f);
    CHECK(a.turn == 0.f);
}
