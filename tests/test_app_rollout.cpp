// `dreamcaster bench rollout` (app/rollout_bench.h): a short CPU rollout of the tiny test model under three
// configurations, checked through its CSV and summary; the revisit walk against the real game; bad input.
// No timing assertions: the figures are the benchmark's business.
#include <catch2/catch.hpp>

#ifdef DC_HAVE_WORLD_MODEL
#include <cmath>
#include <filesystem>
#include <map>

#include "app/kineto_trace.h"
#include "app/rollout_bench.h"
#include "common/common.h"
#include "game/game.h"
#include "test_app_model.h"
#include "test_app_util.h"

namespace {

using dc_test::cell;

std::string error_of(const dc::app::RolloutBenchConfig& c) {
    try {
        dc::app::run_rollout_bench(c);
    } catch (const dc::Error& e) {
        return e.message();
    }
    return "no error";
}

}  // namespace

TEST_CASE("bench rollout writes one CSV row per frame and configuration, dense first as the reference", "[app]") {
    dc_test::TempDir dir("rollout");
    dc::app::RolloutBenchConfig c;
    c.model_path = dc_test::tiny_model();
    c.frames = 5;
    c.steps = 2;
    c.configs = {"tempcache", "window2", "dense"};  // dense is moved to the front
    c.out_dir = dir.file("out");
    c.summary_path = dir.file("results/rollout-test.md");
    c.quiet = true;
    const auto result = dc::app::run_rollout_bench(c);

    const auto rows = dc_test::read_csv(result.csv_path);
    REQUIRE(rows.size() == 15);
    for (const auto& name : dc::app::kRolloutCsvColumns) CHECK(rows[0].count(name) == 1);
    std::map<std::string, std::vector<dc_test::CsvRow>> by;
    for (const auto& r : rows) by[r.at("config")].push_back(r);
    CHECK(rows[0].at("config") == "dense");
    for (const auto& name : {"dense", "tempcache", "window2"}) {
        const auto& v = by[name];
        REQUIRE(v.size() == 5);
        for (size_t i = 0; i < v.size(); ++i) {
            CHECK(cell(v[i], "frame") == static_cast<double>(i + 1));
            CHECK(cell(v[i], "step_ms") > 0);
            CHECK(cell(v[i], "fps") > 0);
            CHECK(cell(v[i], "denoise_ms") > 0);
            CHECK(cell(v[i], "cache_tokens") > 0);
            CHECK(cell(v[i], "cache_bytes") > 0);
            CHECK(cell(v[i], "density") > 0);
            CHECK(cell(v[i], "density") <= 1);
            CHECK(cell(v[i], "psnr_real") > 0);
            CHECK(cell(v[i], "ssim_real") <= 1);
            CHECK(cell(v[i], "psnr_dense") > 0);
            CHECK(cell(v[i], "psnr_dense") <= 100);
            CHECK(v[i].at("gpu_peak_bytes").empty());  // CPU: no GPU figures
        }
    }
    // Dense against itself: identical frames, PSNR capped at 100 dB, SSIM 1.
    for (const auto& r : by["dense"]) {
        CHECK(cell(r, "psnr_dense") == 100);
        CHECK(cell(r, "ssim_dense") == Approx(1.0));
    }
    // Dense keeps every frame; TempCache merges some tokens (never more bytes); Window-2 keeps 2 frames + 1 sink.
    for (size_t i = 1; i < 5; ++i) {
        CHECK(cell(by["dense"][i], "cache_bytes") > cell(by["dense"][i - 1], "cache_bytes"));
        CHECK(cell(by["tempcache"][i], "cache_bytes") <= cell(by["dense"][i], "cache_bytes"));
    }
    const double dense_growth = cell(by["dense"][4], "cache_bytes") - cell(by["dense"][0], "cache_bytes");
    const double tc_growth = cell(by["tempcache"][4], "cache_bytes") - cell(by["tempcache"][0], "cache_bytes");
    CHECK(tc_growth <= dense_growth);
    double merged = 0;
    for (const auto& r : by["tempcache"]) merged += cell(r, "merge_rate");
    if (merged > 0) CHECK(tc_growth < dense_growth);
    CHECK(cell(by["window2"][4], "cache_tokens") == cell(by["window2"][2], "cache_tokens"));
    CHECK(cell(by["window2"][4], "cache_tokens") < cell(by["dense"][4], "cache_tokens"));

    // Summary: the card, the tables, a copy where asked; actions and plot variables for bench/rollout.gp.
    CHECK(result.summary.find("cpu (") != std::string::npos);
    CHECK(result.summary.find("## Roofline") != std::string::npos);
    CHECK(result.summary.find("| window2 |") != std::string::npos);
    CHECK(std::filesystem::exists(dir.file("out/summary.md")));
    CHECK(std::filesystem::exists(dir.file("results/rollout-test.md")));
    CHECK(dc::game::load_action_script(dir.file("out/actions.txt")).size() == 5);
    CHECK(std::filesystem::exists(dir.file("out/plot_vars.gp")));
    if (result.plots) {
        for (const char* png : {"fps.png", "memory.png", "psnr.png", "psnr_real.png"})
            CHECK(std::filesystem::file_size(dir.file(std::string("out/") + png)) > 1000);
    } else {
        CHECK(result.summary.find("Plots ") != std::string::npos);  // says why, and how to make them
    }
}

TEST_CASE("the revisit walk leaves the spawn room and comes back to where it started", "[app]") {
    int64_t first = 0;
    const std::string text = dc::app::revisit_script(200, &first);
    const auto actions = dc::game::parse_action_script(text, "revisit");
    REQUIRE(static_cast<int64_t>(actions.size()) == first + 60);
    CHECK(first >= 200);
    dc::game::Game g(dc::game::Level::load_named("e1m1"));
    g.reset(1);
    const dc::game::Pose start = g.pose();
    float max_x = start.x;
    for (int64_t i = 0; i < first; ++i) {
        g.step(actions[static_cast<size_t>(i)]);
        max_x = std::max(max_x, g.pose().x);
    }
    CHECK(max_x > 11);  // inside the metal hall, beyond the spawn room's east door (x = 9)
    CHECK(std::hypot(g.pose().x - start.x, g.pose().y - start.y) < 0.05);
    for (size_t i = static_cast<size_t>(first); i < actions.size(); ++i) g.step(actions[i]);
    CHECK(std::hypot(g.pose().x - start.x, g.pose().y - start.y) < 0.05);
    // 180° + 360° after facing west: east again, as at the start.
    CHECK(std::abs(std::remainder(g.pose().angle - start.angle, 2 * 3.14159265358979)) < 0.05);
    // Later revisits take longer walks; a zero-length stay still leaves the room.
    int64_t first_long = 0;
    dc::app::revisit_script(2000, &first_long);
    CHECK(first_long >= 2000);
}

TEST_CASE("bench rollout names what it expected for bad input", "[app]") {
    dc_test::TempDir dir("rollout_bad");
    dc::app::RolloutBenchConfig c;
    c.out_dir = dir.file("out");
    c.quiet = true;
    c.configs = {"dense", "flash"};
    const std::string bad = error_of(c);
    CHECK(bad.find("unknown configuration \"flash\"") != std::string::npos);
    CHECK(bad.find("dense-torch, window16, tempcache, annsa, annca, all") != std::string::npos);
    // "-eager" is the same configuration with CUDA graphs off; the base name must still be a known one.
    const dc::app::RolloutConfigDef all = dc::app::rollout_config("all"), eager = dc::app::rollout_config("all-eager");
    CHECK(all.cuda_graphs);
    CHECK_FALSE(eager.cuda_graphs);
    CHECK(eager.type == all.type);
    CHECK(eager.params_json == all.params_json);
    c.configs = {"flash-eager"};
    CHECK(error_of(c).find("unknown configuration \"flash\"") != std::string::npos);
    // "-budgetN" caps each layer's cache at N tokens; N must be a positive whole number.
    const dc::app::RolloutConfigDef budget = dc::app::rollout_config("all-budget32768");
    CHECK(budget.type == all.type);
    CHECK(budget.max_cache_tokens == 32768);
    CHECK(all.max_cache_tokens == 0);
    const dc::app::RolloutConfigDef both = dc::app::rollout_config("window16-eager-budget4096");
    CHECK(both.max_cache_tokens == 4096);
    CHECK_FALSE(both.cuda_graphs);
    for (const std::string bad_budget : {"all-budget0", "all-budget", "all-budget12x"}) {
        c.configs = {bad_budget};
        CHECK(error_of(c).find("expected <configuration>-budgetN with N ≥ 1 tokens per layer") != std::string::npos);
    }
    c.configs = {"dense"};
    if (!dc::app::KinetoTrace::available()) {   // CPU LibTorch: no profiler to write traces with
        c.trace_at = 5;
        CHECK(error_of(c).find("--trace-at: expected a CUDA build") != std::string::npos);
        c.trace_at = 0;
    }
    c.frames = 0;
    CHECK(error_of(c).find("--frames: expected a positive frame count, found 0") != std::string::npos);
    c.frames = 3;
    c.model_path = dir.file("missing.json");
    CHECK(error_of(c).find("--model: expected a model config (JSON) file, found no file at") != std::string::npos);
    c.model_path.clear();
    c.configs = {"window-eq"};
    CHECK(error_of(c).find("revisit test only") != std::string::npos);
    c.configs = {"dense", "dense"};
    CHECK(error_of(c).find("twice") != std::string::npos);
    // Through the executable: exit 1 and the same message.
    const auto r =
        dc_test::run_dreamcaster("bench rollout --configs dense nope --frames 2 --out-dir '" + dir.file("cli") + "'");
    CHECK(r.code == 1);
    CHECK(r.output.find("unknown configuration \"nope\"") != std::string::npos);
}
#endif  // DC_HAVE_WORLD_MODEL
