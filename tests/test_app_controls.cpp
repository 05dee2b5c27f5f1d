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
    c = dc::app::apply_setting(s, "dense.kernel=torch");   // dense has parameters but no on/off switch
    CHECK(s.params["dense"]["kernel"] == "torch");
    CHECK(nlohmann::json::parse(c[0].params)["dense"]["kernel"] == "torch");   // what the engine applies
    CHECK_THROWS_WITH(dc::app::apply_setting(s, "dense=on"), Catch::Contains("unknown setting"));

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

#if DC_GUI
#include "app/panels/panels.h"

TEST_CASE("the overlay's A/B compares the frames before and after the last change and plots can be frozen", "[app]") {
    dc::app::OverlayState s;
    dc::app::EngineStats st;
    st.cache_bytes = 1000000;
    st.rss_bytes = 50000000;
    for (int i = 0; i < 10; ++i) {
        st.step_ms = 20;
        s.record_frame(st, 1.0, 30.0);
    }
    dc::app::ControlResult r;
    r.control.kind = Control::Kind::attention;
    r.control.text = "tempcache";
    r.frame = 11;
    s.log_change(r);
    REQUIRE(s.changes.size() == 1);
    CHECK((s.changes.back().frame == 11 && s.changes.back().index == 10 && !s.changes.back().error));
    s.plots_frozen = true;
    for (int i = 0; i < 5; ++i) {
        st.step_ms = 5;
        st.cache_bytes = 250000;
        s.record_frame(st, 1.0, 15.0);
    }
    CHECK(s.step_ms.count() == 10);   // frozen: the plots kept what they had ...
    CHECK(s.records.size() == 15);    // ... while A/B keeps recording
    const auto ab = dc::app::compute_ab(s.records, s.changes.back(), 4);
    REQUIRE(ab.valid);
    CHECK((ab.n_before == 4 && ab.n_after == 4));
    CHECK((ab.step_before == Approx(20) && ab.step_after == Approx(5)));
    CHECK((ab.latency_before == Approx(30) && ab.latency_after == Approx(15)));
    CHECK((ab.cache_before == Approx(1.0) && ab.cache_after == Approx(0.25)));
    s.clear_plots();
    CHECK(s.step_ms.count() == 0);

    r.error = "tempcache.tau must be in [0, 2]";
    s.log_change(r);
    CHECK((s.changes.back().error && s.toggle_error == r.error));
    r.control.kind = Control::Kind::prompt;
    r.control.text = "the floor is plaid";
    r.error = "unknown word 'plaid'";
    s.prompt_applied = "the floor is blue";
    s.log_change(r);
    CHECK((s.prompt_error == r.error && s.prompt_applied == "the floor is blue"));   // the old prompt stays
}
#endif
