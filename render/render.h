// render/render.h — the OpenGL presenter: one GLFW window, a GL 3.3 core context (libepoxy), game frames as
// upscaled textures (nearest or smooth), the Dear ImGui context (GLFW + OpenGL3 backends), screenshots as PNG.
//
//   std::string why;
//   if (!dc::render::display_available(&why)) { ... run --headless instead ... }
//   dc::render::PresenterConfig config;  config.width = 1000;  config.height = 640;
//   dc::render::Presenter presenter(config);                                 // throws NoDisplayError
//   while (!presenter.should_close()) {
//       presenter.poll_events();
//       presenter.upload(0, frame.rgb.data(), frame.width, frame.height);   // RGB8, top row first
//       // or, for a frame already in CUDA memory (RGBA8), a device-to-device copy into the texture:
//       //   if (!presenter.upload_device(0, rgba, w, h, cuda_device, &why)) ... host upload from now on ...
//       presenter.begin_frame();                                            // clears, starts an ImGui frame
//       presenter.draw_image(0, dc::render::fit_rect(128, 128, area, /*integer_scale=*/true));
//       ImGui::Begin("Stats"); ...; ImGui::End();
//       presenter.end_frame();                                              // renders ImGui into the back buffer
//       if (want_shot) presenter.save_screenshot("shot.png");               // reads the back buffer
//       presenter.present();                                                // swaps
//   }
//
// Coordinates are framebuffer pixels with the origin at the top-left (like ImGui). No torch here.
//
// CUDA–GL interop (render/cuda_gl.cpp, built only when the build has CUDA): upload_device registers the slot's
// texture with CUDA once (again after a resize), maps it, copies the device image into it on the presenter's own
// stream and unmaps it. It fails (false, with the CUDA error) where the GL context is not on a CUDA device's driver
// (Mesa, Xvfb without NVIDIA GLX), in a build without CUDA, or on any CUDA error; callers then use upload() from
// host memory. No CUDA headers here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/common.h"

struct GLFWwindow;
struct cudaGraphicsResource;   // cuda_runtime_api.h's cudaGraphicsResource_t points to one
struct CUstream_st;            // cudaStream_t

namespace dc::render {

struct Rect {
    int x = 0, y = 0, w = 0, h = 0;
    bool contains(int px, int py) const { return px >= x && py >= y && px < x + w && py < y + h; }
};

// The largest rectangle of the source's aspect ratio inside `area`, centred. With integer_scale (crisp nearest
// upscaling) the scale is the largest whole number that fits, when at least 1 fits.
Rect fit_rect(int src_w, int src_h, Rect area, bool integer_scale);

// Thrown when no window can be opened (no X11/Wayland display, or GLFW/GL start-up failed there).
class NoDisplayError : public dc::Error {
public:
    using dc::Error::Error;
};

// Whether a display server is named in the environment (DISPLAY or WAYLAND_DISPLAY); why not, if not.
bool display_available(std::string* why = nullptr);

struct PresenterConfig {
    std::string title = "Dreamcaster";   // window title
    int width = 1000;                    // window width in screen pixels (default fits 5x game + side panel)
    int height = 640;                    // window height in screen pixels
    bool fullscreen = false;             // start on the primary monitor at its current video mode
    bool smooth = false;                 // bilinear upscaling instead of nearest (crisp pixels are the default)
    bool vsync = true;                   // swap interval 1; the frame loop also caps at the monitor's rate
    bool visible = true;                 // false: hidden window (tests)
};

// Writes an 8-bit PNG (channels 3 = RGB, 4 = RGBA; rows top first) with stb_image_write; throws dc::Error.
void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels);

class Presenter {
public:
    explicit Presenter(const PresenterConfig& config);   // throws NoDisplayError / dc::Error
    ~Presenter();
    Presenter(const Presenter&) = delete;
    Presenter& operator=(const Presenter&) = delete;

    GLFWwindow* window() const { return m_window; }
    std::string gl_info() const;   // "OpenGL 4.5 (Core Profile) Mesa 22.3.6 / llvmpipe (LLVM 15.0.6, 256 bits)"
    bool should_close() const;
    void request_close();
    void poll_events();
    double time() const;           // seconds (glfwGetTime)
    float refresh_hz() const;      // the monitor's refresh rate (60 when unknown)
    void framebuffer_size(int& width, int& height) const;

    // Texture slots: upload RGB8 [height, width, 3] into slot N (created on first use, resized as needed). Slot
    // textures are GL_RGBA8 (alpha 1), the format CUDA can register.
    void upload(int slot, const uint8_t* rgb, int width, int height);
    // The same from CUDA device memory: rgba is RGBA8 [height, width, 4], rows packed, top row first, on CUDA device
    // `device`, complete (no pending writes) and unchanged until this returns. Returns false and says why in *error
    // when the copy cannot be made (see above); the slot's old contents may then be gone: upload() the frame.
    // Blocks only for the copy itself (a few microseconds for a game frame), not for other streams' work.
    bool upload_device(int slot, const void* rgba, int width, int height, int device, std::string* error = nullptr);
    static bool cuda_interop_built();   // whether this build has upload_device's CUDA path
    // The slot's texture as RGB8 [height, width, 3], top row first (tests; 0x0 when the slot is empty).
    std::vector<uint8_t> read_texture(int slot, int& width, int& height) const;
    void begin_frame();                          // viewport, clear, ImGui NewFrame
    void draw_image(int slot, const Rect& dst);  // the slot's texture upscaled into dst (nearest or smooth)
    void end_frame();                            // ImGui Render into the back buffer
    void present();                              // swap buffers

    // The back buffer as RGB8 [height, width, 3], top row first (call after end_frame, before present).
    std::vector<uint8_t> read_pixels(int& width, int& height) const;
    void save_screenshot(const std::string& path) const;   // read_pixels + write_png

    void set_smooth(bool smooth) { m_smooth = smooth; }
    bool smooth() const { return m_smooth; }
    void set_fullscreen(bool on);
    bool fullscreen() const { return m_fullscreen; }

private:
    GLFWwindow* m_window = nullptr;
    bool m_smooth = false;
    bool m_fullscreen = false;
    bool m_imgui = false;
    int m_windowed_x = 0, m_windowed_y = 0, m_windowed_w = 0, m_windowed_h = 0;
    unsigned m_program = 0, m_vao = 0;
    int m_loc_rect = -1, m_loc_tex = -1;
    struct Texture {
        unsigned id = 0;
        int width = 0, height = 0;
        cudaGraphicsResource* cuda = nullptr;   // registered with CUDA (upload_device); nullptr = not registered
    };
    std::map<int, Texture> m_textures;
    CUstream_st* m_cuda_stream = nullptr;   // upload_device's copies (non-blocking: never waits for the model's work)
    int m_cuda_device = -1;                 // the device m_cuda_stream belongs to
    // CUDA registrations (render/cuda_gl.cpp; no-ops without CUDA): before a texture's storage changes or goes.
    void cuda_release(Texture& t);
    void cuda_release_all();   // every texture's registration and the stream
};

}  // namespace dc::render
