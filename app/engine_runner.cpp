// The engine's worker thread.
#include "app/engine_runner.h"

#include "common/common.h"

namespace dc::app {

EngineRunner::EngineRunner(std::unique_ptr<Engine> engine, uint64_t seed)
    : m_engine(std::move(engine)), m_name(m_engine->name()), m_tick_hz(m_engine->tick_hz()) {
    m_engine->reset(seed, m_work);
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        publish_locked(FrameSnapshot::Kind::reset);
    }
    m_thread = std::thread([this] { worker(); });
}

EngineRunner::~EngineRunner() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stop = true;
    }
    m_cv.notify_all();
    m_thread.join();
}

void EngineRunner::publish_locked(FrameSnapshot::Kind kind) {
    m_ready = m_work;
    m_ready_snapshot.kind = kind;
    m_ready_snapshot.stats = m_engine->stats();
    m_ready_snapshot.pose = m_engine->pose();
    m_has_new = true;
}

void EngineRunner::worker() {
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        m_cv.wait(lock, [&] { return m_stop || m_request.has_value(); });
        if (m_stop) return;
        const game::Action action = *m_request;
        m_request.reset();
        lock.unlock();
        std::string error;
        try {
            m_engine->step(action, m_work);   // the only long call; the UI thread keeps drawing meanwhile
        } catch (const std::exception& e) {
            error = e.what();
        }
        lock.lock();
        if (error.empty()) {
            publish_locked(FrameSnapshot::Kind::step);
            m_ready_snapshot.action = action;
        } else {
            dc::log(LogLevel::error, "engine step failed: " + error);
        }
        m_busy = false;
        m_cv.notify_all();
    }
}

bool EngineRunner::busy() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_busy;
}

bool EngineRunner::try_step(const game::Action& action) {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_busy) return false;
        m_busy = true;
        m_request = action;
        ++m_submitted;
    }
    m_cv.notify_all();
    return true;
}

bool EngineRunner::take_frame(game::Image& out, FrameSnapshot& snapshot) {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (!m_has_new) return false;
    out = m_ready;
    snapshot = m_ready_snapshot;
    m_has_new = false;
    return true;
}

int64_t EngineRunner::submitted_frame() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_submitted;
}

void EngineRunner::wait_idle() {
    std::unique_lock<std::mutex> lock(m_mutex);
    m_cv.wait(lock, [&] { return !m_busy; });
}

void EngineRunner::reset(uint64_t seed) {
    std::unique_lock<std::mutex> lock(m_mutex);
    m_cv.wait(lock, [&] { return !m_busy; });
    m_engine->reset(seed, m_work);
    m_submitted = 0;
    publish_locked(FrameSnapshot::Kind::reset);
    m_ready_snapshot.action = game::Action{};
}

void EngineRunner::set_prompt(const std::string& prompt) {
    std::unique_lock<std::mutex> lock(m_mutex);
    m_cv.wait(lock, [&] { return !m_busy; });
    m_engine->set_prompt(prompt);   // throws: nothing changed
    if (m_engine->redraw(m_work)) {
        const game::Action last = m_ready_snapshot.action;
        // A step frame nobody has taken yet stays a step frame (its metrics row must not be lost).
        publish_locked(m_has_new ? m_ready_snapshot.kind : FrameSnapshot::Kind::restyle);
        m_ready_snapshot.action = last;
    }
}

std::string EngineRunner::prompt() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_engine->prompt();
}

}  // namespace dc::app
