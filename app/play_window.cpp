// The windowed frame loop of `dreamcaster play`: poll -> commands -> fixed-rate ticks -> upload -> panels -> present.
// The engine runs on EngineRunner's worker thread; every change (prompt, toggles, reset, resync) is posted to it and
// never waits, so the display keeps its rate whatever the model costs.
#include <imgui.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "app/commands.h"
#include "app/engine.h"
#include "app/engine_runner.h"
#include "app/panels/panels.h"
#include "app/play.h"
#include "app/recording.h"
#include "common/common.h"
#include "input/input.h"
#include "render/render.h"

namespace dc::app {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string timestamped_screenshot_name(int64_t frame) {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char name[96];
    std::snprintf(name, sizeof(name), "dreamcaster-%04d%02d%02d-%02d%02d%02d-frame%06" PRId64 ".png", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frame);
    return name;
}

// Log lines of every thread: printed to stderr as before, and warnings and errors kept for the overlay.
class LogTap {
public:
    LogTap() {
        set_log_callback([this](LogLevel level, const std::string& message) {
            if (level == LogLevel::debug && !std::getenv("DC_DEBUG")) return;
            std::fprintf(stderr, "[dreamcaster] %s: %s\n", log_level_name(level), message.c_str());
            if (level == LogLevel::warn || level == LogLevel::error) {
                std::lock_guard<std::mutex> lock(m_mutex);
                m_lines.emplace_back(message, level == LogLevel::error);
            }
        });
    }
    ~LogTap() { set_log_callback(nullptr); }
    std::deque<std::pair<std::string, bool>> take() {
        std::lock_guard<std::mutex> lock(m_mutex);
        std::deque<std::pair<std::string, bool>> out;
        out.swap(m_lines);
        return out;
    }

private:
    std::mutex m_mutex;
    std::deque<std::pair<std::string, bool>> m_lines;
};

// Puts the shown frame into texture slot 0: by CUDA–GL interop when the frame is also in GPU memory (neural engine
// on CUDA) and interop works, else from host memory. The first interop failure switches it off for the rest of the
// run (said once in the log, which the overlay shows). frame_path() says which path the last frame took and why.
class FrameUploader {
public:
    explicit FrameUploader(render::Presenter& presenter) : m_presenter(presenter) {}

    void upload(const game::Image& frame, const FrameSnapshot& shown, const EngineRunner& runner) {
        const DeviceFrame& df = shown.device_frame;
        if (df && m_interop_error.empty()) {
            // The ring rule of FrameSnapshot::device_frame: no step begun after this frame may have reached its
            // buffer yet. (steps_done is read before busy, so a step that ends in between is not counted twice.)
            const int64_t later = runner.steps_done() - shown.steps_done + (runner.busy() ? 1 : 0);
            assert(later < DeviceFrame::kRing && "a device frame must be copied before its ring buffer comes round");
            (void)later;
            std::string why;
            if (df.width != frame.width || df.height != frame.height) {
                why = "the device frame is " + std::to_string(df.width) + "x" + std::to_string(df.height) +
                      ", the host frame " + std::to_string(frame.width) + "x" + std::to_string(frame.height);
            } else if (m_presenter.upload_device(0, df.rgba, df.width, df.height, df.device, &why)) {
                if (!m_interop_used)
                    dc::log(LogLevel::info, "frames reach the screen by CUDA-GL interop (CUDA device " +
                                                std::to_string(df.device) + ")");
                m_interop_used = true;
                m_path = "CUDA-GL interop";
                m_upload = "cuda-gl";
                return;
            }
            m_interop_error = why.empty() ? std::string("unknown error") : why;
            dc::log(LogLevel::warn, "CUDA-GL interop failed, frames go through host memory for the rest of the run: " +
                                        m_interop_error);
        }
        m_presenter.upload(0, frame.rgb.data(), frame.width, frame.height);
        m_path = "host upload (" + host_reason(shown) + ")";
        m_upload = "host";
    }

    const std::string& frame_path() const { return m_path; }  // for the overlay
    const std::string& metrics_value() const { return m_upload; }  // MetricsRow::upload

private:
    std::string host_reason(const FrameSnapshot& shown) const {
        if (!m_interop_error.empty()) return "interop off: " + m_interop_error;
        if (!render::Presenter::cuda_interop_built()) return "this build has no CUDA";
        if (shown.kind == FrameSnapshot::Kind::reset) return "reset frame, made on the host";
        if (shown.kind == FrameSnapshot::Kind::restyle) return "redrawn frame, made on the host";
        if (shown.stats.device.empty()) return "engine without a GPU";
        if (shown.stats.device == "cpu") return "model on the CPU";
        return "no GPU copy of this frame";
    }

    render::Presenter& m_presenter;
    std::string m_interop_error;  // why interop failed ("" = not failed)
    bool m_interop_used = false;
    std::string m_path, m_upload;
};

}  // namespace

int run_play_window(const PlayOptions& o) {
    // Everything that can fail on bad input fails before a window opens.
    const input::Bindings bindings =
        o.bindings_path.empty() ? input::Bindings::load_default() : input::Bindings::load(o.bindings_path);
    const std::vector<game::Action> script = load_actions(o.actions_path);
    NeuralSettings settings;
    std::vector<ToggleEntry> toggles;
    const EngineConfig config = start_config(o, settings, toggles);
    LogTap log_tap;
    EngineChoice choice = choose_engine(o, config, /*strict=*/false);
    if (!choice.notice.empty()) dc::log(LogLevel::warn, choice.notice);
    EngineRunner runner(std::move(choice.engine), o.seed);   // the engine steps on its own thread from here
    game::Image frame;   // the frame on screen
    FrameSnapshot shown;
    runner.take_frame(frame, shown);
    RunnerRecording recording(runner, config, frame, shown.stats, o);   // --record DIR, F9 (app/recording.h)

    render::PresenterConfig pc;
    pc.title = "Dreamcaster";
    if (o.window_width > 0 && o.window_height > 0) {
        pc.width = o.window_width;
        pc.height = o.window_height;
    } else {
        const int scale = o.scale > 0 ? o.scale : (frame.width > frame.height ? 3 : 5);
        default_window_size(frame.width, frame.height, scale, o.overlay, pc.width, pc.height);
    }
    pc.fullscreen = o.fullscreen;
    pc.smooth = o.smooth;
    std::unique_ptr<render::Presenter> presenter;
    try {
        presenter = std::make_unique<render::Presenter>(pc);
    } catch (const render::NoDisplayError& e) {
        print_no_display(e.message());
        return kExitNoDisplay;
    }
    dc::log(LogLevel::info, presenter->gl_info());
    FrameUploader uploader(*presenter);
    input::Keyboard keyboard(presenter->window(), &bindings);
    std::unique_ptr<input::Gamepads> pads;

    OverlayState ov;
    ov.engine_name = runner.name();
    ov.engine_describe = runner.describe();
    ov.engine_notice = choice.notice;
    ov.neural = runner.has_model();
    ov.side_by_side = runner.name() == "side-by-side";
    ov.level = o.level;
    ov.tick_hz = runner.tick_hz();
    ov.prompt_edit = ov.prompt_applied = runner.prompt();
    ov.bindings = &bindings;
    ov.smooth = o.smooth;
    ov.scripted = !script.empty();
    ov.script_length = static_cast<int64_t>(script.size());
    ov.now = presenter->time();
    ov.toggles = settings;
    ov.stats = shown.stats;
    try {
        pads = std::make_unique<input::Gamepads>(&bindings);
    } catch (const dc::Error& e) {
        ov.post(std::string("no gamepad support: ") + e.message(), true);
        dc::log(LogLevel::warn, e.message());
    }

    MetricsWriter metrics(o.metrics_path);
    TickClock clock(1.0 / runner.tick_hz());
    bool paused = false, step_once = false, pending_use = false;
    bool auto_shot_done = o.screenshot_at < 0;
    bool frame_dirty = true;
    double last_display_ms = 0;
    size_t next_toggle = 0;
    int64_t run_ticks = 0;   // ticks asked for since the start (toggle script frames count these)
    const std::string auto_shot_path =
        o.screenshot_path.empty() ? "dreamcaster-frame" + std::to_string(o.screenshot_at) + ".png" : o.screenshot_path;

    // One game tick: the toggle script's changes for it, then the action file's line while it lasts, then keys and
    // gamepad.
    auto tick = [&] {
        try {
            for (const Control& c :
                 due_controls(ov.toggles, toggles, next_toggle, run_ticks + 1, o.seed, o.toggles_path))
                runner.post(c);
        } catch (const dc::Error& err) {
            ov.post(err.message(), true);
        }
        const int64_t f = runner.submitted_frame();
        game::Action a;
        if (f < static_cast<int64_t>(script.size())) {
            a = script[f];
        } else {
            a = input::make_action(keyboard.held(), pads ? pads->state() : input::PadState{}, bindings);
            a.use = pending_use;
        }
        if (runner.try_step(a, SteadyClock::now())) {
            pending_use = false;
            ++run_ticks;
        }
    };
    // Ticks wait while the frame that must be screenshotted (or the last frame) is on its way or on screen.
    auto may_tick = [&] {
        const int64_t f = runner.submitted_frame();
        if (o.frames >= 0 && f >= o.frames) return false;
        if (!auto_shot_done && f == o.screenshot_at) return false;
        return !runner.busy() && runner.failure().empty();
    };
    // The newest finished frame: upload it; its metrics row is written once it has been presented.
    bool row_pending = false, first_present = false;
    SteadyClock::time_point last_ready;   // when the previous model frame was finished (model fps)
    // The widgets show the engine's settings, every parameter written out (at the start, and after a refusal).
    auto sync_toggles = [&](const EngineStats& st) {
        if (!ov.neural || st.attention.empty()) return;
        try {
            ov.toggles.set_type(st.attention);
            ov.toggles.params = nlohmann::json::parse(st.attention_params);
        } catch (const std::exception&) {
            return;
        }
        ov.toggles.n_steps = st.n_steps;
        ov.toggles.budget_tokens = std::max<int64_t>(0, st.budget_tokens);
    };
    auto collect = [&] {
        if (!runner.take_frame(frame, shown)) return;
        frame_dirty = true;
        first_present = true;
        row_pending = shown.kind != FrameSnapshot::Kind::restyle;
    };
    sync_toggles(shown.stats);   // frame 0's settings: the start settings, every parameter written out
    collect();

    double last = presenter->time();
    while (!presenter->should_close()) {
        const auto frame_start = std::chrono::steady_clock::now();
        presenter->poll_events();
        ov.now = presenter->time();
        for (auto& [text, error] : log_tap.take()) ov.post(text, error);
        for (auto& [text, error] : recording.take_messages()) ov.post(text, error);

        // Commands: keys (unless a text box has the keyboard) and gamepad buttons.
        keyboard.set_captured(ImGui::GetIO().WantCaptureKeyboard);
        ov.keyboard_captured = keyboard.captured();
        std::vector<input::Command> commands = keyboard.take_pressed();
        if (pads) {
            pads->poll();
            for (input::Command c : pads->take_pressed()) commands.push_back(c);
            for (const std::string& m : pads->take_messages()) ov.post(m, m.find("disconnected") != std::string::npos);
            const input::PadState& ps = pads->state();
            if (ps.connected) {
                ov.gamepad_name = ps.name;
                ov.gamepad_lost.clear();
            } else if (!ov.gamepad_name.empty()) {
                ov.gamepad_lost = ov.gamepad_name;
                ov.gamepad_name.clear();
            }
        }
        bool user_shot = false;
        for (input::Command c : commands) {
            switch (c) {
                case input::Command::use: pending_use = true; break;
                case input::Command::pause: paused = !paused; break;
                case input::Command::step:
                    if (paused) step_once = true;
                    break;
                case input::Command::reset: {
                    Control k;
                    k.kind = Control::Kind::reset;
                    k.value = static_cast<int64_t>(o.seed);
                    runner.post(k);
                    clock.reset();
                    break;
                }
                case input::Command::resync: {
                    Control k;
                    k.kind = Control::Kind::resync;
                    ov.controls.push_back(k);
                    break;
                }
                case input::Command::screenshot: user_shot = true; break;
                case input::Command::record: recording.toggle(); break;
                case input::Command::fullscreen: presenter->set_fullscreen(!presenter->fullscreen()); break;
                case input::Command::help: ov.show_help = !ov.show_help; break;
                case input::Command::quit: presenter->request_close(); break;
                default: break;
            }
        }
        for (const Control& c : ov.take_controls()) runner.post(c);
        for (const ControlResult& r : runner.take_results()) {
            ov.log_change(r);
            const bool toggle = r.control.kind == Control::Kind::attention ||
                                r.control.kind == Control::Kind::steps || r.control.kind == Control::Kind::budget;
            if (toggle && !r.error.empty()) sync_toggles(ov.stats);   // the engine kept its settings
            const std::string line = "frame " + std::to_string(r.frame) + ": " + r.control.describe();
            if (r.error.empty()) dc::log(LogLevel::info, line);
            else dc::log(LogLevel::warn, line + " refused: " + r.error);
            if (r.error.empty() && r.control.kind == Control::Kind::reset) ov.post("reset to the level start");
            if (r.error.empty() && r.control.kind == Control::Kind::prompt)
                ov.post(ov.neural ? "prompt applied from frame " + std::to_string(r.frame) : "prompt applied");
        }
        ov.engine_failure = runner.failure();

        // Game time: fixed ticks from the accumulated display time; one engine step in flight at most.
        const double now = presenter->time();
        if (!paused) clock.add(now - last);
        last = now;
        while (clock.due() && may_tick()) {
            clock.consume();
            tick();
        }
        if (paused && step_once && may_tick()) tick();
        step_once = false;
        collect();
        const auto draw_start = SteadyClock::now();
        if (frame_dirty) {   // right after take_frame, before the next try_step (the device frame's ring rule)
            uploader.upload(frame, shown, runner);
            ov.frame_path = uploader.frame_path();
            frame_dirty = false;
        }

        // Draw.
        presenter->set_smooth(ov.smooth);
        int fw = 0, fh = 0;
        presenter->framebuffer_size(fw, fh);
        const Layout lay = compute_layout(fw, fh, frame.width, frame.height, o.overlay, ov.smooth);
        presenter->begin_frame();
        presenter->draw_image(0, render::Rect{lay.game_x, lay.game_y, lay.game_w, lay.game_h});
        ov.frame = shown.stats.frame;
        ov.paused = paused;
        ov.pose = shown.pose;
        ov.last_action = shown.action;
        if (o.overlay) draw_overlay(ov, lay.panel_x, lay.panel_y, lay.panel_w, lay.panel_h);
        if (ov.show_help) draw_help_panel(ov, lay.game_x, lay.game_y, lay.game_w, lay.game_h);
        presenter->end_frame();

        if (ov.prompt_apply) {
            ov.prompt_apply = false;
            Control k;
            k.kind = Control::Kind::prompt;
            k.text = ov.prompt_edit;
            runner.post(k);   // the result (applied, or the error with the old style kept) comes back as a result
        }

        const int64_t f = shown.stats.frame;
        const bool auto_shot_now =
            !auto_shot_done && f == o.screenshot_at && runner.submitted_frame() == o.screenshot_at;
        if (auto_shot_now) {
            presenter->save_screenshot(auto_shot_path);
            auto_shot_done = true;
            ov.last_screenshot = auto_shot_path;
            std::printf("dreamcaster: screenshot of frame %" PRId64 " saved to %s (game view at x=%d y=%d %dx%d)\n", f,
                        auto_shot_path.c_str(), lay.game_x, lay.game_y, lay.game_w, lay.game_h);
            for (const PanelRect& r : ov.panel_rects)
                std::printf("dreamcaster: panel %s at x=%d y=%d %dx%d\n", r.name.c_str(), r.x, r.y, r.w, r.h);
            std::fflush(stdout);
        }
        if (user_shot) {
            const std::string path = timestamped_screenshot_name(f);
            try {
                presenter->save_screenshot(path);
                ov.last_screenshot = path;   // shown in the messages panel
                std::printf("dreamcaster: screenshot saved to %s\n", path.c_str());
                std::fflush(stdout);
            } catch (const dc::Error& e) {
                ov.post(e.message(), true);
            }
        }
        presenter->present();
        ++ov.display_frames;

        // Latency of a frame shown for the first time: present = upload + draw + swap; input-to-photon = action
        // sampled -> swapped.
        if (first_present) {
            first_present = false;
            const double present_ms = ms_since(draw_start);
            const double photon_ms =
                std::chrono::duration<double, std::milli>(SteadyClock::now() - shown.sampled_at).count();
            if (shown.kind == FrameSnapshot::Kind::step) {
                ov.record_frame(shown.stats, present_ms, photon_ms);
                if (last_ready != SteadyClock::time_point{}) {
                    const double dt = std::chrono::duration<double>(shown.ready_at - last_ready).count();
                    if (dt > 0) ov.model_fps = ov.model_fps == 0 ? 1.0 / dt : 0.8 * ov.model_fps + 0.2 / dt;
                }
                last_ready = shown.ready_at;
            } else {
                ov.stats = shown.stats;
            }
            if (row_pending) {
                MetricsRow row;
                row.stats = &shown.stats;
                row.pose = shown.pose ? &*shown.pose : nullptr;
                row.display_ms = last_display_ms;
                row.present_ms = present_ms;
                row.input_to_photon_ms = photon_ms;
                row.upload = uploader.metrics_value();
                metrics.row(row);
                row_pending = false;
            }
        }

        if (o.frames >= 0 && f >= o.frames && auto_shot_done && runner.submitted_frame() >= o.frames) break;

        // Without working vsync (virtual displays) cap the loop at the monitor's rate instead of spinning.
        const double budget_ms = 1000.0 / presenter->refresh_hz();
        const double spent_ms = ms_since(frame_start);
        if (spent_ms < budget_ms - 0.5)
            std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>((budget_ms - spent_ms) * 1000)));
        last_display_ms = ms_since(frame_start);
        if (!ov.plots_frozen) ov.display_ms.push(static_cast<float>(last_display_ms));
        if (last_display_ms > 0) {   // exponential smoothing over ~20 frames
            const float instant = 1000.f / static_cast<float>(last_display_ms);
            ov.fps = ov.fps == 0 ? instant : 0.95f * ov.fps + 0.05f * instant;
        }
        while (!ov.messages.empty() && ov.now - ov.messages.front().time > 8.0) ov.messages.pop_front();
    }
    runner.wait_idle();
    std::printf("dreamcaster: played %" PRId64 " frames with the %s engine", shown.stats.frame, runner.name().c_str());
    if (shown.pose)
        std::printf("; final pose x=%.3f y=%.3f angle=%.3f", shown.pose->x, shown.pose->y, shown.pose->angle);
    std::printf("; %" PRId64 " display frames, %" PRId64 " model frames\n", ov.display_frames, runner.steps_done());
    if (!choice.notice.empty()) std::printf("dreamcaster: note: %s\n", choice.notice.c_str());
    return kExitOk;
}

}  // namespace dc::app
