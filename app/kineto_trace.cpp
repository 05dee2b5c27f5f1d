// app/kineto_trace.cpp — see kineto_trace.h.
#include "app/kineto_trace.h"

#include "common/common.h"

#if defined(DC_HAVE_CUDA) && __has_include(<torch/csrc/autograd/profiler_kineto.h>)
#include <torch/csrc/autograd/profiler_kineto.h>
#define DC_HAVE_KINETO 1
#endif

namespace dc::app {

#ifdef DC_HAVE_KINETO
namespace prof = torch::autograd::profiler;
using Activity = torch::profiler::impl::ActivityType;

bool KinetoTrace::available() { return true; }

void KinetoTrace::start() {
    if (m_running) return;
    const prof::ProfilerConfig cfg(prof::ProfilerState::KINETO);
    const std::set<Activity> acts{Activity::CPU, Activity::CUDA};
    prof::prepareProfiler(cfg, acts);
    prof::enableProfiler(cfg, acts);
    m_running = true;
}

void KinetoTrace::stop(const std::string& path) {
    if (!m_running) return;
    m_running = false;
    auto result = prof::disableProfiler();
    DC_CHECK(result != nullptr, "trace: the profiler returned no result for " << path);
    result->save(path);
}
#else
bool KinetoTrace::available() { return false; }
void KinetoTrace::start() { DC_FAIL("trace: this build's LibTorch has no Kineto profiler (CUDA builds only)"); }
void KinetoTrace::stop(const std::string&) {}
#endif

}  // namespace dc::app
