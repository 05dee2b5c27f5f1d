// Recordings that were cut off or damaged: truncated files replay up to their last complete frame, a full disk stops
// the recording while play goes on, a killed program leaves a replayable recording, bad files say where they are bad.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "app/recording.h"
#include "app/replay.h"
#include "app/video_encoder.h"
#include "common/common.h"
#include "test_app_util.h"

namespace {

const char* kWalk =
    "1 0 0.3 0\n"
    "repeat 49\n"
    "0.6 0 0 1\n"
    "repeat 49\n"
    "0 0 1 0\n"
    "repeat 49\n"
    "0.8 0.1 -0.2 0\n"
    "repeat 49\n";  // 200 actions

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_all(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

size_t count_lines(const std::string& path) {
    const std::string s = read_all(path);
    return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

// A recording of the walk with a prompt change at frame 30.
std::string record(const dc_test::TempDir& dir, const std::string& extra = "--record-video none") {
    dc_test::write_file(dir.file("walk.txt"), kWalk);
    dc_test::write_file(dir.file("toggles.txt"), "frame 30 prompt the floor is mossy green\n");
    const std::string rec = dir.file("rec");
    const auto run =
        dc_test::run_dreamcaster("play --headless --engine reference --actions '" + dir.file("walk.txt") +
                                 "' --toggles '" + dir.file("toggles.txt") + "' --record '" + rec + "' " + extra);
    INFO(run.output);
    REQUIRE(run.code == 0);
    return rec;
}

// Starts dreamcaster with args in a child process, output to out_path; file_limit > 0 sets RLIMIT_FSIZE (bytes).
pid_t spawn(const std::vector<std::string>& args, const std::string& out_path, rlim_t file_limit) {
    std::vector<std::string> argv_s{dc_test::dreamcaster_binary()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    const pid_t pid = fork();
    if (pid == 0) {
        const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (file_limit > 0) {
            // Like a full disk: writes past the limit fail with EFBIG. SIGXFSZ is ignored (the recorder also ignores
            // it itself when recording starts), so the write fails instead of killing the program.
            rlimit rl{file_limit, file_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
            signal(SIGXFSZ, SIG_IGN);
        }
        std::vector<char*> argv;
        for (auto& a : argv_s) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("a recording whose actions file is cut mid-row replays up to its last complete frame and says so", "[app]") {
    dc_test::TempDir dir("cut");
    const std::string rec = record(dir);
    std::string actions = read_all(rec + "/actions");
    // Cut inside the row of frame 120 (as a crash or a full disk would leave it).
    const size_t row120 = actions.find("\n120 ") + 1;
    write_all(rec + "/actions", actions.substr(0, row120 + 9));
    const auto r = dc::app::load_recording(rec);
    CHECK(r.last_frame() == 119);
    CHECK_THAT(r.cut_note, Catch::Contains("ends at frame 119"));
    CHECK_THAT(r.cut_note, Catch::Contains("actions line 121 is cut off"));
    const auto run = dc_test::run_dreamcaster("replay '" + rec + "'");
    INFO(run.output);
    CHECK(run.code == 0);
    CHECK_THAT(run.output, Catch::Contains("the recording ends at frame 119"));
    CHECK_THAT(run.output, Catch::Contains("bit-exact: all 120 frames match"));
}

TEST_CASE("a recording whose frames file is shorter than its actions replays the frames both have", "[app]") {
    dc_test::TempDir dir("cut2");
    const std::string rec = record(dir);
    const std::string frames = read_all(rec + "/frames");
    size_t pos = 0;
    for (int i = 0; i < 1 + 81; ++i) pos = frames.find('\n', pos) + 1;  // header + frames 0..80
    write_all(rec + "/frames", frames.substr(0, pos));
    const auto r = dc::app::load_recording(rec);
    CHECK(r.last_frame() == 80);
    CHECK_THAT(r.cut_note, Catch::Contains("actions has rows up to frame 200 but frames only up to frame 80"));
    REQUIRE(r.changes.size() == 1);  // the change at frame 30 is inside
    dc::app::ReplayOptions o;
    o.dir = rec;
    const auto res = dc::app::run_replay(o);
    CHECK(res.mismatches == 0);
    CHECK(res.frames_checked == 81);
}

TEST_CASE("malformed, truncated or future-version files give errors naming the file and the line or field", "[app]") {
    dc_test::TempDir dir("bad");
    const std::string rec = record(dir);
    const std::string session = read_all(rec + "/session.json");
    auto replay_error = [&]() {
        const auto run = dc_test::run_dreamcaster("replay '" + rec + "'");
        INFO(run.output);
        CHECK(run.code == 1);
        return run.output;
    };
    SECTION("session.json cut short") {
        write_all(rec + "/session.json", session.substr(0, session.size() / 2));
        const auto out = replay_error();
        CHECK_THAT(out, Catch::Contains("session.json: not valid JSON"));
        CHECK_THAT(out, Catch::Contains("line"));
    }
    SECTION("a field of the wrong type") {
        std::string s = session;
        const auto at = s.find("\"steps\": 4");
        REQUIRE(at != std::string::npos);
        s.replace(at, 10, "\"steps\": \"four\"");
        write_all(rec + "/session.json", s);
        CHECK_THAT(replay_error(), Catch::Contains("session.json: field \"start.steps\": expected a whole number"));
    }
    SECTION("an unknown change") {
        std::string s = session;
        const auto at = s.find("\"kind\": \"prompt\"");
        REQUIRE(at != std::string::npos);
        s.replace(at, 16, "\"kind\": \"teleport\"");
        write_all(rec + "/session.json", s);
        CHECK_THAT(replay_error(), Catch::Contains("field \"changes[0].kind\": expected reset, prompt"));
    }
    SECTION("a newer format version") {
        std::string s = session;
        const auto at = s.find("\"format_version\": 1");
        REQUIRE(at != std::string::npos);
        s.replace(at, 19, "\"format_version\": 9");
        write_all(rec + "/session.json", s);
        CHECK_THAT(replay_error(), Catch::Contains("format_version 9 is newer than this dreamcaster reads (1)"));
    }
    SECTION("no session.json") {
        std::remove((rec + "/session.json").c_str());
        CHECK_THAT(replay_error(), Catch::Contains("session.json is missing"));
    }
    SECTION("a malformed actions row before the end") {
        std::string a = read_all(rec + "/actions");
        const auto at = a.find("\n50 ") + 1;
        a.replace(at, a.find('\n', at) - at, "50 yesterday 1 0 0 0");
        write_all(rec + "/actions", a);
        const auto out = replay_error();
        CHECK_THAT(out, Catch::Contains("/actions:51: expected \"FRAME UNIX_TIME FORWARD STRAFE TURN USE(0/1)\""));
        CHECK_THAT(out, Catch::Contains("50 yesterday"));
    }
    SECTION("frames rows out of order") {
        std::string f = read_all(rec + "/frames");
        const auto at = f.find("\n7 ") + 1;
        f.replace(at, 1, "8");
        write_all(rec + "/frames", f);
        CHECK_THAT(replay_error(), Catch::Contains("/frames:9: expected frame 7, found frame 8"));
    }
}

TEST_CASE("a full disk stops the recording with a message, play goes on, and the partial recording replays", "[app]") {
    dc_test::TempDir dir("full");
    dc_test::write_file(dir.file("walk.txt"), kWalk);
    dc_test::write_file(dir.file("toggles.txt"), "frame 30 prompt the floor is mossy green\n");
    const std::string rec = dir.file("rec");
    const bool video = dc::app::video_encoding_available();
    // The limit (per file) is hit by video.mp4 when there is one, else by metrics.csv (the largest text file).
    const rlim_t limit = video ? 64 * 1024 : 8 * 1024;
    const pid_t pid = spawn({"play", "--headless", "--engine", "reference", "--actions", dir.file("walk.txt"),
                             "--toggles", dir.file("toggles.txt"), "--record", rec},
                            dir.file("out.txt"), limit);
    const int code = wait_exit(pid);
    const std::string out = read_all(dir.file("out.txt"));
    INFO(out);
    REQUIRE(code == 0);                                       // play went on
    CHECK_THAT(out, Catch::Contains("200 frames headless"));  // to the end of the script
    CHECK_THAT(out, Catch::Contains("recording stopped at frame"));
    CHECK_THAT(out, Catch::Contains("File too large"));
    const auto r = dc::app::load_recording(rec);
    CHECK(r.status == "stopped");
    CHECK_THAT(r.stop_reason, Catch::Contains("failed"));
    CHECK(r.last_frame() > 10);
    CHECK(r.last_frame() < 200);
    const auto run = dc_test::run_dreamcaster("replay '" + rec + "'");
    INFO(run.output);
    CHECK(run.code == 0);
    CHECK_THAT(run.output, Catch::Contains("the recording ends at frame " + std::to_string(r.last_frame())));
    CHECK_THAT(run.output, Catch::Contains("bit-exact: all " + std::to_string(r.last_frame() + 1) + " frames match"));
    if (video) {
        // The video, cut by the limit, still decodes (fragmented MP4) up to its last complete fragment.
        const auto v = dc::app::decode_video(rec + "/video.mp4");
        CHECK(v.frames.size() > 0);
        CHECK(static_cast<int64_t>(v.frames.size()) <= r.last_frame() + 1);
    }
}

TEST_CASE("a program killed while recording leaves a recording that replays up to its last complete frame", "[app]") {
    dc_test::TempDir dir("kill");
    const std::string rec = dir.file("rec");
    // No actions file: 100000 frames standing still, far more than run before the kill.
    const pid_t pid = spawn(
        {"play", "--headless", "--engine", "reference", "--frames", "100000", "--prompt", "thick fog", "--record", rec},
        dir.file("out.txt"), 0);
    const auto t0 = std::chrono::steady_clock::now();
    while (count_lines(rec + "/frames") < 300 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    kill(pid, SIGKILL);
    CHECK(wait_exit(pid) == -1);
    const auto r = dc::app::load_recording(rec);
    CHECK(r.status == "recording");
    CHECK_THAT(r.cut_note, Catch::Contains("never marked complete"));
    CHECK(r.last_frame() >= 299);
    dc::app::ReplayOptions o;
    o.dir = rec;
    const auto res = dc::app::run_replay(o);
    CHECK(res.exact);
    CHECK(res.mismatches == 0);
    CHECK(res.frames_checked == r.last_frame() + 1);
    if (dc::app::video_encoding_available()) {
        const auto v = dc::app::decode_video(rec + "/video.mp4");
        CHECK(v.frames.size() > 0);  // fragments before the kill
    }
}
