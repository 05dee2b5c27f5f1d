// The dense.kernel parameter: "auto" (CUDA split-KV kernel on CUDA tensors) or "torch" (torch ops everywhere, the
// kernel's baseline in `dreamcaster bench rollout`). Parsing, errors, round trip, and that both give one result.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <string>

#include "attention/attention.h"
#include "common/common.h"

#ifdef DC_HAVE_CUDA
#include "attention/cuda/cuda_ops.h"
#endif

namespace {

std::string error_of(const std::string& type, const std::string& params) {
    try {
        dc::make_attention(dc::AttentionSpec::parse(type, params));
    } catch (const dc::Error& e) {
        return e.message();
    }
    return "no error";
}

// Commits `frames` random frames through `attn`, then returns one self-attention call of a random frame.
at::Tensor run_self(dc::Attention& attn, at::Device dev, at::ScalarType dt, int frames) {
    const int64_t H = 2, N = 16, D = 32;  // a head size the CUDA kernels take (32, 64 or 128)
    at::manual_seed(7);
    dc::KvCache cache(H, D, dt, dev);
    dc::AttentionContext ctx;
    ctx.n_layers = 1;
    ctx.n_steps = 1;
    ctx.temporal_slope = at::tensor({0.05f, 0.2f}).to(dev);
    auto rnd = [&] { return at::randn({1, H, N, D}).to(dev, dt); };
    for (int f = 0; f < frames; ++f) {
        ctx.frame = f;
        ctx.step = 1;  // a commit pass
        attn.commit(cache, rnd(), rnd(), rnd(), ctx, nullptr);
    }
    ctx.frame = frames;
    ctx.step = 0;
    at::Tensor q = rnd(), k = rnd(), v = rnd();
    return attn.self_attend(q, k, v, cache, ctx, nullptr).to(at::kCPU, at::kFloat);
}

}  // namespace

TEST_CASE("dense.kernel accepts auto and torch, and says what it accepts otherwise", "[attention]") {
    CHECK(dc::AttentionConfig{}.dense_params.kernel == "auto");
    auto s = dc::AttentionSpec::parse("dense", R"({"dense": {"kernel": "torch"}})");
    CHECK(s.config().dense_params.kernel == "torch");
    CHECK(
        dc::AttentionSpec::parse("tempcache+annsa", R"({"dense": {"kernel": "auto"}})").config().dense_params.kernel ==
        "auto");
    // Written out and parsed back.
    dc::AttentionConfig c;
    c.dense_params.kernel = "torch";
    CHECK(dc::AttentionSpec::from_config(c).config().dense_params.kernel == "torch");
    CHECK(dc::default_attention_params_json().find(R"("dense":{"kernel":"auto"})") != std::string::npos);
    CHECK(error_of("dense", R"({"dense": {"kernel": "flash"}})") ==
          R"(dense.kernel must be "auto" or "torch", found "flash")");
    CHECK(error_of("dense", R"({"dense": {"kernels": "torch"}})").find("unknown parameter \"dense.kernels\"") !=
          std::string::npos);
    CHECK(error_of("dense", R"({"dense": "torch"})").find("\"dense\" must be an object") != std::string::npos);
    CHECK(error_of("dense", R"({"flash": {}})").find("expected dense, tempcache, window, annsa or annca") !=
          std::string::npos);
}

TEST_CASE("dense.kernel torch gives the same result as auto on the CPU", "[attention]") {
    auto a = dc::make_attention(dc::AttentionSpec::parse("dense"));
    auto t = dc::make_attention(dc::AttentionSpec::parse("dense", R"({"dense": {"kernel": "torch"}})"));
    const at::Device cpu(at::kCPU);
    CHECK(at::equal(run_self(*a, cpu, at::kFloat, 5), run_self(*t, cpu, at::kFloat, 5)));
}

TEST_CASE("dense.kernel torch matches the CUDA split-KV kernel", "[attention][cuda]") {
#ifdef DC_HAVE_CUDA
    if (!dc::cuda::available()) {
        WARN("no CUDA device visible: test skipped");
        return;
    }
    auto a = dc::make_attention(dc::AttentionSpec::parse("dense"));
    auto t = dc::make_attention(dc::AttentionSpec::parse("dense", R"({"dense": {"kernel": "torch"}})"));
    const at::Device dev(at::kCUDA, 0);
    for (auto dt : {at::kFloat, at::kBFloat16}) {
        at::Tensor x = run_self(*a, dev, dt, 40), y = run_self(*t, dev, dt, 40);
        const double tol = dt == at::kFloat ? 1e-4 : 3e-2;
        CHECK((x - y).abs().max().item<double>() < tol);
    }
#else
    WARN("built without CUDA: test skipped");
#endif
}
