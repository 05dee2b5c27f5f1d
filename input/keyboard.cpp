// Keyboard state of a GLFW window (GUI builds only).
#include <GLFW/glfw3.h>

#include "common/common.h"
#include "input/input.h"

// bindings.cpp names keys by these codes without including GLFW; make sure they agree.
static_assert(GLFW_KEY_A == 65 && GLFW_KEY_0 == 48 && GLFW_KEY_SPACE == 32 && GLFW_KEY_ESCAPE == 256);
static_assert(GLFW_KEY_F1 == 290 && GLFW_KEY_F12 == 301 && GLFW_KEY_KP_0 == 320 && GLFW_KEY_UP == 265);
static_assert(GLFW_KEY_LEFT == 263 && GLFW_KEY_RIGHT_ALT == 346 && GLFW_KEY_GRAVE_ACCENT == 96);

namespace dc::input {

Keyboard::Keyboard(GLFWwindow* window, const Bindings* bindings)
    : m_window(window), m_bindings(bindings), m_previous_callback(nullptr) {
    DC_CHECK(window && bindings, "Keyboard needs a window and bindings");
    DC_CHECK(glfwGetWindowUserPointer(window) == nullptr, "the window already has a Keyboard attached");
    glfwSetWindowUserPointer(window, this);
    GLFWkeyfun prev = glfwSetKeyCallback(window, [](GLFWwindow* w, int key, int scancode, int action, int mods) {
        auto* self = static_cast<Keyboard*>(glfwGetWindowUserPointer(w));
        if (!self) return;
        self->on_key(key, action);
        if (self->m_previous_callback)
            reinterpret_cast<GLFWkeyfun>(self->m_previous_callback)(w, key, scancode, action, mods);
    });
    m_previous_callback = reinterpret_cast<void*>(prev);
}

Keyboard::~Keyboard() {
    glfwSetKeyCallback(m_window, reinterpret_cast<GLFWkeyfun>(m_previous_callback));
    glfwSetWindowUserPointer(m_window, nullptr);
}

void Keyboard::set_captured(bool captured) {
    if (captured && !m_captured) m_pressed.clear();
    m_captured = captured;
}

void Keyboard::on_key(int key, int action) {
    if (action != GLFW_PRESS || m_captured) return;
    if (auto c = m_bindings->command_for_key(key); c && !is_movement(*c)) m_pressed.push_back(*c);
}

std::vector<Command> Keyboard::take_pressed() {
    std::vector<Command> out;
    out.swap(m_pressed);
    return out;
}

HeldCommands Keyboard::held() const {
    HeldCommands h{};
    if (m_captured) return h;
    for (int c = 0; c < kNumCommands; ++c)
        for (int k : m_bindings->keys[c])
            if (glfwGetKey(m_window, k) == GLFW_PRESS) h[c] = true;
    return h;
}

}  // namespace dc::input
