// Gamepads through SDL's virtual joystick: a stick moves the player through the input layer and the game, and
// unplugging mid-run keeps the game running and reports the loss. Runs without a window (SDL without video).
#include <catch2/catch.hpp>

#if DC_GUI
#include <SDL2/SDL.h>

#include <cmath>
#include <string>

#include "game/game.h"
#include "input/input.h"

namespace {

bool any_contains(const std::vector<std::string>& v, const std::string& what) {
    for (const auto& s : v)
        if (s.find(what) != std::string::npos) return true;
    return false;
}

// A start pose with open floor ahead, so that moving forward is not stopped by a wall.
void face_open_direction(dc::game::Game& g) {
    dc::game::Pose p = g.pose();
    float best = -1.f;
    for (int i = 0; i < 8; ++i) {
        const float angle = static_cast<float>(i) * 0.785398f;
        p.angle = angle;
        g.set_pose(p);
        if (g.ray_distance(angle) > best) best = g.ray_distance(angle);
    }
    for (int i = 0; i < 8; ++i) {
        const float angle = static_cast<float>(i) * 0.785398f;
        p.angle = angle;
        g.set_pose(p);
        if (g.ray_distance(angle) == best) return;
    }
}

}  // namespace

TEST_CASE("a virtual gamepad moves the player forward and unplugging it mid-run is reported", "[input]") {
    const dc::input::Bindings bindings = dc::input::Bindings::defaults();
    dc::input::Gamepads pads(&bindings);
    CHECK(pads.count() == 0);

    const int device = SDL_JoystickAttachVirtual(SDL_JOYSTICK_TYPE_GAMECONTROLLER, SDL_CONTROLLER_AXIS_MAX,
                                                 SDL_CONTROLLER_BUTTON_MAX, 0);
    REQUIRE(device >= 0);
    SDL_Joystick* joystick = SDL_JoystickOpen(device);   // our handle for setting its values
    REQUIRE(joystick);
    pads.poll();   // hot-plug: SDL_CONTROLLERDEVICEADDED
    REQUIRE(pads.state().connected);
    CHECK(pads.count() == 1);
    CHECK(any_contains(pads.take_messages(), "gamepad connected"));

    dc::game::Game game(dc::game::Level::load_named("e1m1"));
    game.reset(1);
    face_open_direction(game);
    const dc::game::Pose start = game.pose();
    REQUIRE(game.ray_distance(start.angle) > 1.5f);

    // Half a push stays analog: (0.5 - 0.2) / (1 - 0.2) after the default dead zone.
    SDL_JoystickSetVirtualAxis(joystick, SDL_CONTROLLER_AXIS_LEFTY, -16384);
    pads.poll();
    CHECK(dc::input::make_action({}, pads.state(), bindings).forward == Approx(0.375f).margin(0.01));

    // Full push up = forward.
    SDL_JoystickSetVirtualAxis(joystick, SDL_CONTROLLER_AXIS_LEFTY, -32767);
    pads.poll();
    for (int i = 0; i < 10; ++i) {
        const dc::game::Action a = dc::input::make_action({}, pads.state(), bindings);
        REQUIRE(a.forward == Approx(1.f));
        REQUIRE(a.strafe == 0.f);
        game.step(a);
    }
    const dc::game::Pose moved = game.pose();
    const float along = (moved.x - start.x) * std::cos(start.angle) + (moved.y - start.y) * std::sin(start.angle);
    const float across = -(moved.x - start.x) * std::sin(start.angle) + (moved.y - start.y) * std::cos(start.angle);
    CHECK(along > 1.0f);   // 10 ticks at 2.4 cells/s / 15 Hz = 1.6 cells when nothing is in the way
    CHECK(std::fabs(across) < 0.05f);
    CHECK(moved.angle == Approx(start.angle).margin(1e-4));

    // A button: use.
    SDL_JoystickSetVirtualButton(joystick, SDL_CONTROLLER_BUTTON_A, 1);
    pads.poll();
    const auto pressed = pads.take_pressed();
    REQUIRE(pressed.size() == 1);
    CHECK(pressed[0] == dc::input::Command::use);
    SDL_JoystickSetVirtualButton(joystick, SDL_CONTROLLER_BUTTON_A, 0);

    // Unplug mid-run: the pad is reported lost, the game keeps stepping (keyboard-only input from now on).
    SDL_JoystickClose(joystick);
    REQUIRE(SDL_JoystickDetachVirtual(device) == 0);
    pads.poll();
    CHECK_FALSE(pads.state().connected);
    CHECK(pads.count() == 0);
    CHECK(any_contains(pads.take_messages(), "gamepad disconnected"));
    const dc::game::Pose before = game.pose();
    for (int i = 0; i < 5; ++i) game.step(dc::input::make_action({}, pads.state(), bindings));
    CHECK(game.tick() == 15);
    CHECK(game.pose().x == before.x);   // no input: the player stands still
    CHECK(game.pose().y == before.y);

    // And plugging one in again works.
    const int again = SDL_JoystickAttachVirtual(SDL_JOYSTICK_TYPE_GAMECONTROLLER, SDL_CONTROLLER_AXIS_MAX,
                                                SDL_CONTROLLER_BUTTON_MAX, 0);
    REQUIRE(again >= 0);
    pads.poll();
    CHECK(pads.state().connected);
    SDL_JoystickDetachVirtual(again);
    pads.poll();
}
#endif
