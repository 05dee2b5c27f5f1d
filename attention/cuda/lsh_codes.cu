// attention/cuda/lsh_codes.cu — LSH codes: the sign bits of random projections; and the multi-probe codes (the
// cheapest bit flips of each row) that AnnSA and AnnCA probe. A whole cache runs one thread per row; a frame's few
// hundred rows run one warp per row (codes, and probes up to 11), where one thread's serial row would be the call's
// latency.
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

// Warp-per-row variant for P − 1 ≤ kWarpProbeMaxK (AnnSA's and AnnCA's defaults): the per-thread kernel above runs
// one long serial chain per row, and a frame has only a few hundred rows, so its time is that chain's latency. Here
// lane b < bits projects the row on plane b (summed over d in order, as lsh_codes_kernel: the same codes) and the
// lanes rank the positions by (|projection|, position) — the CPU's stable sort. The P − 1 cheapest non-empty flip
// sets only use the k = min(bits, P − 1) cheapest positions (their k singletons already cost no more than any set
// that uses another position), so the warp enumerates the 2^k masks over those positions and picks P − 1 of them by
// rounds of a warp arg-min over (cost, mask) strictly after the previous pick: the heap's order, with costs summed
// afresh instead of incrementally (two near-equal costs may swap; the tests allow for that). With P = 1 it writes
// the codes alone: lsh_codes runs it so for a frame's rows.
constexpr int kWarpProbeMaxK = 10;
constexpr int kWarpProbeMaxD = 256;
constexpr int kWarpProbeWarps = 8;
constexpr int64_t kWarpCodesMaxRows = 4096;  // rows per (batch, head) up to which lsh_codes runs a warp per row

// Lane b < bits of a warp: the row's projection on plane b, summed over d in order (as project_row: the same codes).
template <typename T>
__device__ __forceinline__ float warp_project(const T* row, const float* pl, int D, int bits, int lane) {
    float xr[kWarpProbeMaxD / 32];
#pragma unroll
    for (int i = 0; i < kWarpProbeMaxD / 32; ++i) xr[i] = 32 * i + lane < D ? to_float(row[32 * i + lane]) : 0.f;
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < kWarpProbeMaxD / 32; ++i) {
        if (32 * i >= D) break;
        for (int e = 0; e < 32 && 32 * i + e < D; ++e) {
            const float xv = __shfl_sync(kFullMask, xr[i], e);
            if (lane < bits) acc = fmaf(xv, pl[(32 * i + e) * bits + lane], acc);
        }
    }
    return acc;
}

template <typename T>
__global__ void __launch_bounds__(kWarpProbeWarps * 32)
    lsh_probe_warp_kernel(const T* __restrict__ x, const float* __restrict__ planes, int H, int64_t rows, int D,
                          int bits, int P, int32_t* __restrict__ out) {
    float* pl = dynamic_smem<float>();  // [D, bits]
    const int64_t bh = blockIdx.y;
    load_planes(planes, static_cast<int>(bh % H), D, bits, pl);
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kWarpProbeWarps + (threadIdx.x >> 5);
    if (t >= rows) return;  // warp-uniform
    const float acc = warp_project(x + (bh * rows + t) * D, pl, D, bits, lane);
    const int32_t code = static_cast<int32_t>(__ballot_sync(kFullMask, lane < bits && acc > 0.f));
    const float my_cost = fabsf(acc);
    int rank = 0;  // of this lane's position among the bits positions, by (cost, position)
    for (int b = 0; b < bits; ++b) {
        const float cb = __shfl_sync(kFullMask, my_cost, b);
        if (cb < my_cost || (cb == my_cost && b < lane)) ++rank;
    }
    const int k = min(bits, P - 1);
    int pos[kWarpProbeMaxK];
    float pc[kWarpProbeMaxK];
#pragma unroll
    for (int r = 0; r < kWarpProbeMaxK; ++r) {
        pos[r] = 0;
        pc[r] = 0.f;
        if (r < k) {
            pos[r] = __ffs(__ballot_sync(kFullMask, lane < bits && rank == r)) - 1;
            pc[r] = __shfl_sync(kFullMask, my_cost, pos[r]);
        }
    }
    int32_t* o = out + (bh * rows + t) * P;
    if (lane == 0) o[0] = code;
    const uint32_t n_masks = 1u << k;
    float prev_c = 0.f;
    uint32_t prev_m = 0u;
    for (int j = 1; j < P; ++j) {
        float best_c = INFINITY;
        uint32_t best_m = 0xffffffffu;
        for (uint32_t m = static_cast<uint32_t>(lane); m < n_masks; m += 32) {
            if (m == 0u) continue;
            float c = 0.f;
#pragma unroll
            for (int r = 0; r < kWarpProbeMaxK; ++r)
                if (r < k && ((m >> r) & 1u)) c += pc[r];
            const bool after = c > prev_c || (c == prev_c && m > prev_m);
            const bool better = c < best_c || (c == best_c && m < best_m);
            if (after && better) {
                best_c = c;
                best_m = m;
            }
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
            const float oc = __shfl_xor_sync(kFullMask, best_c, off);
            const uint32_t om = __shfl_xor_sync(kFullMask, best_m, off);
            if (oc < best_c || (oc == best_c && om < best_m)) {
                best_c = oc;
                best_m = om;
            }
        }
        prev_c = best_c;
        prev_m = best_m;
        int32_t flip = 0;
#pragma unroll
        for (int r = 0; r < kWarpProbeMaxK; ++r)
            if (r < k && ((best_m >> r) & 1u)) flip |= 1 << pos[r];
        if (lane == 0) o[j] = code ^ flip;
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
    if (T <= kWarpCodesMaxRows && D <= kWarpProbeMaxD) {   // a frame's rows: the probe kernel with one probe
        const dim3 wgrid(static_cast<unsigned>(ceil_div(T, kWarpProbeWarps)), static_cast<unsigned>(B * H));
        if (dtype == DType::bf16)
            DC_LAUNCH(lsh_probe_warp_kernel<__nv_bfloat16>, wgrid, kWarpProbeWarps * 32, smem, stream,
                      static_cast<const __nv_bfloat16*>(x), planes, H, T, D, bits, 1, codes);
        else
            DC_LAUNCH(lsh_probe_warp_kernel<float>, wgrid, kWarpProbeWarps * 32, smem, stream,
                      static_cast<const float*>(x), planes, H, T, D, bits, 1, codes);
        return cudaGetLastError();
    }
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
    if (probes - 1 <= kWarpProbeMaxK && probes < (1 << bits) && D <= kWarpProbeMaxD) {
        const dim3 wgrid(static_cast<unsigned>(ceil_div(T, kWarpProbeWarps)), static_cast<unsigned>(B * H));
        const size_t wsmem = static_cast<size_t>(D) * bits * sizeof(float);
        if (dtype == DType::bf16)
            DC_LAUNCH(lsh_probe_warp_kernel<__nv_bfloat16>, wgrid, kWarpProbeWarps * 32, wsmem, stream,
                      static_cast<const __nv_bfloat16*>(x), planes, H, T, D, bits, probes, out);
        else
            DC_LAUNCH(lsh_probe_warp_kernel<float>, wgrid, kWarpProbeWarps * 32, wsmem, stream,
                      static_cast<const float*>(x), planes, H, T, D, bits, probes, out);
        return cudaGetLastError();
    }
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
