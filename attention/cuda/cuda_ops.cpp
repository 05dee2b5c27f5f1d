// attention/cuda/cuda_ops.cpp — torch adapters (cuda_ops.h) over the plain-CUDA launchers of kernels.cuh.
// Each adapter checks devices, dtypes and shapes (dc::Error naming what was expected and found), brings layouts to
// what the kernels read (16-byte rows; a KvCache view with any head stride is used in place, anything else is
// copied), allocates outputs and workspaces with the caching allocator and launches on the current stream.
// Built only with a CUDA LibTorch (DC_HAVE_CUDA).
#include "attention/cuda/cuda_ops.h"

#include "attention/cuda/kernels.cuh"
#include "common/common.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dc::cuda {
namespace {

namespace kn = dc::cuda::kernels;

void check_launch(cudaError_t e, const char* fn) {
    DC_CHECK(e == cudaSuccess, fn << ": CUDA error " << cudaGetErrorName(e) << " (" << cudaGetErrorString(e) << ")");
}

cudaStream_t current_stream(const at::Device& dev) {
    return c10::cuda::getCurrentCUDAStream(dev.index()).stream();
}

// t is a defined CUDA tensor on `dev` with `dim` dimensions.
void expect_cuda(const at::Tensor& t, const char* fn, const char* name, const at::Device& dev, int64_t dim) {
    DC_CHECK(t.defined(), fn << ": " << name << " is undefined");
    DC_CHECK(t.is_cuda() && t.device() == dev,
             fn << ": " << name << " must be on " << dev << " (q's device), found " << t.device());
    DC_CHECK(t.dim() == dim, fn << ": " << name << " must have " << dim << " dimensions, found " << t.sizes());
}

void expect_sizes(const at::Tensor& t, const char* fn, const char* name, at::IntArrayRef want, const char* what) {
    DC_CHECK(t.sizes() == want, fn << ": " << name << " must be " << what << " = " << want << ", found " << t.sizes());
}

void expect_dtype(const at::Tensor& t, const char* fn, const char* name, at::ScalarType want) {
    DC_CHECK(t.scalar_type() == want, fn << ": " << name << " must be " << want << ", found " << t.scalar_type());
}

kn::DType qkv_dtype(const at::Tensor& q, const char* fn) {
    if (q.scalar_type() == at::kBFloat16) return kn::DType::bf16;
    DC_CHECK(q.scalar_type() == at::kFloat, fn << ": q must be float32 or bfloat16, found " << q.scalar_type());
    return kn::DType::f32;
}

bool aligned16(const at::Tensor& t) {
    return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// A fresh contiguous copy: 16-byte aligned (the caching allocator aligns blocks to 512 bytes).
at::Tensor fresh_copy(const at::Tensor& t) {
    return at::empty(t.sizes(), t.options()).copy_(t);
}

// A [1, H, R, D] operand as kernel rows; `hold` keeps a copy alive when the layout had to change.
struct RowsOf {
    at::Tensor hold;
    kn::Rows rows;
};
RowsOf rows_of(const at::Tensor& x) {
    RowsOf r;
    r.hold = x;
    if (x.numel() > 0) {
        const int64_t vec = 16 / static_cast<int64_t>(x.element_size());
        const bool ok = x.stride(3) == 1 && (x.size(2) <= 1 || x.stride(2) % vec == 0) &&
                        (x.size(1) <= 1 || x.stride(1) % vec == 0) && aligned16(x);
        if (!ok) r.hold = fresh_copy(x);
        r.rows.ptr = r.hold.data_ptr();
        r.rows.stride_h = r.hold.size(1) <= 1 ? 0 : r.hold.stride(1);
        r.rows.stride_r = r.hold.size(2) <= 1 ? 0 : r.hold.stride(2);
    }
    return r;
}

// A tensor whose last dimension is contiguous (copied when it is not); for per-key vectors like bias [1, H, T].
at::Tensor last_dim_contiguous(const at::Tensor& t) {
    return (t.numel() == 0 || t.size(-1) <= 1 || t.stride(-1) == 1) ? t : t.contiguous();
}

// The inputs every attention call shares, checked and turned into kernel arguments.
struct AttentionInputs {
    RowsOf q, k_cache, v_cache, k_cur, v_cur;
    at::Tensor bias, frames, slope;
    kn::DenseArgs args;
};

AttentionInputs attention_inputs(const char* fn, const at::Tensor& q, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& bias, const at::Tensor& frames,
                                 const at::Tensor& k_cur, const at::Tensor& v_cur, const at::Tensor& slope,
                                 int64_t frame) {
    DC_CHECK(q.defined() && q.is_cuda(), fn << ": q must be a CUDA tensor [1, H, N, D]");
    const at::Device dev = q.device();
    expect_cuda(q, fn, "q", dev, 4);
    DC_CHECK(q.size(0) == 1, fn << ": q must be [1, H, N, D] (one session per cache), found " << q.sizes());
    const int64_t H = q.size(1), N = q.size(2), D = q.size(3);
    DC_CHECK(D == 32 || D == 64 || D == 128, fn << ": head dim must be 32, 64 or 128, found " << D);
    const kn::DType dt = qkv_dtype(q, fn);
    expect_cuda(k_cache, fn, "k_cache", dev, 4);
    const int64_t T = k_cache.size(2);
    expect_sizes(k_cache, fn, "k_cache", {1, H, T, D}, "[1, H, T, D]");
    expect_cuda(v_cache, fn, "v_cache", dev, 4);
    expect_sizes(v_cache, fn, "v_cache", {1, H, T, D}, "[1, H, T, D]");
    expect_cuda(k_cur, fn, "k_cur", dev, 4);
    expect_sizes(k_cur, fn, "k_cur", {1, H, N, D}, "[1, H, N, D]");
    expect_cuda(v_cur, fn, "v_cur", dev, 4);
    expect_sizes(v_cur, fn, "v_cur", {1, H, N, D}, "[1, H, N, D]");
    for (const at::Tensor* t : {&k_cache, &v_cache, &k_cur, &v_cur})
        DC_CHECK(t->scalar_type() == q.scalar_type(),
                 fn << ": q, k and v must share one dtype, found q " << q.scalar_type() << " and " << t->scalar_type());
    DC_CHECK(H <= 65535 && N <= (int64_t{1} << 30) && T < (int64_t{1} << 31),
             fn << ": sizes out of range (H ≤ 65535, N < 2^30, T < 2^31), found H " << H << ", N " << N << ", T " << T);

    AttentionInputs in;
    if (bias.defined()) {
        expect_cuda(bias, fn, "bias", dev, 3);
        expect_sizes(bias, fn, "bias", {1, H, T}, "[1, H, T]");
        expect_dtype(bias, fn, "bias", at::kFloat);
        in.bias = last_dim_contiguous(bias);
    }
    if (frames.defined()) {
        expect_cuda(frames, fn, "frames", dev, 1);
        expect_sizes(frames, fn, "frames", {T}, "[T]");
        expect_dtype(frames, fn, "frames", at::kLong);
        in.frames = frames.contiguous();
    }
    if (slope.defined()) {
        expect_cuda(slope, fn, "slope", dev, 1);
        expect_sizes(slope, fn, "slope", {H}, "[H]");
        expect_dtype(slope, fn, "slope", at::kFloat);
        in.slope = slope.contiguous();
    }
    in.q = rows_of(q);
    in.k_cache = rows_of(k_cache);
    in.v_cache = rows_of(v_cache);
    in.k_cur = rows_of(k_cur);
    in.v_cur = rows_of(v_cur);

    kn::DenseArgs& a = in.args;
    a.dtype = dt;
    a.H = static_cast<int>(H);
    a.N = static_cast<int>(N);
    a.D = static_cast<int>(D);
    a.T = T;
    a.q = in.q.rows;
    a.k_cache = in.k_cache.rows;
    a.v_cache = in.v_cache.rows;
    a.k_cur = in.k_cur.rows;
    a.v_cur = in.v_cur.rows;
    if (in.bias.defined() && T > 0) {
        a.bias = in.bias.data_ptr<float>();
        a.bias_stride_h = H > 1 ? in.bias.stride(1) : 0;
    }
    if (in.frames.defined() && T > 0) a.frames = in.frames.data_ptr<int64_t>();
    if (in.slope.defined()) a.slope = in.slope.data_ptr<float>();
    a.frame = frame;
    return in;
}

}  // namespace

bool available() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the error this query leaves behind
        return false;
    }
    return n > 0 && at::hasCUDA();
}

void synchronize() { DC_CHECK(cudaDeviceSynchronize() == cudaSuccess, "CUDA: " << cudaGetErrorString(cudaGetLastError())); }

std::string device_name(int index) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
        (void)cudaGetLastError();
        return "cuda:" + std::to_string(index);
    }
    return prop.name;
}

at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                           const at::Tensor& bias, const at::Tensor& frames, const at::Tensor& k_cur,
                           const at::Tensor& v_cur, const at::Tensor& slope, int64_t frame) {
    return dense_attention_using(DenseKernel::best, q, k_cache, v_cache, bias, frames, k_cur, v_cur, slope, frame);
}

bool dense_wgmma_available(int64_t head_dim) {
    kn::DenseArgs a;
    a.dtype = kn::DType::bf16;
    a.D = static_cast<int>(head_dim);
    return available() && kn::dense_wgmma_available(a);
}

at::Tensor dense_attention_using(DenseKernel kernel, const at::Tensor& q, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& bias, const at::Tensor& frames,
                                 const at::Tensor& k_cur, const at::Tensor& v_cur, const at::Tensor& slope,
                                 int64_t frame) {
    const char* fn = "dc::cuda::dense_attention";
    AttentionInputs in = attention_inputs(fn, q, k_cache, v_cache, bias, frames, k_cur, v_cur, slope, frame);
    const c10::cuda::CUDAGuard guard(q.device());
    in.args.kernel = kernel == DenseKernel::wgmma      ? kn::DenseKernel::wgmma
                     : kernel == DenseKernel::mma_sync ? kn::DenseKernel::mma_sync
                                                       : kn::DenseKernel::best;
    if (kernel == DenseKernel::wgmma && in.args.dtype == kn::DType::bf16) {
        int dev = 0, major = 0, minor = 0;
        (void)cudaGetDevice(&dev);
        (void)cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        (void)cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
        DC_CHECK(kn::dense_wgmma_available(in.args),
                 fn << ": the wgmma kernel needs bfloat16 heads of 64 on a compute-capability-9.0 card (H100, H200) "
                    << "in a build for sm_90a; found head dim " << in.args.D << " on compute capability " << major
                    << "." << minor);
    }
    at::Tensor out = at::empty({1, in.args.H, in.args.N, in.args.D}, q.options());  // [1, H, N, D]
    if (in.args.N == 0 || in.args.H == 0) return out;
    in.args.out = out.data_ptr();
    in.args.out_stride_h = out.stride(1);
    in.args.out_stride_n = out.stride(2);
    kn::DensePlan plan;
    check_launch(kn::dense_attention_plan(in.args, &plan), fn);
    at::Tensor ws;
    if (plan.workspace_bytes > 0)
        ws = at::empty({static_cast<int64_t>(plan.workspace_bytes)}, q.options().dtype(at::kByte));
    check_launch(kn::dense_attention(in.args, plan, ws.defined() ? ws.data_ptr() : nullptr, current_stream(q.device())),
                 fn);
    return out;
}

namespace {

// x [B, H, T, D] and planes [H, D, bits] checked for the LSH kernels (the head's planes sit in shared memory: D·bits
// floats ≤ max_plane_floats), x made contiguous and 16-byte aligned.
struct LshInputs {
    int64_t B = 0, H = 0, T = 0, D = 0, bits = 0;
    kn::DType dt{};
    at::Tensor xc, pc;
};

LshInputs lsh_inputs(const char* fn, const at::Tensor& x, const at::Tensor& planes, int64_t max_plane_floats) {
    DC_CHECK(x.defined() && x.is_cuda(), fn << ": x must be a CUDA tensor [B, H, T, D]");
    const at::Device dev = x.device();
    expect_cuda(x, fn, "x", dev, 4);
    LshInputs in;
    in.B = x.size(0), in.H = x.size(1), in.T = x.size(2), in.D = x.size(3);
    in.dt = qkv_dtype(x, fn);
    expect_cuda(planes, fn, "planes", dev, 3);
    expect_dtype(planes, fn, "planes", at::kFloat);
    in.bits = planes.size(2);
    DC_CHECK(in.bits >= 1 && in.bits <= 16,
             fn << ": planes must be [H, D, bits] with 1 ≤ bits ≤ 16, found " << planes.sizes());
    expect_sizes(planes, fn, "planes", {in.H, in.D, in.bits}, "[H, D, bits]");
    DC_CHECK(in.D >= 1 && in.D * in.bits <= max_plane_floats && in.B * in.H <= 65535,
             fn << ": sizes out of range (D·bits ≤ " << max_plane_floats << ", B·H ≤ 65535), found " << x.sizes()
                << " and " << in.bits << " bits");
    in.xc = x.contiguous();
    if (in.xc.numel() > 0 && !aligned16(in.xc)) in.xc = fresh_copy(in.xc);
    in.pc = planes.contiguous();
    return in;
}

}  // namespace

at::Tensor lsh_codes(const at::Tensor& x, const at::Tensor& planes) {
    const char* fn = "dc::cuda::lsh_codes";
    const LshInputs in = lsh_inputs(fn, x, planes, 12 * 1024);
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor codes = at::empty({in.B, in.H, in.T}, x.options().dtype(at::kInt));  // [B, H, T]
    if (codes.numel() == 0) return codes;
    check_launch(kn::lsh_codes(in.dt, in.xc.data_ptr(), in.pc.data_ptr<float>(), static_cast<int>(in.B),
                               static_cast<int>(in.H), in.T, static_cast<int>(in.D), static_cast<int>(in.bits),
                               codes.data_ptr<int32_t>(), current_stream(x.device())),
                 fn);
    return codes;
}

at::Tensor lsh_probe_codes(const at::Tensor& x, const at::Tensor& planes, int probes) {
    const char* fn = "dc::cuda::lsh_probe_codes";
    static_assert(kMaxLshProbes == kn::kMaxProbes, "cuda_ops.h and kernels.cuh disagree on the probe limit");
    const LshInputs in = lsh_inputs(fn, x, planes, 3 * 1024);   // the probe kernel also keeps per-thread heaps
    const int64_t n_buckets = int64_t{1} << in.bits;
    DC_CHECK(probes >= 1 && (probes <= kMaxLshProbes || probes == n_buckets) && probes <= n_buckets,
             fn << ": probes must be in 1.." << std::min<int64_t>(kMaxLshProbes, n_buckets) << " or exactly 2^bits = "
                << n_buckets << ", found " << probes);
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor out = at::empty({in.B, in.H, in.T, probes}, x.options().dtype(at::kInt));  // [B, H, T, P]
    if (out.numel() == 0) return out;
    check_launch(kn::lsh_probe_codes(in.dt, in.xc.data_ptr(), in.pc.data_ptr<float>(), static_cast<int>(in.B),
                                     static_cast<int>(in.H), in.T, static_cast<int>(in.D), static_cast<int>(in.bits),
                                     probes, out.data_ptr<int32_t>(), current_stream(x.device())),
                 fn);
    return out;
}

std::pair<at::Tensor, at::Tensor> bucket_sort(const at::Tensor& codes, int bits) {
    const char* fn = "dc::cuda::bucket_sort";
    DC_CHECK(codes.defined() && codes.is_cuda(), fn << ": codes must be a CUDA tensor [1, H, T] int32");
    const at::Device dev = codes.device();
    expect_cuda(codes, fn, "codes", dev, 3);
    expect_dtype(codes, fn, "codes", at::kInt);
    DC_CHECK(codes.size(0) == 1, fn << ": codes must be [1, H, T], found " << codes.sizes());
    DC_CHECK(bits >= 1 && bits <= 16, fn << ": bits must be in [1, 16], found " << bits);
    const int64_t H = codes.size(1), T = codes.size(2);
    DC_CHECK(H <= 65535 && T < (int64_t{1} << 31), fn << ": sizes out of range, found " << codes.sizes());
    const at::Tensor cc = codes.contiguous();
    const c10::cuda::CUDAGuard guard(dev);
    const int64_t nb = int64_t{1} << bits;
    at::Tensor perm = at::empty({1, H, T}, codes.options());          // [1, H, T] int32
    at::Tensor offsets = at::empty({1, H, nb + 1}, codes.options());  // [1, H, 2^bits + 1] int32
    if (H == 0) return {perm, offsets};
    const size_t bytes = kn::bucket_sort_workspace_bytes(static_cast<int>(H), T, bits);
    at::Tensor ws;
    if (bytes > 0) ws = at::empty({static_cast<int64_t>(bytes)}, codes.options().dtype(at::kByte));
    check_launch(kn::bucket_sort(T > 0 ? cc.data_ptr<int32_t>() : nullptr, static_cast<int>(H), T, bits,
                                 T > 0 ? perm.data_ptr<int32_t>() : nullptr, offsets.data_ptr<int32_t>(),
                                 ws.defined() ? ws.data_ptr() : nullptr, bytes, current_stream(dev)),
                 fn);
    return {perm, offsets};
}

// The kernel bucketed_attention runs. per_query is the previous warp-per-query kernel, kept as the reference.
constexpr BucketedKernel kDefaultBucketedKernel = BucketedKernel::bucket_major;  // per_query: the old kernel

std::pair<at::Tensor, at::Tensor> bucketed_attention(const at::Tensor& q, const at::Tensor& q_probe_codes,
                                                     const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                     const at::Tensor& bias, const at::Tensor& frames,
                                                     const at::Tensor& perm, const at::Tensor& offsets,
                                                     const at::Tensor& k_cur, const at::Tensor& v_cur,
                                                     const at::Tensor& slope, int64_t frame) {
    return bucketed_attention_using(kDefaultBucketedKernel, q, q_probe_codes, k_cache, v_cache, bias, frames, perm,
                                    offsets, k_cur, v_cur, slope, frame);
}

std::pair<at::Tensor, at::Tensor> bucketed_attention_using(BucketedKernel kernel, const at::Tensor& q,
                                                           const at::Tensor& q_probe_codes, const at::Tensor& k_cache,
                                                           const at::Tensor& v_cache, const at::Tensor& bias,
                                                           const at::Tensor& frames, const at::Tensor& perm,
                                                           const at::Tensor& offsets, const at::Tensor& k_cur,
                                                           const at::Tensor& v_cur, const at::Tensor& slope,
                                                           int64_t frame) {
    const char* fn = "dc::cuda::bucketed_attention";
    AttentionInputs in = attention_inputs(fn, q, k_cache, v_cache, bias, frames, k_cur, v_cur, slope, frame);
    const at::Device dev = q.device();
    const int64_t H = in.args.H, N = in.args.N, T = in.args.T;
    expect_cuda(q_probe_codes, fn, "q_probe_codes", dev, 4);
    expect_dtype(q_probe_codes, fn, "q_probe_codes", at::kInt);
    const int64_t P = q_probe_codes.size(3);
    expect_sizes(q_probe_codes, fn, "q_probe_codes", {1, H, N, P}, "[1, H, N, P]");
    expect_cuda(perm, fn, "perm", dev, 3);
    expect_dtype(perm, fn, "perm", at::kInt);
    expect_sizes(perm, fn, "perm", {1, H, T}, "[1, H, T] (from bucket_sort of this cache)");
    expect_cuda(offsets, fn, "offsets", dev, 3);
    expect_dtype(offsets, fn, "offsets", at::kInt);
    const int64_t nb = offsets.size(2) - 1;
    int bits = 0;
    while (bits <= 16 && (int64_t{1} << bits) < nb) ++bits;
    DC_CHECK(
        bits >= 1 && bits <= 16 && (int64_t{1} << bits) == nb && offsets.size(0) == 1 && offsets.size(1) == H,
        fn << ": offsets must be [1, H, 2^bits + 1] with 1 ≤ bits ≤ 16 (from bucket_sort), found " << offsets.sizes());
    const at::Tensor pc = q_probe_codes.contiguous(), permc = perm.contiguous(), offc = offsets.contiguous();
    const c10::cuda::CUDAGuard guard(dev);
    at::Tensor out = at::empty({1, H, N, in.args.D}, q.options());            // [1, H, N, D]
    at::Tensor n_scored = at::empty({1, H, N}, q.options().dtype(at::kInt));  // [1, H, N]
    if (N == 0 || H == 0) return {out, n_scored};
    in.args.out = out.data_ptr();
    in.args.out_stride_h = out.stride(1);
    in.args.out_stride_n = out.stride(2);
    kn::BucketedArgs ba;
    ba.dense = in.args;
    ba.probes = P > 0 ? pc.data_ptr<int32_t>() : nullptr;
    ba.P = static_cast<int>(P);
    ba.perm = T > 0 ? permc.data_ptr<int32_t>() : nullptr;
    ba.offsets = offc.data_ptr<int32_t>();
    ba.bits = bits;
    ba.n_scored = n_scored.data_ptr<int32_t>();
    if (kernel == BucketedKernel::per_query) {
        check_launch(kn::bucketed_attention(ba, current_stream(dev)), fn);
        return {out, n_scored};
    }
    const size_t bytes = kn::bucketed_attention_workspace_bytes(ba);  // 0: float32, which runs per_query
    at::Tensor ws;
    if (bytes > 0) ws = at::empty({static_cast<int64_t>(bytes)}, q.options().dtype(at::kByte));
    check_launch(kn::bucketed_attention_bucket_major(ba, ws.defined() ? ws.data_ptr() : nullptr, bytes,
                                                     current_stream(dev)),
                 fn);
    return {out, n_scored};
}

std::pair<at::Tensor, at::Tensor> tempcache_match(const at::Tensor& q_new, const at::Tensor& k_new,
                                                  const at::Tensor& k_cache, const at::Tensor& cand_idx) {
    const char* fn = "dc::cuda::tempcache_match";
    DC_CHECK(q_new.defined() && q_new.is_cuda(), fn << ": q_new must be a CUDA tensor [1, H, N, D]");
    const at::Device dev = q_new.device();
    expect_cuda(q_new, fn, "q_new", dev, 4);
    DC_CHECK(q_new.size(0) == 1, fn << ": q_new must be [1, H, N, D], found " << q_new.sizes());
    const int64_t H = q_new.size(1), N = q_new.size(2), D = q_new.size(3);
    const kn::DType dt = qkv_dtype(q_new, fn);
    DC_CHECK(D >= 8 && D % 8 == 0 && 16 * H * D * 4 <= 200 * 1024,
             fn << ": head dim must be a multiple of 8 and H·D ≤ 3200, found " << q_new.sizes());
    expect_cuda(k_new, fn, "k_new", dev, 4);
    expect_sizes(k_new, fn, "k_new", {1, H, N, D}, "[1, H, N, D]");
    expect_cuda(k_cache, fn, "k_cache", dev, 4);
    const int64_t T = k_cache.size(2);
    expect_sizes(k_cache, fn, "k_cache", {1, H, T, D}, "[1, H, T, D]");
    for (const at::Tensor* t : {&k_new, &k_cache})
        DC_CHECK(t->scalar_type() == q_new.scalar_type(),
                 fn << ": q_new, k_new and k_cache must share one dtype, found " << q_new.scalar_type() << " and "
                    << t->scalar_type());
    expect_cuda(cand_idx, fn, "cand_idx", dev, 1);
    expect_dtype(cand_idx, fn, "cand_idx", at::kLong);
    const int64_t C = cand_idx.size(0);
    DC_CHECK(C < 0xffffffffll && N < (int64_t{1} << 30), fn << ": too many candidates or tokens: " << C << ", " << N);
    const RowsOf qr = rows_of(q_new), kr = rows_of(k_new), cr = rows_of(k_cache);
    const at::Tensor cc = cand_idx.contiguous();
    const c10::cuda::CUDAGuard guard(dev);
    at::Tensor match = at::empty({N}, q_new.options().dtype(at::kLong));  // [N] cache index, −1 = none
    at::Tensor cos = at::empty({N}, q_new.options().dtype(at::kFloat));   // [N]
    if (N == 0) return {match, cos};
    const size_t bytes = kn::tempcache_match_workspace_bytes(static_cast<int>(N));
    at::Tensor ws = at::empty({static_cast<int64_t>(bytes)}, q_new.options().dtype(at::kByte));
    check_launch(
        kn::tempcache_match(dt, static_cast<int>(H), static_cast<int>(N), static_cast<int>(D), T, qr.rows, kr.rows,
                            cr.rows, C > 0 ? cc.data_ptr<int64_t>() : nullptr, C, match.data_ptr<int64_t>(),
                            cos.data_ptr<float>(), ws.data_ptr(), bytes, current_stream(dev)),
        fn);
    return {match, cos};
}

void tempcache_merge(at::Tensor& k_cache, at::Tensor& v_cache, at::Tensor& bias, at::Tensor& frames,
                     at::Tensor& group_size, const at::Tensor& idx, const at::Tensor& src, const at::Tensor& k_new,
                     const at::Tensor& v_new, int64_t frame) {
    const char* fn = "dc::cuda::tempcache_merge";
    DC_CHECK(k_cache.defined() && k_cache.is_cuda(), fn << ": k_cache must be a CUDA tensor [1, H, T, D]");
    const at::Device dev = k_cache.device();
    expect_cuda(k_cache, fn, "k_cache", dev, 4);
    DC_CHECK(k_cache.size(0) == 1, fn << ": k_cache must be [1, H, T, D], found " << k_cache.sizes());
    const int64_t H = k_cache.size(1), T = k_cache.size(2), D = k_cache.size(3);
    const kn::DType dt = qkv_dtype(k_cache, fn);
    expect_cuda(v_cache, fn, "v_cache", dev, 4);
    expect_sizes(v_cache, fn, "v_cache", {1, H, T, D}, "[1, H, T, D]");
    expect_cuda(bias, fn, "bias", dev, 3);
    expect_sizes(bias, fn, "bias", {1, H, T}, "[1, H, T]");
    expect_dtype(bias, fn, "bias", at::kFloat);
    expect_cuda(frames, fn, "frames", dev, 1);
    expect_sizes(frames, fn, "frames", {T}, "[T]");
    expect_dtype(frames, fn, "frames", at::kLong);
    expect_cuda(group_size, fn, "group_size", dev, 1);
    expect_sizes(group_size, fn, "group_size", {T}, "[T]");
    expect_dtype(group_size, fn, "group_size", at::kInt);
    expect_cuda(idx, fn, "idx", dev, 1);
    expect_dtype(idx, fn, "idx", at::kLong);
    const int64_t M = idx.size(0);
    expect_cuda(src, fn, "src", dev, 1);
    expect_sizes(src, fn, "src", {M}, "[M] like idx");
    expect_dtype(src, fn, "src", at::kLong);
    expect_cuda(k_new, fn, "k_new", dev, 4);
    const int64_t N = k_new.size(2);
    expect_sizes(k_new, fn, "k_new", {1, H, N, D}, "[1, H, N, D]");
    expect_cuda(v_new, fn, "v_new", dev, 4);
    expect_sizes(v_new, fn, "v_new", {1, H, N, D}, "[1, H, N, D]");
    for (const at::Tensor* t : {static_cast<const at::Tensor*>(&v_cache), &k_new, &v_new})
        DC_CHECK(t->scalar_type() == k_cache.scalar_type(),
                 fn << ": caches and new keys/values must share one dtype, found " << k_cache.scalar_type() << " and "
                    << t->scalar_type());
    // Written in place, so they cannot be copied into a friendlier layout: only the last dimension must be dense.
    DC_CHECK((D <= 1 || (k_cache.stride(3) == 1 && v_cache.stride(3) == 1)),
             fn << ": k_cache and v_cache must be contiguous in the last dimension, found strides " << k_cache.strides()
                << " and " << v_cache.strides());
    DC_CHECK(M < (int64_t{1} << 31) && N < (int64_t{1} << 31), fn << ": too many pairs or tokens: " << M << ", " << N);
    if (M == 0 || T == 0 || H == 0 || D == 0) return;
    const at::Tensor ic = idx.contiguous(), sc = src.contiguous();
    const RowsOf kr = rows_of(k_new), vr = rows_of(v_new);
    const c10::cuda::CUDAGuard guard(dev);
    kn::MergeArgs a;
    a.dtype = dt;
    a.H = static_cast<int>(H);
    a.D = static_cast<int>(D);
    a.T = T;
    a.k_cache = k_cache.data_ptr();
    a.kc_stride_h = k_cache.stride(1);
    a.kc_stride_t = k_cache.stride(2);
    a.v_cache = v_cache.data_ptr();
    a.vc_stride_h = v_cache.stride(1);
    a.vc_stride_t = v_cache.stride(2);
    a.bias = bias.data_ptr<float>();
    a.bias_stride_h = bias.stride(1);
    a.bias_stride_t = bias.stride(2);
    a.frames = frames.data_ptr<int64_t>();
    a.frames_stride = frames.stride(0);
    a.group_size = group_size.data_ptr<int32_t>();
    a.group_size_stride = group_size.stride(0);
    a.idx = ic.data_ptr<int64_t>();
    a.src = sc.data_ptr<int64_t>();
    a.M = M;
    a.k_new = kr.rows;
    a.v_new = vr.rows;
    a.N = static_cast<int>(N);
    a.frame = frame;
    check_launch(kn::tempcache_merge(a, current_stream(dev)), fn);
}

at::Tensor tempcache_resolve(const at::Tensor& match, const at::Tensor& cos, double tau) {
    const char* fn = "dc::cuda::tempcache_resolve";
    DC_CHECK(match.defined() && match.is_cuda(), fn << ": match must be a CUDA tensor [N] int64");
    const at::Device dev = match.device();
    expect_cuda(match, fn, "match", dev, 1);
    expect_dtype(match, fn, "match", at::kLong);
    const int64_t N = match.size(0);
    expect_cuda(cos, fn, "cos", dev, 1);
    expect_dtype(cos, fn, "cos", at::kFloat);
    expect_sizes(cos, fn, "cos", {N}, "[N]");
    DC_CHECK(N <= kn::kMaxResolveTokens, fn << ": at most " << kn::kMaxResolveTokens << " tokens a frame, found " << N);
    const at::Tensor mc = match.contiguous(), cc = cos.contiguous();
    const c10::cuda::CUDAGuard guard(dev);
    at::Tensor plan = at::empty({2 + 3 * N}, match.options());
    check_launch(kn::tempcache_resolve(N > 0 ? mc.data_ptr<int64_t>() : nullptr, N > 0 ? cc.data_ptr<float>() : nullptr,
                                       static_cast<int>(N), tau, plan.data_ptr<int64_t>(), current_stream(dev)),
                 fn);
    return plan;
}

at::Tensor annca_keep(const at::Tensor& q_codes, const at::Tensor& k_codes, const at::Tensor& valid) {
    const char* fn = "dc::cuda::annca_keep";
    DC_CHECK(k_codes.defined() && k_codes.is_cuda(), fn << ": k_codes must be a CUDA tensor [B, H, P] int32");
    const at::Device dev = k_codes.device();
    expect_cuda(k_codes, fn, "k_codes", dev, 3);
    expect_dtype(k_codes, fn, "k_codes", at::kInt);
    const int64_t B = k_codes.size(0), H = k_codes.size(1), P = k_codes.size(2);
    expect_cuda(q_codes, fn, "q_codes", dev, 3);
    expect_dtype(q_codes, fn, "q_codes", at::kInt);
    const int64_t N = q_codes.size(2);
    expect_sizes(q_codes, fn, "q_codes", {B, H, N}, "[B, H, N]");
    expect_cuda(valid, fn, "valid", dev, 2);
    expect_sizes(valid, fn, "valid", {B, P}, "[B, P]");
    expect_dtype(valid, fn, "valid", at::kBool);
    DC_CHECK(B * H < (int64_t{1} << 31) && N < (int64_t{1} << 31) && P < (int64_t{1} << 31),
             fn << ": sizes out of range, found " << q_codes.sizes() << " and " << k_codes.sizes());
    const at::Tensor qc = q_codes.contiguous(), kc = k_codes.contiguous(), vc = valid.contiguous();
    const c10::cuda::CUDAGuard guard(dev);
    at::Tensor keep = at::empty({B, H, P}, k_codes.options().dtype(at::kBool));  // [B, H, P]
    if (keep.numel() == 0) return keep;
    check_launch(kn::annca_keep(N > 0 ? qc.data_ptr<int32_t>() : nullptr, kc.data_ptr<int32_t>(),
                                reinterpret_cast<const uint8_t*>(vc.data_ptr<bool>()), static_cast<int>(B),
                                static_cast<int>(H), static_cast<int>(N), static_cast<int>(P),
                                reinterpret_cast<uint8_t*>(keep.data_ptr<bool>()), current_stream(dev)),
                 fn);
    return keep;
}

}  // namespace dc::cuda
