// KV cache: byte accounting, storage operations, LSH codes in sync; cache policies: TempCache (Lemma 5.1, one-to-one,
// merge rate), window eviction, budget.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cmath>

#include "attention/ann.h"
#include "attention/attention.h"
#include "attention/attention_bench.h"

namespace {

double rel_err(const at::Tensor& a, const at::Tensor& ref) {
    return (a.to(at::kDouble) - ref.to(at::kDouble)).abs().max().item<double>() /
           std::max(1e-12, ref.to(at::kDouble).abs().max().item<double>());
}

void commit_frames(dc::Attention& attn, dc::KvCache& cache, int64_t n_frames, int64_t H, int64_t N, int64_t D,
                   dc::AttentionStats* st = nullptr, int64_t first_frame = 0) {
    dc::AttentionContext ctx;
    for (int64_t f = first_frame; f < first_frame + n_frames; ++f) {
        ctx.frame = f;
        at::Tensor x = at::randn({1, H, N, D});
        attn.commit(cache, x, x, x, ctx, st);
    }
}

}  // namespace

TEST_CASE("KvCache byte accounting is exact", "[attention]") {
    // Per entry: keys + values 2·H·D·sizeof(dtype), bias 4·H, frame 8, group size 4.
    dc::KvCache c32(2, 4, at::kFloat, at::kCPU);   // 2·2·4·4 + 8 + 8 + 4 = 84 bytes per entry
    CHECK(c32.bytes() == 0);
    c32.append(at::randn({1, 2, 3, 4}), at::randn({1, 2, 3, 4}), 0);
    CHECK(c32.bytes() == 3 * 84);
    c32.append(at::randn({1, 2, 5, 4}), at::randn({1, 2, 5, 4}), 1);
    CHECK(c32.bytes() == 8 * 84);
    CHECK(c32.capacity_bytes() >= c32.bytes());
    CHECK(c32.capacity_bytes() % 84 == 0);
    dc::KvCache c16(6, 64, at::kBFloat16, at::kCPU);   // 2·6·64·2 + 24 + 8 + 4 = 1572 bytes per entry
    c16.append(at::randn({1, 6, 256, 64}).to(at::kBFloat16), at::randn({1, 6, 256, 64}).to(at::kBFloat16), 0);
    CHECK(c16.bytes() == 256 * 1572);
    CHECK(c16.index_bytes() == 0);
    c16.key_codes(dc::lsh_planes(6, 64, 6, 1), 9);   // codes: 4 bytes per head per entry
    CHECK(c16.index_bytes() >= 256 * 6 * 4);
}

TEST_CASE("KvCache append, update and compact keep entries, frames and group sizes in order", "[attention]") {
    dc::KvCache c(1, 2, at::kFloat, at::kCPU);
    auto kv = [](std::vector<float> x) { return at::tensor(x).view({1, 1, -1, 2}); };
    c.append(kv({0, 0, 1, 1, 2, 2}), kv({0, 0, 1, 1, 2, 2}), 5);
    c.append(kv({3, 3}), kv({3, 3}), 6);
    CHECK(c.size() == 4);
    CHECK(c.n_frames() == 2);
    CHECK(c.frame_ids() == std::vector<int64_t>{5, 6});
    const int64_t v0 = c.version();
    c.update(at::tensor({1}, at::kLong), kv({9, 9}), kv({8, 8}), 7, at::tensor({3}, at::kInt));
    CHECK(c.version() != v0);
    CHECK(c.keys()[0][0][1][0].item<float>() == 9);
    CHECK(c.values()[0][0][1][1].item<float>() == 8);
    CHECK(c.frames()[1].item<int64_t>() == 7);
    CHECK(c.group_sizes()[1].item<int>() == 3);
    CHECK(c.bias()[0][0][1].item<float>() == Approx(std::log(3.0)));
    CHECK(c.bias()[0][0][0].item<float>() == 0);
    c.compact(at::tensor({1, 1, 0, 1}).to(at::kBool));
    CHECK(c.size() == 3);
    CHECK(at::equal(c.keys().flatten(), at::tensor({0.f, 0.f, 9.f, 9.f, 3.f, 3.f})));
    CHECK(c.frame_ids() == std::vector<int64_t>{5, 6, 7});
    CHECK(c.group_sizes()[1].item<int>() == 3);
    CHECK_THROWS_WITH(c.update(at::tensor({3}, at::kLong), kv({0, 0}), kv({0, 0}), 8, at::tensor({2})),
                      Catch::Contains("outside [0, 3)"));
    CHECK_THROWS_WITH(c.update(at::tensor({1, 1}, at::kLong), kv({0, 0, 1, 1}), kv({0, 0, 1, 1}), 8,
                               at::tensor({2, 2})),
                      Catch::Contains("distinct indices, found 1 twice"));
    CHECK_THROWS_WITH(c.append(at::randn({1, 2, 1, 2}), at::randn({1, 2, 1, 2}), 0),
                      Catch::Contains("[1, 1, N, 2]"));
    c.clear();
    CHECK(c.size() == 0);
    CHECK(c.bytes() == 0);
}

TEST_CASE("KvCache keeps LSH codes in sync through append, update, compact and growth", "[attention]") {
    const int64_t H = 3, D = 16;
    dc::KvCache c(H, D, at::kFloat, at::kCPU);
    at::Tensor planes = dc::lsh_planes(H, D, 7, 42);
    c.append(at::randn({1, H, 10, D}), at::randn({1, H, 10, D}), 0);
    CHECK(at::equal(c.key_codes(planes, 1), dc::lsh_codes(c.keys(), planes)));   // built lazily
    for (int f = 1; f < 40; ++f) c.append(at::randn({1, H, 10, D}), at::randn({1, H, 10, D}), f);   // growth
    c.update(at::tensor({3, 250, 399}, at::kLong), at::randn({1, H, 3, D}), at::randn({1, H, 3, D}), 40,
             at::tensor({2, 2, 5}, at::kInt));
    c.compact(at::rand({c.size()}).gt(0.5));
    CHECK(at::equal(c.key_codes(planes, 1), dc::lsh_codes(c.keys(), planes)));
    // Other planes (another tag) → recomputed for all keys.
    at::Tensor planes2 = dc::lsh_planes(H, D, 3, 43);
    CHECK(at::equal(c.key_codes(planes2, 2), dc::lsh_codes(c.keys(), planes2)));
}

TEST_CASE("TempCache is exact on duplicated keys (FAST-AR Lemma 5.1)", "[attention]") {
    // Every frame repeats the same keys with new values. With slope 0, attention over the merged cache (one group
    // per key, value = mean, bias = log(size)) equals attention over the unmerged cache.
    const int64_t H = 3, D = 16, N = 20;
    for (at::ScalarType dt : {at::kFloat, at::kDouble}) {
        at::manual_seed(7);
        at::Tensor keys = at::randn({1, H, N, D}, dt);
        auto tc = dc::make_attention(dc::AttentionSpec::parse("tempcache"));
        auto dense = dc::make_attention(dc::AttentionSpec::parse("dense"));
        dc::KvCache merged(H, D, dt, at::kCPU), full(H, D, dt, at::kCPU);
        dc::AttentionContext ctx;
        dc::AttentionStats st;
        const int frames = 6;
        for (int f = 0; f < frames; ++f) {
            ctx.frame = f;
            at::Tensor v = at::randn({1, H, N, D}, dt);
            tc->commit(merged, keys, keys, v, ctx, &st);   // queries = keys: each token's top-1 key is its own
            dense->commit(full, keys, keys, v, ctx, nullptr);
        }
        CHECK(st.merged == (frames - 1) * N);   // every token after the first frame merged
        CHECK(merged.size() == N);
        CHECK(full.size() == frames * N);
        CHECK(at::equal(merged.group_sizes(), at::full({N}, frames, at::kInt)));
        ctx.frame = frames;
        at::Tensor q = at::randn({1, H, N, D}, dt) * 2, k = at::randn({1, H, N, D}, dt), v = at::randn({1, H, N, D}, dt);
        at::Tensor a = tc->self_attend(q, k, v, merged, ctx, nullptr);
        at::Tensor b = dense->self_attend(q, k, v, full, ctx, nullptr);
        CHECK(rel_err(a, b) < (dt == at::kFloat ? 1e-5 : 1e-12));
    }
}

TEST_CASE("TempCache with tau > 1 never merges and equals Dense bit for bit", "[attention]") {
    const int64_t H = 2, D = 8, N = 16;
    at::Tensor keys = at::randn({1, H, N, D});
    auto tc = dc::make_attention(dc::AttentionSpec::parse("tempcache", R"({"tempcache": {"tau": 1.01}})"));
    auto dense = dc::make_attention(dc::AttentionSpec::parse("dense"));
    dc::KvCache a(H, D, at::kFloat, at::kCPU), b(H, D, at::kFloat, at::kCPU);
    dc::AttentionContext ctx;
    dc::AttentionStats st;
    for (int f = 0; f < 4; ++f) {
        ctx.frame = f;
        at::Tensor v = at::randn({1, H, N, D});
        tc->commit(a, keys, keys, v, ctx, &st);
        dense->commit(b, keys, keys, v, ctx, nullptr);
    }
    CHECK(st.merged == 0);
    CHECK(st.committed == 4 * N);
    at::Tensor q = at::randn({1, H, N, D});
    CHECK(at::equal(tc->self_attend(q, q, q, a, ctx, nullptr), dense->self_attend(q, q, q, b, ctx, nullptr)));
}

TEST_CASE("TempCache merges one-to-one: the most similar new token wins an entry, the others append",
          "[attention]") {
    const int64_t D = 4;
    auto tc = dc::make_attention(dc::AttentionSpec::parse("tempcache"));
    dc::KvCache c(1, D, at::kFloat, at::kCPU);
    dc::AttentionContext ctx;
    at::Tensor k0 = at::tensor({1.f, 0.f, 0.f, 0.f}), k1 = at::tensor({0.f, 1.f, 0.f, 0.f});
    at::Tensor first = at::stack({k0, k1}).view({1, 1, 2, D});
    tc->commit(c, first, first, at::zeros({1, 1, 2, D}), ctx, nullptr);
    // Both new tokens point at k0 (their queries); a is closer to k0 (cos 0.995) than b (cos 0.95).
    at::Tensor a = at::tensor({1.f, 0.1f, 0.f, 0.f}), b = at::tensor({1.f, 0.f, 0.33f, 0.f});
    at::Tensor knew = at::stack({b, a}).view({1, 1, 2, D});
    at::Tensor qnew = at::stack({k0, k0}).view({1, 1, 2, D});
    at::Tensor vnew = at::ones({1, 1, 2, D});
    ctx.frame = 1;
    dc::AttentionStats st;
    tc->commit(c, qnew, knew, vnew, ctx, &st);
    CHECK(st.merged == 1);
    CHECK(c.size() == 3);
    CHECK(at::equal(c.keys()[0][0][0], a));                  // representative ← newest key of the group
    CHECK(c.values()[0][0][0][0].item<float>() == 0.5f);     // running mean of 0 and 1
    CHECK(c.group_sizes()[0].item<int>() == 2);
    CHECK(c.frames()[0].item<int64_t>() == 1);               // the group is refreshed to the new frame
    CHECK(at::equal(c.keys()[0][0][2], b));                  // the loser appended
    CHECK(c.group_sizes()[2].item<int>() == 1);
}

TEST_CASE("TempCache merge rate follows how much of the frame changes", "[attention]") {
    // Keys drift slowly (cosine ≈ 0.995 frame to frame): every kept token merges; replaced tokens cannot.
    const int64_t H = 4, D = 32, N = 128;
    for (double replace : {0.05, 0.25}) {
        auto tc = dc::make_attention(dc::AttentionSpec::parse("tempcache"));
        dc::KvCache c(H, D, at::kFloat, at::kCPU);
        dc::SyntheticFrames gen(H, D, N, 0.1, replace, 1.5, 3);
        dc::AttentionContext ctx;
        dc::AttentionStats st;
        for (int f = 0; f < 12; ++f) {
            auto fr = gen.next();
            ctx.frame = f;
            tc->commit(c, fr.q, fr.k, fr.v, ctx, &st);
        }
        const double kept_tokens = 1.0 - replace;
        // First frame appends (N tokens), every later frame merges ≈ the kept tokens.
        const double expected = kept_tokens * 11.0 / 12.0;
        CHECK(st.merge_rate() == Approx(expected).margin(0.03));
        CHECK(c.size() == st.committed - st.merged);
        // Frame bookkeeping follows merges (a merged group moves to the newest frame).
        at::Tensor distinct = std::get<0>(at::_unique(c.frames()));
        CHECK(c.n_frames() == distinct.numel());
        CHECK(c.frame_ids().back() == 11);
    }
    // Unrelated frames (fresh random keys) never pass tau = 0.9.
    auto tc = dc::make_attention(dc::AttentionSpec::parse("tempcache"));
    dc::KvCache c(H, D, at::kFloat, at::kCPU);
    dc::AttentionStats st;
    commit_frames(*tc, c, 5, H, N, D, &st);
    CHECK(st.merged == 0);
}

TEST_CASE("TempCache matching through an ANN index agrees with exact matching", "[attention]") {
    const int64_t H = 2, D = 32, N = 64;
    for (const char* index : {"lsh", "sq8"}) {
        DYNAMIC_SECTION(index) {
            auto exact = dc::make_attention(dc::AttentionSpec::parse("tempcache", R"({"tempcache": {"lookback": 4}})"));
            auto ann = dc::make_attention(dc::AttentionSpec::parse(
                "tempcache", std::string(R"({"tempcache": {"lookback": 4, "index_min_candidates": 1, "match_index": ")") +
                                 index + "\"}}"));
            dc::KvCache a(H, D, at::kFloat, at::kCPU), b(H, D, at::kFloat, at::kCPU);
            dc::SyntheticFrames gen(H, D, N, 0.1, 0.1, 1.5, 8);
            dc::AttentionContext ctx;
            dc::AttentionStats sa, sb;
            for (int f = 0; f < 6; ++f) {
                auto fr = gen.next();
                ctx.frame = f;
                exact->commit(a, fr.q, fr.k, fr.v, ctx, &sa);
                ann->commit(b, fr.q, fr.k, fr.v, ctx, &sb);
            }
            CHECK(sb.merged >= 0.9 * static_cast<double>(sa.merged));
        }
    }
}

TEST_CASE("Window keeps the newest W frames plus the sink frames, evicting whole frames", "[attention]") {
    auto w = dc::make_attention(dc::AttentionSpec::parse("window", R"({"window": {"frames": 2, "sinks": 1}})"));
    dc::KvCache c(2, 4, at::kFloat, at::kCPU);
    dc::AttentionStats st;
    commit_frames(*w, c, 3, 2, 5, 4, &st);
    CHECK(c.frame_ids() == std::vector<int64_t>{0, 1, 2});   // ≤ W + sinks frames: nothing evicted
    CHECK(st.evicted == 0);
    dc::AttentionContext ctx;
    for (int f = 3; f < 6; ++f) {
        ctx.frame = f;
        at::Tensor x = at::randn({1, 2, 5, 4});
        w->commit(c, x, x, x, ctx, &st);
    }
    CHECK(c.frame_ids() == std::vector<int64_t>{0, 4, 5});
    CHECK(c.size() == 15);
    CHECK(st.evicted == 15);
}

TEST_CASE("the cache budget evicts whole oldest frames after the sinks, never the newest", "[attention]") {
    const int64_t H = 2, D = 4, N = 5;
    auto dense = dc::make_attention(dc::AttentionSpec::parse("dense"));
    dc::KvCache c(H, D, at::kFloat, at::kCPU);
    c.max_tokens = 3 * N;
    c.sink_frames = 1;
    dc::AttentionStats st;
    commit_frames(*dense, c, 6, H, N, D, &st);
    CHECK(c.frame_ids() == std::vector<int64_t>{0, 4, 5});
    CHECK(st.evicted == 3 * N);
    // Byte budget: 84 bytes per entry (see byte accounting), 2 frames' worth → keeps sink + newest.
    dc::KvCache b(H, D, at::kFloat, at::kCPU);
    b.max_bytes = 2 * N * 84 + 83;
    b.sink_frames = 1;
    commit_frames(*dense, b, 4, H, N, D);
    CHECK(b.frame_ids() == std::vector<int64_t>{0, 3});
    CHECK(b.bytes() <= b.max_bytes);
    // A budget below one frame still keeps the frame just committed.
    dc::KvCache t(H, D, at::kFloat, at::kCPU);
    t.max_tokens = 2;
    commit_frames(*dense, t, 3, H, N, D);
    CHECK(t.frame_ids() == std::vector<int64_t>{2});
    // budget_slack: an eviction goes down to (1 − slack) × the budget, so the next frames fit without evicting.
    dc::KvCache s(H, D, at::kFloat, at::kCPU);
    s.max_tokens = 4 * N;
    s.sink_frames = 1;
    s.budget_slack = 0.5;
    dc::AttentionStats ss;
    commit_frames(*dense, s, 5, H, N, D, &ss);
    CHECK(s.frame_ids() == std::vector<int64_t>{0, 4});   // 5N > 4N: frames 1–3 go (down to 2N)
    CHECK(ss.evicted == 3 * N);
    dc::AttentionStats ss2;
    commit_frames(*dense, s, 2, H, N, D, &ss2, 5);
    CHECK(s.frame_ids() == std::vector<int64_t>{0, 4, 5, 6});
    CHECK(ss2.evicted == 0);
    // The budget applies after TempCache merges: duplicated frames merge and never reach it.
    auto tc = dc::make_attention(dc::AttentionSpec::parse("tempcache"));
    dc::KvCache m(H, D, at::kFloat, at::kCPU);
    m.max_tokens = 2 * N;
    // Unit-norm keys per head: each token's own duplicate is then its strict top-1 match (Cauchy-Schwarz); with raw
    // randn keys a longer key of another token can win the match now and then, and that token is appended instead.
    at::Tensor keys = at::randn({1, H, N, D});
    keys = keys / keys.norm(2, {-1}, true);
    dc::AttentionContext ctx;
    dc::AttentionStats sm;
    for (int f = 0; f < 5; ++f) {
        ctx.frame = f;
        tc->commit(m, keys, keys, at::randn({1, H, N, D}), ctx, &sm);
    }
    CHECK(sm.evicted == 0);
    CHECK(m.size() == N);
}

TEST_CASE("TempCache candidates reach back `lookback` frames, also after the cache was compacted", "[attention]") {
    const int64_t H = 2, D = 16, N = 6;
    auto unit = [&] {
        at::Tensor k = at::randn({1, H, N, D});
        return k / k.norm(2, {-1}, true);
    };
    const at::Tensor k0 = unit(), k1 = unit();
    // Frame 2 repeats frame 0: with lookback 2 every token finds its duplicate (its strict top-1, cosine 1) and
    // merges; with lookback 1 only frame 1's unrelated keys are candidates and nothing merges.
    for (const int lookback : {1, 2}) {
        for (const bool compacted : {false, true}) {
            CAPTURE(lookback, compacted);
            auto tc = dc::make_attention(dc::AttentionSpec::parse(
                "tempcache", R"({"tempcache": {"lookback": )" + std::to_string(lookback) + "}}"));
            dc::KvCache c(H, D, at::kFloat, at::kCPU);
            dc::AttentionContext ctx;
            dc::AttentionStats st;
            const std::vector<at::Tensor> keys = {k0, k1, k0};
            for (int f = 0; f < 3; ++f) {
                ctx.frame = f;
                if (f == 2) st = dc::AttentionStats{};
                tc->commit(c, keys[static_cast<size_t>(f)], keys[static_cast<size_t>(f)], at::randn({1, H, N, D}),
                           ctx, &st);
                // A compaction (here: frame 1's last row dropped) renumbers the rows; the next commit finds its
                // candidates by a scan of the cache's frames.
                if (compacted && f == 1) c.compact(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
            }
            CHECK(st.merged == (lookback == 2 ? N : 0));
            CHECK(c.size() == (compacted ? 2 * N - 1 : 2 * N) + (lookback == 2 ? 0 : N));
        }
    }
    dc::KvCache c(H, D, at::kFloat, at::kCPU);
    commit_frames(*dc::make_attention(dc::AttentionSpec::parse("dense")), c, 2, H, N, D);
    CHECK_THROWS_WITH(c.compact(std::vector<int64_t>{3, 2}), Catch::Contains("ascending rows in [0, 12)"));
    CHECK_THROWS_WITH(c.compact(std::vector<int64_t>{0, 12}), Catch::Contains("ascending rows in [0, 12)"));
    c.compact(std::vector<int64_t>{0, 5, 6});
    CHECK(c.size() == 3);
    CHECK(c.frame_ids() == std::vector<int64_t>{0, 1});
}
