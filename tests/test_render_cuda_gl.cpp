// CUDA–GL interop (Presenter::upload_device): a frame copied from CUDA memory into a slot's texture reads back the
// same as the host upload of the same frame, across sizes and repeated uploads; without CUDA it says why and leaves
// the texture alone. The [cuda] case needs a CUDA device and a GL context on NVIDIA's driver (xvfb-run with NVIDIA
// GLX, or a real display); on Mesa it warns and returns, since no CUDA device can register Mesa's textures.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifdef DC_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "render/render.h"

namespace {

// A w x h RGB8 image where neighbouring pixels and channels differ (catches swapped rows, channels and pitches).
std::vector<uint8_t> pattern_rgb(int w, int h, int seed) {
    std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c)
                rgb[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(x * 7 + y * 31 + c * 85 + seed * 13);
    return rgb;
}

#ifdef DC_HAVE_CUDA
std::vector<uint8_t> rgb_to_rgba(const std::vector<uint8_t>& rgb) {
    std::vector<uint8_t> rgba(rgb.size() / 3 * 4);
    for (size_t p = 0; p < rgb.size() / 3; ++p) {
        for (int c = 0; c < 3; ++c) rgba[p * 4 + c] = rgb[p * 3 + c];
        rgba[p * 4 + 3] = 255;
    }
    return rgba;
}
#endif

std::unique_ptr<dc::render::Presenter> hidden_presenter() {
    dc::render::PresenterConfig config;
    config.width = 160;
    config.height = 120;
    config.visible = false;
    // Xvfb (without -noreset) resets itself when its last client leaves, and refuses connections meanwhile: a window
    // opened right after another test's closed may need a second try.
    for (int attempt = 0;; ++attempt) {
        try {
            return std::make_unique<dc::render::Presenter>(config);
        } catch (const dc::render::NoDisplayError&) {
            if (attempt == 4) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
}

}  // namespace

TEST_CASE("slot textures read back as uploaded, and upload_device says why it cannot copy", "[render][gui]") {
    if (!dc::render::display_available()) FAIL("needs a display: run under xvfb-run -a");
    auto presenter = hidden_presenter();
    INFO(presenter->gl_info());
    const std::vector<uint8_t> img = pattern_rgb(13, 7, 1);
    presenter->upload(0, img.data(), 13, 7);
    int w = 0, h = 0;
    CHECK(presenter->read_texture(0, w, h) == img);
    CHECK((w == 13 && h == 7));
    CHECK(presenter->read_texture(5, w, h).empty());   // a slot never used
    CHECK((w == 0 && h == 0));

    // No device image: refused with a reason, and the slot keeps its frame.
    std::string why;
    CHECK_FALSE(presenter->upload_device(0, nullptr, 13, 7, 0, &why));
    CHECK_FALSE(why.empty());
    if (!dc::render::Presenter::cuda_interop_built()) CHECK_THAT(why, Catch::Contains("no CUDA"));
    CHECK(presenter->read_texture(0, w, h) == img);
}

TEST_CASE("a frame uploaded by CUDA-GL interop reads back identical to its host upload", "[render][cuda][gui]") {
#ifndef DC_HAVE_CUDA
    WARN("built without CUDA: skipped");
#else
    int n_devices = 0;
    if (cudaGetDeviceCount(&n_devices) != cudaSuccess || n_devices == 0) {
        (void)cudaGetLastError();
        WARN("no CUDA device visible: skipped");
        return;
    }
    if (!dc::render::display_available())
        FAIL("needs a display with NVIDIA GLX: run under xvfb-run -a with __GLX_VENDOR_LIBRARY_NAME=nvidia");
    auto presenter = hidden_presenter();
    const std::string gl = presenter->gl_info();
    INFO(gl);
    if (gl.find("NVIDIA") == std::string::npos) {
        WARN("the GL context is not NVIDIA's (" << gl << "): CUDA cannot register its textures; skipped");
        return;
    }
    REQUIRE(dc::render::Presenter::cuda_interop_built());
    REQUIRE(cudaSetDevice(0) == cudaSuccess);

    // Sizes: the game's frame, one whose rows are not a multiple of 4 pixels, and a resize back (re-registration).
    int seed = 0;
    for (const auto& [w, h] : std::vector<std::pair<int, int>>{{128, 128}, {37, 23}, {128, 128}}) {
        for (int repeat = 0; repeat < 2; ++repeat) {   // the second upload maps an already registered texture
            ++seed;
            INFO(w << "x" << h << ", upload " << repeat + 1);
            const std::vector<uint8_t> rgb = pattern_rgb(w, h, seed);
            const std::vector<uint8_t> rgba = rgb_to_rgba(rgb);
            void* dev = nullptr;
            REQUIRE(cudaMalloc(&dev, rgba.size()) == cudaSuccess);
            REQUIRE(cudaMemcpy(dev, rgba.data(), rgba.size(), cudaMemcpyHostToDevice) == cudaSuccess);
            std::string why;
            const bool ok = presenter->upload_device(1, dev, w, h, 0, &why);
            INFO(why);
            REQUIRE(ok);
            presenter->upload(2, rgb.data(), w, h);
            REQUIRE(cudaFree(dev) == cudaSuccess);   // upload_device's copy is done when it returns
            int w1 = 0, h1 = 0, w2 = 0, h2 = 0;
            const std::vector<uint8_t> by_interop = presenter->read_texture(1, w1, h1);
            const std::vector<uint8_t> by_host = presenter->read_texture(2, w2, h2);
            CHECK((w1 == w && h1 == h && w2 == w && h2 == h));
            CHECK(by_interop == by_host);
            CHECK(by_interop == rgb);
        }
    }
#endif
}
