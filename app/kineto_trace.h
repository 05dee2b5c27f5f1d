// app/kineto_trace.h — a Chrome trace of a few frames (host ops and GPU kernels, graph-replayed ones included), from
// LibTorch's Kineto profiler, for `bench rollout --trace-at N`.
//
//   dc::app::KinetoTrace t;          // nothing recorded yet
//   t.start();                       // throws dc::Error when this build's LibTorch has no Kineto (CPU Debian builds)
//   ... frames ...
//   t.stop("out/trace-dense.json");  // open it in chrome://tracing or Perfetto
//
// Available in CUDA builds (the Python wheel's LibTorch ships the profiler headers); elsewhere available() is false.
#pragma once

#include <string>

namespace dc::app {

class KinetoTrace {
public:
    static bool available();
    void start();
    void stop(const std::string& path);   // no-op when not started
    bool running() const { return m_running; }

private:
    bool m_running = false;
};

}  // namespace dc::app
