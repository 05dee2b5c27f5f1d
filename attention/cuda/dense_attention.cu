// attention/cuda/dense_attention.cu — split-KV (flash-decoding) attention of one frame of queries over a long cache.
//
// The key sequence of a head is [cache (T keys) ‖ current frame (N keys)], cut into tiles of kBK keys; each thread
// block takes one head, one tile of queries and one chunk of consecutive key tiles, streams the chunk through shared
// memory (cp.async, kStages deep) and keeps an online softmax (running max m, sum l, unnormalised output o) per query.
// With one chunk per head the block writes the output; otherwise it writes (m, l, o) partials and a reduce kernel
// combines the chunks. Logits are kept in log2 units: x = q·k · log2(e)/sqrt(D) + kb, kb = (bias − slope·distance) ·
// log2(e), so that every exponential is one ex2.
//
// bf16 path (dense_mma_kernel): tensor cores (mma.sync m16n8k16, fp32 accumulate). 8 warps; a warp owns 16·kMT query
// rows (32 for D ≤ 64) and computes S = Q·Kᵀ for 32 keys at a time, the softmax in registers, and O += P·V with P
// taken straight from the S accumulators. Shared-memory reads need no ldmatrix:
//   - QKᵀ: the dot product is invariant under a permutation of the D dims applied to both q and k. Lane (g, t)
//     holds dims [t·D/4, (t+1)·D/4) of its q rows and of key row g, and k-step s / register r of the MMA is given
//     dims t·D/4 + 4s + 2r + {0, 1}: Q's A fragment and K's B fragment are both plain 32-bit words of a row.
//   - P·V: the B fragment needs two keys' values of one dim in one register. Output n-tile j, column n is given the
//     dim n·D/8 + j; lane (g, t) then loads dims [g·D/8, (g+1)·D/8) of keys 2t, 2t+1 (and +8) and interleaves the
//     two rows with one byte-permute per register. The lane's outputs come out as dims [t·D/4, (t+1)·D/4).
//   - Rows are stored with their 16-byte chunks XOR-swizzled by row (swizzle_bf16) so that both read patterns and the
//     cp.async writes are free of bank conflicts.
// The running max is only raised when a tile's max exceeds it by more than kRescaleSlack (log2 units), so the O
// rescale (a warp-uniform branch) is rare; p = 2^(x − m) then stays ≤ 2^kRescaleSlack, harmless in fp32 and bf16.
// The kernel is a template over MmaKnobs: keys per shared-memory tile, pipeline depth and software pipelining (S of
// the next 32 keys computed while the current ones are exponentiated, so a warp's MMAs overlap its exponentials).
// D = 32 and 64 run the pipelined set (MmaFast), D = 128 the plain one (MmaBase: registers). DensePlan counts 64-key
// tiles whatever the set; keys of a tile past its chunk's end are masked.
//
// bf16 path on Hopper for D = 64 (dense_wgmma_kernel, builds for sm_90a): the same plan, softmax and partials with
// asynchronous warpgroup MMAs and mbarrier-handed stages; dense_attention runs it where it can (see its section).
//
// float32 path (dense_f32_kernel): CUDA cores, exact fp32. D/32 lanes per query, each holding 32 dims of q and o.
#include "device_utils.cuh"
#include "kernels.cuh"
#include "mma_tiles.cuh"

namespace dc::cuda::kernels {
namespace {

using namespace dc::cuda::dev;

constexpr int kThreads = 256;         // threads per block of the attention kernels
constexpr int kStages = 3;            // pipeline depth of the float32 kernel (≥ 3: the kb prefetch relies on it)

struct DenseKernelParams {
    DenseArgs a;
    DensePlan plan;
    float* ws_o;       // [H, n_chunks, N, D] unnormalised partial outputs (n_chunks > 1)
    float2* ws_ml;     // [H, n_chunks, N] (running max in log2 units, sum of 2^(x − m))
    float scale_log2;  // log2(e) / sqrt(D)
};

// Keys per DensePlan tile of the bf16 kernel: the plan and the chunk boundaries count these whatever the knobs.
constexpr int kPlanKeys = 64;

// Tuning knobs of the bf16 kernel (the sets in use: MmaFast, MmaBase below).
template <int BK, int Stages, bool Pipe>
struct MmaKnobs {
    static constexpr int kBK = BK;          // keys per shared-memory tile (a multiple of 32)
    static constexpr int kStages = Stages;  // shared-memory pipeline depth
    // A warp computes S = Q·Kᵀ of its next 32 keys between the row maxima and the exponentials of the current 32
    // (two S register sets), so that its MMAs overlap its MUFU work.
    static constexpr bool kPipe = Pipe;
    // Tiles in flight beyond the one being read. The pipelined loop passes tile it's barrier while P·V still reads
    // tile it − 1, so that stage cannot be refilled there: one stage fewer is in flight.
    static constexpr int kAhead = Pipe ? Stages - 2 : Stages - 1;
    static_assert(kAhead >= 2, "the kb prefetch stores the values of tile it + kAhead − 1 into a stage nobody reads");
    static_assert(BK % 32 == 0, "a tile is a whole number of 32-key register steps");
};
// D = 32 and 64: 64-key tiles, 4 stages, pipelined — on an H100 at 768k keys × 6 heads of 64 this set ran at 1.13 ms
// against 1.31 ms for MmaBase; 128-key tiles (1.20 ms), a 5th stage (1.24 ms) and moving one in 2 or 4 exponentials
// to a polynomial on the FMA pipe (1.22–1.29 ms) did no better (bench/results/attention-h100.md).
using MmaFast = MmaKnobs<64, 4, true>;
using MmaBase = MmaKnobs<64, 3, false>;  // D = 128: pipelining's second S register set does not fit

template <int D, typename K>
struct MmaCfg {
    static constexpr int kMT = D <= 64 ? 2 : 1;  // 16-row query tiles per warp (registers bound D = 128)
    static constexpr int kWarps = kThreads / 32;
    static constexpr int kBQ = kWarps * 16 * kMT;  // queries per block
    static constexpr int kBK = K::kBK;             // keys per shared-memory tile
    static constexpr int kStages = K::kStages;
    static constexpr int kSub = 32;  // keys per register step
    static constexpr int kSubs = kBK / kSub;
    static constexpr int kKS = D / 16;  // k-steps of Q·Kᵀ
    static constexpr int kNO = D / 8;   // 8-wide output tiles of P·V
    static constexpr int kTileElems = kBK * D;
    static constexpr size_t kSmemBytes = kStages * (2 * kTileElems * sizeof(__nv_bfloat16) + kBK * sizeof(float));
};

template <int D>
struct F32Cfg {
    static constexpr int kG = D / 32;          // lanes per query (each holds 32 dims)
    static constexpr int kBQ = kThreads / kG;  // queries per block
    static constexpr int kBK = 32;             // keys per shared-memory tile
    static constexpr int kTileElems = kBK * D;
    static constexpr size_t kSmemBytes = kStages * (2 * kTileElems * sizeof(float) + kBK * sizeof(float));
};

struct NoSwizzle {
    __device__ __forceinline__ int operator()(int, int c) const { return c; }
};
template <int D>
struct SwizzleBf16 {
    __device__ __forceinline__ int operator()(int r, int c) const { return swizzle_bf16<D>(r, c); }
};

__device__ __forceinline__ void decode_block(const DensePlan& plan, int& qt, int& chunk, int& h) {
    int b = static_cast<int>(blockIdx.x);
    qt = b % plan.n_qtiles;
    b /= plan.n_qtiles;
    chunk = b % plan.n_chunks;
    h = b / plan.n_chunks;
}

// The bf16 kernels' block: query tile qt, key chunk and head h, and the chunk's keys [key0, key_end) (64-key plan
// tiles; the last tile of a chunk may reach past key_end: zero K/V, kb = −inf).
struct BlockChunk {
    int qt, chunk, h;
    int64_t key0, key_end;
};
__device__ __forceinline__ BlockChunk block_chunk(const DensePlan& plan, const DenseArgs& a) {
    BlockChunk b{};
    decode_block(plan, b.qt, b.chunk, b.h);
    const int tile0 = b.chunk * plan.chunk_tiles;
    b.key0 = static_cast<int64_t>(tile0) * kPlanKeys;
    const int64_t plan_end = static_cast<int64_t>(min(tile0 + plan.chunk_tiles, plan.tiles_total)) * kPlanKeys;
    b.key_end = plan_end < a.T + a.N ? plan_end : a.T + a.N;
    return b;
}

// Raw inputs of a key's additive logit (loaded one pipeline step before they are needed). Keys from t_end on (≤ T + N:
// past the sequence or the block's chunk) get −inf.
__device__ __forceinline__ void kb_load(const DenseArgs& a, int h, int64_t t, int64_t t_end, float& rb, int64_t& rf) {
    if (t >= t_end) {
        rb = neg_inf();
        rf = a.frame;
    } else if (t < a.T) {
        rb = a.bias != nullptr ? a.bias[h * a.bias_stride_h + t] : 0.f;
        rf = a.frames != nullptr ? a.frames[t] : a.frame;
    } else {
        rb = 0.f;  // the current frame: bias 0, distance 0
        rf = a.frame;
    }
}
__device__ __forceinline__ float kb_value(float rb, int64_t rf, float slope, int64_t frame) {
    return (rb - slope * static_cast<float>(frame - rf)) * kLog2e;
}

// Copies keys [t0, t0 + BK) of head h (cache, then current frame; zeros from t_end ≤ T + N on) into the K and V tiles.
template <typename T, int BK, int D, typename Swz>
__device__ __forceinline__ void load_kv_tile(T* ks, T* vs, const DenseArgs& a, int h, int64_t t0, int64_t t_end,
                                             Swz swz) {
    constexpr int kElems = 16 / static_cast<int>(sizeof(T));
    constexpr int kChunks = D / kElems;  // 16-byte chunks per row
    for (int i = static_cast<int>(threadIdx.x); i < BK * kChunks; i += kThreads) {
        const int r = i / kChunks;
        const int c = i % kChunks;
        const int64_t t = t0 + r;
        T* kd = ks + r * D + swz(r, c) * kElems;
        T* vd = vs + r * D + swz(r, c) * kElems;
        if (t >= t_end) {
            *reinterpret_cast<uint4*>(kd) = make_uint4(0u, 0u, 0u, 0u);
            *reinterpret_cast<uint4*>(vd) = make_uint4(0u, 0u, 0u, 0u);
        } else if (t < a.T) {
            const T* kc = static_cast<const T*>(a.k_cache.ptr) + h * a.k_cache.stride_h + t * a.k_cache.stride_r;
            const T* vc = static_cast<const T*>(a.v_cache.ptr) + h * a.v_cache.stride_h + t * a.v_cache.stride_r;
            cp_async_16(kd, kc + c * kElems);
            cp_async_16(vd, vc + c * kElems);
        } else {
            const int64_t u = t - a.T;
            const T* ku = static_cast<const T*>(a.k_cur.ptr) + h * a.k_cur.stride_h + u * a.k_cur.stride_r;
            const T* vu = static_cast<const T*>(a.v_cur.ptr) + h * a.v_cur.stride_h + u * a.v_cur.stride_r;
            cp_async_16(kd, ku + c * kElems);
            cp_async_16(vd, vu + c * kElems);
        }
    }
}

// ---- bf16: tensor cores ---------------------------------------------------------------------------------------------
template <int D, typename K>
__global__ void __launch_bounds__(kThreads, 1) dense_mma_kernel(const DenseKernelParams p) {
    using C = MmaCfg<D, K>;
    const DenseArgs& a = p.a;
    const BlockChunk bc = block_chunk(p.plan, a);
    const int qt = bc.qt, chunk = bc.chunk, h = bc.h;
    const int64_t key0 = bc.key0, key_end = bc.key_end;
    const int n_tiles = static_cast<int>(ceil_div(key_end - key0, C::kBK));

    __nv_bfloat16* ks = dynamic_smem<__nv_bfloat16>();                       // [kStages][kBK][D] (swizzled rows)
    __nv_bfloat16* vs = ks + C::kStages * C::kTileElems;                     // [kStages][kBK][D] (swizzled rows)
    float* kbs = reinterpret_cast<float*>(vs + C::kStages * C::kTileElems);  // [kStages][kBK]

    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2;  // MMA group: row within the 8-row half, key within the 8-key n-tile
    const int t4 = lane & 3;  // thread in group
    const float slope = a.slope != nullptr ? a.slope[h] : 0.f;

    // Prologue: K/V of tiles 0 .. kAhead−1 in flight; kb of tiles 0 .. kAhead−2 stored, of tile kAhead−1 loading.
    float rb = 0.f;
    int64_t rf = 0;
#pragma unroll
    for (int s = 0; s < K::kAhead; ++s) {
        if (s < n_tiles) {
            const int64_t t0 = key0 + static_cast<int64_t>(s) * C::kBK;
            load_kv_tile<__nv_bfloat16, C::kBK, D>(ks + s * C::kTileElems, vs + s * C::kTileElems, a, h, t0, key_end,
                                                   SwizzleBf16<D>{});
            if (tid < C::kBK) {
                kb_load(a, h, t0 + tid, key_end, rb, rf);
                if (s < K::kAhead - 1) kbs[s * C::kBK + tid] = kb_value(rb, rf, slope, a.frame);
            }
        }
        cp_async_commit();
    }

    // Q fragments (registers for the whole chunk). Lane (g, t4) holds dims [t4·D/4, (t4+1)·D/4) of rows g, g+8.
    uint32_t qf[C::kMT][C::kKS][4];
    const int row_base = qt * C::kBQ + warp * 16 * C::kMT;
    {
        const __nv_bfloat16* qh = static_cast<const __nv_bfloat16*>(a.q.ptr) + h * a.q.stride_h;
#pragma unroll
        for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int row = row_base + mt * 16 + g + 8 * hf;
                uint32_t w[D / 8];
#pragma unroll
                for (int i = 0; i < D / 8; ++i) w[i] = 0u;
                if (row < a.N) {
                    const uint4* src = reinterpret_cast<const uint4*>(qh + row * a.q.stride_r + t4 * (D / 4));
#pragma unroll
                    for (int i = 0; i < D / 32; ++i) {
                        const uint4 v = src[i];
                        w[4 * i + 0] = v.x;
                        w[4 * i + 1] = v.y;
                        w[4 * i + 2] = v.z;
                        w[4 * i + 3] = v.w;
                    }
                }
#pragma unroll
                for (int s = 0; s < C::kKS; ++s) {
                    qf[mt][s][hf] = w[2 * s];
                    qf[mt][s][2 + hf] = w[2 * s + 1];
                }
            }
        }
    }

    float o[C::kMT][C::kNO][4];
    float m_run[C::kMT][2];
    float l_run[C::kMT][2];
#pragma unroll
    for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
        for (int j = 0; j < C::kNO; ++j) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.f;
        m_run[mt][0] = m_run[mt][1] = neg_inf();
        l_run[mt][0] = l_run[mt][1] = 0.f;
    }

    // Waits for tile it; refills the stage of tile it + kAhead − kStages (nobody reads it any more) with it + kAhead.
    auto begin_tile = [&](int it) {
        cp_async_wait<K::kAhead - 1>();  // this thread's copies of tile it have landed
        __syncthreads();                 // everybody's have, and everybody is done with the stage refilled below
        const int tt = it + K::kAhead - 1;  // its kb values were loaded one step ago
        if (tid < C::kBK && tt < n_tiles) kbs[(tt % C::kStages) * C::kBK + tid] = kb_value(rb, rf, slope, a.frame);
        const int tn = it + K::kAhead;
        if (tn < n_tiles) {
            const int64_t t0 = key0 + static_cast<int64_t>(tn) * C::kBK;
            if (tid < C::kBK) kb_load(a, h, t0 + tid, key_end, rb, rf);
            load_kv_tile<__nv_bfloat16, C::kBK, D>(ks + (tn % C::kStages) * C::kTileElems,
                                                   vs + (tn % C::kStages) * C::kTileElems, a, h, t0, key_end,
                                                   SwizzleBf16<D>{});
        }
        cp_async_commit();
    };

    // S = Q·Kᵀ for keys sub·32 + [0, 32) of tile kt: n-tile u holds keys u·8 + [0, 8).
    auto qk = [&](const __nv_bfloat16* kt, int sub, float (&s)[C::kMT][4][4]) {
        mma_qk32<D>(s, qf, kt, sub * C::kSub, g, t4);
    };
    // Logits in log2 units, the row maxima and the rescale where a running max moves.
    auto logits_max = [&](float (&s)[C::kMT][4][4], const float* kbt, int sub) {
        logits_max32(s, kbt + sub * C::kSub, p.scale_log2, t4, m_run, l_run, o);
    };
    // P = 2^(x − m) as bf16 A fragments, then O += P·V with V keys sub·32 + [0, 32) of tile vt.
    auto softmax_pv = [&](float (&s)[C::kMT][4][4], const __nv_bfloat16* vt, int sub) {
        uint32_t pa[C::kMT][2][4];
        softmax_p32(s, m_run, l_run, pa);
        mma_pv32<D>(o, pa, vt, sub * C::kSub, g, t4);
    };

    if constexpr (!K::kPipe) {
        for (int it = 0; it < n_tiles; ++it) {
            begin_tile(it);
            const int st = it % C::kStages;
#pragma unroll 1
            for (int sub = 0; sub < C::kSubs; ++sub) {
                float s[C::kMT][4][4];
                qk(ks + st * C::kTileElems, sub, s);
                logits_max(s, kbs + st * C::kBK, sub);
                softmax_pv(s, vs + st * C::kTileElems, sub);
            }
        }
    } else {
        // Two S register sets in turns: S of the next 32 keys is computed after the maxima of the current ones (the
        // rescale branch is behind), so that its MMAs can interleave with their exponentials. At a tile's last step
        // the next tile's barrier comes first.
        static_assert(C::kSubs % 2 == 0, "the steps of a tile go in pairs");
        float s0[C::kMT][4][4];
        float s1[C::kMT][4][4];
        begin_tile(0);
        qk(ks, 0, s0);
        for (int it = 0; it < n_tiles; ++it) {
            const int st = it % C::kStages;
            const __nv_bfloat16* kt = ks + st * C::kTileElems;
            const __nv_bfloat16* vt = vs + st * C::kTileElems;
            const float* kbt = kbs + st * C::kBK;
#pragma unroll
            for (int sub = 0; sub < C::kSubs; sub += 2) {
                logits_max(s0, kbt, sub);
                qk(kt, sub + 1, s1);
                softmax_pv(s0, vt, sub);
                logits_max(s1, kbt, sub + 1);
                const __nv_bfloat16* kn = kt;
                if (sub + 2 == C::kSubs) {
                    begin_tile(it + 1);
                    // After the last tile this reads tile it again (landed data), and s0 goes unused.
                    kn = ks + ((it + 1 < n_tiles ? it + 1 : it) % C::kStages) * C::kTileElems;
                }
                qk(kn, (sub + 2) % C::kSubs, s0);
                softmax_pv(s1, vt, sub + 1);
            }
        }
    }
    cp_async_wait<0>();  // nothing may stay in flight when the block exits (the last groups are empty)

    // Row sums: each lane summed its own columns; the four lanes of a group share the rows.
#pragma unroll
    for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            l_run[mt][hf] += __shfl_xor_sync(kFullMask, l_run[mt][hf], 1);
            l_run[mt][hf] += __shfl_xor_sync(kFullMask, l_run[mt][hf], 2);
        }
    }

    // Lane (g, t4) holds dims t4·D/4 + e·D/8 + j (e = 0, 1; j < D/8) in o[mt][j][2·hf + e] of row g + 8·hf.
#pragma unroll
    for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            const int row = row_base + mt * 16 + g + 8 * hf;
            if (row >= a.N) continue;
            if (p.plan.n_chunks == 1) {
                const float inv = l_run[mt][hf] > 0.f ? 1.f / l_run[mt][hf] : 0.f;
                __nv_bfloat16* dst =
                    static_cast<__nv_bfloat16*>(a.out) + h * a.out_stride_h + row * a.out_stride_n + t4 * (D / 4);
#pragma unroll
                for (int e = 0; e < 2; ++e)
#pragma unroll
                    for (int w = 0; w < D / 16; ++w)
                        *reinterpret_cast<uint32_t*>(dst + e * (D / 8) + 2 * w) =
                            pack_bf16x2(o[mt][2 * w][2 * hf + e] * inv, o[mt][2 * w + 1][2 * hf + e] * inv);
            } else {
                const int64_t prow = (static_cast<int64_t>(h) * p.plan.n_chunks + chunk) * a.N + row;
                float* dst = p.ws_o + prow * D + t4 * (D / 4);
#pragma unroll
                for (int e = 0; e < 2; ++e)
#pragma unroll
                    for (int j = 0; j < D / 8; j += 4)
                        *reinterpret_cast<float4*>(dst + e * (D / 8) + j) =
                            make_float4(o[mt][j][2 * hf + e], o[mt][j + 1][2 * hf + e], o[mt][j + 2][2 * hf + e],
                                        o[mt][j + 3][2 * hf + e]);
                if (t4 == 0) p.ws_ml[prow] = make_float2(m_run[mt][hf], l_run[mt][hf]);
            }
        }
    }
}

// ---- bf16, D = 64, Hopper: warpgroup MMA (wgmma, sm_90a) ------------------------------------------------------------
// dense_wgmma_kernel: one block of 4 warpgroups (512 threads) takes one head, 256 queries (64 per warpgroup) and one
// chunk of keys, like dense_mma_kernel, but its MMAs are wgmma: asynchronous, issued once per warpgroup, with K and V
// read by the tensor cores straight from shared memory, so the CUDA cores only run the softmax.
//   - Shared memory holds Q (all 256 rows) and kWgStages tiles of 64 keys' K and V, each tile as 64 rows of 128 bytes
//     with 16-byte chunk c of row r at position c ^ (r & 7): the hardware's 128-byte swizzle, so one descriptor form
//     (wgmma_desc) serves Q and K (K-major: the head dims of a row are contiguous) and V (N-major: B[key][dim]).
//   - Per tile a warpgroup issues S = Q·Kᵀ (4 × m64n64k16, A = Q from shared memory), waits, takes the softmax of its
//     32 S registers per thread as in dense_mma_kernel (log2 units, lazy rescale), packs P to bf16 A fragments — the
//     wgmma accumulator layout is the mma.sync one per 8 columns, so the S registers of keys 16kk..16kk+15 are the A
//     fragment of k-step kk as they stand — and issues O += P·V (4 × m64n64k16, A from registers) without waiting
//     for it: P·V of one tile runs while S of the next is issued and waited for.
//   - No block-wide barrier in the loop: stages hand over through mbarriers. Every thread copies one 16-byte chunk of
//     K and of V per tile (cp.async); at iteration it it issues tile it + kWgLead (into the stage of tile
//     it + kWgLead − kWgStages, once the stage's "empty" barrier says all 16 warps are done with it) and, when its
//     copies of tile it + 1 have landed, fences them for the tensor cores (async proxy) and its warp arrives on that
//     stage's "full" barrier. After its wait for S of tile it (which also retires its P·V of tile it − 1) a warp
//     arrives on the "empty" barrier of tile it − 1. The warpgroups thus drift apart by up to a tile, and one's
//     softmax overlaps another's MMAs: on an H100 at 768k keys × 6 heads this runs in 0.80 ms (median) against
//     0.98–1.01 ms with a __syncthreads per tile (and 1.13 ms for dense_mma_kernel). Slower, and dropped: moving 1
//     in 8, 4 or 2 exponentials to a cubic on the FMA pipe (0.83–0.95 ms: the CUDA cores, not MUFU, are the busier
//     side) and a strict ring of turns on the tensor cores between the warpgroups (0.92 ms)
//     (bench/results/attention-h100.md).
constexpr int kWgD = 64;
constexpr int kWgGroups = 4;                  // warpgroups per block
constexpr int kWgThreads = 128 * kWgGroups;   // 512
constexpr int kWgBQ = 64 * kWgGroups;         // queries per block (= MmaCfg<64, MmaFast>::kBQ: one plan for both)
constexpr int kWgBK = kPlanKeys;              // keys per tile
constexpr int kWgLead = 4;                    // tiles issued ahead of the one being read
constexpr int kWgStages = 8;                  // shared-memory stages
constexpr int kWgTileBytes = kWgBK * kWgD * 2;  // 8 KB per K or V tile (a multiple of the 1024-byte swizzle atom)
constexpr size_t kWgSmemBytes = 1024 + static_cast<size_t>(kWgBQ) * kWgD * 2 +
                                kWgStages * (2 * kWgTileBytes + kWgBK * sizeof(float) + 2 * sizeof(uint64_t));
static_assert(kWgBQ == MmaCfg<64, MmaFast>::kBQ, "the wgmma and mma.sync kernels share one DensePlan");
static_assert(kWgStages >= kWgLead + 2, "a refilled stage was released by every warp two iterations before");
static_assert(kWgThreads == kWgBK * 8, "one 16-byte chunk of K and of V per thread and tile");

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Shared-memory matrix descriptor (PTX ISA, wgmma): start address, leading byte offset (unused by these layouts: 1),
// stride byte offset 1024 (from one 8-row group of 128-byte rows to the next), 128-byte swizzle.
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t smem_addr) {
    return static_cast<uint64_t>((smem_addr & 0x3FFFFu) >> 4) | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) |
           (uint64_t{1} << 62);
}

__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Orders the compiler's accesses to accumulator registers after a wgmma_wait (the asm names them, so reads cannot
// move above it).
__device__ __forceinline__ void wgmma_pin(float (&d)[32]) {
#pragma unroll
    for (int i = 0; i < 32; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

#define DC_WGMMA_D32                                                                                                \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
    "%24, %25, %26, %27, %28, %29, %30, %31}"
#define DC_WGMMA_D32_OPS(d)                                                                                          \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),      \
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),       \
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),      \
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// d (64×64 f32) = A·B (+ d if accumulate): A 64×16 and B 16×64 bf16 in shared memory, both K-major.
__device__ __forceinline__ void wgmma_ss(float (&d)[32], uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " DC_WGMMA_D32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
        : DC_WGMMA_D32_OPS(d)
        : "l"(da), "l"(db), "r"(accumulate));
}
// d (64×64 f32) += A·B: A 64×16 bf16 in registers (mma.sync A-fragment layout per warp), B 16×64 bf16 in shared
// memory, N-major.
__device__ __forceinline__ void wgmma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " DC_WGMMA_D32 ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : DC_WGMMA_D32_OPS(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
#undef DC_WGMMA_D32
#undef DC_WGMMA_D32_OPS

// mbarriers in shared memory (PTX ISA): init with the arrivals a phase needs, arrive (release), wait for the phase of
// the given parity to complete (acquire).
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    do {
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    } while (done == 0);
}
#endif

__global__ void __launch_bounds__(kWgThreads, 1) dense_wgmma_kernel(const DenseKernelParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int D = kWgD;
    const DenseArgs& a = p.a;
    const BlockChunk bc = block_chunk(p.plan, a);
    const int qt = bc.qt, chunk = bc.chunk, h = bc.h;
    const int64_t key0 = bc.key0, key_end = bc.key_end;
    const int n_tiles = static_cast<int>(ceil_div(key_end - key0, kWgBK));

    unsigned char* raw = dynamic_smem<unsigned char>();
    const uint32_t raw_s = static_cast<uint32_t>(__cvta_generic_to_shared(raw));
    unsigned char* base = raw + ((1024u - (raw_s & 1023u)) & 1023u);
    __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(base);
    __nv_bfloat16* ks = qs + kWgBQ * D;
    __nv_bfloat16* vs = ks + kWgStages * kWgBK * D;
    float* kbs = reinterpret_cast<float*>(vs + kWgStages * kWgBK * D);
    uint64_t* bars = reinterpret_cast<uint64_t*>(kbs + kWgStages * kWgBK);  // full[stages], empty[stages]
    const uint32_t qs_s = static_cast<uint32_t>(__cvta_generic_to_shared(qs));
    const uint32_t ks_s = static_cast<uint32_t>(__cvta_generic_to_shared(ks));
    const uint32_t vs_s = static_cast<uint32_t>(__cvta_generic_to_shared(vs));
    const uint32_t full_s = static_cast<uint32_t>(__cvta_generic_to_shared(bars));
    const uint32_t empty_s = full_s + kWgStages * sizeof(uint64_t);
    constexpr uint32_t kWarps = kWgThreads / 32;

    const int tid = static_cast<int>(threadIdx.x);
    const int wg = tid >> 7;
    const int warp = (tid >> 5) & 3;
    const int lane = tid & 31;
    const int g = lane >> 2;
    const int t4 = lane & 3;
    const float slope = a.slope != nullptr ? a.slope[h] : 0.f;
    if (tid == 0) {
        for (int s = 0; s < kWgStages; ++s) {
            mbar_init(full_s + 8 * s, kWarps);
            mbar_init(empty_s + 8 * s, kWarps);
        }
    }

    const int lr = tid >> 3;
    const int lc = tid & 7;
    const int lofs = lr * D + ((lc ^ (lr & 7)) * 8);
    auto load_tile = [&](int st, int64_t t0) {
        const int64_t t = t0 + lr;
        __nv_bfloat16* kd = ks + st * kWgBK * D + lofs;
        __nv_bfloat16* vd = vs + st * kWgBK * D + lofs;
        if (t >= key_end) {
            *reinterpret_cast<uint4*>(kd) = make_uint4(0u, 0u, 0u, 0u);
            *reinterpret_cast<uint4*>(vd) = make_uint4(0u, 0u, 0u, 0u);
        } else if (t < a.T) {
            const __nv_bfloat16* kc = static_cast<const __nv_bfloat16*>(a.k_cache.ptr) + h * a.k_cache.stride_h;
            const __nv_bfloat16* vc = static_cast<const __nv_bfloat16*>(a.v_cache.ptr) + h * a.v_cache.stride_h;
            cp_async_16(kd, kc + t * a.k_cache.stride_r + lc * 8);
            cp_async_16(vd, vc + t * a.v_cache.stride_r + lc * 8);
        } else {
            const int64_t u = t - a.T;
            const __nv_bfloat16* ku = static_cast<const __nv_bfloat16*>(a.k_cur.ptr) + h * a.k_cur.stride_h;
            const __nv_bfloat16* vu = static_cast<const __nv_bfloat16*>(a.v_cur.ptr) + h * a.v_cur.stride_h;
            cp_async_16(kd, ku + u * a.k_cur.stride_r + lc * 8);
            cp_async_16(vd, vu + u * a.v_cur.stride_r + lc * 8);
        }
    };
    // Once this thread's copies of tile x have landed (its cp.async wait): the warp's writes are fenced for the
    // tensor cores and lane 0 arrives on the stage's full barrier.
    auto signal_full = [&](int x) {
        fence_proxy_async();
        __syncwarp();
        if (lane == 0 && x < n_tiles) mbar_arrive(full_s + 8 * (x % kWgStages));
    };

    // Prologue: Q with tile 0, tiles 1 .. kWgLead − 1; kb of those stored but the last (its inputs stay in rb, rf).
    {
        const __nv_bfloat16* qh = static_cast<const __nv_bfloat16*>(a.q.ptr) + h * a.q.stride_h;
#pragma unroll
        for (int i = 0; i < kWgBQ * 8 / kWgThreads; ++i) {
            const int idx = tid + i * kWgThreads;
            const int r = idx >> 3;
            const int c = idx & 7;
            const int row = qt * kWgBQ + r;
            __nv_bfloat16* dst = qs + r * D + ((c ^ (r & 7)) * 8);
            if (row < a.N)
                cp_async_16(dst, qh + row * a.q.stride_r + c * 8);
            else
                *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
        }
    }
    float rb = 0.f;
    int64_t rf = 0;
#pragma unroll
    for (int s = 0; s < kWgLead; ++s) {
        if (s < n_tiles) {
            const int64_t t0 = key0 + static_cast<int64_t>(s) * kWgBK;
            load_tile(s, t0);
            if (tid < kWgBK) {
                kb_load(a, h, t0 + tid, key_end, rb, rf);
                if (s < kWgLead - 1) kbs[s * kWgBK + tid] = kb_value(rb, rf, slope, a.frame);
            }
        }
        cp_async_commit();
    }
    cp_async_wait<kWgLead - 1>();  // Q and tile 0
    __syncthreads();               // the barriers' initialisation and every warp's Q rows
    signal_full(0);

    float o[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) o[i] = 0.f;
    float m_run[2] = {neg_inf(), neg_inf()};
    float l_run[2] = {0.f, 0.f};
    const uint64_t q_desc = wgmma_desc(qs_s + wg * (64 * D * 2));

    // Tile it + kWgLead into the stage of tile it + kWgLead − kWgStages (released by every warp), its kb inputs
    // loaded one iteration ago; then, once this thread's copies of tile it + 1 have landed, tile it + 1 is signalled.
    auto load_ahead = [&](int it) {
        const int tn = it + kWgLead;
        if (tn < n_tiles) {
            const int sn = tn % kWgStages;
            if (tn >= kWgStages) mbar_wait(empty_s + 8 * sn, ((tn / kWgStages) - 1) & 1);
            const int64_t t0 = key0 + static_cast<int64_t>(tn) * kWgBK;
            load_tile(sn, t0);
            if (tid < kWgBK) {
                kbs[((tn - 1) % kWgStages) * kWgBK + tid] = kb_value(rb, rf, slope, a.frame);
                kb_load(a, h, t0 + tid, key_end, rb, rf);
            }
        } else if (tn == n_tiles && tid < kWgBK) {
            kbs[((tn - 1) % kWgStages) * kWgBK + tid] = kb_value(rb, rf, slope, a.frame);
        }
        cp_async_commit();
        cp_async_wait<kWgLead - 1>();
        signal_full(it + 1);
    };
    // Softmax of one tile's S in place: logits in log2 units (s[4j + e]: key 8j + 2·t4 + (e & 1), row g for e < 2,
    // else g + 8), row maxima, then p = 2^(x − m). Returns whether a running max moved; alpha[hf] then scales the
    // row's O (l_run is scaled here).
    auto softmax = [&](float (&s)[32], const float* kbt, float (&alpha)[2]) {
        float mx[2] = {neg_inf(), neg_inf()};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float2 kb2 = *reinterpret_cast<const float2*>(kbt + 8 * j + 2 * t4);
            s[4 * j + 0] = fmaf(s[4 * j + 0], p.scale_log2, kb2.x);
            s[4 * j + 1] = fmaf(s[4 * j + 1], p.scale_log2, kb2.y);
            s[4 * j + 2] = fmaf(s[4 * j + 2], p.scale_log2, kb2.x);
            s[4 * j + 3] = fmaf(s[4 * j + 3], p.scale_log2, kb2.y);
            mx[0] = fmaxf(mx[0], fmaxf(s[4 * j + 0], s[4 * j + 1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[4 * j + 2], s[4 * j + 3]));
        }
        bool raise = false;
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(kFullMask, mx[hf], 1));
            mx[hf] = fmaxf(mx[hf], __shfl_xor_sync(kFullMask, mx[hf], 2));
            raise = raise || mx[hf] > m_run[hf] + kRescaleSlack;
        }
        alpha[0] = alpha[1] = 1.f;
        const bool any = __any_sync(kFullMask, raise);
        if (any) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                if (mx[hf] > m_run[hf] + kRescaleSlack) {
                    alpha[hf] = exp2_fast(m_run[hf] - mx[hf]);  // 0 when m_run = −inf
                    m_run[hf] = mx[hf];
                    l_run[hf] *= alpha[hf];
                }
            }
        }
        const float mu0 = m_run[0] == neg_inf() ? 0.f : m_run[0];
        const float mu1 = m_run[1] == neg_inf() ? 0.f : m_run[1];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) s[4 * j + e] = exp2_fast(s[4 * j + e] - (e < 2 ? mu0 : mu1));
            l_run[0] += s[4 * j + 0] + s[4 * j + 1];
            l_run[1] += s[4 * j + 2] + s[4 * j + 3];
        }
        return any;
    };
    auto rescale_o = [&](const float (&alpha)[2]) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            o[4 * j + 0] *= alpha[0];
            o[4 * j + 1] *= alpha[0];
            o[4 * j + 2] *= alpha[1];
            o[4 * j + 3] *= alpha[1];
        }
    };
    // P as bf16 A fragments: k-step kk (keys 16kk .. 16kk + 15) is n-tiles 2kk and 2kk + 1 of S.
    auto pack_p = [&](const float (&s)[32], uint32_t (&pa)[4][4]) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
            pa[kk][0] = pack_bf16x2(s[8 * kk + 0], s[8 * kk + 1]);
            pa[kk][1] = pack_bf16x2(s[8 * kk + 2], s[8 * kk + 3]);
            pa[kk][2] = pack_bf16x2(s[8 * kk + 4], s[8 * kk + 5]);
            pa[kk][3] = pack_bf16x2(s[8 * kk + 6], s[8 * kk + 7]);
        }
    };

    // A do-while (a block has ≥ 1 tile): with a zero-trip path the compiler merges a second definition of o into
    // the loop's exit, and ptxas then serialises every wgmma (its advisory C7515).
    int it = 0;
    do {
        const int st = it % kWgStages;
        mbar_wait(full_s + 8 * st, (it / kWgStages) & 1);
        const uint64_t k_desc = wgmma_desc(ks_s + st * kWgTileBytes);
        const uint64_t v_desc = wgmma_desc(vs_s + st * kWgTileBytes);
        float s[32];
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < D / 16; ++k) wgmma_ss(s, q_desc + 2 * k, k_desc + 2 * k, k);
        wgmma_commit();
        load_ahead(it);   // while S runs
        wgmma_wait<0>();  // S of this tile, and P·V of the previous one
        wgmma_pin(s);
        wgmma_pin(o);
        if (it > 0 && lane == 0) mbar_arrive(empty_s + 8 * ((it - 1) % kWgStages));
        float alpha[2];
        if (softmax(s, kbs + st * kWgBK, alpha)) rescale_o(alpha);
        uint32_t pa[4][4];
        pack_p(s, pa);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_rs(o, pa[kk], v_desc + 128 * kk);
        wgmma_commit();
    } while (++it < n_tiles);
    wgmma_wait<0>();
    wgmma_pin(o);
    cp_async_wait<0>();

#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
        l_run[hf] += __shfl_xor_sync(kFullMask, l_run[hf], 1);
        l_run[hf] += __shfl_xor_sync(kFullMask, l_run[hf], 2);
    }
    const int row_base = qt * kWgBQ + wg * 64 + warp * 16 + g;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
        const int row = row_base + 8 * hf;
        if (row >= a.N) continue;
        if (p.plan.n_chunks == 1) {
            const float inv = l_run[hf] > 0.f ? 1.f / l_run[hf] : 0.f;
            __nv_bfloat16* dst =
                static_cast<__nv_bfloat16*>(a.out) + h * a.out_stride_h + row * a.out_stride_n + 2 * t4;
#pragma unroll
            for (int j = 0; j < 8; ++j)
                *reinterpret_cast<uint32_t*>(dst + 8 * j) =
                    pack_bf16x2(o[4 * j + 2 * hf] * inv, o[4 * j + 2 * hf + 1] * inv);
        } else {
            const int64_t prow = (static_cast<int64_t>(h) * p.plan.n_chunks + chunk) * a.N + row;
            float* dst = p.ws_o + prow * D + 2 * t4;
#pragma unroll
            for (int j = 0; j < 8; ++j)
                *reinterpret_cast<float2*>(dst + 8 * j) = make_float2(o[4 * j + 2 * hf], o[4 * j + 2 * hf + 1]);
            if (t4 == 0) p.ws_ml[prow] = make_float2(m_run[hf], l_run[hf]);
        }
    }
#else
    (void)p;
    __trap();
#endif
}

// ---- float32: CUDA cores --------------------------------------------------------------------------------------------
template <int D>
__global__ void __launch_bounds__(kThreads) dense_f32_kernel(const DenseKernelParams p) {
    using C = F32Cfg<D>;
    const DenseArgs& a = p.a;
    int qt, chunk, h;
    decode_block(p.plan, qt, chunk, h);
    const int tile0 = chunk * p.plan.chunk_tiles;
    const int n_tiles = min(p.plan.chunk_tiles, p.plan.tiles_total - tile0);

    float* ks = dynamic_smem<float>();          // [kStages][kBK][D]
    float* vs = ks + kStages * C::kTileElems;   // [kStages][kBK][D]
    float* kbs = vs + kStages * C::kTileElems;  // [kStages][kBK]

    const int tid = static_cast<int>(threadIdx.x);
    const int sub = tid % C::kG;  // this thread holds the 4-float chunks sub + kG·i, i < 8
    const int row = qt * C::kBQ + tid / C::kG;
    const bool valid = row < a.N;
    const float slope = a.slope != nullptr ? a.slope[h] : 0.f;

    float rb = 0.f;
    int64_t rf = 0;
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < n_tiles) {
            const int64_t t0 = static_cast<int64_t>(tile0 + s) * C::kBK;
            load_kv_tile<float, C::kBK, D>(ks + s * C::kTileElems, vs + s * C::kTileElems, a, h, t0, a.T + a.N,
                                           NoSwizzle{});
            if (tid < C::kBK) {
                kb_load(a, h, t0 + tid, a.T + a.N, rb, rf);
                if (s < kStages - 2) kbs[s * C::kBK + tid] = kb_value(rb, rf, slope, a.frame);
            }
        }
        cp_async_commit();
    }

    float q[32];
    float acc[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) q[i] = 0.f;
    if (valid) {
        const float* qr = static_cast<const float*>(a.q.ptr) + h * a.q.stride_h + row * a.q.stride_r;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float4 v = *reinterpret_cast<const float4*>(qr + 4 * (sub + C::kG * i));
            q[4 * i + 0] = v.x;
            q[4 * i + 1] = v.y;
            q[4 * i + 2] = v.z;
            q[4 * i + 3] = v.w;
        }
    }
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[i] = 0.f;
    float m_run = neg_inf();
    float l_run = 0.f;

    for (int it = 0; it < n_tiles; ++it) {
        cp_async_wait<kStages - 2>();
        __syncthreads();
        {
            const int tt = it + kStages - 2;
            if (tid < C::kBK && tt < n_tiles) kbs[(tt % kStages) * C::kBK + tid] = kb_value(rb, rf, slope, a.frame);
            const int tn = it + kStages - 1;
            if (tn < n_tiles) {
                const int64_t t0 = static_cast<int64_t>(tile0 + tn) * C::kBK;
                if (tid < C::kBK) kb_load(a, h, t0 + tid, a.T + a.N, rb, rf);
                load_kv_tile<float, C::kBK, D>(ks + (tn % kStages) * C::kTileElems, vs + (tn % kStages) * C::kTileElems,
                                               a, h, t0, a.T + a.N, NoSwizzle{});
            }
            cp_async_commit();
        }
        const int st = it % kStages;
        const float* kt = ks + st * C::kTileElems;
        const float* vt = vs + st * C::kTileElems;
        const float* kbt = kbs + st * C::kBK;

        float x[C::kBK];
        float mx = neg_inf();
#pragma unroll
        for (int j = 0; j < C::kBK; ++j) {
            float d = 0.f;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const float4 kv = *reinterpret_cast<const float4*>(kt + j * D + 4 * (sub + C::kG * i));
                d = fmaf(q[4 * i + 0], kv.x, d);
                d = fmaf(q[4 * i + 1], kv.y, d);
                d = fmaf(q[4 * i + 2], kv.z, d);
                d = fmaf(q[4 * i + 3], kv.w, d);
            }
#pragma unroll
            for (int off = 1; off < C::kG; off <<= 1) d += __shfl_xor_sync(kFullMask, d, off);
            x[j] = fmaf(d, p.scale_log2, kbt[j]);
            mx = fmaxf(mx, x[j]);
        }
        if (mx > m_run) {  // the kG lanes of a query agree: they hold the same logits
            const float alpha = exp2_fast(m_run - mx);
            m_run = mx;
            l_run *= alpha;
#pragma unroll
            for (int i = 0; i < 32; ++i) acc[i] *= alpha;
        }
        const float mu = m_run == neg_inf() ? 0.f : m_run;
#pragma unroll
        for (int j = 0; j < C::kBK; ++j) {
            const float pj = exp2_fast(x[j] - mu);
            l_run += pj;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const float4 vv = *reinterpret_cast<const float4*>(vt + j * D + 4 * (sub + C::kG * i));
                acc[4 * i + 0] = fmaf(pj, vv.x, acc[4 * i + 0]);
                acc[4 * i + 1] = fmaf(pj, vv.y, acc[4 * i + 1]);
                acc[4 * i + 2] = fmaf(pj, vv.z, acc[4 * i + 2]);
                acc[4 * i + 3] = fmaf(pj, vv.w, acc[4 * i + 3]);
            }
        }
    }
    cp_async_wait<0>();
    if (!valid) return;

    if (p.plan.n_chunks == 1) {
        const float inv = l_run > 0.f ? 1.f / l_run : 0.f;
        float* dst = static_cast<float*>(a.out) + h * a.out_stride_h + row * a.out_stride_n;
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
            for (int c = 0; c < 4; ++c) dst[4 * (sub + C::kG * i) + c] = acc[4 * i + c] * inv;
    } else {
        const int64_t prow = (static_cast<int64_t>(h) * p.plan.n_chunks + chunk) * a.N + row;
        float* dst = p.ws_o + prow * D;
#pragma unroll
        for (int i = 0; i < 8; ++i)
            *reinterpret_cast<float4*>(dst + 4 * (sub + C::kG * i)) =
                make_float4(acc[4 * i + 0], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
        if (sub == 0) p.ws_ml[prow] = make_float2(m_run, l_run);
    }
}

// ---- combine the chunks of every (head, query)
// ------------------------------------------------------------------------
template <typename OutT, int D>
__global__ void __launch_bounds__(kThreads)
    dense_reduce_kernel(const float* __restrict__ ws_o, const float2* __restrict__ ws_ml, int H, int N, int n_chunks,
                        OutT* out, int64_t out_stride_h, int64_t out_stride_n) {
    constexpr int kDpl = D / 32;  // dims per lane
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int64_t row_id = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
    if (row_id >= static_cast<int64_t>(H) * N) return;  // warp-uniform
    const int h = static_cast<int>(row_id / N);
    const int n = static_cast<int>(row_id % N);
    const int64_t base = static_cast<int64_t>(h) * n_chunks * N + n;  // partial row of chunk c: base + c·N

    float m_all = neg_inf();
    for (int c = lane; c < n_chunks; c += 32) m_all = fmaxf(m_all, ws_ml[base + static_cast<int64_t>(c) * N].x);
    m_all = warp_max(m_all);

    float acc[kDpl];
#pragma unroll
    for (int i = 0; i < kDpl; ++i) acc[i] = 0.f;
    float l_all = 0.f;
    for (int c = 0; c < n_chunks; ++c) {
        const int64_t prow = base + static_cast<int64_t>(c) * N;
        const float2 ml = ws_ml[prow];
        const float w = ml.x == neg_inf() ? 0.f : exp2f(ml.x - m_all);
        l_all = fmaf(w, ml.y, l_all);
        const float* src = ws_o + prow * D + lane * kDpl;
#pragma unroll
        for (int i = 0; i < kDpl; ++i) acc[i] = fmaf(w, src[i], acc[i]);
    }
    const float inv = l_all > 0.f ? 1.f / l_all : 0.f;
    OutT* dst = out + h * out_stride_h + n * out_stride_n + lane * kDpl;
#pragma unroll
    for (int i = 0; i < kDpl; ++i) dst[i] = from_float<OutT>(acc[i] * inv);
}

// ---- host side
// --------------------------------------------------------------------------------------------------------
bool rows_aligned(const Rows& r, int elem_bytes) {
    return r.ptr != nullptr && reinterpret_cast<uintptr_t>(r.ptr) % 16 == 0 && (r.stride_h * elem_bytes) % 16 == 0 &&
           (r.stride_r * elem_bytes) % 16 == 0;
}

int block_queries(DType dtype, int D) {
    if (dtype == DType::bf16)
        return D == 32 ? MmaCfg<32, MmaFast>::kBQ : D == 64 ? MmaCfg<64, MmaFast>::kBQ : MmaCfg<128, MmaBase>::kBQ;
    return D == 32 ? F32Cfg<32>::kBQ : D == 64 ? F32Cfg<64>::kBQ : F32Cfg<128>::kBQ;
}
int block_keys(DType dtype) {
    return dtype == DType::bf16 ? kPlanKeys : F32Cfg<64>::kBK;
}

template <typename Kernel>
cudaError_t launch_attention(Kernel kernel, size_t smem, int grid, const DenseKernelParams& kp, cudaStream_t stream) {
    if (smem > 48 * 1024) {
        const cudaError_t e =
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
        if (e != cudaSuccess) return e;
    }
    DC_LAUNCH(kernel, grid, kThreads, smem, stream, kp);
    return cudaGetLastError();
}

template <int D, typename K>
cudaError_t launch_mma(int grid, const DenseKernelParams& kp, cudaStream_t stream) {
    return launch_attention(dense_mma_kernel<D, K>, MmaCfg<D, K>::kSmemBytes, grid, kp, stream);
}

cudaError_t launch_wgmma(int grid, const DenseKernelParams& kp, cudaStream_t stream) {
    const cudaError_t e = cudaFuncSetAttribute(dense_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(kWgSmemBytes));
    if (e != cudaSuccess) return e;
    DC_LAUNCH(dense_wgmma_kernel, grid, kWgThreads, kWgSmemBytes, stream, kp);
    return cudaGetLastError();
}

template <typename OutT>
cudaError_t launch_reduce(const DenseKernelParams& kp, cudaStream_t stream) {
    const DenseArgs& a = kp.a;
    const int64_t rows = static_cast<int64_t>(a.H) * a.N;
    const int grid = static_cast<int>(ceil_div(rows, kThreads / 32));
    void (*kernel)(const float*, const float2*, int, int, int, OutT*, int64_t, int64_t) =
        a.D == 32   ? dense_reduce_kernel<OutT, 32>
        : a.D == 64 ? dense_reduce_kernel<OutT, 64>
                    : dense_reduce_kernel<OutT, 128>;
    DC_LAUNCH(kernel, grid, kThreads, 0, stream, kp.ws_o, kp.ws_ml, a.H, a.N, kp.plan.n_chunks,
              static_cast<OutT*>(a.out), a.out_stride_h, a.out_stride_n);
    return cudaGetLastError();
}

}  // namespace

bool dense_wgmma_available(const DenseArgs& a) {
#if defined(DC_WGMMA)
    if (a.dtype != DType::bf16 || a.D != kWgD) return false;
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return major == 9 && minor == 0;  // sm_90a code runs on compute capability 9.0 only
#else
    (void)a;
    return false;
#endif
}

cudaError_t dense_attention_plan(const DenseArgs& a, DensePlan* plan) {
    if (plan == nullptr || a.H < 0 || a.N < 0 || a.T < 0 || (a.D != 32 && a.D != 64 && a.D != 128))
        return cudaErrorInvalidValue;
    *plan = DensePlan{};
    if (a.H == 0 || a.N == 0) return cudaSuccess;
    int device = 0;
    int sms = 0;
    cudaError_t e = cudaGetDevice(&device);
    if (e != cudaSuccess) return e;
    e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (e != cudaSuccess) return e;

    const int bq = block_queries(a.dtype, a.D);
    const int bk = block_keys(a.dtype);
    const int64_t tiles = ceil_div(a.T + a.N, bk);
    if (tiles > (int64_t{1} << 30)) return cudaErrorInvalidValue;
    plan->n_qtiles = static_cast<int>(ceil_div(a.N, bq));
    plan->tiles_total = static_cast<int>(tiles);
    // One wave: both kernels run one 256-thread block per SM (up to 255 and 134 registers a thread). A chunk keeps at
    // least 128 keys so that short caches do not drown in partials.
    const int min_tiles = 128 / bk;
    const int64_t per_head = static_cast<int64_t>(a.H) * plan->n_qtiles;
    int64_t chunks = ceil_div(static_cast<int64_t>(sms), per_head);
    chunks = chunks < 1 ? 1 : chunks;
    int64_t chunk_tiles = ceil_div(tiles, chunks);
    chunk_tiles = chunk_tiles < min_tiles ? min_tiles : chunk_tiles;
    plan->chunk_tiles = static_cast<int>(chunk_tiles);
    plan->n_chunks = static_cast<int>(ceil_div(tiles, chunk_tiles));
    if (per_head * plan->n_chunks > 0x7fffffff) return cudaErrorInvalidValue;
    if (plan->n_chunks > 1) {
        const size_t rows = static_cast<size_t>(a.H) * plan->n_chunks * a.N;
        plan->workspace_bytes = rows * a.D * sizeof(float) + rows * sizeof(float2);
    }
    return cudaSuccess;
}

cudaError_t dense_attention(const DenseArgs& a, const DensePlan& plan, void* workspace, cudaStream_t stream) {
    if (a.H == 0 || a.N == 0) return cudaSuccess;
    const int esz = a.dtype == DType::bf16 ? 2 : 4;
    if ((a.D != 32 && a.D != 64 && a.D != 128) || a.T < 0 || plan.n_chunks < 1 || plan.chunk_tiles < 1 ||
        plan.n_qtiles != static_cast<int>(ceil_div(a.N, block_queries(a.dtype, a.D))) ||
        plan.tiles_total != static_cast<int>(ceil_div(a.T + a.N, block_keys(a.dtype))))
        return cudaErrorInvalidValue;
    if (!rows_aligned(a.q, esz) || !rows_aligned(a.k_cur, esz) || !rows_aligned(a.v_cur, esz))
        return cudaErrorInvalidValue;
    if (a.T > 0 && (!rows_aligned(a.k_cache, esz) || !rows_aligned(a.v_cache, esz))) return cudaErrorInvalidValue;
    if (a.out == nullptr || reinterpret_cast<uintptr_t>(a.out) % 4 != 0 || a.out_stride_h % 2 != 0 ||
        a.out_stride_n % 2 != 0)
        return cudaErrorInvalidValue;

    DenseKernelParams kp{};
    kp.a = a;
    kp.plan = plan;
    kp.scale_log2 = kLog2e / sqrtf(static_cast<float>(a.D));
    if (plan.n_chunks > 1) {
        const size_t rows = static_cast<size_t>(a.H) * plan.n_chunks * a.N;
        if (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % 16 != 0 ||
            plan.workspace_bytes < rows * a.D * sizeof(float) + rows * sizeof(float2))
            return cudaErrorInvalidValue;
        kp.ws_o = static_cast<float*>(workspace);
        kp.ws_ml = reinterpret_cast<float2*>(kp.ws_o + rows * a.D);
    }
    const int grid = a.H * plan.n_chunks * plan.n_qtiles;
    cudaError_t e = cudaSuccess;
    if (a.dtype == DType::bf16 && a.kernel != DenseKernel::mma_sync && dense_wgmma_available(a)) {
        e = launch_wgmma(grid, kp, stream);
    } else if (a.dtype == DType::bf16 && a.kernel == DenseKernel::wgmma) {
        return cudaErrorNotSupported;
    } else if (a.dtype == DType::bf16) {
        switch (a.D) {
            case 32: e = launch_mma<32, MmaFast>(grid, kp, stream); break;
            case 64: e = launch_mma<64, MmaFast>(grid, kp, stream); break;
            default: e = launch_mma<128, MmaBase>(grid, kp, stream); break;
        }
    } else {
        switch (a.D) {
            case 32: e = launch_attention(dense_f32_kernel<32>, F32Cfg<32>::kSmemBytes, grid, kp, stream); break;
            case 64: e = launch_attention(dense_f32_kernel<64>, F32Cfg<64>::kSmemBytes, grid, kp, stream); break;
            default: e = launch_attention(dense_f32_kernel<128>, F32Cfg<128>::kSmemBytes, grid, kp, stream); break;
        }
    }
    if (e != cudaSuccess || plan.n_chunks == 1) return e;
    return a.dtype == DType::bf16 ? launch_reduce<__nv_bfloat16>(kp, stream) : launch_reduce<float>(kp, stream);
}

}  // namespace dc::cuda::kernels
