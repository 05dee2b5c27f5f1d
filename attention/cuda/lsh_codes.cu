// attention/cuda/lsh_codes.cu — LSH codes: the sign bits of random projections, one thread per row; and the
// multi-probe codes (the cheapest bit flips of each row) that AnnSA and AnnCA probe.
// A block takes 256 rows of one (batch, head); the head's planes [D, bits] sit in shared memory and every thread
// reads the same plane entry at the same time (broadcast), so the kernel streams x once.
#include "device_utils.cuh"
#include "kernels.cuh"

namespace dc::cuda::kernels {
namespace {

using namespace dc::cuda::dev;

constexpr int kThreads = 256;
constexpr int kMaxBits = 16;

// acc[b] = row · planes[:, b] for b < bits (pl: the head's planes [D, bits] in shared memory), summed over d in
// order; returns the code Σ_b [acc[b] > 0] << b. acc is indexed with constants only (registers, no local memory).
template <typename T>
__device__ __forceinline__ int32_t project_row(const T* row, const float* pl, int D, int bits, float (&acc)[kMaxBits]) {
#pragma unroll
    for (int b = 0; b < kMaxBits; ++b) acc[b] = 0.f;
    auto add = [&](float xv, int d) {
#pragma unroll
        for (int b = 0; b < kMaxBits; ++b)
            if (b < bits) acc[b] = fmaf(xv, pl[d * bits + b], acc[b]);
    };
    if ((D & 7) == 0) {
        for (int d0 = 0; d0 < D; d0 += 8) {
            float f[8];
            load8(row + d0, f);
#pragma unroll
            for (int e = 0; e < 8; ++e) add(f[e], d0 + e);
        }
    } else {
        for (int d = 0; d < D; ++d) add(to_float(row[d]), d);
    }
    int32_t code = 0;
#pragma unroll
    for (int b = 0; b < kMaxBits; ++b)
        if (b < bits && acc[b] > 0.f) code |= 1 << b;
    return code;
}

__device__ __forceinline__ void load_planes(const float* planes, int h, int D, int bits, float* pl) {
    for (int i = static_cast<int>(threadIdx.x); i < D * bits; i += static_cast<int>(blockDim.x))
        pl[i] = planes[h * D * bits + i];
    __syncthreads();
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    lsh_codes_kernel(const T* __restrict__ x, const float* __restrict__ planes, int H, int64_t rows, int D, int bits,
                     int32_t* __restrict__ codes) {
    float* pl = dynamic_smem<float>();  // [D, bits] of this block's head
    const int64_t bh = blockIdx.y;      // batch · H + head
    load_planes(planes, static_cast<int>(bh % H), D, bits, pl);
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
    if (t >= rows) return;
    float acc[kMaxBits];
    codes[bh * rows + t] = project_row(x + (bh * rows + t) * D, pl, D, bits, acc);
}

// ---- multi-probe: the P cheapest bit-flip sets per row (the CPU's algorithm in attention/ann.cpp) ----------------
// Positions sorted by |projection| (stable); flip sets generated in increasing total cost from a min-heap ordered by
// (cost, mask over sorted positions) with the shift/expand successors. Each thread keeps its sort keys and heap in
// shared memory (no local memory).
constexpr int kProbeThreads = 64;
constexpr int kHeapCap = 2 * kMaxProbes;   // ≥ 1 + 2 (P − 1) entries

struct FlipSet {
    float cost;
    uint32_t mask;   // over confidence-sorted positions
    int max_pos;
};

__device__ __forceinline__ bool flip_less(const FlipSet& a, const FlipSet& b) {
    return a.cost != b.cost ? a.cost < b.cost : a.mask < b.mask;
}

__device__ __forceinline__ void heap_push(FlipSet* heap, int& n, FlipSet v) {
    int i = n++;
    while (i > 0) {
        const int parent = (i - 1) / 2;
        if (!flip_less(v, heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = v;
}

__device__ __forceinline__ FlipSet heap_pop(FlipSet* heap, int& n) {
    const FlipSet top = heap[0];
    const FlipSet last = heap[--n];
    int i = 0;
    while (true) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && flip_less(heap[c + 1], heap[c])) ++c;
        if (!flip_less(heap[c], last)) break;
        heap[i] = heap[c];
        i = c;
    }
    if (n > 0) heap[i] = last;
    return top;
}

template <typename T>
__global__ void __launch_bounds__(kProbeThreads)
    lsh_probe_kernel(const T* __restrict__ x, const float* __restrict__ planes, int H, int64_t rows, int D, int bits,
                     int P, int32_t* __restrict__ out) {
    float* pl = dynamic_smem<float>();                                        // [D, bits]
    float* cost_all = pl + D * bits;                                          // [threads, kMaxBits]
    int* order_all = reinterpret_cast<int*>(cost_all + kProbeThreads * kMaxBits);   // [threads, kMaxBits]
    FlipSet* heap_all = reinterpret_cast<FlipSet*>(order_all + kProbeThreads * kMaxBits);   // [threads, kHeapCap]
    const int64_t bh = blockIdx.y;
    load_planes(planes, static_cast<int>(bh % H), D, bits, pl);
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kProbeThreads + threadIdx.x;
    if (t >= rows) return;
    float acc[kMaxBits];
    const int32_t code = project_row(x + (bh * rows + t) * D, pl, D, bits, acc);
    int32_t* o = out + (bh * rows + t) * P;
    o[0] = code;
    const int n_buckets = 1 << bits;
    if (P == n_buckets) {   // every bucket: own code first, then the rest in code order
        int j = 1;
        for (int c = 0; c < n_buckets; ++c)
            if (c != code) o[j++] = c;
        return;
    }
    float* cost = cost_all + threadIdx.x * kMaxBits;
    int* order = order_all + threadIdx.x * kMaxBits;
#pragma unroll
    for (int b = 0; b < kMaxBits; ++b)
        if (b < bits) cost[b] = fabsf(acc[b]);
    for (int i = 0; i < bits; ++i) {   // stable insertion sort of positions by cost
        int j = i - 1;
        while (j >= 0 && cost[order[j]] > cost[i]) {
            order[j + 1] = order[j];
            --j;
        }
        order[j + 1] = i;
    }
    FlipSet* heap = heap_all + threadIdx.x * kHeapCap;
    int n = 0;
    heap_push(heap, n, FlipSet{cost[order[0]], 1u, 0});
    for (int j = 1; j < P; ++j) {
        const FlipSet s = heap_pop(heap, n);
        int32_t flip = 0;
        for (int pos = 0; pos < bits; ++pos)
            if (s.mask & (1u << pos)) flip |= 1 << order[pos];
        o[j] = code ^ flip;
        if (s.max_pos + 1 < bits) {
            const int nx = s.max_pos + 1;
            const float c_max = cost[order[s.max_pos]], c_nx = cost[order[nx]];
            heap_push(heap, n, FlipSet{s.cost - c_max + c_nx, (s.mask & ~(1u << s.max_pos)) | (1u << nx), nx});
            heap_push(heap, n, FlipSet{s.cost + c_nx, s.mask | (1u << nx), nx});
        }
    }
}

}  // namespace

cudaError_t lsh_codes(DType dtype, const void* x, const float* planes, int B, int H, int64_t T, int D, int bits,
                      int32_t* codes, cudaStream_t stream) {
    if (B < 0 || H < 0 || T < 0 || D < 1 || bits < 1 || bits > kMaxBits) return cudaErrorInvalidValue;
    if (B == 0 || H == 0 || T == 0) return cudaSuccess;
    const size_t smem = static_cast<size_t>(D) * bits * sizeof(float);
    const int64_t blocks_x = ceil_div(T, kThreads);
    if (smem > 48 * 1024 || static_cast<int64_t>(B) * H > 65535 || blocks_x > 0x7fffffff) return cudaErrorInvalidValue;
    if (x == nullptr || planes == nullptr || codes == nullptr) return cudaErrorInvalidValue;
    if ((D & 7) == 0 && reinterpret_cast<uintptr_t>(x) % 16 != 0) return cudaErrorInvalidValue;  // load8
    const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(B * H));
    if (dtype == DType::bf16)
        DC_LAUNCH(lsh_codes_kernel<__nv_bfloat16>, grid, kThreads, smem, stream, static_cast<const __nv_bfloat16*>(x),
                  planes, H, T, D, bits, codes);
    else
        DC_LAUNCH(lsh_codes_kernel<float>, grid, kThreads, smem, stream, static_cast<const float*>(x), planes, H, T, D,
                  bits, codes);
    return cudaGetLastError();
}

cudaError_t lsh_probe_codes(DType dtype, const void* x, const float* planes, int B, int H, int64_t T, int D, int bits,
                            int probes, int32_t* out, cudaStream_t stream) {
    if (B < 0 || H < 0 || T < 0 || D < 1 || bits < 1 || bits > kMaxBits || probes < 1) return cudaErrorInvalidValue;
    const int n_buckets = 1 << bits;
    if (probes > n_buckets || (probes > kMaxProbes && probes != n_buckets)) return cudaErrorInvalidValue;
    if (B == 0 || H == 0 || T == 0) return cudaSuccess;
    const size_t smem = static_cast<size_t>(D) * bits * sizeof(float) +
                        static_cast<size_t>(kProbeThreads) * kMaxBits * (sizeof(float) + sizeof(int)) +
                        static_cast<size_t>(kProbeThreads) * kHeapCap * sizeof(FlipSet);
    const int64_t blocks_x = ceil_div(T, kProbeThreads);
    if (smem > 48 * 1024 || static_cast<int64_t>(B) * H > 65535 || blocks_x > 0x7fffffff) return cudaErrorInvalidValue;
    if (x == nullptr || planes == nullptr || out == nullptr) return cudaErrorInvalidValue;
    if ((D & 7) == 0 && reinterpret_cast<uintptr_t>(x) % 16 != 0) return cudaErrorInvalidValue;  // load8
    const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(B * H));
    if (dtype == DType::bf16)
        DC_LAUNCH(lsh_probe_kernel<__nv_bfloat16>, grid, kProbeThreads, smem, stream,
                  static_cast<const __nv_bfloat16*>(x), planes, H, T, D, bits, probes, out);
    else
        DC_LAUNCH(lsh_probe_kernel<float>, grid, kProbeThreads, smem, stream, static_cast<const float*>(x), planes, H,
                  T, D, bits, probes, out);
    return cudaGetLastError();
}

}  // namespace dc::cuda::kernels
