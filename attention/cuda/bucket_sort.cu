// attention/cuda/bucket_sort.cu — stable counting sort of each head's cache codes into 2^bits buckets.
//
// Least-significant-digit radix sort with 8-bit digits (one pass for bits ≤ 8, two for bits ≤ 16); every pass is a
// stable counting sort over tiles of kTile keys:
//   1. sort_hist_kernel:    per (head, tile) digit histogram → hist[h][digit][tile];
//   2. sort_scan_kernel:    per head, exclusive scan of hist in (digit, tile) order → where each (digit, tile) starts;
//   3. sort_scatter_kernel: per (head, tile), each key's rank among equal digits of its tile in index order
//      (__match_any_sync within a warp, per-warp counts across warps, a running count across rounds) → scatter.
// Finally sort_offsets_kernel finds each bucket's start in the sorted codes by binary search.
#include "device_utils.cuh"
#include "kernels.cuh"

namespace dc::cuda::kernels {
namespace {

using namespace dc::cuda::dev;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kItems = 8;                 // rounds per tile; a round sorts kThreads keys
constexpr int kTile = kThreads * kItems;  // keys per tile
constexpr int kRadix = 256;               // 8-bit digits (kRadix == kThreads: thread d owns digit d)
constexpr int kScanThreads = 1024;

__global__ void __launch_bounds__(kThreads) sort_hist_kernel(const int32_t* __restrict__ keys, int64_t T, int n_tiles,
                                                             int shift, uint32_t mask, int32_t* __restrict__ hist) {
    __shared__ int cnt[kRadix];
    const int tid = static_cast<int>(threadIdx.x);
    const int tile = static_cast<int>(blockIdx.x);
    const int h = static_cast<int>(blockIdx.y);
    cnt[tid] = 0;
    __syncthreads();
    const int32_t* kh = keys + h * T;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
        const int64_t idx = static_cast<int64_t>(tile) * kTile + i * kThreads + tid;
        if (idx < T) atomicAdd(&cnt[((static_cast<uint32_t>(kh[idx]) & mask) >> shift) & (kRadix - 1)], 1);
    }
    __syncthreads();
    hist[(static_cast<int64_t>(h) * kRadix + tid) * n_tiles + tile] = cnt[tid];
}

__global__ void __launch_bounds__(kScanThreads) sort_scan_kernel(int32_t* __restrict__ hist, int n_tiles) {
    __shared__ int part[kScanThreads];
    const int tid = static_cast<int>(threadIdx.x);
    const int64_t n = static_cast<int64_t>(kRadix) * n_tiles;
    int32_t* hh = hist + blockIdx.x * n;
    const int64_t per = ceil_div(n, kScanThreads);
    const int64_t begin = tid * per;
    const int64_t end = begin + per < n ? begin + per : n;
    int sum = 0;
    for (int64_t i = begin; i < end; ++i) sum += hh[i];
    part[tid] = sum;
    __syncthreads();
    for (int off = 1; off < kScanThreads; off <<= 1) {  // inclusive Hillis–Steele scan
        const int v = tid >= off ? part[tid - off] : 0;
        __syncthreads();
        part[tid] += v;
        __syncthreads();
    }
    int run = part[tid] - sum;
    for (int64_t i = begin; i < end; ++i) {
        const int v = hh[i];
        hh[i] = run;
        run += v;
    }
}

__global__ void __launch_bounds__(kThreads)
    sort_scatter_kernel(const int32_t* __restrict__ keys_in, const int32_t* __restrict__ vals_in, int64_t T,
                        int n_tiles, int shift, uint32_t mask, const int32_t* __restrict__ hist,
                        int32_t* __restrict__ keys_out, int32_t* __restrict__ vals_out) {
    __shared__ int base[kRadix];          // first output slot of (digit, this tile)
    __shared__ int running[kRadix];       // keys of each digit placed by earlier rounds
    __shared__ int wcnt[kWarps][kRadix];  // keys of each digit in each warp of this round
    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int tile = static_cast<int>(blockIdx.x);
    const int h = static_cast<int>(blockIdx.y);
    base[tid] = hist[(static_cast<int64_t>(h) * kRadix + tid) * n_tiles + tile];
    running[tid] = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) wcnt[w][tid] = 0;
    __syncthreads();

    const int64_t off = h * T;
    for (int i = 0; i < kItems; ++i) {
        const int64_t idx = static_cast<int64_t>(tile) * kTile + i * kThreads + tid;
        const bool valid = idx < T;
        uint32_t key = 0;
        int32_t val = 0;
        int digit = -1;  // invalid lanes form their own group
        if (valid) {
            key = static_cast<uint32_t>(keys_in[off + idx]) & mask;
            val = vals_in != nullptr ? vals_in[off + idx] : static_cast<int32_t>(idx);
            digit = static_cast<int>((key >> shift) & (kRadix - 1));
        }
        const unsigned peers = __match_any_sync(kFullMask, digit);
        const int rank = __popc(peers & ((1u << lane) - 1u));
        if (valid && rank == 0) wcnt[warp][digit] = __popc(peers);
        __syncthreads();
        if (valid) {
            int pos = base[digit] + running[digit] + rank;
            for (int w = 0; w < warp; ++w) pos += wcnt[w][digit];
            keys_out[off + pos] = static_cast<int32_t>(key);
            vals_out[off + pos] = val;
        }
        __syncthreads();
        int s = 0;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
            s += wcnt[w][tid];
            wcnt[w][tid] = 0;
        }
        running[tid] += s;
        __syncthreads();
    }
}

__global__ void __launch_bounds__(kThreads)
    sort_offsets_kernel(const int32_t* __restrict__ sorted, int64_t T, int nb, int32_t* __restrict__ offsets) {
    const int b = static_cast<int>(blockIdx.x) * kThreads + static_cast<int>(threadIdx.x);
    const int h = static_cast<int>(blockIdx.y);
    if (b > nb) return;
    const int32_t* s = sorted + h * T;
    int64_t lo = 0, hi = T;  // first position whose code is ≥ b
    while (lo < hi) {
        const int64_t mid = (lo + hi) >> 1;
        if (s[mid] < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    offsets[static_cast<int64_t>(h) * (nb + 1) + b] = static_cast<int32_t>(lo);
}

size_t align16(size_t n) {
    return (n + 15) & ~size_t{15};
}

}  // namespace

size_t bucket_sort_workspace_bytes(int H, int64_t T, int bits) {
    if (H <= 0 || T <= 0 || bits < 1 || bits > 16) return 0;
    const size_t keys = static_cast<size_t>(H) * T * sizeof(int32_t);
    const size_t n_tiles = static_cast<size_t>(ceil_div(T, kTile));
    return 3 * align16(keys) + align16(static_cast<size_t>(H) * kRadix * n_tiles * sizeof(int32_t));
}

cudaError_t bucket_sort(const int32_t* codes, int H, int64_t T, int bits, int32_t* perm, int32_t* offsets,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    if (H < 0 || T < 0 || T > 0x7fffffff || bits < 1 || bits > 16 || H > 65535) return cudaErrorInvalidValue;
    if (H == 0) return cudaSuccess;
    const int nb = 1 << bits;
    if (offsets == nullptr) return cudaErrorInvalidValue;
    if (T == 0) return cudaMemsetAsync(offsets, 0, static_cast<size_t>(H) * (nb + 1) * sizeof(int32_t), stream);
    if (codes == nullptr || perm == nullptr || workspace == nullptr ||
        workspace_bytes < bucket_sort_workspace_bytes(H, T, bits))
        return cudaErrorInvalidValue;

    const size_t keys_bytes = align16(static_cast<size_t>(H) * T * sizeof(int32_t));
    unsigned char* ws = static_cast<unsigned char*>(workspace);
    int32_t* keys_a = reinterpret_cast<int32_t*>(ws);
    int32_t* keys_b = reinterpret_cast<int32_t*>(ws + keys_bytes);
    int32_t* vals_tmp = reinterpret_cast<int32_t*>(ws + 2 * keys_bytes);
    int32_t* hist = reinterpret_cast<int32_t*>(ws + 3 * keys_bytes);

    const int n_tiles = static_cast<int>(ceil_div(T, kTile));
    const uint32_t mask = static_cast<uint32_t>(nb - 1);
    const int passes = (bits + 7) / 8;
    const dim3 tiles_grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(H));
    for (int pass = 0; pass < passes; ++pass) {
        const int shift = 8 * pass;
        const int32_t* kin = pass == 0 ? codes : keys_a;
        const int32_t* vin = pass == 0 ? nullptr : vals_tmp;
        int32_t* kout = pass == 0 ? keys_a : keys_b;
        int32_t* vout = pass + 1 == passes ? perm : vals_tmp;
        DC_LAUNCH(sort_hist_kernel, tiles_grid, kThreads, 0, stream, kin, T, n_tiles, shift, mask, hist);
        DC_LAUNCH(sort_scan_kernel, H, kScanThreads, 0, stream, hist, n_tiles);
        DC_LAUNCH(sort_scatter_kernel, tiles_grid, kThreads, 0, stream, kin, vin, T, n_tiles, shift, mask, hist, kout,
                  vout);
        const cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
    }
    const int32_t* sorted = passes == 1 ? keys_a : keys_b;
    const dim3 off_grid(static_cast<unsigned>(ceil_div(nb + 1, kThreads)), static_cast<unsigned>(H));
    DC_LAUNCH(sort_offsets_kernel, off_grid, kThreads, 0, stream, sorted, T, nb, offsets);
    return cudaGetLastError();
}

}  // namespace dc::cuda::kernels
