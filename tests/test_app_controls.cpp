// Live settings without a model: `--set` keys, toggle scripts, the metrics columns, PSNR/SSIM of frames.
#include <catch2/catch.hpp>

#include <cmath>

#include "app/controls.h"
#include "app/image_metrics.h"
#include "app/play.h"
#include "common/common.h"
#include "test_app_util.h"

using dc::app::Control;
using dc::app::NeuralSettings;

TEST_CASE("set keys edit the neural settings and give the controls a running engine needs", "[app]") {
    NeuralSettings s;
    CHECK(s.type() == "dense");
    auto c = dc::app::apply_setting(s, "attention=annca+tempcache");
    REQUIRE(c.size() == 1);
    CHECK(c[0].kind == Control::Kind::attention);
    CHECK(c[0].text == "tempcache+annca");  // canonical order, whatever the order typed
    dc::app::apply_setting(s, "tempcache.tau=0.85");
    dc::app::apply_setting(s, "attention.annsa.bits=10");
    dc::app::apply_setting(s, "annsa=on");
    c = dc::app::apply_setting(s, "window=off");
    CHECK(c[0].text == "tempcache+annsa+annca");
    const auto params = nlohmann::json::parse(c[0].params);
    CHECK(params["tempcache"]["tau"].get<double>() == Approx(0.85));
    CHECK(params["annsa"]["bits"].get<int>() == 10);
    dc::app::apply_setting(s, "annsa.index=sq8");  // bare strings are strings
    CHECK(s.params["annsa"]["index"] == "sq8");
    dc::app::apply_setting(s, "attention.params={\"window\": {\"frames\": 8}}");
    CHECK(s.params["window"]["frames"] == 8);
    CHECK(s.params["tempcache"]["tau"].get<double>() == Approx(0.85));  // merged, not replaced

    c = dc::app::apply_setting(s, "steps=8");
    CHECK((c[0].kind == Control::Kind::steps && c[0].value == 8 && s.n_steps == 8));
    c = dc::app::apply_setting(s, "budget=4096");
    CHECK((c[0].kind == Control::Kind::budget && c[0].value == 4096));
    c = dc::app::apply_setting(s, "prompt=the floor is blue");
    CHECK((c[0].kind == Control::Kind::prompt && c[0].text == "the floor is blue"));
    c = dc::app::apply_setting(s, "attention=dense");
    CHECK(c[0].text == "dense");

    CHECK_THROWS_WITH(dc::app::apply_setting(s, "attention=tempcache+bogus"),
                      Catch::Contains("unknown attention part"));
    CHECK_THROWS_WITH(dc::app::apply_setting(s, "steps=17"), Catch::Contains("from 1 to 16"));
    CHECK_THROWS_WITH(dc::app::apply_setting(s, "annca=maybe"), Catch::Contains("expected on or off"));
    CHECK_THROWS_WITH(dc::app::apply_setting(s, "colour=red"),
                      Catch::Contains("unknown setting") && Catch::Contains("tempcache.tau"));
    CHECK_THROWS_WITH(dc::app::apply_setting(s, "noequals"), Catch::Contains("KEY=VALUE"));
    CHECK(s.type() == "dense");  // failed settings changed nothing
}

TEST_CASE("toggle scripts parse by frame and keep line order within a frame and say where they are malformed",
          "[app]") {
    const auto entries = dc::app::parse_toggles(
        "# comment\n"
        "frame 10 set attention=tempcache   # trailing comment\n"
        "frame 3 prompt the floor is mossy green\n"
        "\n"
        "frame 10 set tempcache.tau=0.8\n"
        "frame 12 resync\n"
        "frame 20 reset\n",
        "t.txt");
    REQUIRE(entries.size() == 5);
    CHECK((entries[0].frame == 3 && entries[0].command == "prompt" &&
           entries[0].argument == "the floor is mossy green" && entries[0].line == 3));
    CHECK((entries[1].frame == 10 && entries[1].argument == "attention=tempcache"));
    CHECK((entries[2].frame == 10 && entries[2].argument == "tempcache.tau=0.8"));
    CHECK(entries[3].command == "resync");
    CHECK(entries[4].command == "reset");

    CHECK_THROWS_WITH(dc::app::parse_toggles("frame x set a=b\n", "t.txt"), Catch::Contains("t.txt:1"));
    CHECK_THROWS_WITH(dc::app::parse_toggles("\nframe 2 jump\n", "t.txt"),
                      Catch::Contains("t.txt:2") && Catch::Contains("unknown command \"jump\""));
    CHECK_THROWS_WITH(dc::app::parse_toggles("frame 2 set tempcache\n", "t.txt"), Catch::Contains("KEY=VALUE"));
    CHECK_THROWS_WITH(dc::app::parse_toggles("frame 2 resync now\n", "t.txt"), Catch::Contains("takes no argument"));
    CHECK_THROWS_WITH(dc::app::parse_toggles("at 2 reset\n", "t.txt"), Catch::Contains("expected \"frame N"));

    // Due controls: one batch per frame; an attention change replaced by a later one of the batch is left out.
    NeuralSettings s;
    size_t next = 0;
    auto due = dc::app::due_controls(s, entries, next, 9, 0, "t.txt");
    REQUIRE(due.size() == 1);
    CHECK(due[0].kind == Control::Kind::prompt);
    due = dc::app::due_controls(s, entries, next, 10, 0, "t.txt");
    REQUIRE(due.size() == 1);
    CHECK(due[0].text == "tempcache");
    CHECK(nlohmann::json::parse(due[0].params)["tempcache"]["tau"].get<double>() == Approx(0.8));
    due = dc::app::due_controls(s, entries, next, 100, 7, "t.txt");
    REQUIRE(due.size() == 2);
    CHECK(due[0].kind == Control::Kind::resync);
    CHECK((due[1].kind == Control::Kind::reset && due[1].value == 7));
    const auto bad = dc::app::parse_toggles("frame 4 set annsa=perhaps\n", "t.txt");
    next = 0;
    CHECK_THROWS_WITH(dc::app::due_controls(s, bad, next, 4, 0, "t.txt"), Catch::Contains("t.txt:1"));
}

TEST_CASE("the metrics CSV names every per-frame figure the overlay shows", "[app]") {
    const std::string cols = dc::app::kMetricsColumns;
    for (const char* c : {"frame",
                          "step_ms",
                          "denoise_ms",
                          "commit_ms",
                          "decode_ms",
                          "present_ms",
                          "input_to_photon_ms",
                          "model_fps",
                          "cache_tokens",
                          "cache_bytes",
                          "budget_tokens",
                          "layer_tokens",
                          "layer_bytes",
                          "rss_bytes",
                          "gpu_allocated_bytes",
                          "gpu_reserved_bytes",
                          "density",
                          "recall",
                          "merge_rate",
                          "kept_fraction",
                          "psnr",
                          "ssim",
                          "steps",
                          "attention"})
        CHECK_THAT(cols, Catch::Contains(std::string(",") + c + ",") || Catch::StartsWith(std::string(c) + ","));
    CHECK_THAT(cols, Catch::StartsWith("frame,x,y,angle,step_ms,display_ms,"));  // older readers keep working
}

TEST_CASE("PSNR and SSIM of frames match their definitions", "[app]") {
    dc::game::Image a;
    a.width = a.height = 32;
    a.rgb.resize(32 * 32 * 3);
    for (size_t i = 0; i < a.rgb.size(); ++i) a.rgb[i] = static_cast<uint8_t>((i * 37) % 200 + 20);
    dc::game::Image b = a;
    CHECK(dc::app::psnr(a, b) == Approx(100.0));
    CHECK(dc::app::ssim(a, b) == Approx(1.0));
    for (auto& v : b.rgb) v = static_cast<uint8_t>(v + 1);  // every value one level up: MSE = (1/255)^2
    CHECK(dc::app::psnr(a, b) == Approx(20 * std::log10(255.0)).epsilon(1e-6));
    CHECK(dc::app::ssim(a, b) > 0.99);
    dc::game::Image c = a;
    for (auto& v : c.rgb) v = static_cast<uint8_t>(255 - v);  // inverted: structure anti-correlated
    CHECK(dc::app::ssim(a, c) < 0.0);
    dc::game::Image small = a;
    small.width = 16;
    CHECK_THROWS_AS(dc::app::psnr(a, small), dc::Error);
}
