// Every attention type against Dense: exact where the math says exact, within a stated recall otherwise.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cmath>

#include "attention/ann.h"
#include "attention/attention.h"
#include "attention/attention_bench.h"
#include "attention/attention_impl.h"

namespace {

// Max abs difference relative to the reference's max abs value.
double rel_err(const at::Tensor& a, const at::Tensor& ref) {
    return (a.to(at::kDouble) - ref.to(at::kDouble)).abs().max().item<double>() /
           std::max(1e-12, ref.to(at::kDouble).abs().max().item<double>());
}

// Dense float64 reference of one frame's self-attention over [cache ‖ frame], with bias and temporal slope.
at::Tensor reference_self(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const dc::KvCache& cache,
                          const dc::AttentionContext& ctx) {
    at::Tensor kk = at::cat({cache.keys().to(at::kDouble), k.to(at::kDouble)}, 2);   // [1, H, T + N, D]
    at::Tensor vv = at::cat({cache.values().to(at::kDouble), v.to(at::kDouble)}, 2);
    const int64_t H = q.size(1), N = q.size(2);
    at::Tensor bias = at::cat({cache.bias().to(at::kDouble), at::zeros({1, H, N}, at::kDouble)}, 2);   // [1, H, T + N]
    if (ctx.temporal_slope.defined()) {
        at::Tensor dist = at::cat({(ctx.frame - cache.frames()).to(at::kDouble), at::zeros({N}, at::kDouble)});
        bias = bias - ctx.temporal_slope.to(at::kDouble).view({1, H, 1}) * dist.view({1, 1, -1});
    }
    return dc::dense_attention(q.to(at::kDouble), kk, vv, bias, at::Tensor());
}

struct Run {
    at::Tensor self_out, cross_out;
    dc::AttentionStats stats;
    int64_t cache_tokens = 0;
};

// Commits `frames` synthetic frames through `attn`, then runs one sparse-step self- and cross-attention call.
Run run(dc::Attention& attn, dc::KvCache& cache, int64_t H, int64_t D, int64_t N, int frames, uint64_t seed,
        dc::AttentionContext ctx, double drift = 0.1, double replace = 0.05) {
    dc::SyntheticFrames gen(H, D, N, drift, replace, 1.5, seed, 128, 48);
    Run r;
    for (int f = 0; f < frames; ++f) {
        auto fr = gen.next();
        ctx.frame = f;
        ctx.step = ctx.n_steps;
        attn.commit(cache, fr.q, fr.k, fr.v, ctx, &r.stats);
    }
    auto fr = gen.next();
    ctx.frame = frames;
    ctx.step = ctx.n_steps - 1;
    ctx.measure_recall = true;
    r.self_out = attn.self_attend(fr.q, fr.k, fr.v, cache, ctx, &r.stats);
    r.cross_out = attn.cross_attend(fr.cq, gen.prompt_k(), gen.prompt_v(), gen.prompt_valid(), ctx, &r.stats);
    r.cache_tokens = cache.size();
    return r;
}

dc::AttentionContext sparse_ctx() {
    dc::AttentionContext ctx;
    ctx.n_layers = 4;
    ctx.layer = 3;
    ctx.n_steps = 4;
    ctx.temporal_slope = at::tensor({0.0f, 0.05f, 0.1f, 0.2f});
    return ctx;
}

}  // namespace

TEST_CASE("dense_attention matches a float64 softmax written out by hand, with bias and key mask", "[attention]") {
    at::manual_seed(3);
    at::Tensor q = at::randn({2, 3, 5, 8}, at::kDouble), k = at::randn({2, 3, 7, 8}, at::kDouble);
    at::Tensor v = at::randn({2, 3, 7, 8}, at::kDouble), bias = at::randn({2, 3, 7}, at::kDouble);
    at::Tensor mask = at::rand({2, 7}).gt(0.3);
    mask[0][0] = true;
    at::Tensor s = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(8.0) + bias.unsqueeze(2);
    s.masked_fill_(mask.logical_not().view({2, 1, 1, 7}), -INFINITY);
    at::Tensor ref = at::matmul(at::softmax(s, -1), v);
    CHECK(rel_err(dc::dense_attention(q, k, v, bias, mask), ref) < 1e-12);
    CHECK(rel_err(dc::dense_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), bias.to(at::kFloat), mask),
                  ref) < 1e-5);
    // A row with every key masked gives zeros rather than NaN.
    at::Tensor none = at::zeros({2, 7}, at::kBool);
    CHECK(dc::dense_attention(q, k, v, bias, none).abs().max().item<double>() == 0.0);
}

TEST_CASE("every attention type equals Dense where the math is exact", "[attention]") {
    // Exact configurations: TempCache that never merges (tau > 1), every LSH bucket probed (probes ≥ 2^bits),
    // a window larger than the run, sparse from the first cached token. Inputs drift and get replaced (random).
    const std::string exact_params = R"({"tempcache": {"tau": 1.5}, "window": {"frames": 32},
        "annsa": {"bits": 3, "probes": 8, "min_cache_tokens": 0}, "annca": {"bits": 3, "probes": 8}})";
    const int64_t H = 4, D = 16, N = 24;
    for (const std::string& type : dc::attention_types()) {
        for (at::ScalarType dt : {at::kFloat, at::kDouble}) {
            DYNAMIC_SECTION(type << (dt == at::kFloat ? " float32" : " float64")) {
                auto attn = dc::make_attention(dc::AttentionSpec::parse(type, exact_params));
                auto ref_attn = dc::make_attention(dc::AttentionSpec::parse("dense"));
                dc::KvCache cache(H, D, dt, at::kCPU), ref_cache(H, D, dt, at::kCPU);
                auto ctx = sparse_ctx();
                dc::SyntheticFrames gen(H, D, N, 0.3, 0.2, 1.5, 11, 16, 10);
                dc::AttentionStats stats;
                for (int f = 0; f < 5; ++f) {
                    auto fr = gen.next();
                    ctx.frame = f;
                    ctx.step = ctx.n_steps;
                    attn->commit(cache, fr.q.to(dt), fr.k.to(dt), fr.v.to(dt), ctx, &stats);
                    ref_attn->commit(ref_cache, fr.q.to(dt), fr.k.to(dt), fr.v.to(dt), ctx, nullptr);
                    REQUIRE(cache.size() == ref_cache.size());
                    // Self-attention at every frame, at a sparse step of a sparse block.
                    auto nx = gen.next();
                    ctx.frame = f + 1;
                    ctx.step = ctx.n_steps - 1;
                    at::Tensor q = nx.q.to(dt), k = nx.k.to(dt), v = nx.v.to(dt);
                    at::Tensor out = attn->self_attend(q, k, v, cache, ctx, &stats);
                    at::Tensor ref = reference_self(q, k, v, ref_cache, ctx);
                    CHECK(out.scalar_type() == dt);
                    CHECK(rel_err(out, ref) < (dt == at::kFloat ? 2e-5 : 1e-11));
                    at::Tensor co = attn->cross_attend(nx.cq.to(dt), gen.prompt_k().to(dt), gen.prompt_v().to(dt),
                                                       gen.prompt_valid(), ctx, &stats);
                    at::Tensor cref = dc::dense_attention(nx.cq.to(at::kDouble), gen.prompt_k().to(at::kDouble),
                                                          gen.prompt_v().to(at::kDouble), at::Tensor(),
                                                          gen.prompt_valid());
                    CHECK(rel_err(co, cref) < (dt == at::kFloat ? 2e-5 : 1e-11));
                }
                CHECK(stats.merged == 0);
                CHECK(stats.evicted == 0);
                CHECK(stats.cross_kept_fraction() == 1.0);
            }
        }
    }
}

TEST_CASE("every attention type stays close to Dense with its default parameters", "[attention]") {
    // Default parameters on slowly drifting frames (256 tokens, 5% replaced per frame), 12 frames committed (a dense
    // cache of 3072 tokens, above annsa.min_cache_tokens). Stated floors: AnnSA scores < 40% of the keys and keeps
    // ≥ 70% of the dense attention mass (32 sampled rows); AnnCA keeps < 60% of the prompt at ≥ 85% recall;
    // TempCache merges ≥ 85% of tokens; every output keeps a cosine similarity ≥ 0.9 with the dense output.
    const int64_t H = 4, D = 64, N = 256;
    const int frames = 12;
    Run ref;
    {
        auto dense = dc::make_attention(dc::AttentionSpec::parse("dense"));
        dc::KvCache cache(H, D, at::kFloat, at::kCPU);
        ref = run(*dense, cache, H, D, N, frames, 5, sparse_ctx());
    }
    for (const std::string& type : dc::attention_types()) {
        DYNAMIC_SECTION(type) {
            auto attn = dc::make_attention(dc::AttentionSpec::parse(type));
            dc::KvCache cache(H, D, at::kFloat, at::kCPU);
            Run r = run(*attn, cache, H, D, N, frames, 5, sparse_ctx());
            const auto cos = [](const at::Tensor& a, const at::Tensor& b) {
                return at::cosine_similarity(a.flatten(), b.flatten(), 0).item<double>();
            };
            CHECK(cos(r.self_out, ref.self_out) >= 0.9);
            CHECK(cos(r.cross_out, ref.cross_out) >= 0.9);
            const bool sa = type.find("annsa") != std::string::npos, ca = type.find("annca") != std::string::npos;
            const bool tc = type.find("tempcache") != std::string::npos;
            if (sa && r.cache_tokens >= dc::AnnSAParams{}.min_cache_tokens) {
                CHECK(r.stats.density() < 0.4);
                CHECK(r.stats.recall() >= 0.7);
                CHECK(r.stats.recall() <= 1.0);
            } else {   // dense kernel (also AnnSA below min_cache_tokens, e.g. on a TempCache cache)
                CHECK(r.stats.density() == 1.0);
                CHECK(r.stats.recall() == -1);   // only sparse calls are measured
            }
            if (ca) {
                CHECK(r.stats.cross_kept_fraction() < 0.6);
                CHECK(r.stats.cross_kept_fraction() > 0.0);
                CHECK(r.stats.cross_recall() >= 0.85);
            } else {
                CHECK(r.stats.cross_kept_fraction() == 1.0);
            }
            if (tc) {
                CHECK(r.stats.merge_rate() >= 0.85);
                CHECK(r.cache_tokens < ref.cache_tokens / 3);
            } else {
                CHECK(r.stats.merge_rate() == 0.0);
            }
            if (type == "window") CHECK(r.cache_tokens == ref.cache_tokens);   // 13 frames ≤ W = 16: nothing evicted
            if (type == "dense") CHECK(at::equal(r.self_out, ref.self_out));
        }
    }
}

TEST_CASE("AnnSA probing every bucket equals Dense; fewer probes attend fewer keys", "[attention]") {
    const int64_t H = 2, D = 32, N = 64;
    auto ctx = sparse_ctx();
    ctx.temporal_slope = at::tensor({0.0f, 0.3f});
    Run ref;
    {
        auto dense = dc::make_attention(dc::AttentionSpec::parse("dense"));
        dc::KvCache cache(H, D, at::kFloat, at::kCPU);
        ref = run(*dense, cache, H, D, N, 6, 9, ctx);
    }
    double last_density = 2;
    for (int probes : {16, 5, 2, 1}) {
        auto attn = dc::make_attention(dc::AttentionSpec::parse(
            "annsa", R"({"annsa": {"bits": 4, "min_cache_tokens": 0, "probes": )" + std::to_string(probes) + "}}"));
        dc::KvCache cache(H, D, at::kFloat, at::kCPU);
        Run r = run(*attn, cache, H, D, N, 6, 9, ctx);
        if (probes == 16) {
            CHECK(rel_err(r.self_out, ref.self_out) < 2e-5);
            CHECK(r.stats.density() == 1.0);
            CHECK(r.stats.recall() == Approx(1.0).epsilon(1e-6));
        }
        CHECK(r.stats.density() < last_density);
        last_density = r.stats.density();
    }
}

TEST_CASE("AnnSA follows the dense-step and sparse-block schedule", "[attention]") {
    const int64_t H = 2, D = 16, N = 32;
    auto attn = dc::make_attention(dc::AttentionSpec::parse("annsa", R"({"annsa": {"min_cache_tokens": 0}})"));
    dc::KvCache cache(H, D, at::kFloat, at::kCPU);
    dc::SyntheticFrames gen(H, D, N, 0.1, 0.05, 1.5, 1, 8, 4);
    dc::AttentionContext ctx;
    ctx.n_layers = 10;
    ctx.n_steps = 4;
    for (int f = 0; f < 3; ++f) {
        auto fr = gen.next();
        ctx.frame = f;
        attn->commit(cache, fr.q, fr.k, fr.v, ctx, nullptr);
    }
    auto fr = gen.next();
    ctx.frame = 3;
    auto density = [&](int layer, int step) {
        ctx.layer = layer;
        ctx.step = step;
        dc::AttentionStats st;
        attn->self_attend(fr.q, fr.k, fr.v, cache, ctx, &st);
        return st.density();
    };
    // ceil(0.3·4) = 2 dense steps; round(0.7·10) = 7 sparse blocks (layers 3..9); the commit pass (step 4) is sparse.
    CHECK(density(9, 0) == 1.0);
    CHECK(density(9, 1) == 1.0);
    CHECK(density(9, 2) < 1.0);
    CHECK(density(9, 4) < 1.0);
    CHECK(density(2, 3) == 1.0);
    CHECK(density(3, 3) < 1.0);
}

TEST_CASE("AnnSA switched on mid-run gives the same result as AnnSA on from the start", "[attention]") {
    // TempCache merges and the window evicts while AnnSA is off (no codes kept); when it is switched on the codes
    // are built once, then kept in sync. The result must equal a run where codes were maintained all along.
    const int64_t H = 2, D = 16, N = 32;
    auto ctx = sparse_ctx();
    ctx.temporal_slope = at::tensor({0.0f, 0.2f});
    const std::string params = R"({"annsa": {"bits": 5, "probes": 2, "min_cache_tokens": 0}, "window": {"frames": 3}})";
    auto plain = dc::make_attention(dc::AttentionSpec::parse("tempcache+window", params));
    auto sparse = dc::make_attention(dc::AttentionSpec::parse("tempcache+window+annsa", params));
    dc::KvCache toggled(H, D, at::kFloat, at::kCPU), always(H, D, at::kFloat, at::kCPU);
    dc::SyntheticFrames gen(H, D, N, 0.2, 0.3, 1.5, 4, 8, 4);
    dc::AttentionStats st_toggled, st_always;
    for (int f = 0; f < 9; ++f) {
        auto fr = gen.next();
        ctx.frame = f;
        ctx.step = ctx.n_steps - 1;
        dc::Attention& a = f < 5 ? *plain : *sparse;
        dc::AttentionStats s1, s2;
        at::Tensor o1 = a.self_attend(fr.q, fr.k, fr.v, toggled, ctx, &s1);
        at::Tensor o2 = sparse->self_attend(fr.q, fr.k, fr.v, always, ctx, &s2);
        st_toggled.add(s1);
        st_always.add(s2);
        if (f >= 5) {   // same buckets; rows inside a bucket may be in another order (built vs updated): rounding
            CHECK(s1.keys_attended == s2.keys_attended);
            CHECK(rel_err(o1, o2) < 1e-6);
        }
        ctx.step = ctx.n_steps;
        a.commit(toggled, fr.q, fr.k, fr.v, ctx, nullptr);
        sparse->commit(always, fr.q, fr.k, fr.v, ctx, nullptr);
    }
    CHECK(st_always.density() < 1.0);
    CHECK(toggled.size() == always.size());

}

TEST_CASE("AnnCA keeps prompt tokens that share a bucket with a query; a head with none falls back to dense",
          "[attention]") {
    const int64_t H = 1, D = 8, P = 6;
    // Queries all on one side of every hyperplane → one bucket; keys: 3 in that bucket (k = q), 3 opposite (−q).
    at::Tensor qv = at::randn({D});
    at::Tensor q = qv.view({1, 1, 1, D}).expand({1, H, 4, D}).contiguous();
    at::Tensor k = at::cat({qv.view({1, D}).expand({3, D}), -qv.view({1, D}).expand({3, D})}).view({1, H, P, D});
    at::Tensor v = at::randn({1, H, P, D});
    at::Tensor valid = at::ones({1, P}, at::kBool);
    auto attn = dc::make_attention(dc::AttentionSpec::parse("annca", R"({"annca": {"bits": 8}})"));
    dc::AttentionContext ctx;
    ctx.measure_recall = true;
    dc::AttentionStats st;
    at::Tensor out = attn->cross_attend(q, k, v, valid, ctx, &st);
    CHECK(st.cross_kept == 3);
    CHECK(st.cross_available == 6);
    at::Tensor keep = at::tensor({1, 1, 1, 0, 0, 0}).to(at::kBool).view({1, P});
    CHECK(rel_err(out, dc::dense_attention(q, k, v, at::Tensor(), keep)) < 1e-5);
    CHECK(st.cross_recall() > 0.99);
    // Only the opposite keys valid: nothing shares the queries' bucket → dense over the valid ones.
    at::Tensor valid2 = keep.logical_not();
    dc::AttentionStats st2;
    out = attn->cross_attend(q, k, v, valid2, ctx, &st2);
    CHECK(st2.cross_kept == 3);
    CHECK(rel_err(out, dc::dense_attention(q, k, v, at::Tensor(), valid2)) < 1e-5);
}

TEST_CASE("AnnSA/AnnCA top-k modes through the sq8 and exact indexes stay close to Dense", "[attention]") {
    const int64_t H = 2, D = 32, N = 64;
    auto ctx = sparse_ctx();
    ctx.temporal_slope = at::tensor({0.0f, 0.1f});
    Run ref;
    {
        auto dense = dc::make_attention(dc::AttentionSpec::parse("dense"));
        dc::KvCache cache(H, D, at::kFloat, at::kCPU);
        ref = run(*dense, cache, H, D, N, 6, 2, ctx);
    }
    for (const char* index : {"exact", "sq8"}) {
        DYNAMIC_SECTION(index) {
            const std::string p = std::string(R"({"annsa": {"min_cache_tokens": 0, "top_k": 64, "index": ")") + index +
                                  R"("}, "annca": {"top_k": 2, "index": ")" + index + "\"}}";
            auto attn = dc::make_attention(dc::AttentionSpec::parse("annsa+annca", p));
            dc::KvCache cache(H, D, at::kFloat, at::kCPU);
            Run r = run(*attn, cache, H, D, N, 6, 2, ctx);
            CHECK(r.stats.density() < 0.6);
            CHECK(r.stats.recall() >= 0.9);
            CHECK(r.stats.cross_recall() >= 0.8);
            CHECK(at::cosine_similarity(r.self_out.flatten(), ref.self_out.flatten(), 0).item<double>() > 0.95);
        }
    }
}

TEST_CASE("same inputs give identical outputs (determinism)", "[attention]") {
    const int64_t H = 4, D = 32, N = 64;
    auto once = [&]() {
        auto attn = dc::make_attention(dc::AttentionSpec::parse(
            "tempcache+annsa+annca", R"({"annsa": {"min_cache_tokens": 0, "probes": 3}})"));
        dc::KvCache cache(H, D, at::kFloat, at::kCPU);
        return run(*attn, cache, H, D, N, 8, 21, sparse_ctx());
    };
    Run a = once(), b = once();
    CHECK(at::equal(a.self_out, b.self_out));
    CHECK(at::equal(a.cross_out, b.cross_out));
    CHECK(a.stats.keys_attended == b.stats.keys_attended);
    CHECK(a.stats.merged == b.stats.merged);
    CHECK(a.stats.recall_sum == b.stats.recall_sum);
}

TEST_CASE("attention checks shapes and devices and says what it found", "[attention]") {
    auto attn = dc::make_attention(dc::AttentionSpec::parse("dense"));
    dc::KvCache cache(2, 8, at::kFloat, at::kCPU);
    dc::AttentionContext ctx;
    at::Tensor x = at::randn({1, 3, 4, 8});
    CHECK_THROWS_WITH(attn->self_attend(x, x, x, cache, ctx, nullptr), Catch::Contains("[1, 2, N ≥ 1, 8]"));
    at::Tensor y = at::randn({2, 2, 4, 8});
    CHECK_THROWS_WITH(attn->commit(cache, y, y, y, ctx, nullptr), Catch::Contains("B = 1"));
    ctx.layer = 3;
    at::Tensor z = at::randn({1, 2, 4, 8});
    CHECK_THROWS_WITH(attn->self_attend(z, z, z, cache, ctx, nullptr), Catch::Contains("layer 3 of 1"));
}

TEST_CASE("AnnCA recall is the kept share of each sampled row's softmax over its valid prompt tokens",
          "[attention]") {
    // cross_recall samples ≤ 32 evenly spaced (batch, head, query) rows in one batched computation; here each row is
    // recomputed on its own in float64. Batch 1 has no valid prompt token: its rows do not count.
    at::manual_seed(21);
    const int64_t B = 2, H = 4, N = 16, P = 10, D = 8;
    at::Tensor q = at::randn({B, H, N, D}), k = at::randn({B, H, P, D});
    at::Tensor valid = at::rand({B, P}) < 0.7;
    valid[0][0] = true;
    valid[1].fill_(false);
    at::Tensor kept = (at::rand({B, H, P}) < 0.5).logical_and(valid.unsqueeze(1));
    const int64_t total = B * H * N, n = std::min<int64_t>(32, total);
    double sum = 0;
    int used = 0;
    for (int64_t j = 0; j < n; ++j) {
        const int64_t r = j * total / n, b = r / (H * N), h = (r / N) % H, i = r % N;
        if (!valid[b].any().item<bool>()) continue;
        at::Tensor s = k[b][h].to(at::kDouble).mv(q[b][h][i].to(at::kDouble)) / std::sqrt(double(D));
        s.masked_fill_(valid[b].logical_not(), -INFINITY);
        sum += at::softmax(s, 0).mul(kept[b][h].to(at::kDouble)).sum().item<double>();
        ++used;
    }
    REQUIRE(used == 16);   // the rows of batch 0
    CHECK(dc::cross_recall(q, k, valid, kept).item<double>() == Approx(sum / used).epsilon(1e-5));
    // No valid prompt anywhere: nothing to lose.
    CHECK(dc::cross_recall(q, k, at::zeros({B, P}, at::kBool), kept).item<double>() == 1.0);
}
