// The engine's worker thread: steps and controls, in the order they were asked for.
#include "app/engine_runner.h"

#include "common/common.h"

namespace dc::app {

EngineRunner::EngineRunner(std::unique_ptr<Engine> engine, uint64_t seed)
    : m_engine(std::move(engine)),
      m_name(m_engine->name()),
      m_describe(m_engine->describe()),
      m_has_model(m_engine->has_model()),
      m_tick_hz(m_engine->tick_hz()) {
    const auto t0 = SteadyClock::now();
    m_engine->reset(seed, m_work);
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_prompt = m_engine->prompt();
        publish_locked(FrameSnapshot::Kind::reset);
        m_ready_snapshot.sampled_at = t0;
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
    m_ready_snapshot.ready_at = SteadyClock::now();
    m_ready_snapshot.steps_done = m_steps_done;
    // Only a step frame is also on the GPU (a reset's or restyle's frame is the engine's host image).
    m_ready_snapshot.device_frame = kind == FrameSnapshot::Kind::step ? m_engine->device_frame() : DeviceFrame{};
    m_has_new = true;
}

void EngineRunner::worker() {
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        m_cv.wait(lock, [&] { return m_stop || m_request.has_value() || !m_controls.empty(); });
        if (m_stop) return;
        // Jobs in the order they were asked for: controls posted before the pending step apply to it, the others
        // after it (from the frame after).
        while (!m_controls.empty() && (!m_request || m_controls.front().first < m_request_id)) {
            const auto [id, control] = m_controls.front();
            const SteadyClock::time_point posted = m_control_times.front();
            m_controls.pop_front();
            m_control_times.pop_front();
            m_applying = true;
            const bool is_reset = control.kind == Control::Kind::reset;
            const int64_t next_frame = is_reset ? 0 : m_engine->stats().frame + 1;
            lock.unlock();
            std::string error;
            bool redrawn = false;
            try {
                redrawn = apply_control(*m_engine, control, m_work);
            } catch (const dc::Error& e) {
                error = e.message();
            } catch (const std::exception& e) {
                error = e.what();
            }
            if (RunObserver* obs = m_observer.load()) obs->on_control(control, error);  // recordings
            lock.lock();
            m_applying = false;
            if (is_reset) --m_resets_pending;
            if (error.empty()) {
                m_prompt = m_engine->prompt();
                if (is_reset) {
                    m_failure.clear();
                    publish_locked(FrameSnapshot::Kind::reset);
                    m_ready_snapshot.action = game::Action{};
                    m_ready_snapshot.sampled_at = posted;
                } else if (redrawn) {
                    const game::Action last = m_ready_snapshot.action;
                    // A step frame nobody has taken yet stays a step frame (its metrics row must not be lost).
                    const bool keep = m_has_new && m_ready_snapshot.kind != FrameSnapshot::Kind::restyle;
                    const auto kind = keep ? m_ready_snapshot.kind : FrameSnapshot::Kind::restyle;
                    const auto sampled = keep ? m_ready_snapshot.sampled_at : posted;
                    publish_locked(kind);
                    m_ready_snapshot.device_frame = DeviceFrame{};   // the redrawn image is on the host only
                    m_ready_snapshot.action = last;
                    m_ready_snapshot.sampled_at = sampled;
                }
            }
            m_results.push_back({id, control, next_frame, error});
            m_cv.notify_all();
        }
        if (!m_request) continue;
        const game::Action action = *m_request;
        const SteadyClock::time_point sampled_at = m_request_sampled_at;
        m_request.reset();
        lock.unlock();
        std::string error;
        try {
            m_engine->step(action, m_work);  // the only long call; the UI thread keeps drawing meanwhile
        } catch (const dc::Error& e) {
            error = e.message();
        } catch (const std::exception& e) {
            error = e.what();
        }
        if (RunObserver* obs = m_observer.load(); obs && error.empty())
            obs->on_step(action, sampled_at, m_work, *m_engine);  // recordings
        if (!error.empty())
            dc::log(LogLevel::error, "the " + m_name + " engine failed at frame " +
                                         std::to_string(m_engine->stats().frame + 1) + ": " + error +
                                         " (R resets and tries again)");
        lock.lock();
        if (error.empty()) {
            ++m_steps_done;
            if (m_resets_pending == 0) {  // a reset on its way makes this frame stale
                publish_locked(FrameSnapshot::Kind::step);
                m_ready_snapshot.action = action;
                m_ready_snapshot.sampled_at = sampled_at;
            }
        } else {
            m_failure = error;
        }
        m_busy = false;
        m_cv.notify_all();
    }
}

bool EngineRunner::busy() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_busy;
}

bool EngineRunner::try_step(const game::Action& action, SteadyClock::time_point sampled_at) {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_busy || !m_failure.empty()) return false;
        m_busy = true;
        m_request = action;
        m_request_id = m_next_id++;
        m_request_sampled_at = sampled_at;
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

int64_t EngineRunner::steps_done() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_steps_done;
}

void EngineRunner::wait_idle() {
    std::unique_lock<std::mutex> lock(m_mutex);
    m_cv.wait(lock, [&] { return !m_busy && !m_applying && m_controls.empty(); });
}

uint64_t EngineRunner::post(const Control& control) {
    uint64_t id;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        id = m_next_id++;
        m_controls.emplace_back(id, control);
        m_control_times.push_back(SteadyClock::now());
        if (control.kind == Control::Kind::reset) {
            ++m_resets_pending;
            m_submitted = 0;  // ticks asked for from now on count from the level start
        }
    }
    m_cv.notify_all();
    return id;
}

std::vector<ControlResult> EngineRunner::take_results() {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<ControlResult> out;
    out.swap(m_results);
    return out;
}

std::string EngineRunner::failure() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_failure;
}

ControlResult EngineRunner::wait_result(uint64_t id) {
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        for (auto it = m_results.begin(); it != m_results.end(); ++it)
            if (it->id == id) {
                ControlResult r = *it;
                m_results.erase(it);
                return r;
            }
        m_cv.wait(lock);
    }
}

void EngineRunner::reset(uint64_t seed) {
    Control c;
    c.kind = Control::Kind::reset;
    c.value = static_cast<int64_t>(seed);
    const ControlResult r = wait_result(post(c));
    DC_CHECK(r.error.empty(), r.error);
}

void EngineRunner::set_prompt(const std::string& prompt) {
    Control c;
    c.kind = Control::Kind::prompt;
    c.text = prompt;
    const ControlResult r = wait_result(post(c));
    DC_CHECK(r.error.empty(), r.error);
}

std::string EngineRunner::prompt() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_prompt;
}

}  // namespace dc::app
