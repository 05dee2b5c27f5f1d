// app/engine_runner.h — runs an Engine on a worker thread so the window loop never waits for a frame.
//
//   dc::app::EngineRunner runner(std::move(engine), seed);     // frame 0 is rendered on construction
//   each display frame:
//       while (tick due && !runner.busy()) runner.try_step(action, sampled_at);   // one step in flight at most
//       if (runner.take_frame(image, snapshot)) upload(image);                    // the newest finished frame
//                                  // (or snapshot.device_frame by CUDA–GL interop, before the next try_step)
//       for (const auto& r : runner.take_results()) log(r);    // controls applied (frame number) or refused (why)
//   user changes never block:
//       runner.post(control);          // prompt, attention, steps, budget, resync, reset: applied by the worker
//                                      // between two steps, before the next frame (see controls.h)
//   blocking forms for tests and rare use (wait for the running step):
//       runner.reset(seed);  runner.set_prompt(text);   // set_prompt throws dc::Error, the old style stays
//
// The game clock stays frame-locked (one engine step = one game tick): when the engine is slower than the tick
// rate, ticks wait for it (the game slows down) and the display keeps redrawing the newest frame at its own rate.
// The engine is touched by the worker thread only (after construction), so controls never race a step.
// A step that throws stops the stepping (failure() says why) until a reset succeeds.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/controls.h"
#include "app/engine.h"

namespace dc::app {

using SteadyClock = std::chrono::steady_clock;

// What the window shows next to a frame.
struct FrameSnapshot {
    enum class Kind { reset, step, restyle };  // how the frame came about (metrics log reset and step frames)
    Kind kind = Kind::reset;
    EngineStats stats;
    std::optional<game::Pose> pose;
    game::Action action;                 // the action that produced the frame (none for frame 0)
    SteadyClock::time_point sampled_at;  // when that action was sampled (input-to-photon starts here)
    SteadyClock::time_point ready_at;    // when the engine finished the frame
    int64_t steps_done = 0;              // engine steps finished since the runner started (model frames)
    // Step frames of a neural engine on CUDA: the same frame in GPU memory (Engine::device_frame), for CUDA–GL
    // interop; empty otherwise. Its contents last while the kRing - 1 steps after it run (DeviceFrame's ring rule):
    // copy it after take_frame and before asking for the step after next. With one step in flight at most, that
    // leaves the step already running plus one, so kRing >= 2 suffices (3 keeps a spare).
    DeviceFrame device_frame;
};

// Sees every engine call of the worker, in order (recordings: app/recording.h). Called on the worker thread without
// the runner's lock, while busy() (steps) or a control is being applied, so wait_idle() after set_observer(nullptr)
// means no call is running. Keep it short: it delays the next frame.
class RunObserver {
public:
    virtual ~RunObserver() = default;
    virtual void on_control(const Control& control, const std::string& error) = 0;  // error "" = applied
    virtual void on_step(const game::Action& action, SteadyClock::time_point sampled_at, const game::Image& frame,
                         const Engine& engine) = 0;  // a finished step (failed steps are not reported)
};

class EngineRunner {
public:
    EngineRunner(std::unique_ptr<Engine> engine, uint64_t seed);  // resets the engine: frame 0 is ready at once
    ~EngineRunner();
    EngineRunner(const EngineRunner&) = delete;
    EngineRunner& operator=(const EngineRunner&) = delete;

    bool busy() const;  // a step is running (or queued)
    // Starts a step; false while one is running or after a failed step.
    bool try_step(const game::Action& action, SteadyClock::time_point sampled_at = SteadyClock::now());
    bool take_frame(game::Image& out, FrameSnapshot& snapshot);  // true when a newer frame is ready
    int64_t submitted_frame() const;                             // frame number of the last requested frame
    int64_t steps_done() const;                                  // engine steps finished since the runner started
    void wait_idle();                                            // until no step or control is pending or running

    // Never blocks; the worker applies it after the step asked for before it (if any) and before any step asked for
    // after it. The result comes through take_results().
    uint64_t post(const Control& control);
    std::vector<ControlResult> take_results();  // in the order they were applied
    std::string failure() const;                // why the last step failed ("" = none since the last reset)

    void reset(uint64_t seed);                   // back to frame 0 (waits for it)
    void set_prompt(const std::string& prompt);  // waits; throws dc::Error and keeps the old style
    std::string prompt() const;
    std::string name() const { return m_name; }
    std::string describe() const { return m_describe; }
    bool has_model() const { return m_has_model; }
    float tick_hz() const { return m_tick_hz; }
    void set_observer(RunObserver* observer) { m_observer.store(observer); }  // nullptr = none (see RunObserver)

private:
    void worker();
    void publish_locked(FrameSnapshot::Kind kind);  // engine frame + stats -> the ready slot (m_mutex held)
    ControlResult wait_result(uint64_t id);

    std::unique_ptr<Engine> m_engine;  // used by the worker only, after construction
    std::string m_name, m_describe;
    bool m_has_model = false;
    float m_tick_hz;
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_stop = false;
    bool m_busy = false;      // a step is requested or running
    bool m_applying = false;  // a control is being applied
    std::optional<game::Action> m_request;
    SteadyClock::time_point m_request_sampled_at;
    uint64_t m_request_id = 0;                            // its place among the posted controls (one counter for both)
    std::deque<std::pair<uint64_t, Control>> m_controls;  // posted, not applied yet
    std::deque<SteadyClock::time_point> m_control_times;  // when each was posted
    std::vector<ControlResult> m_results;
    uint64_t m_next_id = 1;
    int m_resets_pending = 0;  // a step finishing while a reset waits is not shown
    int64_t m_submitted = 0;
    int64_t m_steps_done = 0;
    std::string m_failure;
    std::string m_prompt;  // the engine's prompt (copied by the worker after each change)
    game::Image m_work;    // the engine renders here
    game::Image m_ready;   // the newest finished frame
    FrameSnapshot m_ready_snapshot;
    bool m_has_new = false;
    std::atomic<RunObserver*> m_observer{nullptr};
    std::thread m_thread;
};

}  // namespace dc::app
