// world_model/device_frame.h — a dreamed frame that stays in GPU memory (plain struct: no torch, no CUDA headers).
//
//   dc::DeviceFrame f = session.device_frame();          // right after session.step(...)
//   if (f) presenter.upload_device(0, f.rgba, f.width, f.height, f.device, &why);   // CUDA–GL interop
//
// Layout: RGBA8 [height, width, 4], rows packed (pitch = width * 4 bytes), top row first, alpha 255; the RGB bytes
// equal those of the host frame of the same step. Who fills it and how long its contents stay put: see
// Session::device_frame in world_model/world_model.h.
#pragma once

#include <cstdint>
#include <memory>

namespace dc {

struct DeviceFrame {
    const void* rgba = nullptr;  // device pointer (CUDA); nullptr = no device frame
    int width = 0, height = 0;   // pixels
    int device = -1;             // CUDA device index the memory lives on
    uint64_t serial = 0;         // 1, 2, ... per step of the session that filled it (0 = none)
    // Keeps the memory allocated (not its contents: see the ring rule) after the session that made it is gone.
    std::shared_ptr<const void> owner;

    // Buffers in the ring of the session that fills them: a frame's contents last while the next kRing - 1 steps run.
    static constexpr int kRing = 3;

    explicit operator bool() const { return rgba != nullptr && width > 0 && height > 0; }
};

}  // namespace dc
