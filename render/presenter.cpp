// The OpenGL presenter: window, context, textures, the upscale shader, ImGui, screenshots.
#include <epoxy/gl.h>
// epoxy must come before GLFW so GLFW does not pull in the system GL header.
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "render/render.h"

namespace dc::render {

namespace {

std::string g_last_glfw_error;   // GLFW reports errors through a callback; keep the last for messages

void glfw_error_callback(int code, const char* description) {
    g_last_glfw_error = std::string(description ? description : "unknown") + " (GLFW error " + std::to_string(code) + ")";
}

const char* kVertexShader = R"(#version 330 core
uniform vec4 u_rect;   // destination in NDC: x0, y0 (bottom), x1, y1 (top)
out vec2 v_uv;
void main() {
    vec2 c = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1));   // (0,0) (1,0) (0,1) (1,1)
    v_uv = vec2(c.x, 1.0 - c.y);                                       // texture row 0 is the image's top row
    gl_Position = vec4(mix(u_rect.xy, u_rect.zw, c), 0.0, 1.0);
}
)";

const char* kFragmentShader = R"(#version 330 core
uniform sampler2D u_tex;
in vec2 v_uv;
out vec4 o_color;
void main() { o_color = vec4(texture(u_tex, v_uv).rgb, 1.0); }
)";

unsigned compile(GLenum type, const char* src) {
    const GLuint s = glCreateShader(type);
    glShaderSource(s, 1, &src, nullptr);
    glCompileShader(s);
    GLint ok = 0;
    glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
    if (!ok) {
        char log[2048] = {0};
        glGetShaderInfoLog(s, sizeof(log), nullptr, log);
        glDeleteShader(s);
        DC_FAIL("the upscale shader did not compile: " << log);
    }
    return s;
}

}  // namespace

Rect fit_rect(int src_w, int src_h, Rect area, bool integer_scale) {
    if (src_w <= 0 || src_h <= 0 || area.w <= 0 || area.h <= 0) return Rect{area.x, area.y, 0, 0};
    const double scale = std::min(static_cast<double>(area.w) / src_w, static_cast<double>(area.h) / src_h);
    int w, h;
    if (integer_scale && scale >= 1.0) {
        const int s = static_cast<int>(scale);
        w = src_w * s;
        h = src_h * s;
    } else {
        w = std::max(1, static_cast<int>(src_w * scale));
        h = std::max(1, static_cast<int>(src_h * scale));
    }
    return Rect{area.x + (area.w - w) / 2, area.y + (area.h - h) / 2, w, h};
}

bool display_available(std::string* why) {
    const char* x11 = std::getenv("DISPLAY");
    const char* wayland = std::getenv("WAYLAND_DISPLAY");
    if ((x11 && *x11) || (wayland && *wayland)) return true;
    if (why) *why = "neither DISPLAY nor WAYLAND_DISPLAY is set";
    return false;
}

Presenter::Presenter(const PresenterConfig& config) : m_smooth(config.smooth) {
    std::string why;
    if (!display_available(&why)) throw NoDisplayError("no display found: " + why, __FILE__, __LINE__);
    glfwSetErrorCallback(glfw_error_callback);
    if (!glfwInit()) throw NoDisplayError("no display found: GLFW could not start: " + g_last_glfw_error, __FILE__, __LINE__);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
    glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
    glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
    glfwWindowHint(GLFW_VISIBLE, config.visible ? GLFW_TRUE : GLFW_FALSE);
    m_windowed_w = std::max(64, config.width);
    m_windowed_h = std::max(64, config.height);
    GLFWmonitor* monitor = nullptr;
    int w = m_windowed_w, h = m_windowed_h;
    if (config.fullscreen) {
        monitor = glfwGetPrimaryMonitor();
        if (const GLFWvidmode* mode = monitor ? glfwGetVideoMode(monitor) : nullptr) {
            w = mode->width;
            h = mode->height;
        } else {
            monitor = nullptr;
        }
    }
    m_window = glfwCreateWindow(w, h, config.title.c_str(), monitor, nullptr);
    if (!m_window) {
        const std::string err = g_last_glfw_error;
        glfwTerminate();
        throw NoDisplayError("no display found: could not open an OpenGL 3.3 core window: " + err, __FILE__, __LINE__);
    }
    m_fullscreen = monitor != nullptr;
    glfwMakeContextCurrent(m_window);
    glfwSwapInterval(config.vsync ? 1 : 0);

    try {
        const GLuint vs = compile(GL_VERTEX_SHADER, kVertexShader);
        const GLuint fs = compile(GL_FRAGMENT_SHADER, kFragmentShader);
        m_program = glCreateProgram();
        glAttachShader(m_program, vs);
        glAttachShader(m_program, fs);
        glLinkProgram(m_program);
        glDeleteShader(vs);
        glDeleteShader(fs);
        GLint ok = 0;
        glGetProgramiv(m_program, GL_LINK_STATUS, &ok);
        DC_CHECK(ok, "the upscale shader did not link");
    } catch (...) {
        glfwDestroyWindow(m_window);
        glfwTerminate();
        throw;
    }
    m_loc_rect = glGetUniformLocation(m_program, "u_rect");
    m_loc_tex = glGetUniformLocation(m_program, "u_tex");
    glGenVertexArrays(1, &m_vao);

    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;   // no imgui.ini next to wherever the user started the program
    ImGui::StyleColorsDark();
    ImGui_ImplGlfw_InitForOpenGL(m_window, true);
    ImGui_ImplOpenGL3_Init("#version 330 core");
    m_imgui = true;
}

Presenter::~Presenter() {
    cuda_release_all();   // CUDA registrations go before their textures
    if (m_imgui) {
        ImGui_ImplOpenGL3_Shutdown();
        ImGui_ImplGlfw_Shutdown();
        ImGui::DestroyContext();
    }
    for (auto& [slot, tex] : m_textures) glDeleteTextures(1, &tex.id);
    if (m_vao) glDeleteVertexArrays(1, &m_vao);
    if (m_program) glDeleteProgram(m_program);
    if (m_window) glfwDestroyWindow(m_window);
    glfwTerminate();
}

std::string Presenter::gl_info() const {
    auto str = [](GLenum e) {
        const GLubyte* s = glGetString(e);
        return s ? std::string(reinterpret_cast<const char*>(s)) : std::string("?");
    };
    return "OpenGL " + str(GL_VERSION) + " / " + str(GL_RENDERER);
}

bool Presenter::should_close() const { return glfwWindowShouldClose(m_window); }
void Presenter::request_close() { glfwSetWindowShouldClose(m_window, GLFW_TRUE); }
void Presenter::poll_events() { glfwPollEvents(); }
double Presenter::time() const { return glfwGetTime(); }

float Presenter::refresh_hz() const {
    GLFWmonitor* monitor = glfwGetWindowMonitor(m_window);
    if (!monitor) monitor = glfwGetPrimaryMonitor();
    const GLFWvidmode* mode = monitor ? glfwGetVideoMode(monitor) : nullptr;
    return mode && mode->refreshRate > 0 ? static_cast<float>(mode->refreshRate) : 60.f;
}

void Presenter::framebuffer_size(int& width, int& height) const { glfwGetFramebufferSize(m_window, &width, &height); }

void Presenter::upload(int slot, const uint8_t* rgb, int width, int height) {
    DC_CHECK(rgb && width > 0 && height > 0, "upload: expected an RGB image, found " << width << "x" << height);
    Texture& t = m_textures[slot];
    if (!t.id) glGenTextures(1, &t.id);
    glBindTexture(GL_TEXTURE_2D, t.id);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
    if (t.width != width || t.height != height) {
        cuda_release(t);   // a registration does not survive new storage
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
        // RGBA8 rather than RGB8: CUDA registers only 1, 2 or 4 channel textures (upload_device uses the same ones).
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, width, height, 0, GL_RGB, GL_UNSIGNED_BYTE, rgb);
        t.width = width;
        t.height = height;
    } else {
        glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, rgb);
    }
}

std::vector<uint8_t> Presenter::read_texture(int slot, int& width, int& height) const {
    width = height = 0;
    auto it = m_textures.find(slot);
    if (it == m_textures.end() || !it->second.id) return {};
    const Texture& t = it->second;
    std::vector<uint8_t> rgb(static_cast<size_t>(t.width) * t.height * 3);
    glBindTexture(GL_TEXTURE_2D, t.id);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glGetTexImage(GL_TEXTURE_2D, 0, GL_RGB, GL_UNSIGNED_BYTE, rgb.data());   // row 0 = the image's top row
    width = t.width;
    height = t.height;
    return rgb;
}

void Presenter::begin_frame() {
    int fw = 0, fh = 0;
    framebuffer_size(fw, fh);
    glViewport(0, 0, fw, fh);
    glClearColor(0.f, 0.f, 0.f, 1.f);   // letterbox black (the panel is ImGui's dark grey)
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
}

void Presenter::draw_image(int slot, const Rect& dst) {
    auto it = m_textures.find(slot);
    if (it == m_textures.end() || dst.w <= 0 || dst.h <= 0) return;
    int fw = 0, fh = 0;
    framebuffer_size(fw, fh);
    if (fw <= 0 || fh <= 0) return;   // minimised
    const float x0 = 2.f * dst.x / fw - 1.f, x1 = 2.f * (dst.x + dst.w) / fw - 1.f;
    const float y1 = 1.f - 2.f * dst.y / fh, y0 = 1.f - 2.f * (dst.y + dst.h) / fh;
    glDisable(GL_BLEND);
    glDisable(GL_SCISSOR_TEST);
    glDisable(GL_DEPTH_TEST);
    glUseProgram(m_program);
    glActiveTexture(GL_TEXTURE0);
    glBindTexture(GL_TEXTURE_2D, it->second.id);
    const GLint filter = m_smooth ? GL_LINEAR : GL_NEAREST;
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, filter);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, filter);
    glUniform1i(m_loc_tex, 0);
    glUniform4f(m_loc_rect, x0, y0, x1, y1);
    glBindVertexArray(m_vao);
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
    glBindVertexArray(0);
    glUseProgram(0);
}

void Presenter::end_frame() {
    ImGui::Render();
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
}

void Presenter::present() { glfwSwapBuffers(m_window); }

std::vector<uint8_t> Presenter::read_pixels(int& width, int& height) const {
    framebuffer_size(width, height);
    std::vector<uint8_t> bottom_up(static_cast<size_t>(width) * height * 3);
    glReadBuffer(GL_BACK);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, bottom_up.data());
    std::vector<uint8_t> out(bottom_up.size());
    const size_t row = static_cast<size_t>(width) * 3;
    for (int y = 0; y < height; ++y)
        std::memcpy(out.data() + row * y, bottom_up.data() + row * (height - 1 - y), row);
    return out;
}

void Presenter::save_screenshot(const std::string& path) const {
    int w = 0, h = 0;
    const std::vector<uint8_t> px = read_pixels(w, h);
    write_png(path, px.data(), w, h, 3);
}

void Presenter::set_fullscreen(bool on) {
    if (on == m_fullscreen) return;
    if (on) {
        GLFWmonitor* monitor = glfwGetPrimaryMonitor();
        const GLFWvidmode* mode = monitor ? glfwGetVideoMode(monitor) : nullptr;
        if (!mode) return;
        glfwGetWindowPos(m_window, &m_windowed_x, &m_windowed_y);
        glfwGetWindowSize(m_window, &m_windowed_w, &m_windowed_h);
        glfwSetWindowMonitor(m_window, monitor, 0, 0, mode->width, mode->height, mode->refreshRate);
    } else {
        glfwSetWindowMonitor(m_window, nullptr, m_windowed_x, m_windowed_y, m_windowed_w, m_windowed_h, 0);
    }
    m_fullscreen = on;
}

#ifndef DC_HAVE_CUDA
// A build without CUDA: no interop (render/cuda_gl.cpp holds the CUDA path).
bool Presenter::cuda_interop_built() { return false; }

bool Presenter::upload_device(int, const void*, int, int, int, std::string* error) {
    if (error) *error = "this build has no CUDA";
    return false;
}

void Presenter::cuda_release(Texture&) {}
void Presenter::cuda_release_all() {}
#endif

}  // namespace dc::render
