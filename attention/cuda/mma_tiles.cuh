// attention/cuda/mma_tiles.cuh — the bf16 shared-memory tile layout and the 32-key steps (Q·Kᵀ, logits and maxima,
// softmax, P·V) shared by the mma.sync attention kernels (dense_attention.cu's dense_mma_kernel and
// bucket_major_attention.cu). Only .cu files include this header.
//
// A tile row holds one key's D bf16 values with its 16-byte chunks XOR-swizzled by row (swizzle_bf16), so that the
// cp.async writes, the K reads of Q·Kᵀ and the V reads of P·V are free of bank conflicts for D = 64 and 128.
// P·V (mma_pv32): the B fragment wants two keys' values of one dim per register. Output n-tile j, column n is given
// the dim n·D/8 + j; lane (g, t) reads dims [g·D/8, (g+1)·D/8) of keys 2t, 2t+1 (and +8, +9) and interleaves the two
// rows with one byte-permute per register. The lane's outputs come out as dims [t·D/4, (t+1)·D/4).
#pragma once

#include "device_utils.cuh"

namespace dc::cuda::dev {

// Position of 16-byte chunk c of row r inside a bf16 tile row (a bijection on the row's chunks).
template <int D>
__device__ __forceinline__ int swizzle_bf16(int r, int c) {
    if constexpr (D == 32) {
        return c;  // two rows per 128 bytes: the K reads are conflict-free as is
    } else if constexpr (D == 64) {
        return c ^ (r & 7);
    } else {
        static_assert(D == 128, "D must be 32, 64 or 128");
        return c ^ ((((c >> 3) & 1) << 1) ^ (r & 1) ^ ((r >> 1) & 1) ^ (((r >> 2) & 1) << 2));
    }
}

// Lane (g, ·)'s V words of row r: dims [g·D/8, (g+1)·D/8) as D/16 registers of two bf16.
template <int D>
__device__ __forceinline__ void load_v_words(const __nv_bfloat16* vt, int r, int g, uint32_t (&w)[D / 16]) {
    const __nv_bfloat16* row = vt + r * D;
    if constexpr (D == 32) {
        const uint2 v = *reinterpret_cast<const uint2*>(row + swizzle_bf16<D>(r, g >> 1) * 8 + (g & 1) * 4);
        w[0] = v.x;
        w[1] = v.y;
    } else {
#pragma unroll
        for (int i = 0; i < D / 64; ++i) {
            const uint4 v = *reinterpret_cast<const uint4*>(row + swizzle_bf16<D>(r, g * (D / 64) + i) * 8);
            w[4 * i + 0] = v.x;
            w[4 * i + 1] = v.y;
            w[4 * i + 2] = v.z;
            w[4 * i + 3] = v.w;
        }
    }
}

// O += P·V over the 32 keys r_base + [0, 32) of V tile vt, for MT m-tiles of 16 query rows: pa[mt][kk] is P's A
// fragment of keys r_base + kk·16 + [0, 16); o[mt][j] the accumulator of output n-tile j. B fragment of n-tile j:
// keys 2t4, 2t4+1 (b0) and 2t4+8, 2t4+9 (b1) of dim g·D/8 + j.
template <int D, int MT>
__device__ __forceinline__ void mma_pv32(float (&o)[MT][D / 8][4], const uint32_t (&pa)[MT][2][4],
                                         const __nv_bfloat16* vt, int r_base, int g, int t4) {
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
        const int r0 = r_base + kk * 16 + 2 * t4;
        uint32_t va[D / 16], vb[D / 16], vc[D / 16], vd[D / 16];
        load_v_words<D>(vt, r0, g, va);
        load_v_words<D>(vt, r0 + 1, g, vb);
        load_v_words<D>(vt, r0 + 8, g, vc);
        load_v_words<D>(vt, r0 + 9, g, vd);
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
            const unsigned sel = (j & 1) ? 0x7632u : 0x5410u;  // high or low bf16 of both rows
            const uint32_t b0 = __byte_perm(va[j >> 1], vb[j >> 1], sel);
            const uint32_t b1 = __byte_perm(vc[j >> 1], vd[j >> 1], sel);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) mma_bf16_16816(o[mt][j], pa[mt][kk], b0, b1);
        }
    }
}

// Log2 units the running max may lag behind the true max: the O rescale (a warp-uniform branch) is then rare, and
// p = 2^(x − m) stays ≤ 2^kRescaleSlack, harmless in fp32 and bf16.
constexpr float kRescaleSlack = 8.f;

// S = Q·Kᵀ for the 32 keys r_base + [0, 32) of K tile kt, MT m-tiles of 16 query rows: s[mt][u] holds keys
// r_base + u·8 + [0, 8). The dot product is invariant under a permutation of the D dims applied to q and k alike:
// lane (g, t4) holds dims [t4·D/4, (t4+1)·D/4) of its q rows (qf[mt][k], k-step k / register r taking dims
// t4·D/4 + 4k + 2r + {0, 1}) and of key row g, so both operands are plain 32-bit words of a row.
template <int D, int MT>
__device__ __forceinline__ void mma_qk32(float (&s)[MT][4][4], const uint32_t (&qf)[MT][D / 16][4],
                                         const __nv_bfloat16* kt, int r_base, int g, int t4) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int u = 0; u < 4; ++u) s[mt][u][0] = s[mt][u][1] = s[mt][u][2] = s[mt][u][3] = 0.f;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
        const int r = r_base + u * 8 + g;
        uint32_t kw[D / 8];
#pragma unroll
        for (int i = 0; i < D / 32; ++i) {
            const uint4 v = *reinterpret_cast<const uint4*>(kt + r * D + swizzle_bf16<D>(r, t4 * (D / 32) + i) * 8);
            kw[4 * i + 0] = v.x;
            kw[4 * i + 1] = v.y;
            kw[4 * i + 2] = v.z;
            kw[4 * i + 3] = v.w;
        }
#pragma unroll
        for (int k = 0; k < D / 16; ++k)
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) mma_bf16_16816(s[mt][u], qf[mt][k], kw[2 * k], kw[2 * k + 1]);
    }
}

// Logits of the 32 keys in log2 units (x = s·scale_log2 + kb, kbt: their kb), the row maxima (rows g and g + 8 of
// each m-tile) and, where one exceeds the running max by more than kRescaleSlack, the rescale of the row's running
// sum and output (NO output n-tiles).
template <int MT, int NO>
__device__ __forceinline__ void logits_max32(float (&s)[MT][4][4], const float* kbt, float scale_log2, int t4,
                                             float (&m_run)[MT][2], float (&l_run)[MT][2], float (&o)[MT][NO][4]) {
    float mx[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) mx[mt][0] = mx[mt][1] = neg_inf();
#pragma unroll
    for (int u = 0; u < 4; ++u) {
        const float2 kb2 = *reinterpret_cast<const float2*>(kbt + u * 8 + 2 * t4);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            s[mt][u][0] = fmaf(s[mt][u][0], scale_log2, kb2.x);
            s[mt][u][1] = fmaf(s[mt][u][1], scale_log2, kb2.y);
            s[mt][u][2] = fmaf(s[mt][u][2], scale_log2, kb2.x);
            s[mt][u][3] = fmaf(s[mt][u][3], scale_log2, kb2.y);
            mx[mt][0] = fmaxf(mx[mt][0], fmaxf(s[mt][u][0], s[mt][u][1]));
            mx[mt][1] = fmaxf(mx[mt][1], fmaxf(s[mt][u][2], s[mt][u][3]));
        }
    }
    bool raise = false;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
            mx[mt][hf] = fmaxf(mx[mt][hf], __shfl_xor_sync(kFullMask, mx[mt][hf], 1));
            mx[mt][hf] = fmaxf(mx[mt][hf], __shfl_xor_sync(kFullMask, mx[mt][hf], 2));
            raise = raise || mx[mt][hf] > m_run[mt][hf] + kRescaleSlack;
        }
    }
    if (__any_sync(kFullMask, raise)) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                if (mx[mt][hf] > m_run[mt][hf] + kRescaleSlack) {
                    const float alpha = exp2_fast(m_run[mt][hf] - mx[mt][hf]);  // 0 when m_run = −inf
                    m_run[mt][hf] = mx[mt][hf];
                    l_run[mt][hf] *= alpha;
#pragma unroll
                    for (int j = 0; j < NO; ++j) {
                        o[mt][j][2 * hf] *= alpha;
                        o[mt][j][2 * hf + 1] *= alpha;
                    }
                }
            }
        }
    }
}

// P = 2^(x − m) in place, added to the running row sums, and as bf16 A fragments: keys kk·16 + [0, 16) of the 32
// are n-tiles 2kk and 2kk + 1 (the mma.sync C fragment is the A fragment's layout).
template <int MT>
__device__ __forceinline__ void softmax_p32(float (&s)[MT][4][4], const float (&m_run)[MT][2], float (&l_run)[MT][2],
                                            uint32_t (&pa)[MT][2][4]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        const float mu0 = m_run[mt][0] == neg_inf() ? 0.f : m_run[mt][0];
        const float mu1 = m_run[mt][1] == neg_inf() ? 0.f : m_run[mt][1];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            s[mt][u][0] = exp2_fast(s[mt][u][0] - mu0);
            s[mt][u][1] = exp2_fast(s[mt][u][1] - mu0);
            s[mt][u][2] = exp2_fast(s[mt][u][2] - mu1);
            s[mt][u][3] = exp2_fast(s[mt][u][3] - mu1);
            l_run[mt][0] += s[mt][u][0] + s[mt][u][1];
            l_run[mt][1] += s[mt][u][2] + s[mt][u][3];
        }
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
            pa[mt][kk][0] = pack_bf16x2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
            pa[mt][kk][1] = pack_bf16x2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
            pa[mt][kk][2] = pack_bf16x2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
            pa[mt][kk][3] = pack_bf16x2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
    }
}

}  // namespace dc::cuda::dev
