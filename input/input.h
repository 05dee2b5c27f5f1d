// input/input.h — keyboard (GLFW) and gamepads (SDL2 GameController) -> game actions and app commands.
//
//   dc::input::Bindings bindings = dc::input::Bindings::load_default();   // assets/bindings.json
//   dc::input::Keyboard keyboard(window, &bindings);    // GLFW key callback (chains the one installed before)
//   dc::input::Gamepads pads(&bindings);                // SDL_INIT_GAMECONTROLLER only; hot-plug at any time
//   each display frame:
//       glfwPollEvents();  pads.poll();
//       keyboard.set_captured(ImGui::GetIO().WantCaptureKeyboard);   // typing in a text box: game keys ignored
//       for (Command c : keyboard.take_pressed()) ...;  for (Command c : pads.take_pressed()) ...;
//       for (const std::string& m : pads.take_messages()) show(m);    // "gamepad connected: ..." / "... disconnected"
//   each game tick:
//       dc::game::Action a = dc::input::make_action(keyboard.held(), pads.state(), bindings);
//
// The part above the DC_GUI line (bindings, key names, mapping to actions) has no GLFW or SDL dependency and is
// built in headless builds too. Keyboard and Gamepads exist only in GUI builds (DC_GUI=1).
//
// Bindings file (assets/bindings.json; every field optional, missing ones keep their defaults):
//   { "version": 1,
//     "keyboard": { "forward": ["W", "Up"], "use": ["E", "Space"], ... },        // command -> key names
//     "gamepad":  { "dead_zone": 0.2,
//                   "axes": { "forward": "-lefty", "strafe": "leftx", "turn": "rightx" },   // '-' inverts
//                   "buttons": { "use": ["a"], "pause": ["start"], "reset": ["back"] } } }
// Keys named in the file are taken away from the commands the file does not mention (so rebinding "use" to W
// removes W from the default "forward"); one key bound to two commands of the file is an error. Fields whose name
// starts with '_' are comments. Every error names the file and the field ("keyboard.forward[1]").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "game/game.h"

namespace dc::input {

// What a key or button can do. Movement commands are held (sampled each tick); the others act once per press.
enum class Command : uint8_t {
    forward,
    back,
    strafe_left,
    strafe_right,
    turn_left,
    turn_right,
    use,
    pause,
    reset,
    step,
    resync,
    screenshot,
    record,
    fullscreen,
    help,
    quit,
};
constexpr int kNumCommands = 16;
const char* command_name(Command c);                                 // "strafe_left"
const char* command_label(Command c);                                // "strafe left" (help overlay)
std::optional<Command> command_from_name(const std::string& name);   // exact name as in bindings.json
bool is_movement(Command c);                                         // forward .. turn_right

// Key names <-> GLFW key codes (GLFW_KEY_*; the numbers are GLFW's stable API). Names are case-insensitive:
// letters "A".."Z", digits "0".."9", "F1".."F25", "Space", "Escape", "Enter", "Tab", "Up", "Left", "Keypad8", ...
int key_from_name(const std::string& name);   // -1 when unknown
std::string key_name(int key);                // "" when the code has no name
const std::vector<std::string>& key_names();  // every accepted name, for error messages and the help overlay

// Gamepad axes and buttons in SDL_GameControllerAxis / SDL_GameControllerButton order, named like SDL's strings.
enum class PadAxis : uint8_t { left_x, left_y, right_x, right_y, trigger_left, trigger_right };
constexpr int kNumPadAxes = 6;
enum class PadButton : uint8_t {
    a, b, x, y, back, guide, start, left_stick, right_stick, left_shoulder, right_shoulder,
    dpad_up, dpad_down, dpad_left, dpad_right,
};
constexpr int kNumPadButtons = 15;
const char* pad_axis_name(PadAxis a);       // "leftx"
const char* pad_button_name(PadButton b);   // "start"

struct AxisBinding {
    PadAxis axis = PadAxis::left_x;
    bool invert = false;   // SDL's Y axes grow downwards, so "forward" reads -lefty
};

struct Bindings {
    std::array<std::vector<int>, kNumCommands> keys;             // GLFW key codes per command
    std::array<std::vector<PadButton>, kNumCommands> buttons;    // gamepad buttons per command (press commands)
    AxisBinding forward{PadAxis::left_y, true};    // left stick up = ahead
    AxisBinding strafe{PadAxis::left_x, false};    // left stick right = strafe right
    AxisBinding turn{PadAxis::right_x, false};     // right stick right = turn right
    float dead_zone = 0.2f;   // stick values with |v| below this read as 0 (worn sticks rest at ~0.1-0.15)

    static Bindings defaults();   // the same as the shipped assets/bindings.json
    // Parses a bindings file over the defaults; throws dc::Error naming `source` and the field on any problem.
    static Bindings parse(const std::string& json_text, const std::string& source);
    static Bindings load(const std::string& path);
    static Bindings load_default();   // asset_path("bindings.json")
    std::string to_json() const;      // a complete file that parse() reads back to the same bindings

    // Binds exactly `keys` to `c`, taking each of them away from whatever command had it.
    void rebind(Command c, const std::vector<int>& keys);
    std::optional<Command> command_for_key(int key) const;
    std::optional<Command> command_for_button(PadButton b) const;
    std::string describe_keys(Command c) const;      // "W / Up", or "(unbound)"
    std::string describe_buttons(Command c) const;   // "start", or ""
};

// A snapshot of the active gamepad: raw axes in [-1, 1] (no dead zone yet) and buttons.
struct PadState {
    bool connected = false;
    std::string name;                          // SDL's controller name
    std::array<float, kNumPadAxes> axes{};     // SDL axis / 32767, clamped to [-1, 1]
    std::array<bool, kNumPadButtons> buttons{};
};

// Scaled dead zone: |v| <= dz -> 0, else sign(v) * (|v| - dz) / (1 - dz); keeps the full analog range.
float apply_dead_zone(float v, float dead_zone);

using HeldCommands = std::array<bool, kNumCommands>;

// Held movement keys give +-1 per axis, the pad adds its analog stick values after the dead zone; each axis is
// clamped to [-1, 1]. `use` is not set here: it is a press (see Keyboard::take_pressed / Gamepads::take_pressed).
game::Action make_action(const HeldCommands& held, const PadState& pad, const Bindings& bindings);

}  // namespace dc::input

#if DC_GUI
struct GLFWwindow;

namespace dc::input {

// Keyboard state of one GLFW window. Installs a key callback that chains to the callback installed before it
// (ImGui's GLFW backend chains the same way, so the order of installation does not matter).
class Keyboard {
public:
    Keyboard(GLFWwindow* window, const Bindings* bindings);
    ~Keyboard();   // restores the previous callback
    Keyboard(const Keyboard&) = delete;
    Keyboard& operator=(const Keyboard&) = delete;

    // While captured (a text box has focus) presses are dropped and held() reads all false.
    void set_captured(bool captured);
    bool captured() const { return m_captured; }
    std::vector<Command> take_pressed();   // bound presses since the last call, in order (key repeat ignored)
    HeldCommands held() const;             // bound keys down now
    void on_key(int key, int action);      // what the callback does; public so tests can inject keys

private:
    GLFWwindow* m_window;
    const Bindings* m_bindings;
    bool m_captured = false;
    std::vector<Command> m_pressed;
    void* m_previous_callback;   // GLFWkeyfun
};

// Gamepads through SDL2's GameController API. Initialises SDL with SDL_INIT_GAMECONTROLLER only (no video: GLFW
// owns the window), with background joystick events allowed and SDL's signal handlers off. Controllers can be
// plugged and unplugged at any time; the first one connected drives the axes, buttons of any of them count.
class Gamepads {
public:
    explicit Gamepads(const Bindings* bindings);   // throws dc::Error when SDL cannot start its joystick layer
    ~Gamepads();
    Gamepads(const Gamepads&) = delete;
    Gamepads& operator=(const Gamepads&) = delete;

    void poll();                        // drains SDL's event queue: hot-plug, buttons, axes
    const PadState& state() const;      // the active pad (connected == false when there is none)
    int count() const;                  // controllers open now
    std::vector<Command> take_pressed();        // bound button presses since the last call
    std::vector<std::string> take_messages();   // "gamepad connected: NAME" / "gamepad disconnected: NAME ..."

private:
    struct Impl;
    Impl* m_impl;
};

}  // namespace dc::input
#endif
