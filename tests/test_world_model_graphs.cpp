// CUDA graphs with the cross-attention inside them (world_model/cuda_graphs.h): when the attention allows it, a
// CUDA Session replays one graph per block around its cross-attention, and it must dream the same frames and count
// the same attention statistics as launching every op from the host.
#include <c10/core/GradMode.h>
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "attention/attention.h"
#include "common/common.h"
#include "world_model/model_impl.h"
#include "world_model/world_model.h"
#include "world_model/world_model_impl.h"
#include "test_world_model_fixtures.h"

namespace {

using dc_test::perturbed_model;
using dc_test::test_frame;
using dc_test::tiny_config;

// The spec with AnnCA toggled: added when absent, removed when present ("annca" alone toggles to "dense").
std::string toggle_annca(const std::string& type) {
    if (type == "dense") return "annca";
    if (type == "annca") return "dense";
    const std::string part = "+annca";
    const size_t at = type.find(part);
    return at == std::string::npos ? type + part : type.substr(0, at) + type.substr(at + part.size());
}

dc::AttentionSpec spec_for(const std::string& type) {
    // AnnSA sparse from the first cached frame, so that its kernels run in this short run.
    if (type.find("annsa") != std::string::npos)
        return dc::AttentionSpec::parse(type, R"({"annsa": {"min_cache_tokens": 0}})");
    return dc::AttentionSpec::parse(type);
}

}  // namespace

TEST_CASE("cross-attention may run inside CUDA graphs for dense and LSH AnnCA, never on recall frames",
          "[world_model]") {
    dc::AttentionContext ctx;
    ctx.n_layers = 6;
    dc::AttentionContext recall = ctx;
    recall.measure_recall = true;
    auto dense = dc::make_attention(dc::AttentionSpec::parse("tempcache+annsa"));
    CHECK(dense->cross_capturable(ctx));
    CHECK_FALSE(dense->cross_capturable(recall));
    auto lsh = dc::make_attention(dc::AttentionSpec::parse("annca"));
#ifdef DC_HAVE_CUDA
    CHECK(lsh->cross_capturable(ctx));   // the CUDA kernels choose the tokens on the device
#else
    CHECK_FALSE(lsh->cross_capturable(ctx));   // the host chooses them
#endif
    CHECK_FALSE(lsh->cross_capturable(recall));
    auto topk = dc::make_attention(dc::AttentionSpec::parse("annca", R"({"annca": {"index": "exact"}})"));
    CHECK_FALSE(topk->cross_capturable(ctx));
    CHECK_FALSE(dc::wm::make_reference_attention()->cross_capturable(ctx));
}

TEST_CASE("CUDA graphs with the cross-attention inside dream the same frames and stats as the host-launched path",
          "[cuda][world_model]") {
    if (!at::hasCUDA()) {
        WARN("no CUDA device (or a CPU LibTorch): CUDA graph test skipped");
        return;
    }
    auto m = perturbed_model(16);
    m->move_to("cuda");
    // 12 frames: the prompt changes before frame 5 and AnnCA is toggled before frame 7 and back before frame 10
    // (each recaptures the fused graphs); frame 8 measures recall (recall_every = 8), so it and the reset's commit
    // pass (frame 0) run the cross-attention between the replays instead.
    const int kFrames = 12, kSteps = 4;
    for (const std::string type : {"dense", "annca", "tempcache+annsa+annca"}) {
        dc::SessionConfig sc;
        sc.n_steps = kSteps;
        sc.seed = 7;
        sc.recall_every = 8;
        sc.attention = spec_for(type);
        dc::SessionConfig eager = sc;
        eager.cuda_graphs = false;
        dc::Session a(m, sc), b(m, eager);
        a.reset(test_frame(3), "the brick walls are dark red");
        b.reset(test_frame(3), "the brick walls are dark red");
        dc::game::Image fa, fb;
        dc::FrameStats sa, sb;
        int recall_frames = 0;
        for (int i = 0; i < kFrames; ++i) {
            if (i == 4) {
                a.set_prompt("the floor is icy white; thick fog");
                b.set_prompt("the floor is icy white; thick fog");
            }
            if (i == 6 || i == 9) {
                const std::string now = i == 6 ? toggle_annca(type) : type;
                a.set_attention(spec_for(now));
                b.set_attention(spec_for(now));
            }
            dc::game::Action act;
            act.forward = 1.f;
            act.turn = 0.2f * static_cast<float>(i);
            a.step(act, fa, &sa);
            b.step(act, fb, &sb);
            if (sa.frame % sc.recall_every == 0) ++recall_frames;
            int max_diff = 0;
            double sum_diff = 0;
            for (size_t j = 0; j < fa.rgb.size(); ++j) {
                const int d = std::abs(fa.rgb[j] - fb.rgb[j]);
                max_diff = std::max(max_diff, d);
                sum_diff += d;
            }
            INFO(type << ", frame " << sa.frame);
            REQUIRE(sa.frame == sb.frame);
            CHECK(max_diff <= 2);   // same kernels; bf16 GEMMs may pick another split under capture
            CHECK(sum_diff / static_cast<double>(fa.rgb.size()) < 0.05);
            CHECK(sa.cache_tokens == sb.cache_tokens);
            const dc::AttentionStats& x = sa.attention;
            const dc::AttentionStats& y = sb.attention;
            CHECK(x.calls == y.calls);
            CHECK(x.query_rows == y.query_rows);
            CHECK(x.keys_available == y.keys_available);
            CHECK(x.keys_attended == y.keys_attended);
            CHECK(x.cross_available == y.cross_available);
            CHECK(x.cross_kept == y.cross_kept);
            CHECK(x.cross_kept_fraction() == y.cross_kept_fraction());
            CHECK(x.cross_recall_calls == y.cross_recall_calls);
            CHECK(x.committed == y.committed);
            CHECK(x.merged == y.merged);
            CHECK(x.cross_available > 0);
        }
        INFO(type);
        CHECK(recall_frames == 1);
        // Every pass (kSteps + the commit) of every frame without recall ran the fused graphs; the rest did not.
        CHECK(dc::wm::SessionAccess::fused_graph_passes(a) == (kFrames - recall_frames) * (kSteps + 1));
        CHECK(dc::wm::SessionAccess::fused_graph_passes(b) == 0);
    }
}
