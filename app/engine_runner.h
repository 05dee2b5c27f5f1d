// app/engine_runner.h — runs an Engine on a worker thread so the window loop never waits for a frame.
//
//   dc::app::EngineRunner runner(std::move(engine));           // frame 0 is rendered on construction
//   each display frame:
//       while (tick due && !runner.busy()) runner.try_step(action);   // one step in flight at most
//       if (runner.take_frame(image, snapshot)) upload(image);        // the newest finished frame
//   rare user actions (block until the running step ends):
//       runner.reset(seed);  runner.set_prompt(text);   // set_prompt throws dc::Error, the old style stays
//
// The game clock stays frame-locked (one engine step = one game tick): when the engine is slower than the tick
// rate, ticks wait for it (the game slows down) and the display keeps redrawing the newest frame at its own rate.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "app/engine.h"

namespace dc::app {

// What the window shows next to a frame.
struct FrameSnapshot {
    enum class Kind { reset, step, restyle };   // how the frame came about (metrics log reset and step frames)
    Kind kind = Kind::reset;
    EngineStats stats;
    std::optional<game::Pose> pose;
    game::Action action;   // the action that produced the frame (none for frame 0)
};

class EngineRunner {
public:
    EngineRunner(std::unique_ptr<Engine> engine, uint64_t seed);   // resets the engine: frame 0 is ready at once
    ~EngineRunner();
    EngineRunner(const EngineRunner&) = delete;
    EngineRunner& operator=(const EngineRunner&) = delete;

    bool busy() const;                              // a step is running
    bool try_step(const game::Action& action);      // starts a step; false while one is running
    bool take_frame(game::Image& out, FrameSnapshot& snapshot);   // true when a newer frame is ready
    int64_t submitted_frame() const;                // frame number of the last requested frame
    void wait_idle();                               // until the running step (if any) is finished

    void reset(uint64_t seed);                      // back to frame 0
    void set_prompt(const std::string& prompt);     // throws dc::Error; redraws the current frame when it can
    std::string prompt() const;
    std::string name() const { return m_name; }
    float tick_hz() const { return m_tick_hz; }

private:
    void worker();
    void publish_locked(FrameSnapshot::Kind kind);   // engine frame + stats -> the ready slot (m_mutex held)

    std::unique_ptr<Engine> m_engine;   // used by the worker during steps, by the caller only when idle
    std::string m_name;
    float m_tick_hz;
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_stop = false;
    bool m_busy = false;
    std::optional<game::Action> m_request;
    int64_t m_submitted = 0;
    game::Image m_work;             // the engine renders here
    game::Image m_ready;            // the newest finished frame
    FrameSnapshot m_ready_snapshot;
    bool m_has_new = false;
    std::thread m_thread;
};

}  // namespace dc::app
