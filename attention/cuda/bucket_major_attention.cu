// attention/cuda/bucket_major_attention.cu — AnnSA, bucket-major: every probed bucket's keys are read once per
// (head, bucket, chunk of the bucket) and scored against all queries that probe the bucket on tensor cores.
//
// Per call (all on the stream, no host synchronisation; the workspace layout is BmLayout below):
//   1. bm_count_kernel   one thread per (head, query): distinct probes (a repeated probe counts once), the query's
//                        rank in each probed bucket's query list (atomic counter per bucket), n_scored, and the total
//                        work W = Σ (scored + N) over queries.
//   2. bm_plan_kernel    one block: the chunk length kc (a multiple of kUnit keys, chosen from W so that the partials
//                        fit the workspace), then per virtual bucket — the 2^bits buckets of each head plus one for
//                        the current frame (N keys, probed by all N queries) — chunks = ceil(size / kc), query groups
//                        of kQB, and exclusive scans of list entries, partial slots and work items.
//   3. bm_fill_kernel    the per-bucket query lists (query of rank r in bucket b at list[qbase[b] + r]).
//   4. bm_attend_kernel  persistent blocks take work items (bucket, chunk, query group) from an atomic counter. The
//                        block's 4 warps share the group's queries (Q fragments in registers) and split the chunk's
//                        keys 32 at a time (warp w takes steps w, w + 4, …); each warp streams its keys, gathered
//                        through the bucket permutation, into its own 3-stage cp.async pipeline in shared memory and
//                        runs the dense kernel's mma.sync m16n8k16 online softmax. The warps' (m, l, o) are merged in
//                        shared memory and written as one partial per (query, bucket, chunk).
//   5. bm_combine_kernel one warp per (head, query): merges its partials (probes in order, then the current frame)
//                        and writes the normalised output; bm_combine_wide_kernel, the same with the lanes
//                        splitting the partials (P < 32: every default).
// Results depend only on the inputs (a query's row in an MMA tile does not change its values; partials merge in a
// fixed order), not on the order in which the atomics handed out ranks or items.
//
// float32 runs the per-query kernel of bucketed_attention.cu (exact fp32 on CUDA cores).
#include "device_utils.cuh"
#include "kernels.cuh"
#include "mma_tiles.cuh"

namespace dc::cuda::kernels {
namespace {

using namespace dc::cuda::dev;

constexpr int kWarps = 4;                // warps per attention block (they split a chunk's keys)
constexpr int kThreads = kWarps * 32;    // threads per attention block
constexpr int kStages = 3;               // per-warp cp.async pipeline depth
constexpr int kSK = 32;                  // keys per warp step
constexpr int kUnit = kWarps * kSK;      // chunk lengths are multiples of this
constexpr int kSlotsPerEntry = 8;        // partial rows of workspace per (query, distinct probe) entry
constexpr int kPlanThreads = 1024;
constexpr int kRowThreads = 256;

template <int D>
struct BmCfg {
    static constexpr int kMT = D <= 64 ? 2 : 1;  // 16-row query tiles per warp (registers bound D = 128)
    static constexpr int kQB = 16 * kMT;         // queries per work item
    static constexpr int kKS = D / 16;           // k-steps of Q·Kᵀ
    static constexpr int kNO = D / 8;            // 8-wide output tiles of P·V
    static constexpr int kStepElems = kSK * D;   // bf16 elements of one K (or V) step
    static constexpr size_t kPipeKV = size_t(kWarps) * kStages * 2 * kStepElems * sizeof(__nv_bfloat16);
    static constexpr size_t kPipeBytes = kPipeKV + size_t(kWarps) * kStages * kSK * sizeof(float);
    static constexpr size_t kMergeBytes = size_t(kWarps) * kQB * (D + 2) * sizeof(float);
    static constexpr size_t kSmemBytes = kPipeBytes > kMergeBytes ? kPipeBytes : kMergeBytes;
    static constexpr int kMinBlocks = D <= 64 ? 2 : 1;
};

int queries_per_item(int D) {
    return D == 32 ? BmCfg<32>::kQB : D == 64 ? BmCfg<64>::kQB : BmCfg<128>::kQB;
}

struct BmParams {
    BucketedArgs ba;
    int nb = 0;                         // 2^bits
    int M = 0;                          // virtual buckets: H · (nb + 1); bucket nb of a head is the current frame
    int qb = 0;                         // queries per work item
    int32_t* cnt = nullptr;             // [M] queries per virtual bucket
    unsigned long long* work = nullptr; // Σ over queries of keys scored (current frame included)
    int32_t* item_counter = nullptr;    // next work item
    int32_t* kc = nullptr;              // chunk length (keys)
    int32_t* rank = nullptr;            // [H, N, P] rank of the query in the probe's bucket list, −1 = repeated
    int32_t* qbase = nullptr;           // [M + 1] first list entry of each bucket
    int32_t* pbase = nullptr;           // [M + 1] first partial slot of each bucket
    int32_t* ibase = nullptr;           // [M + 1] first work item of each bucket
    int32_t* nchunk = nullptr;          // [M] chunks of each bucket
    int32_t* list = nullptr;            // [E] query of each entry
    float2* ws_ml = nullptr;            // [rows] (max in log2 units, sum of 2^(x − max))
    float* ws_o = nullptr;              // [rows, D] unnormalised outputs
    unsigned long long rows_free = 0;   // partial rows beyond one per entry: (kSlotsPerEntry − 1) · e_max
    float scale_log2 = 0.f;             // log2(e) / sqrt(D)
};

// ---- 1. probes → ranks, n_scored, work ----------------------------------------------------------------------------
__global__ void __launch_bounds__(kRowThreads) bm_count_kernel(const BmParams p) {
    const DenseArgs& a = p.ba.dense;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowThreads + threadIdx.x;  // h·N + n
    unsigned long long w = 0;
    if (row < static_cast<int64_t>(a.H) * a.N) {
        const int h = static_cast<int>(row / a.N);
        const int P = p.ba.P;
        const int32_t* pr = p.ba.probes + row * P;
        int32_t* rk = p.rank + row * P;
        const int32_t* off = a.T > 0 ? p.ba.offsets + static_cast<int64_t>(h) * (p.nb + 1) : nullptr;
        int scored = 0;
        long long work = 0;
        for (int pi = 0; pi < P; ++pi) {
            const int c = pr[pi] & (p.nb - 1);
            bool seen = false;
            for (int pj = 0; pj < pi; ++pj) seen = seen || (pr[pj] & (p.nb - 1)) == c;
            if (seen) {
                rk[pi] = -1;
                continue;
            }
            if (off != nullptr) {
                const int sz = off[c + 1] - off[c];
                scored += sz;
                work += sz > 0 ? sz : 0;
            }
            rk[pi] = atomicAdd(&p.cnt[h * (p.nb + 1) + c], 1);
        }
        p.ba.n_scored[row] = scored;
        w = static_cast<unsigned long long>(work) + static_cast<unsigned long long>(a.N);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(kFullMask, w, o);
    if ((threadIdx.x & 31) == 0 && w != 0) atomicAdd(p.work, w);
}

// ---- 2. plan: chunk length, per-bucket scans ---------------------------------------------------------------------
// Exclusive scan of one int per thread over the block (kPlanThreads = 32 warps); total in `total`.
__device__ int block_exclusive_scan(int v, int* tmp, int& total) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int warp = static_cast<int>(threadIdx.x) >> 5;
    int x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(kFullMask, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) tmp[warp] = x;
    __syncthreads();
    if (warp == 0) {
        int s = tmp[lane];
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(kFullMask, s, o);
            if (lane >= o) s += y;
        }
        tmp[lane] = s;
    }
    __syncthreads();
    const int r = (warp > 0 ? tmp[warp - 1] : 0) + x - v;
    total = tmp[31];
    __syncthreads();  // tmp is reused by the next scan
    return r;
}

struct BucketInfo {
    int nq;       // queries probing it
    int size;     // keys
    int nch;      // chunks
    int entries;  // list entries (0 for the current frame: its list is the identity)
};

__device__ __forceinline__ BucketInfo bucket_info(const BmParams& p, int hb, int kc) {
    const DenseArgs& a = p.ba.dense;
    const int h = hb / (p.nb + 1);
    const int b = hb % (p.nb + 1);
    BucketInfo r;
    if (b == p.nb) {
        r.nq = a.N;
        r.size = a.N;
        r.entries = 0;
    } else {
        r.nq = p.cnt[hb];
        r.size = 0;
        if (a.T > 0) {
            const int32_t* off = p.ba.offsets + static_cast<int64_t>(h) * (p.nb + 1);
            const int sz = off[b + 1] - off[b];
            r.size = sz > 0 ? sz : 0;
        }
        r.entries = r.nq;
    }
    r.nch = r.nq > 0 ? (r.size + kc - 1) / kc : 0;
    return r;
}

__global__ void __launch_bounds__(kPlanThreads) bm_plan_kernel(const BmParams p) {
    __shared__ int tmp[32];
    __shared__ int kc_s;
    const int tid = static_cast<int>(threadIdx.x);
    if (tid == 0) {
        // Σ_b nq_b · ceil(size_b / kc) ≤ W / kc + entries ≤ rows_free + e_max: the slots fit the workspace.
        unsigned long long kc = (*p.work + p.rows_free - 1) / p.rows_free;
        kc = (kc + kUnit - 1) / kUnit * kUnit;
        if (kc < static_cast<unsigned long long>(kUnit)) kc = kUnit;
        if (kc > (1ull << 30)) kc = 1ull << 30;
        kc_s = static_cast<int>(kc);
        *p.kc = kc_s;
    }
    __syncthreads();
    const int kc = kc_s;
    const int per = (p.M + kPlanThreads - 1) / kPlanThreads;
    const int begin = min(tid * per, p.M);
    const int end = min(begin + per, p.M);
    int s_ent = 0, s_slot = 0, s_item = 0;
    for (int hb = begin; hb < end; ++hb) {
        const BucketInfo bi = bucket_info(p, hb, kc);
        s_ent += bi.entries;
        s_slot += bi.nq * bi.nch;
        s_item += bi.nch * ((bi.nq + p.qb - 1) / p.qb);
    }
    int t_ent, t_slot, t_item;
    int r_ent = block_exclusive_scan(s_ent, tmp, t_ent);
    int r_slot = block_exclusive_scan(s_slot, tmp, t_slot);
    int r_item = block_exclusive_scan(s_item, tmp, t_item);
    for (int hb = begin; hb < end; ++hb) {
        const BucketInfo bi = bucket_info(p, hb, kc);
        p.qbase[hb] = r_ent;
        p.pbase[hb] = r_slot;
        p.ibase[hb] = r_item;
        p.nchunk[hb] = bi.nch;
        if (hb % (p.nb + 1) == p.nb) p.cnt[hb] = bi.nq;  // the current frame: probed by every query
        r_ent += bi.entries;
        r_slot += bi.nq * bi.nch;
        r_item += bi.nch * ((bi.nq + p.qb - 1) / p.qb);
    }
    if (tid == 0) {
        p.qbase[p.M] = t_ent;
        p.pbase[p.M] = t_slot;
        p.ibase[p.M] = t_item;
    }
}

// ---- 3. per-bucket query lists ------------------------------------------------------------------------------------
__global__ void __launch_bounds__(kRowThreads) bm_fill_kernel(const BmParams p) {
    const DenseArgs& a = p.ba.dense;
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * kRowThreads + threadIdx.x;  // (h·N + n)·P + pi
    if (idx >= static_cast<int64_t>(a.H) * a.N * p.ba.P) return;
    const int r = p.rank[idx];
    if (r < 0) return;
    const int64_t row = idx / p.ba.P;
    const int h = static_cast<int>(row / a.N);
    const int n = static_cast<int>(row % a.N);
    const int b = p.ba.probes[idx] & (p.nb - 1);
    p.list[p.qbase[h * (p.nb + 1) + b] + r] = n;
}

// ---- 4. attention over (bucket, chunk, query group) items ---------------------------------------------------------
// What one work item covers, decoded by thread 0.
struct Item {
    int it;     // item index (≥ n_items: no more work)
    int hb;     // virtual bucket
    int chunk;  // chunk of the bucket
    int grp;    // query group
};

// The keys a warp streams: step k of warp w is chunk keys (w + k·kWarps)·kSK + [0, kSK).
struct WarpKeys {
    const __nv_bfloat16* kbase;  // head's K rows (cache or current frame)
    const __nv_bfloat16* vbase;
    int64_t kstride, vstride;
    const int32_t* perm;  // head's permutation, or nullptr for the current frame (identity)
    int64_t pos0;         // sorted position (or frame position) of the chunk's first key
    int len;              // keys in the chunk
    int steps;            // this warp's steps
    int64_t T;            // rows of the cache (perm entries outside [0, T) are skipped)

    // This lane's key row of step k, −1 for none.
    __device__ __forceinline__ int64_t row(int k, int warp, int lane) const {
        if (k >= steps) return -1;
        const int j = (warp + k * kWarps) * kSK + lane;
        if (j >= len) return -1;
        const int64_t pos = pos0 + j;
        if (perm == nullptr) return pos;
        const int64_t t = perm[pos];
        return (t >= 0 && t < T) ? t : -1;
    }
};

template <int D>
__device__ __forceinline__ void issue_step(__nv_bfloat16* kd, __nv_bfloat16* vd, const WarpKeys& wk, int64_t t_lane,
                                           int lane) {
    constexpr int kCh = D / 8;  // 16-byte chunks per row
    constexpr int kRowsPerPass = 32 / kCh;
    const int c = lane % kCh;
#pragma unroll
    for (int pass = 0; pass < kSK / kRowsPerPass; ++pass) {
        const int r = pass * kRowsPerPass + lane / kCh;
        const long long t = __shfl_sync(kFullMask, static_cast<long long>(t_lane), r);
        __nv_bfloat16* kdst = kd + r * D + swizzle_bf16<D>(r, c) * 8;
        __nv_bfloat16* vdst = vd + r * D + swizzle_bf16<D>(r, c) * 8;
        if (t >= 0) {
            cp_async_16(kdst, wk.kbase + t * wk.kstride + c * 8);
            cp_async_16(vdst, wk.vbase + t * wk.vstride + c * 8);
        } else {
            *reinterpret_cast<uint4*>(kdst) = make_uint4(0u, 0u, 0u, 0u);
            *reinterpret_cast<uint4*>(vdst) = make_uint4(0u, 0u, 0u, 0u);
        }
    }
}

// Raw inputs of a key's additive logit: bias rb (−inf = no key) and frame rf.
__device__ __forceinline__ void kb_load(const DenseArgs& a, int h, bool cur, int64_t t, float& rb, int64_t& rf) {
    if (t < 0) {
        rb = neg_inf();
        rf = a.frame;
    } else if (cur) {
        rb = 0.f;
        rf = a.frame;
    } else {
        rb = a.bias != nullptr ? a.bias[h * a.bias_stride_h + t] : 0.f;
        rf = a.frames != nullptr ? a.frames[t] : a.frame;
    }
}
__device__ __forceinline__ float kb_value(float rb, int64_t rf, float slope, int64_t frame) {
    return (rb - slope * static_cast<float>(frame - rf)) * kLog2e;
}

template <int D>
__global__ void __launch_bounds__(kThreads, BmCfg<D>::kMinBlocks) bm_attend_kernel(const BmParams p) {
    using C = BmCfg<D>;
    const DenseArgs& a = p.ba.dense;
    __shared__ Item item_s;
    unsigned char* smem = dynamic_smem<unsigned char>();
    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int g = lane >> 2;  // MMA group: row within the 8-row half, key within the 8-key n-tile
    const int t4 = lane & 3;  // thread in group
    __nv_bfloat16* ks = reinterpret_cast<__nv_bfloat16*>(smem) + warp * kStages * 2 * C::kStepElems;  // [kStages][kSK][D]
    __nv_bfloat16* vs = ks + kStages * C::kStepElems;                                                 // [kStages][kSK][D]
    float* kbs = reinterpret_cast<float*>(smem + C::kPipeKV) + warp * kStages * kSK;                 // [kStages][kSK]
    float* mo = reinterpret_cast<float*>(smem);             // merge: [kWarps][kQB][D]
    float* mm = mo + kWarps * C::kQB * D;                   // [kWarps][kQB] running max
    float* ml = mm + kWarps * C::kQB;                       // [kWarps][kQB] running sum
    const int n_items = p.ibase[p.M];
    const int kc = *p.kc;
    const int nbp = p.nb + 1;

    for (;;) {
        if (tid == 0) {
            Item itm;
            itm.it = atomicAdd(p.item_counter, 1);
            itm.hb = itm.chunk = itm.grp = 0;
            if (itm.it < n_items) {
                int lo = 0, hi = p.M - 1;  // last bucket with ibase ≤ it
                while (lo < hi) {
                    const int mid = (lo + hi + 1) >> 1;
                    if (p.ibase[mid] <= itm.it)
                        lo = mid;
                    else
                        hi = mid - 1;
                }
                const int local = itm.it - p.ibase[lo];
                const int ngr = (p.cnt[lo] + C::kQB - 1) / C::kQB;
                itm.hb = lo;
                itm.chunk = local / ngr;
                itm.grp = local % ngr;
            }
            item_s = itm;
        }
        __syncthreads();
        const Item itm = item_s;
        if (itm.it >= n_items) break;  // block-uniform

        const int h = itm.hb / nbp;
        const bool cur = itm.hb % nbp == p.nb;
        const int nq = p.cnt[itm.hb];
        const float slope = a.slope != nullptr ? a.slope[h] : 0.f;
        WarpKeys wk;
        int size;
        if (cur) {
            wk.kbase = static_cast<const __nv_bfloat16*>(a.k_cur.ptr) + h * a.k_cur.stride_h;
            wk.vbase = static_cast<const __nv_bfloat16*>(a.v_cur.ptr) + h * a.v_cur.stride_h;
            wk.kstride = a.k_cur.stride_r;
            wk.vstride = a.v_cur.stride_r;
            wk.perm = nullptr;
            wk.pos0 = 0;
            size = a.N;
        } else {
            const int b = itm.hb % nbp;
            const int32_t* off = p.ba.offsets + static_cast<int64_t>(h) * nbp;
            wk.kbase = static_cast<const __nv_bfloat16*>(a.k_cache.ptr) + h * a.k_cache.stride_h;
            wk.vbase = static_cast<const __nv_bfloat16*>(a.v_cache.ptr) + h * a.v_cache.stride_h;
            wk.kstride = a.k_cache.stride_r;
            wk.vstride = a.v_cache.stride_r;
            wk.perm = p.ba.perm + static_cast<int64_t>(h) * a.T;
            wk.pos0 = off[b];
            size = off[b + 1] - off[b];
        }
        wk.T = a.T;
        wk.pos0 += static_cast<int64_t>(itm.chunk) * kc;
        wk.len = min(kc, size - itm.chunk * kc);
        const int n_steps = (wk.len + kSK - 1) / kSK;
        wk.steps = n_steps > warp ? (n_steps - warp + kWarps - 1) / kWarps : 0;

        // Prologue: steps 0 and 1 in flight, kb of step 0 stored, kb inputs of step 1 loading, row of step 2.
        float rb;
        int64_t rf;
        {
            const int64_t t0 = wk.row(0, warp, lane);
            const int64_t t1 = wk.row(1, warp, lane);
            if (0 < wk.steps) issue_step<D>(ks, vs, wk, t0, lane);
            cp_async_commit();
            kb_load(a, h, cur, t0, rb, rf);
            kbs[lane] = kb_value(rb, rf, slope, a.frame);
            if (1 < wk.steps) issue_step<D>(ks + C::kStepElems, vs + C::kStepElems, wk, t1, lane);
            cp_async_commit();
            kb_load(a, h, cur, t1, rb, rf);
        }
        int64_t t_next = wk.row(2, warp, lane);

        // Q fragments of the group's rows. Lane (g, t4) holds dims [t4·D/4, (t4+1)·D/4) of rows g, g+8.
        uint32_t qf[C::kMT][C::kKS][4];
        {
            const __nv_bfloat16* qh = static_cast<const __nv_bfloat16*>(a.q.ptr) + h * a.q.stride_h;
            const int32_t* lst = p.list + p.qbase[itm.hb];
#pragma unroll
            for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const int i = itm.grp * C::kQB + mt * 16 + g + 8 * hf;
                    uint32_t w[D / 8];
#pragma unroll
                    for (int e = 0; e < D / 8; ++e) w[e] = 0u;
                    if (i < nq) {
                        const int n = cur ? i : lst[i];
                        const uint4* src = reinterpret_cast<const uint4*>(qh + n * a.q.stride_r + t4 * (D / 4));
#pragma unroll
                        for (int e = 0; e < D / 32; ++e) {
                            const uint4 v = src[e];
                            w[4 * e + 0] = v.x;
                            w[4 * e + 1] = v.y;
                            w[4 * e + 2] = v.z;
                            w[4 * e + 3] = v.w;
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

        for (int k = 0; k < wk.steps; ++k) {
            __syncwarp();  // every lane is done with step k − 1, whose stage step k + 2 refills
            if (k + 1 < wk.steps) kbs[((k + 1) % kStages) * kSK + lane] = kb_value(rb, rf, slope, a.frame);
            if (k + 2 < wk.steps)
                issue_step<D>(ks + ((k + 2) % kStages) * C::kStepElems, vs + ((k + 2) % kStages) * C::kStepElems,
                              wk, t_next, lane);
            cp_async_commit();
            kb_load(a, h, cur, t_next, rb, rf);
            t_next = wk.row(k + 3, warp, lane);
            cp_async_wait<kStages - 1>();  // step k has landed (this lane's copies)
            __syncwarp();                  // and every lane's, and its kb values are stored

            const int st = k % kStages;
            const __nv_bfloat16* kt = ks + st * C::kStepElems;
            const __nv_bfloat16* vt = vs + st * C::kStepElems;
            const float* kbt = kbs + st * kSK;

            // S = Q·Kᵀ (n-tile u holds keys u·8 + [0, 8)), logits in log2 units and the step's row maxima, then
            // P = 2^(x − m) as bf16 A fragments.
            float s[C::kMT][4][4];
            mma_qk32<D>(s, qf, kt, 0, g, t4);
            logits_max32(s, kbt, p.scale_log2, t4, m_run, l_run, o);
            uint32_t pa[C::kMT][2][4];
            softmax_p32(s, m_run, l_run, pa);
            mma_pv32<D>(o, pa, vt, 0, g, t4);  // O += P·V
        }
        cp_async_wait<0>();

        // Row sums: each lane summed its own columns; the four lanes of a group share the rows.
#pragma unroll
        for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                l_run[mt][hf] += __shfl_xor_sync(kFullMask, l_run[mt][hf], 1);
                l_run[mt][hf] += __shfl_xor_sync(kFullMask, l_run[mt][hf], 2);
            }
        }
        __syncthreads();  // every warp is done with its pipeline: the merge area overlaps it

        // Lane (g, t4) holds dims t4·D/4 + e·D/8 + j (e = 0, 1; j < D/8) in o[mt][j][2·hf + e] of row g + 8·hf.
#pragma unroll
        for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int row = mt * 16 + g + 8 * hf;
                float* dst = mo + (warp * C::kQB + row) * D + t4 * (D / 4);
#pragma unroll
                for (int e = 0; e < 2; ++e)
#pragma unroll
                    for (int j = 0; j < D / 8; ++j) dst[e * (D / 8) + j] = o[mt][j][2 * hf + e];
                if (t4 == 0) {
                    mm[warp * C::kQB + row] = m_run[mt][hf];
                    ml[warp * C::kQB + row] = l_run[mt][hf];
                }
            }
        }
        __syncthreads();

        // Merge the warps' partials and write one (m, l, o) per query row of the group.
        {
            const int rows = min(C::kQB, nq - itm.grp * C::kQB);
            const int slot0 = p.pbase[itm.hb] + itm.chunk * nq + itm.grp * C::kQB;
            for (int idx = tid; idx < rows * (D / 4); idx += kThreads) {
                const int row = idx / (D / 4);
                const int c4 = idx % (D / 4);
                float mmax = neg_inf();
#pragma unroll
                for (int w = 0; w < kWarps; ++w) mmax = fmaxf(mmax, mm[w * C::kQB + row]);
                float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
                float l = 0.f;
#pragma unroll
                for (int w = 0; w < kWarps; ++w) {
                    const float mw = mm[w * C::kQB + row];
                    const float sc = mw == neg_inf() ? 0.f : exp2_fast(mw - mmax);
                    const float4 v = *reinterpret_cast<const float4*>(mo + (w * C::kQB + row) * D + 4 * c4);
                    acc.x = fmaf(sc, v.x, acc.x);
                    acc.y = fmaf(sc, v.y, acc.y);
                    acc.z = fmaf(sc, v.z, acc.z);
                    acc.w = fmaf(sc, v.w, acc.w);
                    l = fmaf(sc, ml[w * C::kQB + row], l);
                }
                const int64_t slot = slot0 + row;
                *reinterpret_cast<float4*>(p.ws_o + slot * D + 4 * c4) = acc;
                if (c4 == 0) p.ws_ml[slot] = make_float2(mmax, l);
            }
        }
        __syncthreads();  // the merge area and item_s are reused by the next item
    }
}

// ---- 5. combine a query's partials ---------------------------------------------------------------------------------
template <int D>
__global__ void __launch_bounds__(kRowThreads) bm_combine_kernel(const BmParams p) {
    constexpr int kDpl = D / 32;  // dims per lane
    const DenseArgs& a = p.ba.dense;
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * (kRowThreads / 32) + (threadIdx.x >> 5);  // h·N + n
    if (row >= static_cast<int64_t>(a.H) * a.N) return;  // warp-uniform
    const int h = static_cast<int>(row / a.N);
    const int n = static_cast<int>(row % a.N);
    const int nbp = p.nb + 1;

    float m_all = neg_inf();
    float l_all = 0.f;
    float acc[kDpl];
#pragma unroll
    for (int i = 0; i < kDpl; ++i) acc[i] = 0.f;
    auto add = [&](int64_t slot) {
        const float2 mlv = p.ws_ml[slot];
        if (mlv.x == neg_inf()) return;
        if (mlv.x > m_all) {
            const float sc = m_all == neg_inf() ? 0.f : exp2f(m_all - mlv.x);
            l_all *= sc;
#pragma unroll
            for (int i = 0; i < kDpl; ++i) acc[i] *= sc;
            m_all = mlv.x;
        }
        const float w = exp2f(mlv.x - m_all);
        l_all = fmaf(w, mlv.y, l_all);
        const float* src = p.ws_o + slot * D + lane * kDpl;
#pragma unroll
        for (int i = 0; i < kDpl; ++i) acc[i] = fmaf(w, src[i], acc[i]);
    };
    const int P = p.ba.P;
    for (int pi = 0; pi < P; ++pi) {
        const int r = p.rank[row * P + pi];
        if (r < 0) continue;  // a repeated probe
        const int hb = h * nbp + (p.ba.probes[row * P + pi] & (p.nb - 1));
        const int nch = p.nchunk[hb];
        const int nq = p.cnt[hb];
        const int base = p.pbase[hb];
        for (int c = 0; c < nch; ++c) add(static_cast<int64_t>(base) + static_cast<int64_t>(c) * nq + r);
    }
    {
        const int hb = h * nbp + p.nb;  // the current frame
        const int nch = p.nchunk[hb];
        const int base = p.pbase[hb];
        for (int c = 0; c < nch; ++c) add(static_cast<int64_t>(base) + static_cast<int64_t>(c) * a.N + n);
    }
    const float inv = l_all > 0.f ? 1.f / l_all : 0.f;
    __nv_bfloat16* dst = static_cast<__nv_bfloat16*>(a.out) + h * a.out_stride_h + n * a.out_stride_n + lane * kDpl;
#pragma unroll
    for (int i = 0; i < kDpl; ++i) dst[i] = from_float<__nv_bfloat16>(acc[i] * inv);
}

// The same merge with the warp's lanes working side by side (P + 1 ≤ 32): over a large cache a query has a few
// hundred partials (every chunk of every probed bucket), and bm_combine_kernel's one dependent load after another
// made the merge cost more than the attention. Lane pi < P describes probe pi's partials and lane P the current
// frame's (first slot, count, stride); a prefix sum numbers them 0 .. total − 1. Pass 1: the global max; pass 2:
// lane j of each 32-partial batch loads its (m, l), and the warp accumulates the batch's outputs with independent
// loads. The sums run in another order than bm_combine_kernel's (fp32 rounding apart, the same result).
// Slot of partial j for bm_combine_wide_kernel: lane g ≤ P holds group g (first partial, count, stride, first slot);
// every lane of the warp takes part. Valid for j < total. Slots are below rows_cap < 2^30 (bm_layout): 32 bits.
__device__ __forceinline__ int combine_slot(int j, int P, int first, int nch, int stride, int base) {
    int sl = 0;
    for (int g = 0; g <= P; ++g) {
        const int fg = __shfl_sync(kFullMask, first, g), ng = __shfl_sync(kFullMask, nch, g);
        const int sg = __shfl_sync(kFullMask, stride, g), bg = __shfl_sync(kFullMask, base, g);
        if (j >= fg && j < fg + ng) sl = bg + (j - fg) * sg;
    }
    return sl;
}

template <int D>
__global__ void __launch_bounds__(kRowThreads, 4) bm_combine_wide_kernel(const BmParams p) {
    constexpr int kDpl = D / 32;  // dims per lane
    const DenseArgs& a = p.ba.dense;
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * (kRowThreads / 32) + (threadIdx.x >> 5);  // h·N + n
    if (row >= static_cast<int64_t>(a.H) * a.N) return;  // warp-uniform
    const int h = static_cast<int>(row / a.N);
    const int n = static_cast<int>(row % a.N);
    const int nbp = p.nb + 1;
    const int P = p.ba.P;
    int base = 0;  // this lane's group of partials: slots base + c · stride, c < nch
    int nch = 0, stride = 0;
    if (lane < P) {
        const int r = p.rank[row * P + lane];
        if (r >= 0) {  // not a repeated probe
            const int hb = h * nbp + (p.ba.probes[row * P + lane] & (p.nb - 1));
            nch = p.nchunk[hb];
            stride = p.cnt[hb];
            base = p.pbase[hb] + r;
        }
    } else if (lane == P) {  // the current frame
        const int hb = h * nbp + p.nb;
        nch = p.nchunk[hb];
        stride = a.N;
        base = p.pbase[hb] + n;
    }
    int incl = nch;  // inclusive prefix sum of the groups' counts
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
        const int t = __shfl_up_sync(kFullMask, incl, off);
        if (lane >= off) incl += t;
    }
    const int total = __shfl_sync(kFullMask, incl, 31);
    const int first = incl - nch;
    float m_all = neg_inf();
    for (int j0 = 0; j0 < total; j0 += 32) {
        const int sl = combine_slot(j0 + lane, P, first, nch, stride, base);
        if (j0 + lane < total) m_all = fmaxf(m_all, p.ws_ml[sl].x);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) m_all = fmaxf(m_all, __shfl_xor_sync(kFullMask, m_all, off));

    float l_part = 0.f;
    float acc[kDpl];
#pragma unroll
    for (int i = 0; i < kDpl; ++i) acc[i] = 0.f;
    if (m_all != neg_inf()) {
        for (int j0 = 0; j0 < total; j0 += 32) {
            const int sl = combine_slot(j0 + lane, P, first, nch, stride, base);
            float w = 0.f;
            if (j0 + lane < total) {
                const float2 mlv = p.ws_ml[sl];
                w = mlv.x == neg_inf() ? 0.f : exp2f(mlv.x - m_all);
                l_part = fmaf(w, mlv.y, l_part);
            }
            const int cnt = min(32, total - j0);
#pragma unroll 8
            for (int e = 0; e < cnt; ++e) {
                const float we = __shfl_sync(kFullMask, w, e);
                const int se = __shfl_sync(kFullMask, sl, e);
                if (we == 0.f) continue;  // warp-uniform; as bm_combine_kernel, an empty partial's o is not read
                const float* src = p.ws_o + static_cast<int64_t>(se) * D + lane * kDpl;
#pragma unroll
                for (int i = 0; i < kDpl; ++i) acc[i] = fmaf(we, src[i], acc[i]);
            }
        }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) l_part += __shfl_xor_sync(kFullMask, l_part, off);
    const float inv = l_part > 0.f ? 1.f / l_part : 0.f;
    __nv_bfloat16* dst = static_cast<__nv_bfloat16*>(a.out) + h * a.out_stride_h + n * a.out_stride_n + lane * kDpl;
#pragma unroll
    for (int i = 0; i < kDpl; ++i) dst[i] = from_float<__nv_bfloat16>(acc[i] * inv);
}

// ---- host side ----------------------------------------------------------------------------------------------------
size_t align16(size_t n) {
    return (n + 15) & ~size_t{15};
}

// Workspace layout. The zeroed head (counters) comes first.
struct BmLayout {
    int nb = 0, M = 0;
    int64_t e_max = 0;     // list entries + current-frame rows at most: H·N·(min(P, nb) + 1)
    int64_t rows_cap = 0;  // partial rows
    size_t cnt = 0, work = 0, items = 0, kc = 0, zero_bytes = 0;
    size_t rank = 0, qbase = 0, pbase = 0, ibase = 0, nchunk = 0, list = 0, ml = 0, o = 0, total = 0;
};

bool bm_layout(const BucketedArgs& ba, BmLayout* L) {
    const DenseArgs& a = ba.dense;
    if (a.H <= 0 || a.N <= 0 || ba.bits < 1 || ba.bits > 16 || ba.P < 0) return false;
    L->nb = 1 << ba.bits;
    L->M = a.H * (L->nb + 1);
    const int64_t pd = ba.P < L->nb ? ba.P : L->nb;
    L->e_max = static_cast<int64_t>(a.H) * a.N * (pd + 1);
    L->rows_cap = kSlotsPerEntry * L->e_max;
    if (L->rows_cap >= (int64_t{1} << 30) || static_cast<int64_t>(a.H) * a.N * ba.P >= (int64_t{1} << 31))
        return false;
    size_t at = 0;
    L->cnt = at;
    at += align16(static_cast<size_t>(L->M) * sizeof(int32_t));
    L->work = at;
    at += 16;
    L->items = at;
    at += 16;
    L->kc = at;
    at += 16;
    L->zero_bytes = at;
    L->rank = at;
    at += align16(static_cast<size_t>(a.H) * a.N * ba.P * sizeof(int32_t));
    L->qbase = at;
    at += align16(static_cast<size_t>(L->M + 1) * sizeof(int32_t));
    L->pbase = at;
    at += align16(static_cast<size_t>(L->M + 1) * sizeof(int32_t));
    L->ibase = at;
    at += align16(static_cast<size_t>(L->M + 1) * sizeof(int32_t));
    L->nchunk = at;
    at += align16(static_cast<size_t>(L->M) * sizeof(int32_t));
    L->list = at;
    at += align16(static_cast<size_t>(L->e_max) * sizeof(int32_t));
    L->ml = at;
    at += align16(static_cast<size_t>(L->rows_cap) * sizeof(float2));
    L->o = at;
    at += align16(static_cast<size_t>(L->rows_cap) * a.D * sizeof(float));
    L->total = at;
    return true;
}

bool rows_ok(const Rows& r, int esz) {
    return r.ptr != nullptr && reinterpret_cast<uintptr_t>(r.ptr) % 16 == 0 && (r.stride_h * esz) % 16 == 0 &&
           (r.stride_r * esz) % 16 == 0;
}

template <int D>
cudaError_t launch_bm(const BmParams& p, cudaStream_t stream) {
    using C = BmCfg<D>;
    const DenseArgs& a = p.ba.dense;
    const int64_t rows = static_cast<int64_t>(a.H) * a.N;
    DC_LAUNCH(bm_count_kernel, static_cast<unsigned>(ceil_div(rows, kRowThreads)), kRowThreads, 0, stream, p);
    DC_LAUNCH(bm_plan_kernel, 1, kPlanThreads, 0, stream, p);
    if (p.ba.P > 0)
        DC_LAUNCH(bm_fill_kernel, static_cast<unsigned>(ceil_div(rows * p.ba.P, kRowThreads)), kRowThreads, 0, stream,
                  p);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;

    e = cudaFuncSetAttribute(bm_attend_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(C::kSmemBytes));
    if (e != cudaSuccess) return e;
    int device = 0, sms = 0, per_sm = 0;
    if ((e = cudaGetDevice(&device)) != cudaSuccess) return e;
    if ((e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess) return e;
    if ((e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, bm_attend_kernel<D>, kThreads, C::kSmemBytes)) !=
        cudaSuccess)
        return e;
    const int grid = sms * (per_sm > 0 ? per_sm : 1);
    DC_LAUNCH(bm_attend_kernel<D>, grid, kThreads, C::kSmemBytes, stream, p);
    if (p.ba.P < 32)
        DC_LAUNCH(bm_combine_wide_kernel<D>, static_cast<unsigned>(ceil_div(rows, kRowThreads / 32)), kRowThreads, 0,
                  stream, p);
    else
        DC_LAUNCH(bm_combine_kernel<D>, static_cast<unsigned>(ceil_div(rows, kRowThreads / 32)), kRowThreads, 0,
                  stream, p);
    return cudaGetLastError();
}

}  // namespace

size_t bucketed_attention_workspace_bytes(const BucketedArgs& ba) {
    if (ba.dense.dtype != DType::bf16) return 0;  // float32 runs the per-query kernel
    BmLayout L;
    return bm_layout(ba, &L) ? L.total : 0;
}

cudaError_t bucketed_attention_bucket_major(const BucketedArgs& ba, void* workspace, size_t workspace_bytes,
                                            cudaStream_t stream) {
    const DenseArgs& a = ba.dense;
    if (a.dtype != DType::bf16) return bucketed_attention(ba, stream);
    if (a.H < 0 || a.N < 0 || a.T < 0 || a.T > 0x7fffffff || (a.D != 32 && a.D != 64 && a.D != 128) || ba.P < 0 ||
        ba.bits < 1 || ba.bits > 16 || a.H > 65535)
        return cudaErrorInvalidValue;
    if (a.H == 0 || a.N == 0) return cudaSuccess;
    if (!rows_ok(a.q, 2) || !rows_ok(a.k_cur, 2) || !rows_ok(a.v_cur, 2) || a.out == nullptr ||
        ba.n_scored == nullptr || (ba.P > 0 && ba.probes == nullptr))
        return cudaErrorInvalidValue;
    if (a.T > 0 && (!rows_ok(a.k_cache, 2) || !rows_ok(a.v_cache, 2) || ba.perm == nullptr || ba.offsets == nullptr))
        return cudaErrorInvalidValue;
    BmLayout L;
    if (!bm_layout(ba, &L)) return bucketed_attention(ba, stream);  // partials beyond 2^30 rows: the per-query kernel
    if (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % 16 != 0 ||
        workspace_bytes < L.total)
        return cudaErrorInvalidValue;

    unsigned char* ws = static_cast<unsigned char*>(workspace);
    BmParams p;
    p.ba = ba;
    p.nb = L.nb;
    p.M = L.M;
    p.qb = queries_per_item(a.D);
    p.cnt = reinterpret_cast<int32_t*>(ws + L.cnt);
    p.work = reinterpret_cast<unsigned long long*>(ws + L.work);
    p.item_counter = reinterpret_cast<int32_t*>(ws + L.items);
    p.kc = reinterpret_cast<int32_t*>(ws + L.kc);
    p.rank = reinterpret_cast<int32_t*>(ws + L.rank);
    p.qbase = reinterpret_cast<int32_t*>(ws + L.qbase);
    p.pbase = reinterpret_cast<int32_t*>(ws + L.pbase);
    p.ibase = reinterpret_cast<int32_t*>(ws + L.ibase);
    p.nchunk = reinterpret_cast<int32_t*>(ws + L.nchunk);
    p.list = reinterpret_cast<int32_t*>(ws + L.list);
    p.ws_ml = reinterpret_cast<float2*>(ws + L.ml);
    p.ws_o = reinterpret_cast<float*>(ws + L.o);
    p.rows_free = static_cast<unsigned long long>(L.rows_cap - L.e_max);
    p.scale_log2 = kLog2e / sqrtf(static_cast<float>(a.D));

    const cudaError_t e = cudaMemsetAsync(ws, 0, L.zero_bytes, stream);
    if (e != cudaSuccess) return e;
    switch (a.D) {
        case 32: return launch_bm<32>(p, stream);
        case 64: return launch_bm<64>(p, stream);
        default: return launch_bm<128>(p, stream);
    }
}

}  // namespace dc::cuda::kernels
