// The trainer: the tiny preset learns on the CPU in about a minute; a run stopped and resumed continues exactly
// (weights, EMA, AdamW moments, data position); configuration typos fail with the accepted names.
#include <unistd.h>

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/common.h"
#include "world_model/evaluator.h"
#include "world_model/safetensors_impl.h"
#include "world_model/trainer.h"
#include "world_model/world_model.h"

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("dc_wm_train_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    return p;
}

dc::TrainOptions tiny_options(const fs::path& out) {
    dc::TrainOptions o;
    o.preset = "tiny";
    o.out_dir = out.string();
    o.quiet = true;
    return o;
}

}  // namespace

TEST_CASE("the tiny preset learns on the CPU: AE loss falls by 25%, DiT loss by 40%", "[world_model][slow]") {
    const fs::path dir = temp_dir("learn");
    const dc::TrainResult r = dc::train_world_model(tiny_options(dir));
    CHECK(r.finished);
    CHECK(r.ae_step == 80);
    CHECK(r.dit_step == 100);
    INFO("ae loss " << r.ae_first_loss << " -> " << r.ae_last_loss);
    CHECK(r.ae_last_loss < 0.75 * r.ae_first_loss);
    INFO("dit loss " << r.dit_first_loss << " -> " << r.dit_last_loss);
    CHECK(r.dit_last_loss < 0.6 * r.dit_first_loss);

    // The exported model loads, plays and evaluates.
    auto model = dc::WorldModel::load(r.model_path, "cpu");
    nlohmann::json j = nlohmann::json::parse(dc::read_text_file(r.model_path));
    CHECK(j["training"]["dit_steps"] == 100);
    CHECK(j["metrics"].contains("ae_psnr"));
    CHECK(j["metrics"].contains("teacher_forced_psnr"));
    dc::game::Game game(dc::game::Level::load_named(dc::game::Level::names().front()));
    game.reset(1);
    dc::game::Image start, out;
    game.render(start);
    dc::Session s(model, dc::SessionConfig{});
    s.reset(start, "");
    dc::game::Action a;
    a.forward = 1.f;
    s.step(a, out);
    CHECK(out.width == 128);
    dc::EvalOptions eo;
    eo.model_path = r.model_path;
    eo.clips = 1;
    eo.horizons = {1, 2};
    eo.teacher_forced_frames = 2;
    eo.quiet = true;
    const dc::EvalReport rep = dc::evaluate_world_model(eo);
    REQUIRE(rep.rows.size() >= 5);
    CHECK(rep.rows[0].metric == "ae_ceiling");
    CHECK(rep.rows[0].psnr > 12.0);   // a reconstruction, not noise
    fs::remove_all(dir);
}

TEST_CASE("a stopped run resumes exactly where it stopped", "[world_model][slow]") {
    const fs::path a_dir = temp_dir("resume_a"), b_dir = temp_dir("resume_b");
    auto opts = [](const fs::path& d, int64_t dit_steps) {
        dc::TrainOptions o = tiny_options(d);
        o.set = {"train.ae.steps=4", "train.eval_clips=0", "train.log_every=1"};
        o.steps = dit_steps;
        return o;
    };
    dc::train_world_model(opts(a_dir, 6));             // in one go
    const dc::TrainResult first = dc::train_world_model(opts(b_dir, 3));   // stops after 3 DiT steps …
    CHECK(first.dit_step == 3);
    dc::TrainOptions resume = opts(b_dir, 6);          // … and continues
    resume.resume_dir = b_dir.string();
    resume.set = {};
    const dc::TrainResult second = dc::train_world_model(resume);
    CHECK(second.dit_step == 6);
    for (const char* f : {"params", "ema", "adam"}) {
        auto a = dc::st::File::read((a_dir / "checkpoint" / (std::string(f) + ".safetensors")).string());
        auto b = dc::st::File::read((b_dir / "checkpoint" / (std::string(f) + ".safetensors")).string());
        REQUIRE(a.entries().size() == b.entries().size());
        for (const auto& e : a.entries()) {
            INFO(f << ": " << e.name);
            CHECK(at::equal(a.tensor(e.name), b.tensor(e.name)));
        }
    }
    fs::remove_all(a_dir);
    fs::remove_all(b_dir);
}

TEST_CASE("training configuration errors name the accepted fields", "[world_model]") {
    dc::TrainOptions o = tiny_options(temp_dir("cfg"));
    o.set = {"train.dit.lr_typo=1"};
    try {
        dc::train_world_model(o);
        FAIL("expected an error");
    } catch (const dc::Error& e) {
        CHECK(std::string(e.what()).find("lr_typo") != std::string::npos);
        CHECK(std::string(e.what()).find("warmup") != std::string::npos);
    }
    o.set = {};
    o.phase = "dit";   // no trained autoencoder to start from
    CHECK_THROWS_AS(dc::train_world_model(o), dc::Error);
    o.phase = "both";
    o.device = "tpu";
    CHECK_THROWS_AS(dc::train_world_model(o), dc::Error);
    fs::remove_all(temp_dir("cfg"));
}
