// CPU kernels: reference dense attention, chunked online-softmax dense, bucket-sorted block-sparse (AnnSA), top-k
// selected keys, masked cross-attention, and the sampled recall measurements.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "attention/attention_impl.h"
#include "common/common.h"

namespace dc {

at::ScalarType compute_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

at::Tensor cache_key_add(const KvCache& cache, const AttentionContext& ctx, at::ScalarType dt) {
    // log(group size) in the compute dtype (the stored float32 bias would cap float64 exactness at ~1e-8).
    at::Tensor b = cache.group_sizes().to(dt).log().unsqueeze(0).expand({cache.n_heads(), cache.size()});   // [H, T]
    if (ctx.temporal_slope.defined() && cache.size() > 0) {
        DC_CHECK(ctx.temporal_slope.numel() == cache.n_heads(),
                 "temporal_slope must have one value per head (" << cache.n_heads() << "), found "
                                                                 << ctx.temporal_slope.sizes());
        at::Tensor dist = (ctx.frame - cache.frames()).to(dt);                           // [T]
        at::Tensor slope = ctx.temporal_slope.to(b.device(), dt).reshape({-1, 1});        // [H, 1]
        b = b - slope * dist.unsqueeze(0);
    }
    return b.contiguous();
}

at::Tensor attend_dense_chunked(const at::Tensor& q, const at::Tensor& ck, const at::Tensor& cv,
                                const at::Tensor& kadd, const at::Tensor& k_cur, const at::Tensor& v_cur) {
    const auto dt = q.scalar_type();
    const int64_t H = q.size(0), N = q.size(1), T = ck.size(1);
    // Current frame first: it is never empty, so the running max is finite from the start.
    at::Tensor s = at::bmm(q, k_cur.transpose(1, 2));   // [H, N, N]
    at::Tensor m = s.amax(-1, true);         // [H, N, 1]
    s.sub_(m).exp_();
    at::Tensor l = s.sum(-1, true);                      // [H, N, 1]
    at::Tensor o = at::bmm(s, v_cur);                    // [H, N, D]
    // ~4 MB of float scores per chunk (682 keys at 6 heads × 256 queries): the max/exp/sum passes stay in cache.
    // Measured on the 2-core CPU at 16.6k keys: chunks of 512–1024 keys ran 20% faster than 2730 and 40% faster
    // than 8192 (bench/attention_bench.md).
    // On CUDA (dense.kernel "torch") launches dominate small chunks: 64M scores (256 MB) per chunk instead.
    const int64_t scores = q.is_cuda() ? (int64_t{1} << 26) : (int64_t{1} << 20);
    const int64_t chunk = std::max<int64_t>(256, scores / std::max<int64_t>(1, H * N));
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
        const int64_t len = std::min(chunk, T - t0);
        at::Tensor kc = ck.narrow(1, t0, len).to(dt);    // [H, len, D]
        at::Tensor vc = cv.narrow(1, t0, len).to(dt);
        at::Tensor sc = at::baddbmm(kadd.narrow(1, t0, len).unsqueeze(1), q, kc.transpose(1, 2));   // [H, N, len]
        at::Tensor m_new = at::maximum(m, sc.amax(-1, true));
        at::Tensor alpha = (m - m_new).exp_();
        sc.sub_(m_new).exp_();
        l.mul_(alpha).add_(sc.sum(-1, true));
        o.mul_(alpha).add_(at::bmm(sc, vc));
        m = m_new;
    }
    return o.div_(l);
}

namespace {

// Folds bucket partials (max pm [M, 1], sum pl [M, 1], unnormalised output po [M, D]) of query rows qlist [M] into a
// head's running softmax m [N, 1], l [N, 1], o [N, D] (log-sum-exp combine; fixed order, so deterministic).
template <class S>
void fold_pairs(const at::Tensor& m, const at::Tensor& l, const at::Tensor& o, const at::Tensor& pm,
                const at::Tensor& pl, const at::Tensor& po, const std::vector<int64_t>& qlist) {
    const int64_t N = m.size(0), D = o.size(1), M = static_cast<int64_t>(qlist.size());
    S* mp = m.data_ptr<S>();
    S* lp = l.data_ptr<S>();
    S* op = o.data_ptr<S>();
    const S* pmp = pm.data_ptr<S>();
    const S* plp = pl.data_ptr<S>();
    const S* pop = po.data_ptr<S>();
    std::vector<S> mx(mp, mp + N);
    for (int64_t r = 0; r < M; ++r) mx[static_cast<size_t>(qlist[static_cast<size_t>(r)])] =
        std::max(mx[static_cast<size_t>(qlist[static_cast<size_t>(r)])], pmp[r]);
    for (int64_t i = 0; i < N; ++i) {
        const S a = std::exp(mp[i] - mx[static_cast<size_t>(i)]);
        lp[i] *= a;
        for (int64_t d = 0; d < D; ++d) op[i * D + d] *= a;
        mp[i] = mx[static_cast<size_t>(i)];
    }
    for (int64_t r = 0; r < M; ++r) {
        const int64_t i = qlist[static_cast<size_t>(r)];
        const S w = std::exp(pmp[r] - mp[i]);
        lp[i] += w * plp[r];
        for (int64_t d = 0; d < D; ++d) op[i * D + d] += w * pop[r * D + d];
    }
}

}  // namespace

namespace {

// In place: each row minus its max (max written to mx); then, after exp, row sums to sm. Eight independent lanes
// so the compiler vectorises the reductions (fixed order, so results do not depend on the batch).
template <class S>
void rows_sub_max(S* p, int64_t rows, int64_t cols, S* mx) {
    for (int64_t r = 0; r < rows; ++r) {
        S* row = p + r * cols;
        S lane[8];
        for (int j = 0; j < 8; ++j) lane[j] = row[0];
        int64_t c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; ++j) lane[j] = row[c + j] > lane[j] ? row[c + j] : lane[j];
        S m = lane[0];
        for (int j = 1; j < 8; ++j) m = lane[j] > m ? lane[j] : m;
        for (; c < cols; ++c) m = row[c] > m ? row[c] : m;
        for (int64_t i = 0; i < cols; ++i) row[i] -= m;
        mx[r] = m;
    }
}
template <class S>
void rows_sum(const S* p, int64_t rows, int64_t cols, S* sm) {
    for (int64_t r = 0; r < rows; ++r) {
        const S* row = p + r * cols;
        S lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; ++j) lane[j] += row[c + j];
        S a = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        for (; c < cols; ++c) a += row[c];
        sm[r] = a;
    }
}

template <class S>
void score_bucket(at::Tensor& sb, S* pm, S* pl) {
    const int64_t nr = sb.size(0), nk = sb.size(1);
    rows_sub_max(sb.data_ptr<S>(), nr, nk, pm);
    sb.exp_();
    rows_sum(sb.data_ptr<S>(), nr, nk, pl);
}

template <class S>
void gather_add(const S* kadd_h, const std::vector<int64_t>& ids, S* out) {
    for (size_t j = 0; j < ids.size(); ++j) out[j] = kadd_h[ids[j]];
}

}  // namespace

std::pair<at::Tensor, at::Tensor> attend_bucketed_cpu(const at::Tensor& q, const BucketStore& store,
                                                       const at::Tensor& kadd, const at::Tensor& probes,
                                                       const at::Tensor& k_cur, const at::Tensor& v_cur) {
    const int64_t H = q.size(0), N = q.size(1), D = q.size(2), P = probes.size(2), T = kadd.size(1);
    const int64_t nbk = int64_t{1} << store.bits;
    const auto dt = q.scalar_type();
    DC_CHECK(dt == store.dt, "internal: bucket store dtype mismatch");
    // Current frame: dense partial softmax (max m, sum l, unnormalised output o).
    at::Tensor s = at::bmm(q, k_cur.transpose(1, 2));   // [H, N, N]
    at::Tensor m = s.amax(-1, true);         // [H, N, 1]
    s.sub_(m).exp_();
    at::Tensor l = s.sum(-1, true);                      // [H, N, 1]
    at::Tensor o = at::bmm(s, v_cur);                    // [H, N, D]
    at::Tensor kadd_c = kadd.contiguous();               // [H, T]
    at::Tensor n_scored = at::zeros({H, N}, at::TensorOptions().dtype(at::kLong));
    at::Tensor pr_t = probes.to(at::kInt).contiguous();
    const int32_t* pr_all = pr_t.data_ptr<int32_t>();
    int64_t* ns_all = n_scored.data_ptr<int64_t>();
    int64_t max_bucket = 0;
    for (const auto& bk : store.buckets) max_bucket = std::max(max_bucket, bk.n());
    at::Tensor add_buf = at::empty({std::max<int64_t>(1, max_bucket)}, q.options());   // [max bucket] kadd rows
    std::vector<int64_t> count(static_cast<size_t>(nbk + 1)), qlist;
    for (int64_t h = 0; h < H; ++h) {
        const int32_t* pr = pr_all + h * N * P;
        int64_t* ns = ns_all + h * N;
        // (query, probe) pairs grouped by bucket (counting sort; empty buckets dropped).
        std::fill(count.begin(), count.end(), 0);
        for (int64_t i = 0; i < N; ++i)
            for (int64_t j = 0; j < P; ++j) {
                const int64_t b = pr[i * P + j];
                const int64_t nk = store.at(h, b).n();
                if (nk > 0) {
                    ++count[static_cast<size_t>(b + 1)];
                    ns[i] += nk;
                }
            }
        for (int64_t b = 0; b < nbk; ++b) count[static_cast<size_t>(b + 1)] += count[static_cast<size_t>(b)];
        const int64_t M = count[static_cast<size_t>(nbk)];
        if (M == 0) continue;
        qlist.assign(static_cast<size_t>(M), 0);
        {
            std::vector<int64_t> pos(count.begin(), count.end() - 1);
            for (int64_t i = 0; i < N; ++i)
                for (int64_t j = 0; j < P; ++j) {
                    const int64_t b = pr[i * P + j];
                    if (store.at(h, b).n() > 0) qlist[static_cast<size_t>(pos[static_cast<size_t>(b)]++)] = i;
                }
        }
        at::Tensor qidx = at::tensor(qlist, at::TensorOptions().dtype(at::kLong));   // [M]
        at::Tensor qs = q[h].index_select(0, qidx);                                    // [M, D]
        at::Tensor pm = at::empty({M}, q.options()), pl = at::empty({M}, q.options());
        at::Tensor po = at::empty({M, D}, q.options());
        int64_t score_max = 1;
        for (int64_t b = 0; b < nbk; ++b)
            score_max = std::max(score_max, (count[static_cast<size_t>(b + 1)] - count[static_cast<size_t>(b)]) *
                                                store.at(h, b).n());
        at::Tensor score_buf = at::empty({score_max}, q.options());   // scores of the largest bucket block
        for (int64_t b = 0; b < nbk; ++b) {
            const int64_t r0 = count[static_cast<size_t>(b)], nr = count[static_cast<size_t>(b + 1)] - r0;
            if (nr == 0) continue;
            const BucketStore::Bucket& bk = store.at(h, b);
            const int64_t nk = bk.n();
            at::Tensor ab = add_buf.narrow(0, 0, nk);
            if (dt == at::kDouble)
                gather_add(kadd_c.data_ptr<double>() + h * T, bk.ids, ab.data_ptr<double>());
            else
                gather_add(kadd_c.data_ptr<float>() + h * T, bk.ids, ab.data_ptr<float>());
            at::Tensor sb = score_buf.narrow(0, 0, nr * nk).view({nr, nk});   // [nr, nk], reused (no allocation)
            at::addmm_out(sb, ab.unsqueeze(0), qs.narrow(0, r0, nr), bk.k.narrow(0, 0, nk).t());
            if (dt == at::kDouble)
                score_bucket<double>(sb, pm.data_ptr<double>() + r0, pl.data_ptr<double>() + r0);
            else
                score_bucket<float>(sb, pm.data_ptr<float>() + r0, pl.data_ptr<float>() + r0);
            at::Tensor pob = po.narrow(0, r0, nr);
            at::mm_out(pob, sb, bk.v.narrow(0, 0, nk));
        }
        if (dt == at::kDouble)
            fold_pairs<double>(m[h], l[h], o[h], pm, pl, po, qlist);
        else
            fold_pairs<float>(m[h], l[h], o[h], pm, pl, po, qlist);
    }
    return {o.div_(l), n_scored};
}

at::Tensor attend_selected_cpu(const at::Tensor& q, const at::Tensor& ck, const at::Tensor& cv,
                               const at::Tensor& kadd, const std::vector<at::Tensor>& ids, const at::Tensor& k_cur,
                               const at::Tensor& v_cur) {
    const int64_t H = q.size(0), N = q.size(1), D = q.size(2);
    const auto dt = q.scalar_type();
    at::Tensor out = at::empty({H, N, D}, q.options());
    for (int64_t h = 0; h < H; ++h) {
        const at::Tensor& id = ids[static_cast<size_t>(h)];   // [N, k]
        const int64_t k = id.size(1);
        at::Tensor safe = id.clamp_min(0).reshape({-1});
        at::Tensor ks = ck[h].index_select(0, safe).to(dt).view({N, k, D});   // [N, k, D]
        at::Tensor vs = cv[h].index_select(0, safe).to(dt).view({N, k, D});
        at::Tensor sc = at::bmm(ks, q[h].unsqueeze(2)).squeeze(2) + kadd[h].index_select(0, safe).view({N, k});
        sc.masked_fill_(id.lt(0), -std::numeric_limits<double>::infinity());
        at::Tensor sf = q[h].mm(k_cur[h].t());                      // [N, N]
        at::Tensor p = at::softmax(at::cat({sc, sf}, 1), 1);        // [N, k + N]
        at::Tensor oh = at::bmm(p.narrow(1, 0, k).unsqueeze(1), vs).squeeze(1) + p.narrow(1, k, N).mm(v_cur[h]);
        out[h].copy_(oh);
    }
    return out;
}

at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask) {
    const auto dt = compute_dtype(q.scalar_type());
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    at::Tensor s = at::matmul(q.to(dt), k.to(dt).transpose(-1, -2)).mul_(scale);   // [B, H, N, P]
    if (mask.defined()) s.masked_fill_(mask.unsqueeze(2).logical_not(), -std::numeric_limits<double>::infinity());
    at::Tensor m = s.amax(-1, true);
    m.masked_fill_(m.isinf(), 0);   // rows with no key: exp(−inf) = 0 everywhere
    s.sub_(m).exp_();
    at::Tensor l = s.sum(-1, true);
    return at::matmul(s, v.to(dt)).div_(l.clamp_min(std::numeric_limits<float>::min()));
}

at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                           const at::Tensor& key_mask) {
    DC_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
             "dense_attention expects q, k, v [B, H, *, D], found " << q.sizes() << ", " << k.sizes() << ", "
                                                                     << v.sizes());
    DC_CHECK(k.size(0) == q.size(0) && k.size(1) == q.size(1) && k.size(3) == q.size(3) && v.sizes() == k.sizes(),
             "dense_attention expects k, v [" << q.size(0) << ", " << q.size(1) << ", T, " << q.size(3)
                                              << "], found " << k.sizes() << " and " << v.sizes());
    const auto dt = compute_dtype(q.scalar_type());
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    at::Tensor s = at::matmul(q.to(dt), k.to(dt).transpose(-1, -2)).mul_(scale);   // [B, H, N, T]
    if (bias.defined()) {
        DC_CHECK(bias.dim() == 3 && bias.size(0) == k.size(0) && bias.size(1) == k.size(1) && bias.size(2) == k.size(2),
                 "dense_attention expects bias [" << k.size(0) << ", " << k.size(1) << ", " << k.size(2)
                                                  << "], found " << bias.sizes());
        s.add_(bias.to(dt).unsqueeze(2));
    }
    at::Tensor mask;
    if (key_mask.defined()) {
        DC_CHECK(key_mask.dim() == 2 && key_mask.size(0) == k.size(0) && key_mask.size(1) == k.size(2),
                 "dense_attention expects key_mask [" << k.size(0) << ", " << k.size(2) << "] bool, found "
                                                      << key_mask.sizes());
        s.masked_fill_(key_mask.to(at::kBool).logical_not().view({k.size(0), 1, 1, k.size(2)}),
                       -std::numeric_limits<double>::infinity());
    }
    at::Tensor m = s.amax(-1, true);
    m.masked_fill_(m.isinf(), 0);
    s.sub_(m).exp_();
    at::Tensor l = s.sum(-1, true);
    return at::matmul(s, v.to(dt)).div_(l.clamp_min(std::numeric_limits<float>::min())).to(q.scalar_type());
}

std::vector<std::vector<int64_t>> recall_rows(int64_t n_heads, int64_t n_queries) {
    const int64_t total = n_heads * n_queries;
    const int64_t n = std::min<int64_t>(32, total);
    std::vector<std::vector<int64_t>> rows(static_cast<size_t>(n_heads));
    for (int64_t j = 0; j < n; ++j) {
        const int64_t r = j * total / n;
        rows[static_cast<size_t>(r / n_queries)].push_back(r % n_queries);
    }
    return rows;
}

at::Tensor index_tensor(const std::vector<int64_t>& values, const at::Device& device) {
    at::Tensor t = at::tensor(values, at::TensorOptions().dtype(at::kLong));
    if (!device.is_cuda()) return t.to(device);
    return t.pin_memory().to(device, at::kLong, /*non_blocking=*/true);
}

at::Tensor self_recall(const at::Tensor& q, const at::Tensor& ck, const at::Tensor& kadd, const at::Tensor& k_cur,
                       const std::vector<std::vector<int64_t>>& rows, const std::vector<at::Tensor>& attended) {
    at::Tensor sum = at::zeros({}, q.options().dtype(at::kDouble));
    int64_t n = 0;
    const auto dt = q.scalar_type();
    for (size_t h = 0; h < rows.size(); ++h) {
        if (rows[h].empty()) continue;
        const int64_t hh = static_cast<int64_t>(h);
        at::Tensor ri = index_tensor(rows[h], q.device());
        at::Tensor qr = q[hh].index_select(0, ri);                                             // [R, D]
        at::Tensor lc = at::addmm(kadd[hh].unsqueeze(0), qr, ck[hh].to(dt).t());               // [R, T]
        at::Tensor lf = qr.mm(k_cur[hh].t());                                                  // [R, N]
        at::Tensor lse = at::logsumexp(at::cat({lc, lf}, 1), {1}, true);                       // [R, 1]
        at::Tensor kept = (lc - lse).exp_().mul_(attended[h].to(dt)).sum(1) + (lf - lse).exp_().sum(1);   // [R]
        sum.add_(kept.sum().to(at::kDouble));
        n += static_cast<int64_t>(rows[h].size());
    }
    return n > 0 ? sum.div_(static_cast<double>(n)) : sum.fill_(1.0);
}

at::Tensor cross_recall(const at::Tensor& q, const at::Tensor& k, const at::Tensor& valid, const at::Tensor& kept) {
    const int64_t B = q.size(0), H = q.size(1), N = q.size(2);
    const int64_t total = B * H * N, n = std::min<int64_t>(32, total);
    const auto dt = compute_dtype(q.scalar_type());
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    std::vector<int64_t> bs, hs, is;   // the sampled rows: ≤ 32 evenly spaced (batch, head, query)
    for (int64_t j = 0; j < n; ++j) {
        const int64_t r = j * total / n;
        bs.push_back(r / (H * N));
        hs.push_back((r / N) % H);
        is.push_back(r % N);
    }
    at::Tensor bi = index_tensor(bs, q.device()), hi = index_tensor(hs, q.device()), ii = index_tensor(is, q.device());
    at::Tensor bh = bi * H + hi;                                                               // [n]
    at::Tensor qs = q.reshape({B * H, N, -1}).index({bh, ii}).to(dt);                          // [n, D]
    at::Tensor ks = k.reshape({B * H, k.size(2), -1}).index_select(0, bh).to(dt);              // [n, P, D]
    at::Tensor vb = valid.to(at::kBool).index_select(0, bi);                                   // [n, P]
    at::Tensor s = at::bmm(ks, qs.unsqueeze(2)).squeeze(2).mul_(scale);                        // [n, P]
    s.masked_fill_(vb.logical_not(), -std::numeric_limits<double>::infinity());
    at::Tensor used = vb.any(1);                                                               // [n]
    at::Tensor p = at::softmax(s.masked_fill(used.logical_not().unsqueeze(1), 0), 1);          // [n, P]
    at::Tensor kr = kept.reshape({B * H, -1}).index_select(0, bh).to(dt);                      // [n, P]
    at::Tensor per_row = p.mul(kr).sum(1).to(at::kDouble).mul(used.to(at::kDouble));          // [n]
    at::Tensor n_used = used.sum().to(at::kDouble);
    return at::where(n_used > 0, per_row.sum() / n_used.clamp_min(1), at::ones({}, n_used.options()));
}

}  // namespace dc
