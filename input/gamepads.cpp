// Gamepads through SDL2's GameController API (GUI builds only). SDL runs without video: GLFW owns the window.
#include <SDL2/SDL.h>

#include <algorithm>
#include <vector>

#include "common/common.h"
#include "input/input.h"

static_assert(SDL_CONTROLLER_AXIS_LEFTX == 0 && SDL_CONTROLLER_AXIS_TRIGGERRIGHT == 5);
static_assert(SDL_CONTROLLER_BUTTON_A == 0 && SDL_CONTROLLER_BUTTON_START == 6 && SDL_CONTROLLER_BUTTON_BACK == 4);
static_assert(SDL_CONTROLLER_BUTTON_DPAD_RIGHT == 14);

namespace dc::input {

struct Gamepads::Impl {
    struct Pad {
        SDL_GameController* controller = nullptr;
        SDL_JoystickID id = -1;
        std::string name;
    };
    const Bindings* bindings = nullptr;
    std::vector<Pad> pads;   // in the order they were connected; pads[0] drives the axes
    PadState state;
    std::vector<Command> pressed;
    std::vector<std::string> messages;

    void open(int device_index) {
        const SDL_JoystickID id = SDL_JoystickGetDeviceInstanceID(device_index);
        for (const Pad& p : pads)
            if (p.id == id) return;   // already open (the initial scan and the ADDED event both report it)
        SDL_GameController* gc = SDL_GameControllerOpen(device_index);
        if (!gc) {
            messages.push_back(std::string("gamepad could not be opened: ") + SDL_GetError());
            return;
        }
        const char* n = SDL_GameControllerName(gc);
        Pad p{gc, SDL_JoystickInstanceID(SDL_GameControllerGetJoystick(gc)), n ? n : "unnamed gamepad"};
        pads.push_back(p);
        messages.push_back("gamepad connected: " + p.name);
        dc::log(LogLevel::info, "gamepad connected: " + p.name);
    }

    void close(SDL_JoystickID id) {
        auto it = std::find_if(pads.begin(), pads.end(), [&](const Pad& p) { return p.id == id; });
        if (it == pads.end()) return;
        const std::string msg = "gamepad disconnected: " + it->name +
                                (pads.size() > 1 ? "" : " (keyboard still works; plug a gamepad in at any time)");
        SDL_GameControllerClose(it->controller);
        pads.erase(it);
        messages.push_back(msg);
        dc::log(LogLevel::warn, msg);
    }

    void refresh_state() {
        state = PadState{};
        if (pads.empty()) return;
        SDL_GameController* gc = pads.front().controller;
        state.connected = true;
        state.name = pads.front().name;
        for (int a = 0; a < kNumPadAxes; ++a) {
            const float v = SDL_GameControllerGetAxis(gc, static_cast<SDL_GameControllerAxis>(a)) / 32767.f;
            state.axes[a] = std::clamp(v, -1.f, 1.f);
        }
        for (const Pad& p : pads)
            for (int b = 0; b < kNumPadButtons; ++b)
                if (SDL_GameControllerGetButton(p.controller, static_cast<SDL_GameControllerButton>(b)))
                    state.buttons[b] = true;
    }
};

Gamepads::Gamepads(const Bindings* bindings) : m_impl(new Impl) {
    m_impl->bindings = bindings;
    // GLFW's window owns the focus, so SDL must deliver joystick events to an unfocused (window-less) process.
    SDL_SetHint(SDL_HINT_JOYSTICK_ALLOW_BACKGROUND_EVENTS, "1");
    // Ctrl-C stays with the application (SDL would otherwise turn SIGINT into an SDL_QUIT event nobody reads).
    SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
    if (SDL_InitSubSystem(SDL_INIT_GAMECONTROLLER) != 0) {
        const std::string err = SDL_GetError();
        delete m_impl;
        DC_FAIL("SDL could not start its game controller layer: " << err);
    }
    SDL_GameControllerEventState(SDL_ENABLE);
    for (int i = 0; i < SDL_NumJoysticks(); ++i)
        if (SDL_IsGameController(i)) m_impl->open(i);
    m_impl->refresh_state();
}

Gamepads::~Gamepads() {
    for (auto& p : m_impl->pads) SDL_GameControllerClose(p.controller);
    SDL_QuitSubSystem(SDL_INIT_GAMECONTROLLER);
    delete m_impl;
}

void Gamepads::poll() {
    SDL_Event e;
    while (SDL_PollEvent(&e)) {
        switch (e.type) {
            case SDL_CONTROLLERDEVICEADDED: m_impl->open(e.cdevice.which); break;
            case SDL_CONTROLLERDEVICEREMOVED: m_impl->close(e.cdevice.which); break;
            case SDL_CONTROLLERBUTTONDOWN: {
                if (e.cbutton.button >= kNumPadButtons) break;
                auto c = m_impl->bindings->command_for_button(static_cast<PadButton>(e.cbutton.button));
                if (c) m_impl->pressed.push_back(*c);
                break;
            }
            default: break;
        }
    }
    m_impl->refresh_state();
}

const PadState& Gamepads::state() const { return m_impl->state; }
int Gamepads::count() const { return static_cast<int>(m_impl->pads.size()); }

std::vector<Command> Gamepads::take_pressed() {
    std::vector<Command> out;
    out.swap(m_impl->pressed);
    return out;
}

std::vector<std::string> Gamepads::take_messages() {
    std::vector<std::string> out;
    out.swap(m_impl->messages);
    return out;
}

}  // namespace dc::input
