// The model: the cached inference path (one frame at a time over KV caches, through dc::Attention) must give what
// the masked training path (whole clip, block-causal mask, plain torch ops) gives; Session determinism; prompts.
#include <c10/core/GradMode.h>
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include "common/common.h"
#include "world_model/model_impl.h"
#include "world_model/world_model.h"
#include "world_model/world_model_impl.h"
#include "test_world_model_fixtures.h"

using dc::wm::ModelConfig;
using dc::wm::Net;

namespace {

using dc_test::perturbed_model;
using dc_test::test_frame;
using dc_test::tiny_config;

}  // namespace

TEST_CASE("cached inference path equals the masked training path on the same clip", "[world_model]") {
    auto m = perturbed_model(11);
    const Net& net = m->net;
    const auto& cfg = net.config();
    const int64_t K = 4, C = cfg.ae.latent_channels, h = cfg.grid_h(), w = cfg.grid_w();
    at::manual_seed(5);
    at::Tensor x = at::randn({1, K, C, h, w});      // noisy latents, one per frame
    at::Tensor prev = at::randn({1, K, C, h, w});   // previous-frame channels
    at::Tensor t = at::tensor({0.0f, 0.3f, 0.05f, 0.9f}).view({1, K});   // diffusion forcing: own level per frame
    at::Tensor s = at::tensor({0.0f, 0.02f, 0.0f, 0.07f}).view({1, K});
    at::Tensor act = at::rand({1, K, 4}) * 2 - 1;
    std::vector<int32_t> ids = m->vocab.tokenize("the brick walls are dark red; thick fog", cfg.dit.prompt_len);
    at::Tensor tok = at::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, -1});
    at::Tensor valid = tok.ne(m->vocab.pad_id());
    c10::InferenceMode guard;
    dc::wm::PromptKV kv = net.prompt_kv(net.encode_prompt(tok, valid), valid);
    // masked path: prompt rows repeated per frame
    dc::wm::PromptKV kvk;
    kvk.valid = kv.valid.expand({K, -1});
    for (size_t l = 0; l < kv.k.size(); ++l) {
        kvk.k.push_back(kv.k[l].expand({K, -1, -1, -1}));
        kvk.v.push_back(kv.v[l].expand({K, -1, -1, -1}));
    }
    at::Tensor masked = net.dit_masked(x, prev, net.cond(t, s, act), kvk);   // [1, K, C, h, w]

    auto attn = dc::make_attention(dc::AttentionSpec::parse("dense"));
    std::vector<dc::KvCache> caches;
    for (int l = 0; l < cfg.dit.depth; ++l) caches.emplace_back(cfg.dit.heads(), cfg.dit.head_dim, at::kFloat, at::kCPU);
    for (int64_t k = 0; k < K; ++k) {
        at::Tensor c = net.cond(t.narrow(1, k, 1), s.narrow(1, k, 1), act.narrow(1, k, 1));   // [1, 1, W]
        dc::AttentionContext ctx;
        ctx.frame = k;
        at::Tensor y = net.dit_cached(x[0][k].unsqueeze(0), prev[0][k].unsqueeze(0), c, kv, caches, *attn, ctx,
                                      false, nullptr)[0];   // [1, C, h, w]
        INFO("frame " << k);
        CHECK(at::allclose(y, masked[0][k].unsqueeze(0), 1e-4, 1e-4));
        net.dit_cached(x[0][k].unsqueeze(0), prev[0][k].unsqueeze(0), c, kv, caches, *attn, ctx, true, nullptr);
    }
    CHECK(caches[0].size() == K * h * w);
    // the perturbation matters: the result is not just the previous latent
    CHECK((masked - prev).abs().max().item<float>() > 1e-2);
    // and the context matters: a frame alone differs from the same frame after context
    at::Tensor alone = net.dit_masked(x.narrow(1, K - 1, 1), prev.narrow(1, K - 1, 1),
                                      net.cond(t.narrow(1, K - 1, 1), s.narrow(1, K - 1, 1), act.narrow(1, K - 1, 1)),
                                      kv);
    CHECK((alone[0][0] - masked[0][K - 1]).abs().max().item<float>() > 1e-3);
}

TEST_CASE("Session is deterministic on the CPU for the same seed and inputs", "[world_model]") {
    auto m = perturbed_model(12);
    dc::SessionConfig sc;
    sc.n_steps = 2;
    sc.seed = 42;
    auto run = [&](uint64_t seed) {
        dc::SessionConfig c = sc;
        c.seed = seed;
        dc::Session s(m, c);
        s.reset(test_frame(0), "the metal walls are blue");
        std::vector<uint64_t> hashes;
        dc::game::Image out;
        dc::FrameStats st;
        for (int i = 0; i < 3; ++i) {
            dc::game::Action a;
            a.forward = 1.f;
            a.turn = 0.3f * i;
            s.step(a, out, &st);
            hashes.push_back(out.hash());
        }
        CHECK(st.frame == 3);
        CHECK(s.frame() == 3);
        CHECK(st.layer_tokens.size() == static_cast<size_t>(m->n_layers()));
        CHECK(st.cache_tokens == m->n_layers() * 4 * 256);   // reset frame + 3 frames, 256 tokens each
        CHECK(st.cache_bytes > 0);
        CHECK(out.width == 128);
        return hashes;
    };
    const auto a = run(42), b = run(42), c = run(43);
    CHECK(a == b);
    CHECK(a != c);   // the seed picks the noise
}

TEST_CASE("a prompt change alters the dreamed frames", "[world_model]") {
    auto m = perturbed_model(13);
    dc::SessionConfig sc;
    sc.n_steps = 1;
    dc::game::Image out_a, out_b, out_c;
    dc::Session a(m, sc), b(m, sc), c(m, sc);
    a.reset(test_frame(1), "the brick walls are dark red");
    b.reset(test_frame(1), "the brick walls are dark red");
    c.reset(test_frame(1), "the floor is icy white; thick fog");
    b.set_prompt("the floor is icy white; thick fog");   // from the next frame on
    dc::game::Action act;
    a.step(act, out_a);
    b.step(act, out_b);
    c.step(act, out_c);
    CHECK(out_a.hash() != out_b.hash());
    CHECK(out_a.hash() != out_c.hash());
    CHECK_THROWS_AS(a.set_prompt("the walls are glorp"), dc::Error);
    CHECK_THROWS_AS(a.set_steps(0), dc::Error);
    CHECK_THROWS_AS(a.set_attention(dc::AttentionSpec::parse("nonsense")), dc::Error);
}

TEST_CASE("the Session over dc::Attention dense matches the model's reference attention", "[world_model]") {
    auto m = perturbed_model(14);
    dc::SessionConfig sc;
    sc.n_steps = 2;
    dc::Session a(m, sc), b(m, sc);
    dc::wm::SessionAccess::use_reference_attention(b);
    a.reset(test_frame(2), "the stone walls are grey and striped");
    b.reset(test_frame(2), "the stone walls are grey and striped");
    dc::game::Image fa, fb;
    dc::FrameStats sa, sb;
    for (int i = 0; i < 3; ++i) {
        dc::game::Action act;
        act.turn = 0.5f;
        a.step(act, fa, &sa);
        b.step(act, fb, &sb);
        int max_diff = 0;
        for (size_t j = 0; j < fa.rgb.size(); ++j) max_diff = std::max(max_diff, std::abs(fa.rgb[j] - fb.rgb[j]));
        INFO("frame " << i + 1);
        CHECK(max_diff <= 1);   // 8-bit rounding of float-tolerance differences
    }
    CHECK(sa.cache_tokens == sb.cache_tokens);
}

TEST_CASE("CUDA graphs dream the same frames as launching every op from the host", "[cuda][world_model]") {
    if (!at::hasCUDA()) {
        WARN("no CUDA device (or a CPU LibTorch): CUDA graph test skipped");
        return;
    }
    auto m = perturbed_model(15);
    m->move_to("cuda");
    // Every attention configuration runs eagerly between the graph replays: dense, and all three accelerations
    // (TempCache merges, AnnSA's sparse steps, AnnCA's selection); a prompt change mid-run swaps the prompt K/V.
    for (const char* spec : {"dense", "tempcache+annsa+annca"}) {
        dc::SessionConfig sc;
        sc.n_steps = 4;
        sc.seed = 7;
        sc.attention = dc::AttentionSpec::parse(spec);
        if (std::string(spec) != "dense")
            sc.attention = dc::AttentionSpec::parse(spec, R"({"annsa": {"min_cache_tokens": 0}})");
        dc::SessionConfig eager = sc;
        eager.cuda_graphs = false;
        dc::Session a(m, sc), b(m, eager);
        a.reset(test_frame(3), "the brick walls are dark red");
        b.reset(test_frame(3), "the brick walls are dark red");
        dc::game::Image fa, fb;
        dc::FrameStats sa, sb;
        for (int i = 0; i < 6; ++i) {
            if (i == 3) {
                a.set_prompt("the floor is icy white; thick fog");
                b.set_prompt("the floor is icy white; thick fog");
            }
            dc::game::Action act;
            act.forward = 1.f;
            act.turn = 0.2f * static_cast<float>(i);
            a.step(act, fa, &sa);
            b.step(act, fb, &sb);
            int max_diff = 0;
            double sum_diff = 0;
            for (size_t j = 0; j < fa.rgb.size(); ++j) {
                const int d = std::abs(fa.rgb[j] - fb.rgb[j]);
                max_diff = std::max(max_diff, d);
                sum_diff += d;
            }
            INFO(spec << ", frame " << i + 1);
            CHECK(max_diff <= 2);   // same kernels; bf16 GEMMs may pick another split under capture
            CHECK(sum_diff / static_cast<double>(fa.rgb.size()) < 0.05);
            CHECK(sa.cache_tokens == sb.cache_tokens);
            CHECK(sa.attention.keys_attended == sb.attention.keys_attended);
        }
        CHECK(sa.frame == 6);
    }
}
