// The CUDA kernels of attention/cuda/ (through the torch adapters of cuda_ops.h) against float64 references computed
// here with torch ops on the CPU: fresh random inputs, outputs allocated over freed NaN blocks, sizes that are not
// multiples of the tiles, empty caches. Without a CUDA build or device each case warns and returns.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#ifdef DC_HAVE_CUDA
#include "attention/ann.h"
#include "attention/attention.h"
#include "attention/cuda/cuda_ops.h"
#include "common/common.h"
#endif

namespace {

#ifdef DC_HAVE_CUDA
bool cuda_ready() {
    if (dc::cuda::available()) return true;
    WARN("no CUDA device visible: CUDA kernel test skipped");
    return false;
}

const at::Device kCuda(at::kCUDA, 0);

at::TensorOptions cpu(at::ScalarType t) {
    return at::TensorOptions().dtype(t);
}

// Random values on the CPU (seeded, so every build sees the same inputs), rounded to dtype.
at::Tensor randn(at::IntArrayRef sizes, at::ScalarType dtype, double scale = 1.0) {
    return (at::randn(sizes, cpu(at::kDouble)) * scale).to(dtype);
}

// Leaves NaN-filled blocks in the caching allocator so that outputs the kernels forget to write show up as NaN.
void poison_allocator(int64_t bytes) {
    for (int64_t b : {bytes, bytes * 2, int64_t{1} << 20})
        (void)at::full({b / 4 + 64}, std::numeric_limits<float>::quiet_NaN(), at::TensorOptions().device(kCuda));
}

// Max abs difference relative to the reference's max abs value.
double rel_err(const at::Tensor& got, const at::Tensor& ref) {
    const at::Tensor g = got.to(at::kCPU, at::kDouble), r = ref.to(at::kCPU, at::kDouble);
    return (g - r).abs().max().item<double>() / std::max(1e-12, r.abs().max().item<double>());
}

bool all_finite(const at::Tensor& t) {
    return t.to(at::kCPU, at::kDouble).isfinite().all().item<bool>();
}

// float64 reference of one frame over [cache ‖ frame]; `allowed` [H, N, T] bool restricts the cached keys (or
// undefined for all). Logits q·k/√D + bias − slope·(frame − frames); the frame's own keys have bias 0, distance 0.
at::Tensor reference(const at::Tensor& q, const at::Tensor& kc, const at::Tensor& vc, const at::Tensor& bias,
                     const at::Tensor& frames, const at::Tensor& ku, const at::Tensor& vu, const at::Tensor& slope,
                     int64_t frame, const at::Tensor& allowed = at::Tensor()) {
    const int64_t H = q.size(1), N = q.size(2), D = q.size(3), T = kc.size(2);
    auto d = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
    at::Tensor k = at::cat({d(kc), d(ku)}, 2)[0];  // [H, T + N, D]
    at::Tensor v = at::cat({d(vc), d(vu)}, 2)[0];  // [H, T + N, D]
    at::Tensor add = at::zeros({H, T + N}, cpu(at::kDouble));
    if (T > 0 && bias.defined()) add.narrow(1, 0, T).add_(d(bias)[0]);
    if (T > 0 && slope.defined()) add.narrow(1, 0, T).sub_(d(slope).view({H, 1}) * (frame - d(frames)).view({1, T}));
    at::Tensor logits =
        at::matmul(d(q)[0], k.transpose(1, 2)) / std::sqrt(static_cast<double>(D)) + add.unsqueeze(1);  // [H, N, T + N]
    if (allowed.defined() && T > 0) {
        at::Tensor mask = at::cat({allowed.to(at::kCPU), at::ones({H, N, N}, cpu(at::kBool))}, 2);
        logits = logits.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
    }
    return at::matmul(at::softmax(logits, -1), v).unsqueeze(0);  // [1, H, N, D]
}

struct DenseCase {
    at::ScalarType dtype;
    int64_t H, N, D, T;
    bool slope, bias, strided;
};

double tolerance(at::ScalarType t) {
    return t == at::kBFloat16 ? 1e-2 : 1e-4;
}
#endif

}  // namespace

TEST_CASE("cuda dense attention matches a float64 reference", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(11);
    std::vector<DenseCase> cases;
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
        for (int64_t D : {32, 64, 128}) {
            cases.push_back({dt, 3, 256, D, 0, true, true, false});      // empty cache
            cases.push_back({dt, 2, 40, D, 0, false, false, false});     // one key tile, one chunk
            cases.push_back({dt, 3, 17, D, 64, true, true, true});       // N < one warp's rows, one chunk
            cases.push_back({dt, 3, 100, D, 777, true, true, true});     // T, N not multiples of the tiles
            cases.push_back({dt, 2, 256, D, 1000, false, true, false});  // no slope
        }
        cases.push_back({dt, 3, 256, 64, 20000, true, true, true});   // many chunks (reduce pass)
        cases.push_back({dt, 1, 300, 64, 3000, true, false, false});  // N beyond one query tile, no bias
    }
    for (const DenseCase& c : cases) {
        CAPTURE(c.dtype, c.H, c.N, c.D, c.T, c.slope, c.bias, c.strided);
        const int64_t cap = c.strided ? c.T + 37 : c.T;  // a KvCache view: live entries of larger storage
        at::Tensor q = randn({1, c.H, c.N, c.D}, c.dtype, 1.5).to(kCuda);
        at::Tensor kst = randn({1, c.H, cap, c.D}, c.dtype).to(kCuda),
                   vst = randn({1, c.H, cap, c.D}, c.dtype).to(kCuda);
        at::Tensor kc = kst.narrow(2, 0, c.T), vc = vst.narrow(2, 0, c.T);  // [1, H, T, D]
        at::Tensor bst = (at::rand({1, c.H, cap}, cpu(at::kFloat)) * 2).to(kCuda);
        at::Tensor bias = c.bias ? bst.narrow(2, 0, c.T) : at::Tensor();  // [1, H, T] log group sizes
        at::Tensor frames = at::randint(0, 500, {c.T}, cpu(at::kLong)).to(kCuda);
        at::Tensor ku = randn({1, c.H, c.N, c.D}, c.dtype).to(kCuda), vu = randn({1, c.H, c.N, c.D}, c.dtype).to(kCuda);
        at::Tensor slope = c.slope ? (at::rand({c.H}, cpu(at::kFloat)) * 0.02).to(kCuda) : at::Tensor();
        if (c.strided) q = q.transpose(1, 2).contiguous().transpose(1, 2);  // [1, H, N, D] with N outermost
        at::Tensor ref = reference(q, kc, vc, bias, frames, ku, vu, slope, 500);
        // Every bf16 kernel that runs here: mma_sync always, wgmma on Hopper (D = 64), and the default choice.
        std::vector<dc::cuda::DenseKernel> kernels = {dc::cuda::DenseKernel::best};
        if (c.dtype == at::kBFloat16) {
            kernels.push_back(dc::cuda::DenseKernel::mma_sync);
            if (dc::cuda::dense_wgmma_available(c.D)) kernels.push_back(dc::cuda::DenseKernel::wgmma);
        }
        for (dc::cuda::DenseKernel kernel : kernels) {
            CAPTURE(static_cast<int>(kernel));
            poison_allocator(c.H * c.N * c.D * 4);
            at::Tensor out = dc::cuda::dense_attention_using(kernel, q, kc, vc, bias, frames, ku, vu, slope, 500);
            REQUIRE(out.sizes() == q.sizes());
            REQUIRE(out.scalar_type() == c.dtype);
            REQUIRE(out.device() == kCuda);
            CHECK(all_finite(out));
            CHECK(rel_err(out, ref) < tolerance(c.dtype));
        }
    }
    if (!dc::cuda::dense_wgmma_available(64)) WARN("no wgmma dense kernel on this card or build: mma_sync tested");
#endif
}

TEST_CASE("cuda dense attention: the wgmma kernel matches mma_sync on a long cache and refuses what it cannot run",
          "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(13);
    const at::Tensor none;
    auto bf = [](at::IntArrayRef sizes) { return randn(sizes, at::kBFloat16).to(kCuda); };
    if (dc::cuda::dense_wgmma_available(64)) {
        // Model-shaped: 6 heads × 64, a frame of 256 queries over 200 frames of cache (many chunks, rescales).
        const int64_t H = 6, N = 256, T = 200 * 256;
        at::Tensor q = (randn({1, H, N, 64}, at::kFloat) * 2).to(at::kBFloat16).to(kCuda);
        at::Tensor kc = bf({1, H, T, 64}), vc = bf({1, H, T, 64}), ku = bf({1, H, N, 64}), vu = bf({1, H, N, 64});
        at::Tensor bias = (at::rand({1, H, T}, cpu(at::kFloat)) * 3).to(kCuda);
        at::Tensor frames = at::arange(T, cpu(at::kLong)).div(256, "floor").to(kCuda);
        at::Tensor slope = at::full({H}, 0.01f, cpu(at::kFloat)).to(kCuda);
        at::Tensor w = dc::cuda::dense_attention_using(dc::cuda::DenseKernel::wgmma, q, kc, vc, bias, frames, ku, vu,
                                                       slope, 200);
        at::Tensor m = dc::cuda::dense_attention_using(dc::cuda::DenseKernel::mma_sync, q, kc, vc, bias, frames, ku,
                                                       vu, slope, 200);
        CHECK(all_finite(w));
        CHECK(rel_err(w, m) < 1e-2);
        CHECK(at::equal(w, dc::cuda::dense_attention(q, kc, vc, bias, frames, ku, vu, slope, 200)));  // best = wgmma
    } else {
        WARN("no wgmma dense kernel on this card or build: comparison skipped");
    }
    // Head dim 32 has no wgmma kernel anywhere: asking for it says what it needs and what it found.
    try {
        (void)dc::cuda::dense_attention_using(dc::cuda::DenseKernel::wgmma, bf({1, 2, 16, 32}), bf({1, 2, 0, 32}),
                                              bf({1, 2, 0, 32}), none, none, bf({1, 2, 16, 32}), bf({1, 2, 16, 32}),
                                              none, 0);
        FAIL("expected an error");
    } catch (const dc::Error& e) {
        CHECK(std::string(e.message()).find("the wgmma kernel needs bfloat16 heads of 64") != std::string::npos);
        CHECK(std::string(e.message()).find("found head dim 32") != std::string::npos);
    }
#endif
}

TEST_CASE("cuda dense attention agrees with dc::dense_attention", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(12);
    const int64_t H = 2, N = 64, D = 64, T = 500;
    at::Tensor q = randn({1, H, N, D}, at::kFloat), kc = randn({1, H, T, D}, at::kFloat),
               vc = randn({1, H, T, D}, at::kFloat), ku = randn({1, H, N, D}, at::kFloat),
               vu = randn({1, H, N, D}, at::kFloat);
    at::Tensor bias = at::rand({1, H, T}, cpu(at::kFloat));
    at::Tensor frames = at::randint(0, 40, {T}, cpu(at::kLong));
    at::Tensor slope = at::full({H}, 0.05, cpu(at::kFloat));
    at::Tensor out = dc::cuda::dense_attention(q.to(kCuda), kc.to(kCuda), vc.to(kCuda), bias.to(kCuda),
                                               frames.to(kCuda), ku.to(kCuda), vu.to(kCuda), slope.to(kCuda), 40);
    // The CPU reference takes the whole additive term as its bias.
    at::Tensor add = at::cat({bias - slope.view({1, H, 1}) * (40 - frames).to(at::kFloat).view({1, 1, T}),
                              at::zeros({1, H, N}, cpu(at::kFloat))},
                             2);
    at::Tensor ref = dc::dense_attention(q, at::cat({kc, ku}, 2), at::cat({vc, vu}, 2), add, at::Tensor());
    CHECK(rel_err(out, ref) < 1e-4);
#endif
}

TEST_CASE("cuda adapters reject bad inputs with a message", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    const auto o = at::TensorOptions().device(kCuda);
    at::Tensor q = at::zeros({1, 2, 8, 64}, o), kc = at::zeros({1, 2, 5, 64}, o), ku = at::zeros({1, 2, 8, 64}, o);
    at::Tensor bias = at::zeros({1, 2, 5}, o), frames = at::zeros({5}, o.dtype(at::kLong));
    CHECK_NOTHROW(dc::cuda::dense_attention(q, kc, kc, bias, frames, ku, ku, at::Tensor(), 0));
    CHECK_THROWS_AS(dc::cuda::dense_attention(q.cpu(), kc, kc, bias, frames, ku, ku, at::Tensor(), 0), dc::Error);
    CHECK_THROWS_AS(dc::cuda::dense_attention(q.to(at::kDouble), kc, kc, bias, frames, ku, ku, at::Tensor(), 0),
                    dc::Error);
    CHECK_THROWS_AS(dc::cuda::dense_attention(at::zeros({1, 2, 8, 48}, o), at::zeros({1, 2, 5, 48}, o),
                                              at::zeros({1, 2, 5, 48}, o), bias, frames, at::zeros({1, 2, 8, 48}, o),
                                              at::zeros({1, 2, 8, 48}, o), at::Tensor(), 0),
                    dc::Error);
    CHECK_THROWS_AS(dc::cuda::dense_attention(q, kc, kc, bias.narrow(2, 0, 4), frames, ku, ku, at::Tensor(), 0),
                    dc::Error);
    CHECK_THROWS_AS(dc::cuda::bucket_sort(at::zeros({1, 2, 5}, o.dtype(at::kInt)), 17), dc::Error);
    CHECK_THROWS_AS(dc::cuda::lsh_codes(q, at::zeros({2, 64, 20}, o)), dc::Error);
#endif
}

TEST_CASE("cuda LSH codes are the sign bits of the projections", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(13);
    struct Case {
        at::ScalarType dtype;
        int64_t B, H, T, D, bits;
    };
    for (const Case& c : {Case{at::kFloat, 1, 3, 1000, 64, 8}, Case{at::kBFloat16, 2, 2, 333, 64, 16},
                          Case{at::kFloat, 1, 2, 77, 32, 1}, Case{at::kBFloat16, 1, 1, 300, 128, 12},
                          Case{at::kFloat, 1, 2, 10, 12, 5}, Case{at::kFloat, 1, 2, 0, 64, 8}}) {
        CAPTURE(c.dtype, c.B, c.H, c.T, c.D, c.bits);
        at::Tensor x = randn({c.B, c.H, c.T, c.D}, c.dtype);
        at::Tensor planes = at::randn({c.H, c.D, c.bits}, cpu(at::kFloat));
        poison_allocator(c.B * c.H * c.T * 4);
        at::Tensor codes = dc::cuda::lsh_codes(x.to(kCuda), planes.to(kCuda));
        REQUIRE(codes.sizes() == at::IntArrayRef({c.B, c.H, c.T}));
        REQUIRE(codes.scalar_type() == at::kInt);
        if (c.T == 0) continue;
        at::Tensor proj = at::matmul(x.to(at::kDouble), planes.to(at::kDouble).unsqueeze(0));  // [B, H, T, bits]
        at::Tensor bits = at::arange(c.bits, cpu(at::kLong));
        at::Tensor got = codes.cpu().to(at::kLong).unsqueeze(-1).bitwise_right_shift(bits).bitwise_and(1);
        at::Tensor want = proj.gt(0).to(at::kLong);
        at::Tensor decided = proj.abs().gt(1e-3);  // fp32 sums may flip bits of projections next to zero
        CHECK(got.ne(want).logical_and(decided).sum().item<int64_t>() == 0);
        CHECK(codes.cpu().to(at::kLong).bitwise_right_shift(c.bits).eq(0).all().item<bool>());
    }
#endif
}

TEST_CASE("cuda multi-probe codes are the CPU's cheapest bit flips", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(14);
    struct Case {
        at::ScalarType dtype;
        int64_t B, H, T, D;
        int bits, probes;
    };
    // AnnSA's and AnnCA's defaults (6 bits × 8 probes, 12 × 4), one probe, the 16-probe limit, every bucket, odd sizes.
    for (const Case& c : {Case{at::kFloat, 1, 4, 256, 64, 6, 8}, Case{at::kBFloat16, 1, 4, 256, 64, 12, 4},
                          Case{at::kFloat, 1, 2, 100, 64, 8, 1}, Case{at::kFloat, 2, 3, 77, 32, 16, 16},
                          Case{at::kFloat, 1, 2, 50, 64, 3, 8}, Case{at::kFloat, 1, 2, 0, 64, 6, 8}}) {
        CAPTURE(c.dtype, c.B, c.H, c.T, c.D, c.bits, c.probes);
        at::Tensor x = randn({c.B, c.H, c.T, c.D}, c.dtype);
        at::Tensor planes = dc::lsh_planes(c.H, c.D, c.bits, 99);
        poison_allocator(c.B * c.H * c.T * c.probes * 4);
        at::Tensor got = dc::cuda::lsh_probe_codes(x.to(kCuda), planes.to(kCuda), c.probes);
        REQUIRE(got.sizes() == at::IntArrayRef({c.B, c.H, c.T, c.probes}));
        REQUIRE(got.scalar_type() == at::kInt);
        if (c.T == 0) continue;
        at::Tensor want = dc::lsh_probe_codes(x, planes, c.probes);   // the CPU implementation
        at::Tensor g = got.cpu();
        CHECK(g.select(3, 0).equal(dc::cuda::lsh_codes(x.to(kCuda), planes.to(kCuda)).cpu()));
        // Rows agree except where fp32 summation order moves a projection across 0 or swaps two near-equal costs.
        const double rows_equal = g.eq(want).all(3).to(at::kDouble).mean().item<double>();
        CHECK(rows_equal >= 0.98);
        // Every row lists distinct buckets.
        at::Tensor sorted = std::get<0>(g.sort(3));
        CHECK(sorted.narrow(3, 1, c.probes - 1).ne(sorted.narrow(3, 0, c.probes - 1)).all().item<bool>());
    }
    at::Tensor x = randn({1, 2, 10, 64}, at::kFloat).to(kCuda);
    at::Tensor planes = dc::lsh_planes(2, 64, 6, 1).to(kCuda);
    CHECK_THROWS_WITH(dc::cuda::lsh_probe_codes(x, planes, 17),
                      Catch::Contains("probes must be in 1..16 or exactly 2^bits = 64, found 17"));
#endif
}

TEST_CASE("cuda bucket sort is a stable sort by code with bucket offsets", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(14);
    struct Case {
        int64_t H, T;
        int bits;
        int64_t code_range;
    };
    for (const Case& c :
         {Case{2, 0, 4, 16}, Case{3, 1, 4, 16}, Case{3, 2047, 8, 256}, Case{2, 2049, 1, 2}, Case{3, 100000, 8, 256},
          Case{2, 70000, 9, 512}, Case{2, 5000, 16, 65536}, Case{2, 3000, 16, 40}, Case{1, 4000, 3, 64}}) {
        CAPTURE(c.H, c.T, c.bits, c.code_range);
        at::Tensor codes = at::randint(0, c.code_range, {1, c.H, c.T}, cpu(at::kInt));
        poison_allocator(c.H * c.T * 4);
        auto [perm, offsets] = dc::cuda::bucket_sort(codes.to(kCuda), c.bits);
        const int64_t nb = int64_t{1} << c.bits;
        REQUIRE(perm.sizes() == codes.sizes());
        REQUIRE(offsets.sizes() == at::IntArrayRef({1, c.H, nb + 1}));
        at::Tensor key = codes.to(at::kLong).remainder(nb);  // codes are taken modulo 2^bits
        at::Tensor want = std::get<1>(at::sort(key, /*stable=*/true, /*dim=*/-1, /*descending=*/false));
        CHECK(perm.cpu().to(at::kLong).equal(want));
        for (int64_t h = 0; h < c.H; ++h) {
            at::Tensor counts = at::bincount(key[0][h], {}, nb);
            at::Tensor want_off = at::cat({at::zeros({1}, cpu(at::kLong)), counts.cumsum(0)});
            CHECK(offsets.cpu()[0][h].to(at::kLong).equal(want_off));
        }
    }
#endif
}

TEST_CASE("cuda bucketed attention scores exactly the probed buckets and the frame", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(15);
    struct Case {
        at::ScalarType dtype;
        int64_t H, N, D, T;
        int bits;
        int64_t P;
    };
    for (const Case& c : {Case{at::kFloat, 2, 37, 64, 1500, 3, 2}, Case{at::kBFloat16, 3, 256, 64, 2000, 4, 3},
                          Case{at::kBFloat16, 2, 40, 128, 700, 2, 1}, Case{at::kFloat, 2, 33, 32, 900, 5, 4},
                          Case{at::kFloat, 2, 20, 64, 0, 3, 2}, Case{at::kBFloat16, 1, 50, 64, 600, 1, 2}}) {
        CAPTURE(c.dtype, c.H, c.N, c.D, c.T, c.bits, c.P);
        const int64_t nb = int64_t{1} << c.bits;
        at::Tensor q = randn({1, c.H, c.N, c.D}, c.dtype, 1.5), kc = randn({1, c.H, c.T, c.D}, c.dtype),
                   vc = randn({1, c.H, c.T, c.D}, c.dtype), ku = randn({1, c.H, c.N, c.D}, c.dtype),
                   vu = randn({1, c.H, c.N, c.D}, c.dtype);
        at::Tensor bias = at::rand({1, c.H, c.T}, cpu(at::kFloat));
        at::Tensor frames = at::randint(0, 30, {c.T}, cpu(at::kLong));
        at::Tensor slope = at::full({c.H}, 0.03, cpu(at::kFloat));
        at::Tensor codes = at::randint(0, nb, {1, c.H, c.T}, cpu(at::kInt));
        at::Tensor probes = at::randint(0, nb, {1, c.H, c.N, c.P}, cpu(at::kInt));
        if (c.P >= 2) probes.select(3, 1).copy_(probes.select(3, 0));  // repeated probes count once
        auto [perm, offsets] = dc::cuda::bucket_sort(codes.to(kCuda), c.bits);
        poison_allocator(c.H * c.N * c.D * 4);
        auto [out, scored] = dc::cuda::bucketed_attention(q.to(kCuda), probes.to(kCuda), kc.to(kCuda), vc.to(kCuda),
                                                          bias.to(kCuda), frames.to(kCuda), perm, offsets, ku.to(kCuda),
                                                          vu.to(kCuda), slope.to(kCuda), 30);
        REQUIRE(out.sizes() == q.sizes());
        REQUIRE(scored.sizes() == at::IntArrayRef({1, c.H, c.N}));
        CHECK(all_finite(out));
        // allowed[h, n, t]: the key's code is one of the query's probes.
        at::Tensor allowed = codes[0].unsqueeze(1).unsqueeze(3).eq(probes[0].unsqueeze(2)).any(3);  // [H, N, T]
        at::Tensor ref = reference(q, kc, vc, bias, frames, ku, vu, slope, 30, allowed);
        CHECK(rel_err(out, ref) < tolerance(c.dtype));
        CHECK(scored.cpu()[0].to(at::kLong).equal(allowed.sum(2)));
    }
    // Probing every bucket is dense attention.
    at::Tensor q = randn({1, 2, 30, 64}, at::kFloat), kc = randn({1, 2, 400, 64}, at::kFloat),
               vc = randn({1, 2, 400, 64}, at::kFloat), ku = randn({1, 2, 30, 64}, at::kFloat),
               vu = randn({1, 2, 30, 64}, at::kFloat);
    at::Tensor codes = at::randint(0, 2, {1, 2, 400}, cpu(at::kInt));
    at::Tensor probes = at::stack({at::zeros({1, 2, 30}, cpu(at::kInt)), at::ones({1, 2, 30}, cpu(at::kInt))}, 3);
    auto [perm, offsets] = dc::cuda::bucket_sort(codes.to(kCuda), 1);
    auto sparse =
        dc::cuda::bucketed_attention(q.to(kCuda), probes.to(kCuda), kc.to(kCuda), vc.to(kCuda), at::Tensor(),
                                     at::Tensor(), perm, offsets, ku.to(kCuda), vu.to(kCuda), at::Tensor(), 0);
    at::Tensor dense = dc::cuda::dense_attention(q.to(kCuda), kc.to(kCuda), vc.to(kCuda), at::Tensor(), at::Tensor(),
                                                 ku.to(kCuda), vu.to(kCuda), at::Tensor(), 0);
    CHECK(rel_err(sparse.first, dense) < 1e-4);
    CHECK(sparse.second.cpu().eq(400).all().item<bool>());
#endif
}

TEST_CASE("cuda bucket-major AnnSA matches the reference and the per-query kernel", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(16);
    enum class Probes { random, all_equal, repeated, own_and_flips };
    struct Case {
        at::ScalarType dtype;
        int64_t H, N, D, T;
        int bits;
        int64_t P;
        Probes probes;
        bool strided;  // the cache is a KvCache-style view of larger storage
        int code_range;  // keys' codes drawn from [0, code_range) (< 2^bits: empty buckets); 0 = all buckets
    };
    using A = at::ScalarType;
    for (const Case& c : {
             Case{A::BFloat16, 2, 37, 64, 300, 3, 2, Probes::random, false, 0},          // small cache
             Case{A::BFloat16, 2, 20, 64, 0, 3, 2, Probes::random, false, 0},            // T = 0
             Case{A::BFloat16, 3, 64, 32, 5000, 6, 8, Probes::own_and_flips, false, 0},  // D = 32
             Case{A::BFloat16, 3, 64, 64, 5000, 6, 8, Probes::own_and_flips, true, 0},   // D = 64, views
             Case{A::BFloat16, 2, 48, 128, 3000, 6, 8, Probes::own_and_flips, false, 0}, // D = 128
             Case{A::BFloat16, 2, 70, 64, 4000, 6, 8, Probes::all_equal, false, 0},      // one bucket for all
             Case{A::BFloat16, 2, 70, 64, 4000, 6, 8, Probes::repeated, false, 0},       // probes repeat
             Case{A::BFloat16, 2, 100, 64, 20000, 8, 4, Probes::random, false, 0},       // 256 buckets
             Case{A::BFloat16, 2, 90, 64, 3000, 8, 6, Probes::random, false, 16},        // most buckets empty
             Case{A::BFloat16, 1, 300, 64, 6000, 1, 1, Probes::random, false, 0},        // 150 queries a bucket
             Case{A::BFloat16, 1, 16, 64, 20000, 1, 1, Probes::random, false, 0},        // buckets in many chunks
             Case{A::BFloat16, 2, 33, 64, 900, 2, 9, Probes::random, false, 0},          // P ≥ 2^bits
             Case{A::BFloat16, 2, 40, 64, 1000, 4, 0, Probes::random, false, 0},         // P = 0: frame only
             Case{A::Float, 2, 37, 64, 1500, 3, 2, Probes::repeated, false, 0},          // float32
             Case{A::Float, 2, 33, 128, 900, 8, 4, Probes::random, false, 0},
         }) {
        CAPTURE(c.dtype, c.H, c.N, c.D, c.T, c.bits, c.P, static_cast<int>(c.probes), c.strided, c.code_range);
        const int64_t nb = int64_t{1} << c.bits;
        at::Tensor q = randn({1, c.H, c.N, c.D}, c.dtype, 1.5), ku = randn({1, c.H, c.N, c.D}, c.dtype),
                   vu = randn({1, c.H, c.N, c.D}, c.dtype);
        at::Tensor kc, vc;
        if (c.strided) {  // [1, H, T, D] views of [1, H, T + 77, D] storage, as KvCache::keys() returns
            kc = randn({1, c.H, c.T + 77, c.D}, c.dtype).narrow(2, 0, c.T);
            vc = randn({1, c.H, c.T + 77, c.D}, c.dtype).narrow(2, 0, c.T);
        } else {
            kc = randn({1, c.H, c.T, c.D}, c.dtype);
            vc = randn({1, c.H, c.T, c.D}, c.dtype);
        }
        at::Tensor bias = at::rand({1, c.H, c.T}, cpu(at::kFloat));
        at::Tensor frames = at::randint(0, 30, {c.T}, cpu(at::kLong));
        at::Tensor slope = at::full({c.H}, 0.03, cpu(at::kFloat));
        at::Tensor codes = at::randint(0, c.code_range > 0 ? c.code_range : nb, {1, c.H, c.T}, cpu(at::kInt));
        at::Tensor probes = at::randint(0, nb, {1, c.H, c.N, c.P}, cpu(at::kInt));
        if (c.probes == Probes::all_equal) probes.fill_(5 % nb);
        if (c.probes == Probes::repeated) probes.remainder_(3);  // few distinct values: many repeats per row
        if (c.probes == Probes::own_and_flips && c.P > 0) {
            at::Tensor own = probes.select(3, 0);
            for (int64_t p = 1; p < c.P; ++p)
                probes.select(3, p).copy_(own.bitwise_xor(int64_t{1} << ((p - 1) % c.bits)));
        }
        if (c.P > 0) probes.select(3, c.P - 1).add_(nb);  // taken modulo 2^bits
        at::Tensor kcd = c.strided ? at::empty({1, c.H, c.T + 77, c.D}, cpu(c.dtype).device(kCuda)) : at::Tensor();
        at::Tensor vcd = c.strided ? at::empty({1, c.H, c.T + 77, c.D}, cpu(c.dtype).device(kCuda)) : at::Tensor();
        at::Tensor kc_gpu = c.strided ? kcd.narrow(2, 0, c.T).copy_(kc) : kc.to(kCuda);
        at::Tensor vc_gpu = c.strided ? vcd.narrow(2, 0, c.T).copy_(vc) : vc.to(kCuda);
        auto [perm, offsets] = dc::cuda::bucket_sort(codes.to(kCuda), c.bits);
        auto run = [&](dc::cuda::BucketedKernel kernel) {
            poison_allocator(c.H * c.N * c.D * 4);
            return dc::cuda::bucketed_attention_using(kernel, q.to(kCuda), probes.to(kCuda), kc_gpu, vc_gpu,
                                                      bias.to(kCuda), frames.to(kCuda), perm, offsets, ku.to(kCuda),
                                                      vu.to(kCuda), slope.to(kCuda), 30);
        };
        auto [out, scored] = run(dc::cuda::BucketedKernel::bucket_major);
        auto [out_ref, scored_ref] = run(dc::cuda::BucketedKernel::per_query);
        REQUIRE(out.sizes() == q.sizes());
        REQUIRE(scored.sizes() == at::IntArrayRef({1, c.H, c.N}));
        CHECK(all_finite(out));
        at::Tensor allowed = c.P > 0 ? codes[0].unsqueeze(1).unsqueeze(3).eq(probes[0].remainder(nb).unsqueeze(2)).any(3)
                                     : at::zeros({c.H, c.N, c.T}, cpu(at::kBool));  // [H, N, T]
        at::Tensor ref = reference(q, kc, vc, bias, frames, ku, vu, slope, 30, allowed);
        CHECK(rel_err(out, ref) < tolerance(c.dtype));
        CHECK(rel_err(out, out_ref) < tolerance(c.dtype));
        CHECK(scored.cpu()[0].to(at::kLong).equal(allowed.sum(2)));
        CHECK(scored.cpu().equal(scored_ref.cpu()));
    }
    // The default kernel (bucketed_attention) is one of the two and probing every bucket is dense attention.
    at::Tensor q = randn({1, 2, 30, 64}, at::kBFloat16), kc = randn({1, 2, 4000, 64}, at::kBFloat16),
               vc = randn({1, 2, 4000, 64}, at::kBFloat16), ku = randn({1, 2, 30, 64}, at::kBFloat16),
               vu = randn({1, 2, 30, 64}, at::kBFloat16);
    at::Tensor codes = at::randint(0, 4, {1, 2, 4000}, cpu(at::kInt));
    at::Tensor probes = at::arange(4, cpu(at::kInt)).view({1, 1, 1, 4}).expand({1, 2, 30, 4}).contiguous();
    auto [perm, offsets] = dc::cuda::bucket_sort(codes.to(kCuda), 2);
    auto sparse =
        dc::cuda::bucketed_attention(q.to(kCuda), probes.to(kCuda), kc.to(kCuda), vc.to(kCuda), at::Tensor(),
                                     at::Tensor(), perm, offsets, ku.to(kCuda), vu.to(kCuda), at::Tensor(), 0);
    at::Tensor dense = dc::cuda::dense_attention(q.to(kCuda), kc.to(kCuda), vc.to(kCuda), at::Tensor(), at::Tensor(),
                                                 ku.to(kCuda), vu.to(kCuda), at::Tensor(), 0);
    CHECK(rel_err(sparse.first, dense) < 1e-2);
    CHECK(sparse.second.cpu().eq(4000).all().item<bool>());
#endif
}

TEST_CASE("cuda TempCache match finds the best candidate and its cosine", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(16);
    struct Case {
        at::ScalarType dtype;
        int64_t H, N, D, T, C;
    };
    for (const Case& c : {Case{at::kFloat, 3, 256, 64, 2000, 512}, Case{at::kBFloat16, 2, 37, 32, 300, 300},
                          Case{at::kFloat, 2, 17, 128, 100, 5000}, Case{at::kBFloat16, 6, 256, 64, 1024, 256},
                          Case{at::kFloat, 2, 10, 64, 100, 0}}) {
        CAPTURE(c.dtype, c.H, c.N, c.D, c.T, c.C);
        at::Tensor qn = randn({1, c.H, c.N, c.D}, c.dtype), kn = randn({1, c.H, c.N, c.D}, c.dtype);
        at::Tensor kc = randn({1, c.H, c.T, c.D}, c.dtype);
        at::Tensor cand = at::randint(0, c.T, {c.C}, cpu(at::kLong));                     // repeats allowed
        if (c.C > 1) kc[0].select(1, cand[1].item<int64_t>()).copy_(qn[0].select(1, 0));  // a clear winner
        poison_allocator(c.N * 8);
        auto [match, cosv] = dc::cuda::tempcache_match(qn.to(kCuda), kn.to(kCuda), kc.to(kCuda), cand.to(kCuda));
        REQUIRE(match.sizes() == at::IntArrayRef({c.N}));
        REQUIRE(cosv.sizes() == at::IntArrayRef({c.N}));
        at::Tensor m = match.cpu(), cs = cosv.cpu().to(at::kDouble);
        if (c.C == 0) {
            CHECK(m.eq(-1).all().item<bool>());
            CHECK(cs.isneginf().all().item<bool>());
            continue;
        }
        const int64_t HD = c.H * c.D;
        at::Tensor qf = qn[0].permute({1, 0, 2}).reshape({c.N, HD}).to(at::kDouble);  // [N, H·D]
        at::Tensor kf = kn[0].permute({1, 0, 2}).reshape({c.N, HD}).to(at::kDouble);  // [N, H·D]
        at::Tensor cf = kc[0].permute({1, 0, 2}).reshape({c.T, HD}).to(at::kDouble);  // [T, H·D]
        at::Tensor scores = qf.mm(cf.index_select(0, cand).t());                      // [N, C]
        at::Tensor best = std::get<0>(scores.max(1));
        CHECK(m.ge(0).logical_and(m.lt(c.T)).all().item<bool>());
        CHECK(at::isin(m, cand).all().item<bool>());
        at::Tensor got = (qf * cf.index_select(0, m)).sum(1);  // score of the returned entry
        CHECK((best - got).le(1e-3 * best.abs().max().item<double>()).all().item<bool>());
        at::Tensor km = cf.index_select(0, m);
        at::Tensor want_cos = (kf * km).sum(1) / (kf.norm(2, {1}) * km.norm(2, {1}));
        CHECK((cs - want_cos).abs().max().item<double>() < 1e-4);
        CHECK(m[0].item<int64_t>() == cand[1].item<int64_t>());
    }
#endif
}

TEST_CASE("cuda TempCache merge updates groups in place, repeats in order", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(17);
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
        CAPTURE(dt);
        const int64_t H = 3, D = 64, T = 300, cap = 350, N = 40, M = 25;
        at::Tensor kst = randn({1, H, cap, D}, dt).to(kCuda), vst = randn({1, H, cap, D}, dt).to(kCuda);
        at::Tensor bst = at::zeros({1, H, cap}, cpu(at::kFloat)).to(kCuda);
        at::Tensor fst = at::randint(0, 9, {cap}, cpu(at::kLong)).to(kCuda);
        at::Tensor gst = at::randint(1, 5, {cap}, cpu(at::kInt)).to(kCuda);
        // Live views of larger storage, as a KvCache holds them.
        at::Tensor k = kst.narrow(2, 0, T), v = vst.narrow(2, 0, T), bias = bst.narrow(2, 0, T);
        at::Tensor frames = fst.narrow(0, 0, T), group = gst.narrow(0, 0, T);
        at::Tensor idx = at::randint(0, T, {M}, cpu(at::kLong)), src = at::randint(0, N, {M}, cpu(at::kLong));
        idx[3] = idx[0].item<int64_t>();  // the same entry absorbs three tokens, in pair order
        idx[7] = idx[0].item<int64_t>();
        at::Tensor kn = randn({1, H, N, D}, dt), vn = randn({1, H, N, D}, dt);
        const at::Tensor tail = kst.narrow(2, T, cap - T).cpu();  // storage past the live entries

        // Sequential float64 reference.
        at::Tensor rk = k.cpu().to(at::kDouble), rv = v.cpu().to(at::kDouble), rb = bias.cpu().to(at::kDouble);
        at::Tensor rf = frames.cpu(), rg = group.cpu().to(at::kLong);
        for (int64_t j = 0; j < M; ++j) {
            const int64_t e = idx[j].item<int64_t>(), s = src[j].item<int64_t>();
            const double mm = static_cast<double>(rg[e].item<int64_t>());
            rk.select(2, e).copy_(kn.select(2, s).to(at::kDouble));
            rv.select(2, e).copy_((rv.select(2, e) * mm + vn.select(2, s).to(at::kDouble)) / (mm + 1));
            rg[e] = rg[e] + 1;
            rb.select(2, e).fill_(std::log(mm + 1));
            rf[e] = 9;
        }
        at::Tensor knd = kn.to(kCuda), vnd = vn.to(kCuda);
        dc::cuda::tempcache_merge(k, v, bias, frames, group, idx.to(kCuda), src.to(kCuda), knd, vnd, 9);
        CHECK(rel_err(k, rk) < 1e-6);  // keys are copied
        CHECK(rel_err(v, rv) < tolerance(dt));
        CHECK(rel_err(bias, rb) < 1e-6);
        CHECK(frames.cpu().equal(rf));
        CHECK(group.cpu().to(at::kLong).equal(rg));
        CHECK(kst.narrow(2, T, cap - T).cpu().equal(tail));
    }
#endif
}

TEST_CASE("cuda AnnCA keeps valid prompt tokens that share a code with a query", "[cuda][attention]") {
#ifndef DC_HAVE_CUDA
    WARN("built without the CUDA kernels (CPU LibTorch): skipped");
#else
    if (!cuda_ready()) return;
    at::manual_seed(18);
    struct Case {
        int64_t B, H, N, P, range;
    };
    for (const Case& c : {Case{1, 6, 256, 128, 64}, Case{2, 3, 50, 30, 8}, Case{1, 2, 2100, 130, 5000},
                          Case{1, 2, 0, 17, 4}, Case{2, 1, 10, 0, 4}}) {
        CAPTURE(c.B, c.H, c.N, c.P, c.range);
        at::Tensor qc = at::randint(0, c.range, {c.B, c.H, c.N}, cpu(at::kInt));
        at::Tensor kc = at::randint(0, c.range, {c.B, c.H, c.P}, cpu(at::kInt));
        at::Tensor valid = at::rand({c.B, c.P}, cpu(at::kFloat)).gt(0.3);
        poison_allocator(c.B * c.H * c.P);
        at::Tensor keep = dc::cuda::annca_keep(qc.to(kCuda), kc.to(kCuda), valid.to(kCuda));
        REQUIRE(keep.sizes() == at::IntArrayRef({c.B, c.H, c.P}));
        REQUIRE(keep.scalar_type() == at::kBool);
        at::Tensor want = kc.unsqueeze(3).eq(qc.unsqueeze(2)).any(3).logical_and(valid.unsqueeze(1));  // [B, H, P]
        CHECK(keep.cpu().equal(want));
    }
#endif
}
