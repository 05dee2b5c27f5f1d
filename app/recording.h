// app/recording.h — recordings of play sessions: the recorder (play --record DIR, F9) and the reader (replay).
//
//   auto rec = dc::app::make_recorder(engine, config, options.set);   // keeps the run's history from frame 0
//   dc::app::RecorderOptions ro;  ro.dir = "runs/rec1";
//   rec->start(ro);                                   // writes the history so far, then every frame as it comes
//   rec->on_frame(frame, nullptr, engine.stats());    // frame 0 (after the reset)
//   rec->on_change(control);                          // a change applied before the next frame
//   rec->on_frame(frame, &action, engine.stats());    // frame 1, 2, ... (one call per model frame)
//   rec->stop();                                      // finishes video.mp4, marks session.json complete
//
//   dc::app::Recording r = dc::app::load_recording("runs/rec1");   // throws dc::Error naming file, line or field
//
// A recording is a folder:
//   session.json  format version, build, engine, model file + SHA-256 (null for the reference engine), level, seed,
//                 frame size, tick rate, the start settings (prompt, steps, attention spec, cache budget) and every
//                 change with the frame it first applies to (prompt, attention, steps, budget, reset, resync), the
//                 video's format, status ("recording", "complete", "stopped") and why it stopped.
//   actions       one text row per frame N >= 1: "N unix_time forward strafe turn use" (the action that made frame N;
//                 axes printed with 9 significant digits, so floats read back exactly).
//   frames        one text row per frame N >= 0: "N hash engine_frame" (game::Image::hash in hex: replay checks bit-
//                 exactness against it; engine_frame restarts at 0 after a reset).
//   metrics.csv   one row per frame from `recorded_from` on (kRecordingMetricsColumns): latency split, KV cache tokens
//                 and bytes, memory, attention figures, the video queue and the running count of dropped video frames.
//   video.mp4     H.264 of the frames from `recorded_from` on (video_encoder.h), when this build has libav.
//
// Frame numbers count the run's ticks: frame 0 is the start, frame N the image after N steps; a reset inside the run
// is a change (the engine goes back to the level start) and does not restart the count. A recording started mid-run
// (F9) still begins at frame 0: the recorder keeps the run's actions, hashes and changes in memory (~40 bytes a frame)
// and writes them when it starts, so a replay starts from the level start; video and metrics begin at the press.
//
// Durability: actions, frames and metrics.csv are appended and flushed (fflush, not fsync) every frame; the actions
// row of a frame is written before its frames row, so a frame is complete when both rows are. session.json is
// rewritten atomically (temp file + rename) when the recording starts, at every change (before the frame it applies
// to is written) and when it stops; a change that cannot be saved stops the recording before its frame. A crash or a
// full disk therefore leaves a recording that replays up to its last complete frame. The first failed write (disk
// full, file too large) stops the recording with a message; play goes on. SIGXFSZ is ignored while recording, so a
// file-size limit gives a write error instead of killing the program.
// Threads: every method may be called from any thread (one mutex); on_frame/on_change are meant for the model
// thread (they do small buffered writes; encoding happens on the video encoder's thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/controls.h"
#include "app/engine.h"
#include "app/engine_runner.h"
#include "game/game.h"

namespace dc::app {

class VideoEncoder;
struct PlayOptions;

constexpr int kRecordingFormatVersion = 1;  // session.json "format_version"; readers refuse newer versions
extern const char* const kRecordingMetricsColumns;

// How the run started: what a replay needs to make the same engine (session.json).
struct RecordingStart {
    std::string engine = "reference";      // reference | neural | side-by-side
    std::string model_path;                // absolute path of the model file ("" for the reference engine)
    std::string model_sha256;              // SHA-256 of that file ("" for the reference engine)
    std::string device;                    // cpu | cuda | cuda:N ("" for the reference engine)
    std::string level = "e1m1";            // level name
    uint64_t seed = 0;                     // game seed (and noise seed of the neural engine)
    std::string prompt;                    // style prompt at frame 0
    int n_steps = 4;                       // S Euler steps per frame at frame 0
    std::string attention_type = "dense";  // attention spec type at frame 0
    std::string attention_params = "{}";   // its JSON params at frame 0
    int64_t budget_tokens = 0;             // per-layer KV cache budget at frame 0 (0 = unbounded)
    std::vector<std::string> settings;     // the --set KEY=VALUE the run started with (for the reader; already applied)
    int frame_width = 0, frame_height = 0;  // size of every frame (side-by-side: twice as wide)
    double tick_hz = 15;                    // game ticks per second (the video's frame rate)
    std::string source;                     // what made it: "play --headless", "play", "replay"
};

struct RecordedChange {
    int64_t frame = 1;  // the first frame made with it (applied before step `frame`)
    Control control;
    double unix_time = 0;  // wall clock when it was applied
};

struct RecordedFrame {
    int64_t frame = 0;         // run tick
    double unix_time = 0;      // wall clock when the frame was ready
    game::Action action;       // the action that made it (frame 0: none)
    uint64_t hash = 0;         // game::Image::hash
    int64_t engine_frame = 0;  // the engine's own frame number (restarts at 0 after a reset)
};

struct RecorderOptions {
    std::string dir;              // the folder; created if missing; must not hold a recording already
    bool video = true;            // write video.mp4 (only when this build has libav; else a note says why not)
    bool video_lossless = false;  // libx264rgb QP 0: bit-exact frames in the video (bigger files)
    int video_scale = 1;          // nearest-neighbour upscale of the video (1..16); 1 = native 128x128
    int video_queue = 64;         // frames waiting for the encoder (~4 s); beyond that frames are dropped, counted
    bool video_wait = false;      // a full queue waits instead of dropping (headless: nothing real-time to keep up)
    std::string source;           // overrides RecordingStart::source when not empty
};

// A snapshot for the overlay.
struct RecorderStatus {
    bool active = false;
    std::string dir;
    int64_t frames_written = 0;  // frames in `frames` (history included)
    int64_t video_frames = 0;    // encoded into video.mp4 so far
    int64_t video_dropped = 0;   // dropped because the encoder fell behind (or after a video error)
    int64_t video_queue = 0;     // waiting for the encoder now
    double seconds = 0;          // since start()
};

class Recorder {
public:
    explicit Recorder(RecordingStart start);
    ~Recorder();  // stop()
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    // Starts writing into options.dir (history first). Throws dc::Error when the folder cannot be made or already
    // holds a recording, or the first files cannot be written; nothing is recording then.
    void start(const RecorderOptions& options);
    // Finishes the video and marks session.json "complete" (or "stopped" with `why`). Idempotent. The history stays:
    // a later start() writes a new folder that again begins at frame 0.
    void stop(const std::string& why = "");
    bool active() const;

    // The engine's calls, in order. on_frame: frame 0 (action nullptr) after the first reset, then one call per
    // model frame; input_to_frame_ms: the action's sampling to the frame being ready (-1 = n/a).
    void on_frame(const game::Image& frame, const game::Action* action, const EngineStats& stats,
                  double input_to_frame_ms = -1);
    void on_change(const Control& control);  // applied before the next frame
    int64_t next_frame() const;              // the frame number the next on_frame gets

    RecorderStatus status() const;
    // "recording to DIR", "recording stopped: ..." with true for errors (each is also dc::log'ed).
    std::vector<std::pair<std::string, bool>> take_messages();
    const RecordingStart& start_info() const { return m_start; }

private:
    void write_session_locked();  // session.json, atomically; throws dc::Error on a write failure
    void write_frame_locked(const RecordedFrame& f, const game::Image* image, const EngineStats* stats,
                            double input_to_frame_ms);  // throws dc::Error on a write failure
    // Ends the recording (status "complete", or "stopped" with a reason); hands the video over to be finished
    // outside the lock.
    void stop_locked(const std::string& why, std::unique_ptr<VideoEncoder>& video_out);
    void finish_video(std::unique_ptr<VideoEncoder> video, uint64_t generation);  // without the lock
    void message_locked(const std::string& m, bool error);

    RecordingStart m_start;
    mutable std::mutex m_mutex;
    std::vector<RecordedFrame> m_frames;  // the run so far
    std::vector<RecordedChange> m_changes;
    int64_t m_next = 0;
    // While recording.
    bool m_active = false;
    RecorderOptions m_options;
    std::string m_created;  // ISO time of start()
    double m_started_at = 0;
    int64_t m_recorded_from = 0;
    int64_t m_written = 0;      // frames written
    void* m_actions = nullptr;  // FILE*
    void* m_hashes = nullptr;   // FILE*
    void* m_metrics = nullptr;  // FILE*
    std::unique_ptr<VideoEncoder> m_video;
    std::string m_video_note;     // why there is no video
    nlohmann::json m_video_info;  // session.json "video" (null: none)
    std::string m_status;         // "recording", "complete", "stopped"
    std::string m_stop_reason;
    int64_t m_video_dropped = 0;  // dropped video frames (final once the encoder is finished)
    uint64_t m_generation = 0;    // counts start() calls: a late video finish must not touch a newer recording
    std::vector<std::pair<std::string, bool>> m_messages;
};

// What session.json records for an engine made from `config`: model file (absolute) and its SHA-256 when the engine
// has a model, the settings at frame 0, frame size from frame 0. `settings` are the --set values (informational).
RecordingStart recording_start(const EngineConfig& config, const std::string& engine_name, bool has_model,
                               const std::string& prompt, double tick_hz, const std::string& device,
                               const game::Image& frame0, const std::vector<std::string>& settings,
                               const std::string& source);
std::unique_ptr<Recorder> make_recorder(const Engine& engine, const EngineConfig& config, const game::Image& frame0,
                                        const std::vector<std::string>& settings = {}, const std::string& source = "");

// ---- play's hooks ----------------------------------------------------------------------------------------------

// --record-video / --record-scale of play as RecorderOptions (throws dc::Error on a bad value).
RecorderOptions recorder_options(const std::string& dir, const std::string& video, int scale,
                                 const std::string& source);

// Headless play: the recorder of the run when --record DIR was given (nullptr otherwise), started, with frame 0 (the
// frame after the engine's reset) already in. Then: on_change after each applied change, on_frame after each step,
// stop() at the end.
std::unique_ptr<Recorder> start_play_recording(const PlayOptions& options, const Engine& engine,
                                               const EngineConfig& config, const game::Image& frame0);

// The window's recorder: sees every step and applied change on the runner's worker thread (RunObserver) and keeps
// the run's history, so F9 can start a recording at any time that still replays from frame 0.
class RunnerRecording final : public RunObserver {
public:
    // frame0/stats0: the runner's first frame. Starts at once when options.record_dir is set (throws dc::Error when
    // that fails, before any window opens).
    RunnerRecording(EngineRunner& runner, const EngineConfig& config, const game::Image& frame0,
                    const EngineStats& stats0, const PlayOptions& options);
    ~RunnerRecording() override;  // stops the recording and detaches from the runner
    // F9: stops, or starts into --record DIR the first time and a new ./dreamcaster-rec-DATE-TIME folder afterwards.
    // A failure to start is a message, never an exception.
    void toggle();
    bool active() const { return m_recorder->active(); }
    RecorderStatus status() const { return m_recorder->status(); }
    // Messages for the overlay that the log does not already put there (errors are logged): (text, false).
    std::vector<std::pair<std::string, bool>> take_messages();

    void on_control(const Control& control, const std::string& error) override;
    void on_step(const game::Action& action, SteadyClock::time_point sampled_at, const game::Image& frame,
                 const Engine& engine) override;

private:
    EngineRunner& m_runner;
    std::unique_ptr<Recorder> m_recorder;
    RecorderOptions m_options;
    bool m_dir_used = false;  // --record DIR has been recorded into (F9 then makes new folders)
};

// A recording read back. Frames and changes stop at the last complete frame.
struct MetricsSample {
    double step_ms = -1;
    int64_t cache_tokens = -1, cache_bytes = -1, rss_bytes = -1, gpu_allocated_bytes = -1;
};
struct Recording {
    std::string dir;
    int format_version = 0;
    RecordingStart start;
    std::vector<RecordedChange> changes;  // frame <= last frame
    std::vector<RecordedFrame> frames;    // 0..last complete frame, in order
    std::string status;                   // "complete", "stopped", "recording" (= cut off: crash or kill)
    std::string stop_reason;              // why it stopped ("" when complete)
    std::string cut_note;                 // "" or where and why the files end early (a cut-off line, a missing row)
    int64_t recorded_from = 0;            // first frame in metrics.csv and video.mp4
    int64_t dropped_video_frames = 0;
    nlohmann::json video;                      // session.json "video" (null when there is none)
    std::map<int64_t, MetricsSample> metrics;  // metrics.csv by frame (empty when missing)
    nlohmann::json session;                    // all of session.json
    int64_t last_frame() const { return frames.empty() ? -1 : frames.back().frame; }
};
// Throws dc::Error naming the file and the line or field of the first problem: a malformed or missing
// session.json, a format_version newer than kRecordingFormatVersion, a malformed row before the last one. A cut-off
// last row (no newline: the writer stopped mid-line) ends the recording there with a cut_note.
Recording load_recording(const std::string& dir);

// "frame=N kind ..." as session.json stores a change, and back (throws naming `where`).
nlohmann::json change_to_json(const RecordedChange& c);
RecordedChange change_from_json(const nlohmann::json& j, const std::string& where);

std::string hash_hex(uint64_t hash);  // 16 lowercase hex digits

}  // namespace dc::app
