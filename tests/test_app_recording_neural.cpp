// Recording and replay with the neural engine: a tiny model trained for a few steps (world_model/trainer.h) dreams
// 200 frames with attention, steps, AnnCA and budget toggles and a prompt change; the replay is bit-exact on the CPU,
// the reference engine replays the same actions as ground truth, and an A/B replay compares other settings.
#include <catch2/catch.hpp>

#ifdef DC_HAVE_WORLD_MODEL
#include <fstream>
#include <sstream>

#include "app/recording.h"
#include "app/replay.h"
#include "common/common.h"
#include "test_app_util.h"
#include "world_model/trainer.h"

namespace {

const char* kWalk =
    "1 0 0.3 0\n"
    "repeat 59\n"
    "0 0.5 -0.5 0\n"
    "repeat 59\n"
    "0.6 0 0 1\n"
    "repeat 39\n"
    "0 0 1 0\n"
    "repeat 39\n";  // 200 actions

// Every live change of the neural engine. The run starts with a 4-frame cache budget to keep 200 frames fast.
const char* kToggles =
    "frame 0 set budget=1024\n"
    "frame 0 set steps=2\n"
    "frame 30 set attention=tempcache\n"
    "frame 50 prompt the brick walls are dark red; thick fog\n"
    "frame 80 set steps=1\n"
    "frame 110 set annca=on\n"
    "frame 150 set budget=768\n"
    "frame 170 set tempcache.tau=0.8\n";

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

}  // namespace

TEST_CASE("a neural recording with toggles and a prompt change replays bit-exactly on the CPU", "[app][slow]") {
    dc_test::TempDir dir("neural_rec");
    dc::TrainOptions t;
    t.preset = "tiny";
    t.out_dir = dir.file("model");
    t.steps = 2;  // a few steps: replay needs a model, not a good one
    t.set = {"train.ae.steps=2"};
    t.quiet = true;
    t.device = "cpu";
    const dc::TrainResult trained = dc::train_world_model(t);
    REQUIRE(!trained.model_path.empty());
    dc_test::write_file(dir.file("walk.txt"), kWalk);
    dc_test::write_file(dir.file("toggles.txt"), kToggles);
    const std::string rec = dir.file("rec");
    auto run = dc_test::run_dreamcaster("play --headless --engine neural --device cpu --model '" + trained.model_path +
                                        "' --actions '" + dir.file("walk.txt") + "' --toggles '" +
                                        dir.file("toggles.txt") + "' --record '" + rec + "'");
    INFO(run.output);
    REQUIRE(run.code == 0);

    const auto r = dc::app::load_recording(rec);
    CHECK(r.start.engine == "neural");
    CHECK(r.start.model_sha256 == dc::sha256_file(trained.model_path));
    CHECK(r.start.budget_tokens == 1024);  // frame-0 toggles are the start settings
    CHECK(r.start.n_steps == 2);
    CHECK(r.last_frame() == 200);
    REQUIRE(r.changes.size() == 6);
    CHECK(r.changes[0].frame == 30);
    CHECK(r.changes[0].control.kind == dc::app::Control::Kind::attention);
    CHECK(r.changes[1].control.kind == dc::app::Control::Kind::prompt);
    CHECK(r.changes[2].control.kind == dc::app::Control::Kind::steps);
    CHECK(r.changes[4].control.kind == dc::app::Control::Kind::budget);
    CHECK(r.changes[5].frame == 170);
    const auto metrics = lines_of(rec + "/metrics.csv");
    REQUIRE(metrics.size() == 202);
    CHECK_THAT(metrics[100], Catch::Contains("tempcache"));  // the attention in force, per frame

    // (No SECTIONs: each would train and record again.)
    {  // exact replay
        run = dc_test::run_dreamcaster("replay '" + rec + "'");
        INFO(run.output);
        CHECK(run.code == 0);
        CHECK_THAT(run.output, Catch::Contains("bit-exact: all 201 frames match"));
    }
    {  // through the reference engine: the dream against the real game
        dc::app::ReplayOptions o;
        o.dir = rec;
        o.engine = "reference";
        o.baseline = "video";  // the recorded dream from video.mp4 (the neural engine need not run again)
        if (!r.video.is_object()) o.baseline = "replay";
        const auto res = dc::app::run_replay(o);
        CHECK_FALSE(res.exact);
        CHECK(res.frames_checked == 201);
        CHECK(res.skipped_changes == 5);  // attention, steps, annca, budget, tau: not settings of the real game
        const auto rows = lines_of(res.comparison_path);
        REQUIRE(rows.size() == 202);
        // Frame 0 of the dream is the real spawn view, so it matches the game (up to the codec).
        std::istringstream row0(rows[1]);
        std::string frame, psnr;
        std::getline(row0, frame, ',');
        std::getline(row0, psnr, ',');
        CHECK(std::stod(psnr) > 30.0);
    }
    {  // A/B with other settings
        dc::app::ReplayOptions o;
        o.dir = rec;
        o.set = {"attention=dense", "steps=1"};
        o.frames = 60;
        const auto res = dc::app::run_replay(o);
        CHECK_FALSE(res.exact);
        CHECK(res.baseline_mismatches == 0);  // the baseline regenerated the recorded frames exactly
        CHECK(res.frames_checked == 61);
        CHECK(res.mean_psnr > 0);
        CHECK(res.pinned_changes == 0);
    }
}
#endif
