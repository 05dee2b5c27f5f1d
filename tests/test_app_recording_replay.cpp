// Recording and replay with the reference engine: play --record -> replay is bit-exact; replay through the
// reference engine; A/B replays write comparison.csv; video.mp4 decodes back; F9-style recordings started mid-run.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "app/engine.h"
#include "app/engine_runner.h"
#include "app/play.h"
#include "app/recording.h"
#include "app/replay.h"
#include "app/video_encoder.h"
#include "common/common.h"
#include "game/game.h"
#include "test_app_util.h"

namespace {

// 200 actions: turns, strafes, a door, a walk.
const char* kWalk =
    "1 0 0.3 0\n"
    "repeat 39\n"
    "0 0.5 -0.5 0\n"
    "repeat 39\n"
    "0.6 0 0 1\n"
    "repeat 29\n"
    "0 0 1 0\n"
    "repeat 39\n"
    "0.8 0.1 -0.2 0\n"
    "repeat 49\n";

// Prompt changes and a reset inside the run (the reference engine's live changes).
const char* kToggles =
    "frame 20 prompt the brick walls are dark red; thick fog\n"
    "frame 60 reset\n"
    "frame 90 prompt the floor is mossy green\n"
    "frame 90 prompt the floor is mossy green; the metal walls are blue and striped\n";

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

struct Recorded {
    dc_test::TempDir dir{"rec"};
    std::string rec() const { return dir.file("rec"); }
};

// Records the 200-frame walk with the toggles; REQUIREs success.
void record_walk(const Recorded& r, const std::string& extra = "") {
    dc_test::write_file(r.dir.file("walk.txt"), kWalk);
    dc_test::write_file(r.dir.file("toggles.txt"), kToggles);
    const auto run =
        dc_test::run_dreamcaster("play --headless --engine reference --actions '" + r.dir.file("walk.txt") +
                                 "' --toggles '" + r.dir.file("toggles.txt") + "' --record '" + r.rec() + "' " + extra);
    INFO(run.output);
    REQUIRE(run.code == 0);
    REQUIRE_THAT(run.output, Catch::Contains("recording saved to"));
}

}  // namespace

TEST_CASE("a headless recording holds every file, every change and replays bit-exactly", "[app]") {
    Recorded r;
    record_walk(r);
    const dc::app::Recording rec = dc::app::load_recording(r.rec());
    CHECK(rec.status == "complete");
    CHECK(rec.cut_note.empty());
    CHECK(rec.last_frame() == 200);
    CHECK(rec.start.engine == "reference");
    CHECK(rec.start.model_path.empty());
    CHECK(rec.start.frame_width == 128);
    CHECK(rec.session["model"].is_null());
    REQUIRE(rec.changes.size() == 4);
    CHECK(rec.changes[0].frame == 20);
    CHECK(rec.changes[0].control.kind == dc::app::Control::Kind::prompt);
    CHECK(rec.changes[0].control.text == "the brick walls are dark red; thick fog");
    CHECK(rec.changes[1].frame == 60);
    CHECK(rec.changes[1].control.kind == dc::app::Control::Kind::reset);
    CHECK(rec.changes[3].frame == 90);

    // The frames are the game's own, action for action (the reset and prompts applied where the toggles say).
    const auto actions = dc::game::load_action_script(r.dir.file("walk.txt"));
    REQUIRE(actions.size() == 200);
    const auto vocab = dc::game::Vocabulary::load_default();
    dc::game::Game game(dc::game::Level::load_named("e1m1"));
    game.reset(0);
    dc::game::Image img;
    game.render(img);
    CHECK(rec.frames[0].hash == img.hash());
    for (int f = 1; f <= 200; ++f) {
        if (f == 20) game.set_prompt("the brick walls are dark red; thick fog", vocab);
        if (f == 60) game.reset(0);
        if (f == 90) game.set_prompt("the floor is mossy green; the metal walls are blue and striped", vocab);
        game.step(actions[f - 1]);
        game.render(img);
        INFO("frame " << f);
        REQUIRE(rec.frames[f].hash == img.hash());
        CHECK(rec.frames[f].action.forward == actions[f - 1].forward);
        CHECK(rec.frames[f].action.turn == actions[f - 1].turn);  // floats read back exactly
    }
    CHECK(rec.frames[60].engine_frame == 1);  // the engine's own count restarts after the reset

    // actions: one row per frame with a wall-clock time; metrics.csv: one row per frame with the video counters.
    const auto act = lines_of(r.rec() + "/actions");
    REQUIRE(act.size() == 201);  // header + frames 1..200
    CHECK(act[1].rfind("1 ", 0) == 0);
    const auto met = lines_of(r.rec() + "/metrics.csv");
    REQUIRE(met.size() == 202);  // header + frames 0..200
    CHECK(met[0] == dc::app::kRecordingMetricsColumns);
    CHECK_THAT(met[0], Catch::Contains("video_dropped"));
    CHECK_THAT(met[0], Catch::Contains("cache_bytes"));

    const auto run = dc_test::run_dreamcaster("replay '" + r.rec() + "'");
    INFO(run.output);
    CHECK(run.code == 0);
    CHECK_THAT(run.output, Catch::Contains("bit-exact: all 201 frames match"));
}

TEST_CASE("replay finds the first frame that differs and exits 3", "[app]") {
    Recorded r;
    record_walk(r, "--record-video none");
    auto lines = lines_of(r.rec() + "/frames");
    REQUIRE(lines.size() == 202);
    lines[58] = "57 0123456789abcdef 57";  // line 58 holds frame 57 (after the header)
    std::ofstream out(r.rec() + "/frames");
    for (const auto& l : lines) out << l << "\n";
    out.close();
    const auto run = dc_test::run_dreamcaster("replay '" + r.rec() + "'");
    INFO(run.output);
    CHECK(run.code == 3);
    CHECK_THAT(run.output, Catch::Contains("frame 57 differs from the recording"));
    CHECK_THAT(run.output, Catch::Contains("1 of 201 frames differ"));
}

TEST_CASE("an A/B replay writes per-frame PSNR, latency and memory to comparison.csv", "[app]") {
    Recorded r;
    record_walk(r);
    for (const std::string baseline : {"replay", "video"}) {
        if (baseline == "video" && !dc::app::video_encoding_available()) continue;  // no video.mp4 in this build
        DYNAMIC_SECTION("baseline " << baseline) {
            const std::string csv = r.dir.file("cmp-" + baseline + ".csv");
            const auto run = dc_test::run_dreamcaster("replay '" + r.rec() +
                                                      "' --set 'prompt=the floor is blue; thick fog' --baseline " +
                                                      baseline + " --comparison '" + csv + "'");
            INFO(run.output);
            REQUIRE(run.code == 0);
            CHECK_THAT(run.output, Catch::Contains("PSNR vs the recording: mean"));
            CHECK_THAT(run.output, Catch::Contains("3 recorded change(s) ignored: --set pins that setting"));
            const auto rows = lines_of(csv);
            REQUIRE(rows.size() == 202);
            CHECK_THAT(rows[0],
                       Catch::StartsWith("frame,psnr,identical,recorded_step_ms,baseline_step_ms,replay_step_ms"));
            CHECK_THAT(rows[0], Catch::Contains("recorded_rss_bytes,replay_rss_bytes"));
            // Another floor from frame 0 on (the floor is always in view): every frame differs, PSNR in every row.
            for (size_t i = 1; i < rows.size(); ++i) {
                std::istringstream row(rows[i]);
                std::string frame, psnr, identical;
                std::getline(row, frame, ',');
                std::getline(row, psnr, ',');
                std::getline(row, identical, ',');
                INFO(rows[i]);
                REQUIRE(std::stoi(frame) == static_cast<int>(i) - 1);
                REQUIRE(!psnr.empty());
                CHECK(std::stod(psnr) < 60.0);
                CHECK(identical == "0");
            }
            if (baseline == "replay") CHECK_THAT(run.output, Catch::Contains("all its frames match the recording"));
        }
    }
}

TEST_CASE("replay through the reference engine, and with a setting the reference engine lacks", "[app]") {
    Recorded r;
    record_walk(r, "--record-video none");
    auto run = dc_test::run_dreamcaster("replay '" + r.rec() + "' --engine reference");
    INFO(run.output);
    CHECK(run.code == 0);
    CHECK_THAT(run.output, Catch::Contains("bit-exact"));
    // steps=2 does nothing to the real game: an A/B replay whose frames all equal the recording's.
    dc::app::ReplayOptions o;
    o.dir = r.rec();
    o.set = {"steps=2"};
    const dc::app::ReplayResult res = dc::app::run_replay(o);
    CHECK_FALSE(res.exact);
    CHECK(res.frames_checked == 201);
    CHECK(res.mean_psnr == Approx(100.0));
    CHECK(res.comparison_path == r.rec() + "/comparison.csv");
}

TEST_CASE("video.mp4 decodes back with one frame per game frame at the recorded size", "[app]") {
    if (!dc::app::video_encoding_available()) {
        WARN("this build has no libav: recordings have no video.mp4");
        Recorded r;
        record_walk(r);
        const auto rec = dc::app::load_recording(r.rec());
        CHECK(rec.video.is_null());
        CHECK_THAT(rec.session["video_note"].get<std::string>(), Catch::Contains("no libavcodec"));
        return;
    }
    SECTION("h264 at native size: near-lossless") {
        Recorded r;
        record_walk(r);
        const auto rec = dc::app::load_recording(r.rec());
        CHECK(rec.video["codec"].get<std::string>().find("h264") != std::string::npos);
        CHECK(rec.dropped_video_frames == 0);  // headless waits for the encoder
        const auto v = dc::app::decode_video(r.rec() + "/video.mp4");
        CHECK(v.note.empty());
        CHECK(v.width == 128);
        CHECK(v.height == 128);
        CHECK(v.fps == Approx(15.0));
        REQUIRE(v.frames.size() == 201);
        for (size_t i = 0; i < v.frames.size(); ++i) REQUIRE(v.frames[i].first == static_cast<int64_t>(i));
    }
    SECTION("lossless: every decoded frame has the recorded hash") {
        Recorded r;
        record_walk(r, "--record-video lossless");
        const auto rec = dc::app::load_recording(r.rec());
        const auto v = dc::app::decode_video(r.rec() + "/video.mp4");
        REQUIRE(v.frames.size() == 201);
        for (size_t i = 0; i < v.frames.size(); ++i) REQUIRE(v.frames[i].second.hash() == rec.frames[i].hash);
    }
    SECTION("upscaled x2") {
        Recorded r;
        record_walk(r, "--record-scale 2");
        const auto v = dc::app::decode_video(r.rec() + "/video.mp4");
        CHECK(v.width == 256);
        CHECK(v.height == 256);
        CHECK(v.frames.size() == 201);
        CHECK(dc::app::downscale(v.frames[0].second, 2).width == 128);
    }
}

TEST_CASE("the video encoder drops frames it cannot keep up with and counts them", "[app]") {
    if (!dc::app::video_encoding_available()) return;
    dc_test::TempDir dir("video");
    dc::app::VideoOptions vo;
    vo.queue_frames = 1;
    vo.scale = 8;  // 1024x1024: slow enough to fall behind a tight loop
    dc::app::VideoEncoder enc(dir.file("v.mp4"), vo);
    dc::game::Game game(dc::game::Level::load_named("e1m1"));
    game.reset(0);
    dc::game::Image img;
    game.render(img);
    int accepted = 0;
    for (int i = 0; i < 60; ++i) accepted += enc.push(img, i) ? 1 : 0;
    CHECK(enc.finish().empty());
    CHECK(enc.dropped() > 0);
    CHECK(enc.dropped() + enc.encoded() == 60);
    CHECK(enc.encoded() == accepted);
    const auto v = dc::app::decode_video(dir.file("v.mp4"));
    CHECK(static_cast<int64_t>(v.frames.size()) == enc.encoded());
    CHECK(v.frames.front().first == 0);  // gaps keep the frame numbers of the frames that were kept
}

TEST_CASE("a recording started mid-run (F9) begins at frame 0 and replays; the runner's observer sees every step",
          "[app]") {
    dc_test::TempDir dir("f9");
    dc::app::PlayOptions po;
    po.record_video = "none";
    dc::app::EngineConfig config;
    dc::app::EngineRunner runner(dc::app::make_engine("reference", config), 0);
    dc::game::Image frame;
    dc::app::FrameSnapshot snap;
    REQUIRE(runner.take_frame(frame, snap));
    std::string recorded_dir;
    {
        dc::app::RunnerRecording recording(runner, config, frame, snap.stats, po);
        CHECK_FALSE(recording.active());
        dc::game::Action a;
        a.forward = 0.7f;
        a.turn = 0.35f;
        for (int i = 1; i <= 60; ++i) {
            if (i == 10) {
                dc::app::Control c;
                c.kind = dc::app::Control::Kind::prompt;
                c.text = "thick fog";
                runner.post(c);
            }
            if (i == 30) {
                // F9: the recording starts now, into a new folder under the current directory.
                const auto cwd = std::filesystem::current_path();
                std::filesystem::current_path(dir.path());
                recording.toggle();
                std::filesystem::current_path(cwd);
                REQUIRE(recording.active());
                const auto msgs = recording.take_messages();
                REQUIRE(!msgs.empty());
                CHECK_THAT(msgs[0].first, Catch::Contains("frames 0-29 from the run so far"));
                recorded_dir = (dir.path() / recording.status().dir).string();
            }
            if (i == 45) {
                dc::app::Control c;
                c.kind = dc::app::Control::Kind::reset;
                runner.post(c);
            }
            a.use = i == 40;
            REQUIRE(runner.try_step(a));
            runner.wait_idle();
        }
        recording.toggle();  // F9 again: stop
        CHECK_FALSE(recording.active());
    }
    const auto rec = dc::app::load_recording(recorded_dir);
    CHECK(rec.status == "complete");
    CHECK(rec.recorded_from == 30);
    CHECK(rec.last_frame() == 60);
    REQUIRE(rec.changes.size() == 2);
    CHECK(rec.changes[0].frame == 10);
    CHECK(rec.changes[1].frame == 45);
    CHECK(rec.metrics.size() == 31);  // metrics from the press on
    dc::app::ReplayOptions o;
    o.dir = recorded_dir;
    const auto res = dc::app::run_replay(o);
    CHECK(res.exact);
    CHECK(res.mismatches == 0);
    CHECK(res.frames_checked == 61);
}
