// CUDA–GL interop: a frame in CUDA device memory goes into a slot's GL texture by a device-to-device copy, without
// a trip through the host. Built only when the build has CUDA (render/CMakeLists.txt); presenter.cpp holds the
// stand-ins of a build without it.
//
// Per texture: register once (cudaGraphicsGLRegisterImage needs an RGBA8 texture, which every slot is), again after
// its storage changes; per frame: map -> mapped array -> cudaMemcpy2DToArrayAsync (device to device) -> unmap, on a
// non-blocking stream of the presenter's own, so the copy never queues behind the model's work on the legacy
// default stream. The call waits for its copy only (the caller may reuse the source right after).
#include <epoxy/gl.h>
// The GL header (epoxy here, the project's loader) must come before cuda_gl_interop.h, which otherwise includes the
// system GL header.
#include <cuda_gl_interop.h>
#include <cuda_runtime_api.h>

#include <string>

#include "render/render.h"

namespace dc::render {

namespace {

std::string cuda_message(const char* call, cudaError_t e) {
    return std::string(call) + " failed: " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
}

}  // namespace

bool Presenter::cuda_interop_built() { return true; }

bool Presenter::upload_device(int slot, const void* rgba, int width, int height, int device, std::string* error) {
    auto fail = [&](const std::string& message) {
        if (error) *error = message;
        return false;
    };
    if (!rgba || width <= 0 || height <= 0 || device < 0)
        return fail("upload_device: expected an RGBA8 image in CUDA memory, found " + std::to_string(width) + "x" +
                    std::to_string(height) + (rgba ? "" : " at a null pointer") + " on device " +
                    std::to_string(device));
    cudaError_t e = cudaSetDevice(device);   // this (the window's) thread's device
    if (e != cudaSuccess) return fail(cuda_message("cudaSetDevice", e));
    if (m_cuda_stream && m_cuda_device != device) cuda_release_all();   // frames now come from another card
    if (!m_cuda_stream) {
        cudaStream_t stream = nullptr;
        e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
        if (e != cudaSuccess) return fail(cuda_message("cudaStreamCreateWithFlags", e));
        m_cuda_stream = stream;
        m_cuda_device = device;
    }

    Texture& t = m_textures[slot];
    if (!t.id) glGenTextures(1, &t.id);
    glBindTexture(GL_TEXTURE_2D, t.id);
    if (t.width != width || t.height != height) {
        cuda_release(t);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, width, height, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
        t.width = width;
        t.height = height;
    }
    if (!t.cuda) {
        cudaGraphicsResource_t res = nullptr;
        // WriteDiscard: CUDA overwrites the whole texture, its old contents need not be kept for the copy.
        e = cudaGraphicsGLRegisterImage(&res, t.id, GL_TEXTURE_2D, cudaGraphicsRegisterFlagsWriteDiscard);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();   // not sticky: clear it so later CUDA calls of this thread start clean
            return fail(cuda_message("cudaGraphicsGLRegisterImage", e) +
                        " (is the GL context on this CUDA device's driver?)");
        }
        t.cuda = res;
    }

    cudaGraphicsResource_t res = t.cuda;
    e = cudaGraphicsMapResources(1, &res, m_cuda_stream);
    if (e != cudaSuccess) return fail(cuda_message("cudaGraphicsMapResources", e));
    cudaArray_t array = nullptr;
    e = cudaGraphicsSubResourceGetMappedArray(&array, res, 0, 0);
    std::string why;
    if (e != cudaSuccess) {
        why = cuda_message("cudaGraphicsSubResourceGetMappedArray", e);
    } else {
        const size_t row = static_cast<size_t>(width) * 4;   // bytes per row, source and destination
        e = cudaMemcpy2DToArrayAsync(array, 0, 0, rgba, row, row, static_cast<size_t>(height), cudaMemcpyDeviceToDevice,
                                     m_cuda_stream);
        if (e != cudaSuccess) why = cuda_message("cudaMemcpy2DToArrayAsync", e);
    }
    // Unmapping orders the copy before any GL work issued after it; the sync lets the caller reuse the source.
    e = cudaGraphicsUnmapResources(1, &res, m_cuda_stream);
    if (e != cudaSuccess && why.empty()) why = cuda_message("cudaGraphicsUnmapResources", e);
    e = cudaStreamSynchronize(m_cuda_stream);
    if (e != cudaSuccess && why.empty()) why = cuda_message("cudaStreamSynchronize", e);
    if (!why.empty()) return fail(why);
    if (error) error->clear();
    return true;
}

void Presenter::cuda_release(Texture& t) {
    if (!t.cuda) return;
    (void)cudaGraphicsUnregisterResource(t.cuda);   // nothing to do about a failure while letting go
    t.cuda = nullptr;
}

void Presenter::cuda_release_all() {
    for (auto& [slot, t] : m_textures) cuda_release(t);
    if (m_cuda_stream) (void)cudaStreamDestroy(m_cuda_stream);
    m_cuda_stream = nullptr;
    m_cuda_device = -1;
}

}  // namespace dc::render
