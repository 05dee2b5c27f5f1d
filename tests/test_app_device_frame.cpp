// Dreamed frames on the GPU for CUDA–GL interop: a CUDA session's device frame (RGBA8) holds exactly the RGB bytes of
// its host frame and keeps them for the ring's length; the engine runner hands it to the window with step frames
// only; CPU sessions have none. The window says in its metrics how each frame reached the screen.
// Models: the shipped one (assets/models/default.json), on the CPU and, for [cuda], on the first CUDA device.
#ifdef DC_HAVE_WORLD_MODEL
// Before Catch: torch's headers define glog's CHECK, which Catch's must replace.
#include <ATen/ATen.h>

#include "world_model/world_model.h"
#endif
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "app/engine.h"
#include "app/engine_runner.h"
#include "common/common.h"
#include "game/game.h"
#include "test_app_util.h"

namespace {

#ifdef DC_HAVE_WORLD_MODEL
dc::game::Image spawn_view() {
    dc::game::Game g(dc::game::Level::load_named("e1m1"));
    g.reset(0);
    dc::game::Image img;
    g.render(img);
    return img;
}

dc::game::Action walk(int i) {
    dc::game::Action a;
    a.forward = 0.8f;
    a.turn = i % 2 ? 0.3f : -0.2f;
    return a;
}

// The device frame's bytes, RGBA8 [H, W, 4], copied to the host.
std::vector<uint8_t> device_bytes(const dc::DeviceFrame& f) {
    const at::Tensor t = at::from_blob(const_cast<void*>(f.rgba), {f.height, f.width, 4},
                                       at::TensorOptions().dtype(at::kByte).device(at::Device(at::kCUDA, f.device)))
                             .cpu();   // [H, W, 4]
    return std::vector<uint8_t>(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
}

// RGB of an RGBA8 buffer, and whether every alpha is 255.
std::vector<uint8_t> rgb_of(const std::vector<uint8_t>& rgba, bool& opaque) {
    std::vector<uint8_t> rgb(rgba.size() / 4 * 3);
    opaque = true;
    for (size_t p = 0; p < rgba.size() / 4; ++p) {
        for (int c = 0; c < 3; ++c) rgb[p * 3 + c] = rgba[p * 4 + c];
        opaque = opaque && rgba[p * 4 + 3] == 255;
    }
    return rgb;
}

bool cuda_ready() {
    if (at::hasCUDA()) return true;
    WARN("no CUDA (CPU LibTorch or no device visible): skipped");
    return false;
}
#endif

}  // namespace

#ifdef DC_HAVE_WORLD_MODEL
TEST_CASE("a CPU session and the neural engine on the CPU keep no device frame", "[app]") {
    auto model = dc::WorldModel::load(dc::asset_path("models/default.json"), "cpu");
    dc::Session session(model, dc::SessionConfig{});
    session.reset(spawn_view(), "");
    dc::game::Image out;
    session.step(walk(0), out);
    CHECK_FALSE(session.device_frame());
    CHECK(session.device_frame().rgba == nullptr);

    dc::app::EngineConfig config;
    config.device = "cpu";
    dc::app::EngineRunner runner(dc::app::make_engine("neural", config), 0);
    REQUIRE(runner.try_step(walk(0)));
    runner.wait_idle();
    dc::app::FrameSnapshot snap;
    REQUIRE(runner.take_frame(out, snap));
    CHECK(snap.kind == dc::app::FrameSnapshot::Kind::step);
    CHECK_FALSE(snap.device_frame);
}

TEST_CASE("a CUDA session's device frame holds its host frame's bytes while the ring keeps it", "[app][cuda]") {
    if (!cuda_ready()) return;
    auto model = dc::WorldModel::load(dc::asset_path("models/default.json"), "cuda");
    auto session = std::make_unique<dc::Session>(model, dc::SessionConfig{});
    const dc::game::Image start = spawn_view();
    session->reset(start, "");
    CHECK_FALSE(session->device_frame());   // frame 0 is the caller's host frame

    std::vector<dc::DeviceFrame> frames;
    std::vector<dc::game::Image> hosts;
    for (int i = 0; i < 6; ++i) {
        INFO("step " << i + 1);
        dc::game::Image out;
        session->step(walk(i), out);
        const dc::DeviceFrame f = session->device_frame();
        REQUIRE(f);
        CHECK((f.width == out.width && f.height == out.height && f.device == 0));
        CHECK(f.serial == static_cast<uint64_t>(i + 1));
        bool opaque = false;
        CHECK(rgb_of(device_bytes(f), opaque) == out.rgb);   // exactly: the same ops on the same tensor
        CHECK(opaque);
        frames.push_back(f);
        hosts.push_back(out);
        // The ring: the frame of kDeviceFrameRing - 1 steps ago is still intact.
        const int back = dc::Session::kDeviceFrameRing - 1;
        if (i >= back) CHECK(rgb_of(device_bytes(frames[i - back]), opaque) == hosts[i - back].rgb);
    }
    // After a reset: none until the next step.
    session->reset(start, "");
    CHECK_FALSE(session->device_frame());
    // `owner` keeps the memory past the session; nothing wrote the last frame's buffer since.
    session.reset();
    bool opaque = false;
    CHECK(rgb_of(device_bytes(frames.back()), opaque) == hosts.back().rgb);
}

TEST_CASE("the engine runner hands the window a device frame with CUDA step frames only", "[app][cuda]") {
    if (!cuda_ready()) return;
    dc::app::EngineConfig config;
    config.device = "cuda";
    dc::app::EngineRunner runner(dc::app::make_engine("neural", config), 0);
    dc::game::Image img;
    dc::app::FrameSnapshot snap;
    REQUIRE(runner.take_frame(img, snap));
    CHECK(snap.kind == dc::app::FrameSnapshot::Kind::reset);
    CHECK_FALSE(snap.device_frame);   // frame 0: the real spawn view
    for (int i = 0; i < 3; ++i) {
        REQUIRE(runner.try_step(walk(i)));
        runner.wait_idle();
        REQUIRE(runner.take_frame(img, snap));
        REQUIRE(snap.device_frame);
        bool opaque = false;
        CHECK(rgb_of(device_bytes(snap.device_frame), opaque) == img.rgb);
    }
    runner.reset(0);
    REQUIRE(runner.take_frame(img, snap));
    CHECK_FALSE(snap.device_frame);
}
#endif

#if DC_GUI
TEST_CASE("the window's metrics say how each frame reached the screen", "[app][gui]") {
    dc_test::TempDir dir("upload_path");
    const auto r = dc_test::run_dreamcaster("play --engine reference --frames 4 --metrics '" + dir.file("m.csv") + "'");
    INFO(r.output);
    REQUIRE(r.code == 0);
    std::ifstream in(dir.file("m.csv"));
    std::string header, line;
    REQUIRE(std::getline(in, header));
    REQUIRE(header.size() > 7);
    CHECK(header.substr(header.size() - 7) == ",upload");   // the last column
    int rows = 0;
    while (std::getline(in, line)) {
        ++rows;
        CHECK(line.substr(line.rfind(',') + 1) == "host");   // the reference game's frames are on the host
    }
    CHECK(rows >= 4);
}
#endif
