// Recordings: the recorder (history, append + flush per frame, atomic session.json) and the reader.
#include "app/recording.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "app/play.h"
#include "app/video_encoder.h"
#include "common/common.h"

#ifdef DC_HAVE_WORLD_MODEL
#include <torch/csrc/api/include/torch/version.h>
#endif

namespace dc::app {

const char* const kRecordingMetricsColumns =
    "frame,engine_frame,unix_time,step_ms,simulate_ms,render_ms,denoise_ms,commit_ms,decode_ms,input_to_frame_ms,"
    "cache_tokens,cache_bytes,budget_tokens,layer_tokens,layer_bytes,rss_bytes,gpu_allocated_bytes,"
    "gpu_reserved_bytes,density,recall,merge_rate,kept_fraction,psnr,ssim,steps,attention,video_queue,video_dropped";

namespace {

namespace fs = std::filesystem;

const char* const kActionsHeader = "# dreamcaster actions v1: frame unix_time forward strafe turn use\n";
const char* const kFramesHeader = "# dreamcaster frames v1: frame hash(FNV-1a 64 of the RGB frame) engine_frame\n";

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string iso_time(double unix_time) {
    const std::time_t t = static_cast<std::time_t>(unix_time);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char b[64];
    std::strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return b;
}

// Writes all of `text` and flushes; false on any error (errno says why).
bool put(void* file, const std::string& text) {
    auto* f = static_cast<std::FILE*>(file);
    if (std::fwrite(text.data(), 1, text.size(), f) != text.size()) return false;
    return std::fflush(f) == 0;
}

std::string errno_text() {
    return std::strerror(errno);
}

nlohmann::json build_info() {
    nlohmann::json b;
    b["dreamcaster"] = "0.1";
    b["compiler"] = __VERSION__;
    b["built"] = std::string(__DATE__) + " " + __TIME__;
#ifdef DC_HAVE_WORLD_MODEL
    b["torch"] = TORCH_VERSION;
#else
    b["torch"] = nullptr;
#endif
    b["video"] = video_library_info();
#if DC_GUI
    b["gui"] = true;
#else
    b["gui"] = false;
#endif
    return b;
}

const char* kind_name(Control::Kind k) {
    switch (k) {
        case Control::Kind::reset: return "reset";
        case Control::Kind::prompt: return "prompt";
        case Control::Kind::attention: return "attention";
        case Control::Kind::steps: return "steps";
        case Control::Kind::budget: return "budget";
        case Control::Kind::resync: return "resync";
    }
    return "?";
}

}  // namespace

std::string hash_hex(uint64_t hash) {
    char b[32];
    std::snprintf(b, sizeof(b), "%016" PRIx64, hash);
    return b;
}

// ---- changes <-> JSON -------------------------------------------------------------------------------------------

nlohmann::json change_to_json(const RecordedChange& c) {
    nlohmann::json j;
    j["frame"] = c.frame;
    j["kind"] = kind_name(c.control.kind);
    switch (c.control.kind) {
        case Control::Kind::reset: j["seed"] = c.control.value; break;
        case Control::Kind::prompt: j["prompt"] = c.control.text; break;
        case Control::Kind::attention: {
            j["type"] = c.control.text;
            nlohmann::json p = nlohmann::json::object();
            try {
                p = nlohmann::json::parse(c.control.params.empty() ? "{}" : c.control.params);
            } catch (const nlohmann::json::exception&) {
                p = c.control.params;  // kept as text; the reader hands it to the engine, which says what is wrong
            }
            j["params"] = p;
            break;
        }
        case Control::Kind::steps: j["steps"] = c.control.value; break;
        case Control::Kind::budget: j["tokens"] = c.control.value; break;
        case Control::Kind::resync: break;
    }
    j["unix_time"] = c.unix_time;
    j["describe"] = c.control.describe();
    return j;
}

namespace {

// `where` names the file (and list entry); `prefix` the enclosing fields, e.g. "start." for start.steps.
const nlohmann::json& field(const nlohmann::json& j, const char* name, const std::string& where,
                            const std::string& prefix = "") {
    DC_CHECK(j.is_object(), where << ": field \""
                                  << (prefix.empty() ? std::string("(top)") : prefix.substr(0, prefix.size() - 1))
                                  << "\": expected a JSON object, found " << j.type_name());
    DC_CHECK(j.contains(name), where << ": field \"" << prefix << name << "\" is missing");
    return j[name];
}

int64_t int_field(const nlohmann::json& j, const char* name, const std::string& where, int64_t lo, int64_t hi,
                  const std::string& prefix = "") {
    const nlohmann::json& v = field(j, name, where, prefix);
    DC_CHECK(v.is_number_integer() && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi,
             where << ": field \"" << prefix << name << "\": expected a whole number from " << lo << " to " << hi
                   << ", found " << v.dump());
    return v.get<int64_t>();
}

uint64_t uint_field(const nlohmann::json& j, const char* name, const std::string& where,
                    const std::string& prefix = "") {
    const nlohmann::json& v = field(j, name, where, prefix);
    DC_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
             where << ": field \"" << prefix << name << "\": expected a whole number >= 0, found " << v.dump());
    return v.get<uint64_t>();
}

double num_field(const nlohmann::json& j, const char* name, const std::string& where, const std::string& prefix = "") {
    const nlohmann::json& v = field(j, name, where, prefix);
    DC_CHECK(v.is_number(), where << ": field \"" << prefix << name << "\": expected a number, found " << v.dump());
    return v.get<double>();
}

std::string str_field(const nlohmann::json& j, const char* name, const std::string& where,
                      const std::string& prefix = "") {
    const nlohmann::json& v = field(j, name, where, prefix);
    DC_CHECK(v.is_string(), where << ": field \"" << prefix << name << "\": expected a string, found " << v.dump());
    return v.get<std::string>();
}

}  // namespace

RecordedChange change_from_json(const nlohmann::json& j, const std::string& where_in) {
    // where_in: "FILE" or "FILE|PREFIX." (the list entry, e.g. "changes[3].").
    const auto bar = where_in.find('|');
    const std::string where = where_in.substr(0, bar);
    const std::string pre = bar == std::string::npos ? "" : where_in.substr(bar + 1);
    RecordedChange c;
    c.frame = int_field(j, "frame", where, 1, int64_t(1) << 50, pre);
    const std::string kind = str_field(j, "kind", where, pre);
    if (j.contains("unix_time") && j["unix_time"].is_number()) c.unix_time = j["unix_time"].get<double>();
    Control& k = c.control;
    if (kind == "reset") {
        k.kind = Control::Kind::reset;
        k.value = static_cast<int64_t>(uint_field(j, "seed", where, pre));
    } else if (kind == "prompt") {
        k.kind = Control::Kind::prompt;
        k.text = str_field(j, "prompt", where, pre);
    } else if (kind == "attention") {
        k.kind = Control::Kind::attention;
        k.text = str_field(j, "type", where, pre);
        const nlohmann::json& p = field(j, "params", where, pre);
        DC_CHECK(p.is_object() || p.is_string(),
                 where << ": field \"" << pre << "params\": expected a JSON object, found " << p.dump());
        k.params = p.is_string() ? p.get<std::string>() : p.dump();
    } else if (kind == "steps") {
        k.kind = Control::Kind::steps;
        k.value = int_field(j, "steps", where, 1, 16, pre);
    } else if (kind == "budget") {
        k.kind = Control::Kind::budget;
        k.value = int_field(j, "tokens", where, 0, int64_t(1) << 50, pre);
    } else if (kind == "resync") {
        k.kind = Control::Kind::resync;
    } else {
        DC_FAIL(where << ": field \"" << pre << "kind\": expected reset, prompt, attention, steps, budget or resync, "
                      << "found \"" << kind << "\"");
    }
    return c;
}

// ---- recorder ---------------------------------------------------------------------------------------------------

Recorder::Recorder(RecordingStart start) : m_start(std::move(start)) {}

Recorder::~Recorder() {
    try {
        stop("the program left the recording without stopping it (an error?)");
    } catch (...) {
    }
}

bool Recorder::active() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_active;
}

int64_t Recorder::next_frame() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_next;
}

void Recorder::message_locked(const std::string& m, bool error) {
    m_messages.emplace_back(m, error);
    dc::log(error ? LogLevel::error : LogLevel::info, m);
}

std::vector<std::pair<std::string, bool>> Recorder::take_messages() {
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::pair<std::string, bool>> out;
    out.swap(m_messages);
    return out;
}

RecorderStatus Recorder::status() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    RecorderStatus s;
    s.active = m_active;
    s.dir = m_options.dir;
    s.frames_written = m_written;
    if (m_video) {
        s.video_frames = m_video->encoded();
        s.video_dropped = m_video->dropped();
        s.video_queue = m_video->queued();
    }
    s.seconds = m_active ? unix_now() - m_started_at : 0;
    return s;
}

namespace {

void write_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    DC_CHECK(f, "could not create " << tmp << ": " << errno_text());
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0;
    const std::string why = errno_text();
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed) {
        std::remove(tmp.c_str());
        DC_FAIL("could not write " << tmp << ": " << why << " (disk full?)");
    }
    DC_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0,
             "could not rename " << tmp << " to " << path << ": " << errno_text());
}

void close_file(void*& file) {
    if (file) std::fclose(static_cast<std::FILE*>(file));
    file = nullptr;
}

}  // namespace

void Recorder::write_session_locked() {
    nlohmann::json j;
    j["format"] = "dreamcaster-recording";
    j["format_version"] = kRecordingFormatVersion;
    j["created"] = m_created;
    j["updated"] = iso_time(unix_now());
    j["build"] = build_info();
    j["source"] = m_options.source.empty() ? m_start.source : m_options.source;
    j["engine"] = m_start.engine;
    if (m_start.model_path.empty())
        j["model"] = nullptr;  // the reference engine has no model
    else
        j["model"] = {{"path", m_start.model_path}, {"sha256", m_start.model_sha256}};
    j["device"] = m_start.device;
    j["level"] = m_start.level;
    j["seed"] = m_start.seed;
    j["frame_width"] = m_start.frame_width;
    j["frame_height"] = m_start.frame_height;
    j["tick_hz"] = m_start.tick_hz;
    nlohmann::json params = nlohmann::json::object();
    try {
        params = nlohmann::json::parse(m_start.attention_params.empty() ? "{}" : m_start.attention_params);
    } catch (const nlohmann::json::exception&) {
        params = m_start.attention_params;
    }
    j["start"] = {{"prompt", m_start.prompt},
                  {"steps", m_start.n_steps},
                  {"attention", {{"type", m_start.attention_type}, {"params", params}}},
                  {"budget_tokens", m_start.budget_tokens},
                  {"settings", m_start.settings}};
    nlohmann::json changes = nlohmann::json::array();
    for (const RecordedChange& c : m_changes) changes.push_back(change_to_json(c));
    j["changes"] = changes;
    j["recorded_from"] = m_recorded_from;
    j["files"] = {{"actions", "actions"}, {"frames", "frames"}, {"metrics", "metrics.csv"}};
    j["video"] = m_video_info;
    if (m_video_info.is_null()) j["video_note"] = m_video_note;
    j["status"] = m_status;
    j["stop_reason"] = m_stop_reason;
    j["last_frame"] = m_written - 1;  // the last frame written (-1: none)
    j["dropped_video_frames"] = m_video ? m_video->dropped() : m_video_dropped;
    write_atomically((fs::path(m_options.dir) / "session.json").string(), j.dump(2) + "\n");
}

void Recorder::write_frame_locked(const RecordedFrame& f, const game::Image* image, const EngineStats* stats,
                                  double input_to_frame_ms) {
    const std::string dir = m_options.dir;
    char line[256];
    if (f.frame >= 1) {
        std::snprintf(line, sizeof(line), "%" PRId64 " %.6f %.9g %.9g %.9g %d\n", f.frame, f.unix_time,
                      static_cast<double>(f.action.forward), static_cast<double>(f.action.strafe),
                      static_cast<double>(f.action.turn), f.action.use ? 1 : 0);
        DC_CHECK(put(m_actions, line),
                 "writing " << dir << "/actions failed at frame " << f.frame << ": " << errno_text());
    }
    std::snprintf(line, sizeof(line), "%" PRId64 " %s %" PRId64 "\n", f.frame, hash_hex(f.hash).c_str(),
                  f.engine_frame);
    DC_CHECK(put(m_hashes, line), "writing " << dir << "/frames failed at frame " << f.frame << ": " << errno_text());
    ++m_written;
    if (!image || !stats) return;  // history written at start(): no metrics, no video

    int64_t queue = -1, dropped = -1;
    if (m_video) {
        m_video->push(*image, f.frame, m_options.video_wait);  // a drop is counted by the encoder
        queue = m_video->queued();
        dropped = m_video->dropped();
    }
    const EngineStats& s = *stats;
    char head[96];
    std::snprintf(head, sizeof(head), "%" PRId64 ",%" PRId64 ",%.6f,", f.frame, f.engine_frame, f.unix_time);
    const std::vector<std::string> cells{csv_num(s.step_ms),
                                         csv_num(s.simulate_ms),
                                         csv_num(s.render_ms),
                                         csv_num(s.denoise_ms),
                                         csv_num(s.commit_ms),
                                         csv_num(s.decode_ms),
                                         csv_num(input_to_frame_ms),
                                         csv_num(s.cache_tokens),
                                         csv_num(s.cache_bytes),
                                         csv_num(s.budget_tokens),
                                         csv_list(s.layer_tokens),
                                         csv_list(s.layer_bytes),
                                         csv_num(s.rss_bytes),
                                         csv_num(s.gpu_allocated_bytes),
                                         csv_num(s.gpu_reserved_bytes),
                                         csv_num(s.density, 5),
                                         csv_num(s.recall, 5),
                                         csv_num(s.merge_rate, 5),
                                         csv_num(s.kept_fraction, 5),
                                         csv_num(s.psnr, 3),
                                         csv_num(s.ssim, 5),
                                         s.n_steps > 0 ? std::to_string(s.n_steps) : "",
                                         s.attention,
                                         csv_num(queue),
                                         csv_num(dropped)};
    std::string row = head;
    for (size_t i = 0; i < cells.size(); ++i) row += (i ? "," : "") + cells[i];
    row += "\n";
    DC_CHECK(put(m_metrics, row),
             "writing " << dir << "/metrics.csv failed at frame " << f.frame << ": " << errno_text());
}

void Recorder::start(const RecorderOptions& options) {
    std::lock_guard<std::mutex> lock(m_mutex);
    DC_CHECK(!m_active, "already recording to " << m_options.dir << " (stop it first)");
    DC_CHECK(!options.dir.empty(), "recording: expected a folder, found an empty name");
    DC_CHECK(options.video_scale >= 1 && options.video_scale <= 16,
             "recording: video scale expected 1 to 16, found " << options.video_scale);
    std::error_code ec;
    fs::create_directories(options.dir, ec);
    DC_CHECK(!ec, "could not create the recording folder " << options.dir << ": " << ec.message());
    DC_CHECK(!fs::exists(fs::path(options.dir) / "session.json"),
             options.dir << " already holds a recording (session.json); choose another folder or remove it");
    std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit gives EFBIG (the recording stops) instead of killing play

    m_options = options;
    m_options.dir = fs::absolute(options.dir, ec).lexically_normal().string();  // a later chdir changes nothing
    if (ec) m_options.dir = options.dir;
    m_created = iso_time(unix_now());
    m_started_at = unix_now();
    m_recorded_from = m_next;
    m_written = 0;
    m_status = "recording";
    m_stop_reason.clear();
    m_video_dropped = 0;
    m_video_info = nullptr;
    m_video_note.clear();
    ++m_generation;
    auto cleanup = [&] {
        close_file(m_actions);
        close_file(m_hashes);
        close_file(m_metrics);
        if (m_video) m_video->finish();
        m_video.reset();
    };
    try {
        auto open = [&](const char* name, const char* header) {
            const std::string path = (fs::path(options.dir) / name).string();
            std::FILE* f = std::fopen(path.c_str(), "w");
            DC_CHECK(f, "could not create " << path << ": " << errno_text());
            DC_CHECK(put(f, header), "could not write " << path << ": " << errno_text());
            return static_cast<void*>(f);
        };
        m_actions = open("actions", kActionsHeader);
        m_hashes = open("frames", kFramesHeader);
        m_metrics = open("metrics.csv", (std::string(kRecordingMetricsColumns) + "\n").c_str());
        if (!options.video) {
            m_video_note = "video off (asked for no video)";
        } else if (!video_encoding_available()) {
            m_video_note = "no video.mp4: this build has no libavcodec/libavformat";
            message_locked("recording without video: " + m_video_note, false);
        } else if (m_start.frame_width <= 0 || m_start.frame_height <= 0) {
            m_video_note = "no video.mp4: the frame size is unknown";
        } else {
            VideoOptions vo;
            vo.width = m_start.frame_width;
            vo.height = m_start.frame_height;
            vo.scale = options.video_scale;
            vo.fps = m_start.tick_hz;
            vo.lossless = options.video_lossless;
            vo.queue_frames = options.video_queue;
            m_video = std::make_unique<VideoEncoder>((fs::path(options.dir) / "video.mp4").string(), vo);
            m_video_info = {{"file", "video.mp4"},
                            {"codec", m_video->codec()},
                            {"width", vo.width * vo.scale},
                            {"height", vo.height * vo.scale},
                            {"scale", vo.scale},
                            {"fps", vo.fps},
                            {"lossless", vo.lossless},
                            {"first_frame", m_recorded_from}};
        }
        write_session_locked();
        for (const RecordedFrame& f : m_frames) write_frame_locked(f, nullptr, nullptr, -1);
    } catch (...) {
        cleanup();
        throw;
    }
    m_active = true;
    message_locked(
        "recording to " + m_options.dir +
            (m_recorded_from > 0 ? " (frames 0-" + std::to_string(m_recorded_from - 1) + " from the run so far)"
                                 : std::string()),
        false);
}

void Recorder::stop_locked(const std::string& why, std::unique_ptr<VideoEncoder>& video_out) {
    if (!m_active) return;
    m_active = false;
    close_file(m_actions);
    close_file(m_hashes);
    close_file(m_metrics);
    m_status = why.empty() ? "complete" : "stopped";
    m_stop_reason = why;
    try {
        write_session_locked();
    } catch (const dc::Error& e) {
        message_locked("could not finish " + m_options.dir + "/session.json: " + e.message() +
                           " (the recording still replays up to its last complete frame)",
                       true);
    }
    if (m_video) m_video_dropped = m_video->dropped();
    video_out = std::move(m_video);
    if (why.empty())
        message_locked("recording saved to " + m_options.dir + " (frames 0-" + std::to_string(m_written - 1) + ")",
                       false);
    else
        message_locked("recording stopped at frame " + std::to_string(m_written - 1) + ": " + why + " (play goes on; " +
                           m_options.dir + " replays up to its last complete frame)",
                       true);
}

void Recorder::finish_video(std::unique_ptr<VideoEncoder> video, uint64_t generation) {
    if (!video) return;
    const std::string err = video->finish();  // may take a moment: the queue is encoded first
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_generation != generation || m_active) return;  // a newer recording has started meanwhile
    m_video_dropped = video->dropped();
    if (m_video_info.is_object()) {
        m_video_info["encoded"] = video->encoded();
        m_video_info["dropped"] = video->dropped();
        if (!err.empty()) m_video_info["error"] = err;
    }
    try {
        write_session_locked();
    } catch (const dc::Error&) {
        // Already said in stop_locked when the disk is full; the earlier session.json stays valid.
    }
}

void Recorder::stop(const std::string& why) {
    std::unique_ptr<VideoEncoder> video;
    uint64_t generation;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        stop_locked(why, video);
        generation = m_generation;
    }
    finish_video(std::move(video), generation);
}

void Recorder::on_frame(const game::Image& frame, const game::Action* action, const EngineStats& stats,
                        double input_to_frame_ms) {
    std::unique_ptr<VideoEncoder> video;
    uint64_t generation;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        RecordedFrame f;
        f.frame = m_next++;
        f.unix_time = unix_now();
        if (action) f.action = *action;
        f.hash = frame.hash();
        f.engine_frame = stats.frame;
        m_frames.push_back(f);
        if (!m_active) return;
        try {
            write_frame_locked(f, &frame, &stats, input_to_frame_ms);
            if (m_video && !m_video->error().empty()) DC_FAIL(m_video->error());
        } catch (const dc::Error& e) {
            stop_locked(e.message(), video);
        }
        generation = m_generation;
    }
    finish_video(std::move(video), generation);
}

void Recorder::on_change(const Control& control) {
    std::unique_ptr<VideoEncoder> video;
    uint64_t generation;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        DC_CHECK(m_next >= 1, "a change before frame 0 belongs in the start settings");
        RecordedChange c;
        c.frame = m_next;
        c.control = control;
        c.unix_time = unix_now();
        m_changes.push_back(c);
        if (!m_active) return;
        try {
            write_session_locked();  // before the frame made with the change is written
        } catch (const dc::Error& e) {
            stop_locked(e.message(), video);
        }
        generation = m_generation;
    }
    finish_video(std::move(video), generation);
}

RecordingStart recording_start(const EngineConfig& config, const std::string& engine_name, bool has_model,
                               const std::string& prompt, double tick_hz, const std::string& device,
                               const game::Image& frame0, const std::vector<std::string>& settings,
                               const std::string& source) {
    RecordingStart s;
    s.engine = engine_name;
    if (has_model) {
        const std::string path = config.model_path.empty() ? default_model_path() : config.model_path;
        std::error_code ec;
        const fs::path abs = fs::absolute(path, ec);
        s.model_path = ec ? path : abs.lexically_normal().string();
        s.model_sha256 = sha256_file(path);
        s.device = !device.empty() ? device : (config.device.empty() ? default_device() : config.device);
    }
    s.level = config.level;
    s.seed = config.seed;
    s.prompt = prompt;
    s.n_steps = config.n_steps;
    s.attention_type = config.attention_type;
    s.attention_params = config.attention_params;
    s.budget_tokens = config.max_cache_tokens;
    s.settings = settings;
    s.frame_width = frame0.width;
    s.frame_height = frame0.height;
    s.tick_hz = tick_hz;
    s.source = source;
    return s;
}

std::unique_ptr<Recorder> make_recorder(const Engine& engine, const EngineConfig& config, const game::Image& frame0,
                                        const std::vector<std::string>& settings, const std::string& source) {
    return std::make_unique<Recorder>(recording_start(config, engine.name(), engine.has_model(), engine.prompt(),
                                                      engine.tick_hz(), engine.stats().device, frame0, settings,
                                                      source));
}

// ---- play's hooks -----------------------------------------------------------------------------------------------

RecorderOptions recorder_options(const std::string& dir, const std::string& video, int scale,
                                 const std::string& source) {
    DC_CHECK(video == "h264" || video == "lossless" || video == "none",
             "--record-video: expected h264, lossless or none, found \"" << video << "\"");
    DC_CHECK(scale >= 1 && scale <= 16, "--record-scale: expected a whole number from 1 to 16, found " << scale);
    RecorderOptions ro;
    ro.dir = dir;
    ro.video = video != "none";
    ro.video_lossless = video == "lossless";
    ro.video_scale = scale;
    ro.source = source;
    return ro;
}

std::unique_ptr<Recorder> start_play_recording(const PlayOptions& o, const Engine& engine, const EngineConfig& config,
                                               const game::Image& frame0) {
    if (o.record_dir.empty()) return nullptr;
    auto rec = make_recorder(engine, config, frame0, o.set, "play --headless");
    RecorderOptions ro = recorder_options(o.record_dir, o.record_video, o.record_scale, "");
    ro.video_wait = true;  // headless: the loop is not real-time, so the video keeps every frame
    rec->start(ro);
    rec->on_frame(frame0, nullptr, engine.stats());
    return rec;
}

namespace {
std::string timestamped_folder() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char name[96];
    std::snprintf(name, sizeof(name), "dreamcaster-rec-%04d%02d%02d-%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    std::string dir = name;
    for (int i = 2; fs::exists(dir); ++i) dir = std::string(name) + "-" + std::to_string(i);
    return dir;
}
}  // namespace

RunnerRecording::RunnerRecording(EngineRunner& runner, const EngineConfig& config, const game::Image& frame0,
                                 const EngineStats& stats0, const PlayOptions& o)
    : m_runner(runner) {
    m_options = recorder_options(o.record_dir, o.record_video, o.record_scale, "play");
    m_recorder = std::make_unique<Recorder>(recording_start(config, runner.name(), runner.has_model(), runner.prompt(),
                                                            runner.tick_hz(), stats0.device, frame0, o.set, "play"));
    m_recorder->on_frame(frame0, nullptr, stats0);
    if (!o.record_dir.empty()) {
        m_recorder->start(m_options);  // throws: play stops before a window opens
        m_dir_used = true;
    }
    m_runner.set_observer(this);
}

RunnerRecording::~RunnerRecording() {
    m_runner.set_observer(nullptr);
    m_runner.wait_idle();  // no observer call is running after this
    m_recorder->stop();
}

void RunnerRecording::toggle() {
    if (m_recorder->active()) {
        m_recorder->stop();
        return;
    }
    RecorderOptions ro = m_options;
    if (ro.dir.empty() || m_dir_used) ro.dir = timestamped_folder();
    try {
        m_recorder->start(ro);
        m_dir_used = true;
    } catch (const dc::Error& e) {
        dc::log(LogLevel::error, "could not start recording: " + e.message());  // the overlay shows errors
    }
}

std::vector<std::pair<std::string, bool>> RunnerRecording::take_messages() {
    std::vector<std::pair<std::string, bool>> out;
    for (auto& m : m_recorder->take_messages())
        if (!m.second) out.push_back(m);  // errors reach the overlay through the log already
    return out;
}

void RunnerRecording::on_control(const Control& control, const std::string& error) {
    if (error.empty()) m_recorder->on_change(control);
}

void RunnerRecording::on_step(const game::Action& action, SteadyClock::time_point sampled_at, const game::Image& frame,
                              const Engine& engine) {
    const double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - sampled_at).count();
    m_recorder->on_frame(frame, &action, engine.stats(), ms);
}

// ---- reader -----------------------------------------------------------------------------------------------------

namespace {

struct TextLine {
    int number = 0;        // 1-based line number in the file
    std::string text;      // without the newline
    bool complete = true;  // ended with a newline
};

std::vector<TextLine> read_lines(const std::string& path) {
    const std::string all = read_text_file(path);
    std::vector<TextLine> out;
    size_t pos = 0;
    int n = 0;
    while (pos < all.size()) {
        const size_t nl = all.find('\n', pos);
        TextLine l;
        l.number = ++n;
        if (nl == std::string::npos) {
            l.text = all.substr(pos);
            l.complete = false;
            pos = all.size();
        } else {
            l.text = all.substr(pos, nl - pos);
            pos = nl + 1;
        }
        out.push_back(std::move(l));
    }
    return out;
}

bool skip_line(const std::string& t) {
    for (char c : t)
        if (c != ' ' && c != '\t' && c != '\r') return c == '#';
    return true;
}

bool parse_float(const std::string& s, float& out) {
    char* end = nullptr;
    errno = 0;
    const float v = std::strtof(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) return false;
    out = v;
    return true;
}

bool parse_i64(const std::string& s, int64_t& out) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end == s.c_str() || *end != '\0' || errno == ERANGE) return false;
    out = v;
    return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false;
    for (char c : s) {
        if (c == '"') quoted = !quoted;
        if (c == sep && !quoted) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}

std::vector<std::string> words(const std::string& s) {
    std::istringstream is(s);
    std::vector<std::string> out;
    for (std::string w; is >> w;) out.push_back(w);
    return out;
}

}  // namespace

Recording load_recording(const std::string& dir) {
    Recording r;
    r.dir = dir;
    DC_CHECK(fs::is_directory(dir), "no recording at " << dir << ": not a folder");
    const std::string session_path = (fs::path(dir) / "session.json").string();
    DC_CHECK(fs::exists(session_path), "no recording at "
                                           << dir << ": " << session_path
                                           << " is missing (a recording folder holds "
                                              "session.json, actions, frames, metrics.csv and video.mp4)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(session_path));
    } catch (const nlohmann::json::parse_error& e) {
        DC_FAIL(session_path << ": not valid JSON: " << e.what());
    }
    const std::string where = session_path;
    DC_CHECK(j.is_object(), where << ": expected a JSON object, found " << j.type_name());
    DC_CHECK(j.contains("format") && j["format"] == "dreamcaster-recording",
             where << ": field \"format\": expected \"dreamcaster-recording\", found "
                   << (j.contains("format") ? j["format"].dump() : std::string("nothing")));
    DC_CHECK(j.contains("format_version") && j["format_version"].is_number_integer(),
             where << ": field \"format_version\": expected a whole number, found "
                   << (j.contains("format_version") ? j["format_version"].dump() : std::string("nothing")));
    r.format_version = j["format_version"].get<int>();
    DC_CHECK(r.format_version <= kRecordingFormatVersion,
             where << ": format_version " << r.format_version << " is newer than this dreamcaster reads ("
                   << kRecordingFormatVersion << "): replay it with a newer dreamcaster");
    DC_CHECK(r.format_version >= 1, where << ": field \"format_version\": expected 1, found " << r.format_version);

    RecordingStart& s = r.start;
    s.engine = str_field(j, "engine", where);
    const auto& known = known_engine_names();
    DC_CHECK(std::find(known.begin(), known.end(), s.engine) != known.end(),
             where << ": field \"engine\": expected reference, neural or side-by-side, found \"" << s.engine << "\"");
    const nlohmann::json& model = field(j, "model", where);
    if (s.engine == "reference") {
        DC_CHECK(model.is_null(),
                 where << ": field \"model\": expected null for the reference engine, found " << model.dump());
    } else {
        s.model_path = str_field(model, "path", where, "model.");
        s.model_sha256 = str_field(model, "sha256", where, "model.");
    }
    s.device = str_field(j, "device", where);
    s.level = str_field(j, "level", where);
    s.seed = uint_field(j, "seed", where);
    s.frame_width = static_cast<int>(int_field(j, "frame_width", where, 1, 1 << 16));
    s.frame_height = static_cast<int>(int_field(j, "frame_height", where, 1, 1 << 16));
    s.tick_hz = num_field(j, "tick_hz", where);
    DC_CHECK(s.tick_hz > 0, where << ": field \"tick_hz\": expected a positive number, found " << s.tick_hz);
    if (j.contains("source") && j["source"].is_string()) s.source = j["source"].get<std::string>();
    const nlohmann::json& st = field(j, "start", where);
    s.prompt = str_field(st, "prompt", where, "start.");
    s.n_steps = static_cast<int>(int_field(st, "steps", where, 1, 16, "start."));
    const nlohmann::json& att = field(st, "attention", where, "start.");
    s.attention_type = str_field(att, "type", where, "start.attention.");
    const nlohmann::json& params = field(att, "params", where, "start.attention.");
    DC_CHECK(params.is_object() || params.is_string(),
             where << ": field \"start.attention.params\": expected a JSON object, found " << params.dump());
    s.attention_params = params.is_string() ? params.get<std::string>() : params.dump();
    s.budget_tokens = int_field(st, "budget_tokens", where, 0, int64_t(1) << 50, "start.");
    if (st.contains("settings") && st["settings"].is_array())
        for (const auto& v : st["settings"])
            if (v.is_string()) s.settings.push_back(v.get<std::string>());
    const nlohmann::json& changes = field(j, "changes", where);
    DC_CHECK(changes.is_array(), where << ": field \"changes\": expected a list, found " << changes.type_name());
    for (size_t i = 0; i < changes.size(); ++i) {
        RecordedChange c = change_from_json(changes[i], where + "|changes[" + std::to_string(i) + "].");
        DC_CHECK(r.changes.empty() || c.frame >= r.changes.back().frame,
                 where << ": field \"changes[" << i << "].frame\": frame " << c.frame << " comes after frame "
                       << r.changes.back().frame << " (changes must be in frame order)");
        r.changes.push_back(std::move(c));
    }
    r.recorded_from = int_field(j, "recorded_from", where, 0, int64_t(1) << 50);
    r.status = str_field(j, "status", where);
    DC_CHECK(r.status == "recording" || r.status == "complete" || r.status == "stopped",
             where << ": field \"status\": expected recording, complete or stopped, found \"" << r.status << "\"");
    if (j.contains("stop_reason") && j["stop_reason"].is_string()) r.stop_reason = j["stop_reason"].get<std::string>();
    if (j.contains("dropped_video_frames") && j["dropped_video_frames"].is_number_integer())
        r.dropped_video_frames = j["dropped_video_frames"].get<int64_t>();
    r.video = j.contains("video") ? j["video"] : nlohmann::json(nullptr);
    r.session = j;

    // actions: frames 1..
    std::vector<std::string> cut;
    const std::string actions_path = (fs::path(dir) / "actions").string();
    DC_CHECK(fs::exists(actions_path), "the recording " << dir << " has no actions file (" << actions_path << ")");
    std::vector<std::pair<game::Action, double>> actions(1);  // index = frame; [0] unused
    {
        const auto lines = read_lines(actions_path);
        for (const TextLine& l : lines) {
            if (!l.complete) {
                cut.push_back("actions line " + std::to_string(l.number) + " is cut off mid-row (\"" + l.text + "\")");
                break;
            }
            if (skip_line(l.text)) continue;
            const auto w = words(l.text);
            int64_t frame = 0, use = 0;
            float fwd = 0, str = 0, trn = 0;
            double t = 0;
            char* end = nullptr;
            const bool ok = w.size() == 6 && parse_i64(w[0], frame) &&
                            (t = std::strtod(w[1].c_str(), &end), *end == 0) && parse_float(w[2], fwd) &&
                            parse_float(w[3], str) && parse_float(w[4], trn) && parse_i64(w[5], use) &&
                            (use == 0 || use == 1);
            DC_CHECK(ok, actions_path << ":" << l.number
                                      << ": expected \"FRAME UNIX_TIME FORWARD STRAFE TURN USE(0/1)\", found \""
                                      << l.text << "\"");
            DC_CHECK(frame == static_cast<int64_t>(actions.size()),
                     actions_path << ":" << l.number << ": expected frame " << actions.size() << ", found frame "
                                  << frame << " (rows must count up from 1 without gaps)");
            game::Action a;
            a.forward = fwd;
            a.strafe = str;
            a.turn = trn;
            a.use = use == 1;
            actions.emplace_back(a, t);
        }
    }
    // frames: frames 0..
    const std::string frames_path = (fs::path(dir) / "frames").string();
    DC_CHECK(fs::exists(frames_path), "the recording " << dir << " has no frames file (" << frames_path << ")");
    {
        const auto lines = read_lines(frames_path);
        for (const TextLine& l : lines) {
            if (!l.complete) {
                cut.push_back("frames line " + std::to_string(l.number) + " is cut off mid-row (\"" + l.text + "\")");
                break;
            }
            if (skip_line(l.text)) continue;
            const auto w = words(l.text);
            int64_t frame = 0, engine_frame = 0;
            char* end = nullptr;
            uint64_t hash = 0;
            bool ok = w.size() == 3 && parse_i64(w[0], frame) && w[1].size() == 16 && parse_i64(w[2], engine_frame);
            if (ok) {
                errno = 0;
                hash = std::strtoull(w[1].c_str(), &end, 16);
                ok = *end == 0 && errno == 0;
            }
            DC_CHECK(ok, frames_path << ":" << l.number
                                     << ": expected \"FRAME HASH(16 hex digits) ENGINE_FRAME\", found \"" << l.text
                                     << "\"");
            DC_CHECK(frame == static_cast<int64_t>(r.frames.size()),
                     frames_path << ":" << l.number << ": expected frame " << r.frames.size() << ", found frame "
                                 << frame << " (rows must count up from 0 without gaps)");
            RecordedFrame f;
            f.frame = frame;
            f.hash = hash;
            f.engine_frame = engine_frame;
            r.frames.push_back(f);
        }
    }
    DC_CHECK(!r.frames.empty(),
             "the recording " << dir << " has no complete frame (" << frames_path << " has no frame 0 row)");
    // A frame is complete when both its rows are.
    const int64_t last_action = static_cast<int64_t>(actions.size()) - 1;
    const int64_t last_hash = static_cast<int64_t>(r.frames.size()) - 1;
    const int64_t last = std::min(last_action, last_hash);
    if (last_hash > last)
        cut.push_back("frames has rows up to frame " + std::to_string(last_hash) + " but actions only up to frame " +
                      std::to_string(last_action));
    if (last_action > last)
        cut.push_back("actions has rows up to frame " + std::to_string(last_action) + " but frames only up to frame " +
                      std::to_string(last_hash));
    r.frames.resize(static_cast<size_t>(last + 1));
    for (int64_t f = 1; f <= last; ++f) {
        r.frames[f].action = actions[f].first;
        r.frames[f].unix_time = actions[f].second;
    }
    while (!r.changes.empty() && r.changes.back().frame > last) r.changes.pop_back();
    if (r.status == "recording")
        cut.insert(cut.begin(),
                   "session.json was never marked complete (the program was stopped while recording: "
                   "a crash or a kill?)");
    if (r.status == "stopped") cut.insert(cut.begin(), "the recording stopped: " + r.stop_reason);
    if (j.contains("last_frame") && j["last_frame"].is_number_integer() && r.status != "recording" &&
        j["last_frame"].get<int64_t>() > last)
        cut.push_back("session.json says frames up to " + std::to_string(j["last_frame"].get<int64_t>()) +
                      " were written");
    if (!cut.empty()) {
        std::string note = "the recording ends at frame " + std::to_string(last) + ": ";
        for (size_t i = 0; i < cut.size(); ++i) note += (i ? "; " : "") + cut[i];
        r.cut_note = note;
    }

    // metrics.csv (optional): the figures replay compares.
    const std::string metrics_path = (fs::path(dir) / "metrics.csv").string();
    if (fs::exists(metrics_path)) {
        const auto lines = read_lines(metrics_path);
        std::map<std::string, size_t> col;
        for (const TextLine& l : lines) {
            if (!l.complete) break;
            if (col.empty()) {
                const auto names = split(l.text, ',');
                for (size_t i = 0; i < names.size(); ++i) col[names[i]] = i;
                DC_CHECK(col.count("frame") && col.count("step_ms"),
                         metrics_path << ":" << l.number << ": expected a header with frame and step_ms, found \""
                                      << l.text << "\"");
                continue;
            }
            const auto cells = split(l.text, ',');
            DC_CHECK(cells.size() == col.size(), metrics_path << ":" << l.number << ": expected " << col.size()
                                                              << " cells, found " << cells.size());
            auto cell_i = [&](const char* name) -> int64_t {
                auto it = col.find(name);
                int64_t v = -1;
                if (it == col.end() || cells[it->second].empty()) return -1;
                DC_CHECK(parse_i64(cells[it->second], v), metrics_path << ":" << l.number << ": column " << name
                                                                       << ": expected a whole number, found \""
                                                                       << cells[it->second] << "\"");
                return v;
            };
            auto cell_d = [&](const char* name) -> double {
                auto it = col.find(name);
                if (it == col.end() || cells[it->second].empty()) return -1;
                char* end = nullptr;
                const double v = std::strtod(cells[it->second].c_str(), &end);
                DC_CHECK(*end == 0, metrics_path << ":" << l.number << ": column " << name
                                                 << ": expected a number, found \"" << cells[it->second] << "\"");
                return v;
            };
            const int64_t frame = cell_i("frame");
            if (frame > last) break;
            MetricsSample m;
            m.step_ms = cell_d("step_ms");
            m.cache_tokens = cell_i("cache_tokens");
            m.cache_bytes = cell_i("cache_bytes");
            m.rss_bytes = cell_i("rss_bytes");
            m.gpu_allocated_bytes = cell_i("gpu_allocated_bytes");
            r.metrics[frame] = m;
        }
    }
    return r;
}

}  // namespace dc::app
