// ANN indexes (exact / lsh / sq8; FAISS or torch) and LSH bucket codes with multi-probe.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

#include "attention/ann.h"
#include "common/common.h"

#ifdef DC_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexScalarQuantizer.h>
#endif
#ifdef DC_HAVE_CUDA
#include "attention/cuda/cuda_ops.h"
#endif

namespace dc {

// ---- LSH bucket codes -------------------------------------------------------------------------------------------

namespace {

uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Dot product summed in a fixed order (8 lanes, then a fixed tree): the same bits whatever the batch.
inline float dot_fixed(const float* a, const float* b, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; ++i) r += a[i] * b[i];
    return r;
}

void check_planes(const at::Tensor& x, const at::Tensor& planes, const char* what) {
    DC_CHECK(x.dim() == 4, what << " expects x [B, H, T, D], found " << x.sizes());
    DC_CHECK(planes.dim() == 3 && planes.size(0) == x.size(1) && planes.size(1) == x.size(3) &&
                 planes.size(2) >= 1 && planes.size(2) <= 16,
             what << " expects planes [" << x.size(1) << ", " << x.size(3) << ", bits ≤ 16], found "
                  << planes.sizes());
}

// Projections x·planes per row, fixed summation order. x [B, H, T, D] → [B, H, T, bits] float32 (CPU).
at::Tensor project_fixed(const at::Tensor& x, const at::Tensor& planes) {
    at::Tensor xf = x.to(at::kCPU, at::kFloat).contiguous();
    at::Tensor pt = planes.to(at::kCPU, at::kFloat).transpose(1, 2).contiguous();   // [H, bits, D]
    const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3), nb = planes.size(2);
    at::Tensor out = at::empty({B, H, T, nb}, at::TensorOptions().dtype(at::kFloat));
    const float* xp = xf.data_ptr<float>();
    const float* pp = pt.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, B * H * T, 2048, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            const int64_t h = (r / T) % H;
            for (int64_t b = 0; b < nb; ++b) op[r * nb + b] = dot_fixed(xp + r * D, pp + (h * nb + b) * D, D);
        }
    });
    return out;
}

}  // namespace

at::Tensor lsh_planes(int64_t n_heads, int64_t head_dim, int bits, uint64_t seed) {
    DC_CHECK(bits >= 1 && bits <= 16, "LSH bits must be in 1..16, found " << bits);
    DC_CHECK(n_heads >= 1 && head_dim >= 1, "lsh_planes expects positive sizes, found " << n_heads << "×" << head_dim);
    at::Tensor p = at::empty({n_heads, head_dim, bits}, at::TensorOptions().dtype(at::kFloat));
    float* d = p.data_ptr<float>();
    uint64_t s = seed ^ 0x4c53482d706c616eULL;   // "LSH-plan"
    const int64_t n = p.numel();
    for (int64_t i = 0; i < n; i += 2) {
        // Box–Muller from two 53-bit uniforms in (0, 1].
        double u1 = (static_cast<double>(splitmix64(s) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
        double u2 = static_cast<double>(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
        double r = std::sqrt(-2.0 * std::log(u1));
        d[i] = static_cast<float>(r * std::cos(2.0 * M_PI * u2));
        if (i + 1 < n) d[i + 1] = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
    }
    return p;
}

at::Tensor lsh_codes(const at::Tensor& x, const at::Tensor& planes) {
    check_planes(x, planes, "lsh_codes");
#ifdef DC_HAVE_CUDA
    if (x.is_cuda()) return dc::cuda::lsh_codes(x.contiguous(), planes.to(x.device(), at::kFloat).contiguous());
#endif
    at::Tensor proj = project_fixed(x, planes);   // [B, H, T, bits]
    const int64_t nb = planes.size(2);
    at::Tensor weights = at::pow(2, at::arange(nb, at::TensorOptions().dtype(at::kInt)));   // [bits]
    at::Tensor codes = (proj.gt(0).to(at::kInt) * weights).sum(-1).to(at::kInt);            // [B, H, T]
    return codes.to(x.device());
}

at::Tensor lsh_probe_codes(const at::Tensor& x, const at::Tensor& planes, int probes) {
    check_planes(x, planes, "lsh_probe_codes");
    DC_CHECK(probes >= 1, "LSH probes must be ≥ 1, found " << probes);
    const int nb = static_cast<int>(planes.size(2));
    const int64_t n_buckets = int64_t{1} << nb;
    const int64_t P = std::min<int64_t>(probes, n_buckets);
#ifdef DC_HAVE_CUDA
    if (x.is_cuda() && (P <= dc::cuda::kMaxLshProbes || P == n_buckets))   // on the GPU: no round trip to the host
        return dc::cuda::lsh_probe_codes(x.contiguous(), planes.to(x.device(), at::kFloat).contiguous(),
                                         static_cast<int>(P));
#endif
    at::Tensor proj = project_fixed(x, planes);   // [B, H, T, bits]
    const int64_t rows = proj.numel() / nb;
    at::Tensor out = at::empty({x.size(0), x.size(1), x.size(2), P}, at::TensorOptions().dtype(at::kInt));
    const float* pp = proj.data_ptr<float>();
    int32_t* op = out.data_ptr<int32_t>();
    at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
        struct Set {
            float cost;
            uint32_t mask;   // over confidence-sorted positions
            int max_pos;
            bool operator>(const Set& o) const { return cost != o.cost ? cost > o.cost : mask > o.mask; }
        };
        std::vector<int> order(static_cast<size_t>(nb));
        std::vector<float> cost(static_cast<size_t>(nb));
        for (int64_t r = begin; r < end; ++r) {
            const float* p = pp + r * nb;
            int32_t code = 0;
            for (int b = 0; b < nb; ++b) {
                if (p[b] > 0) code |= 1 << b;
                cost[static_cast<size_t>(b)] = std::fabs(p[b]);
                order[static_cast<size_t>(b)] = b;
            }
            int32_t* o = op + r * P;
            o[0] = code;
            if (P == n_buckets) {   // every bucket: own code first, then the rest in code order
                int64_t j = 1;
                for (int64_t c = 0; c < n_buckets; ++c)
                    if (c != code) o[j++] = static_cast<int32_t>(c);
                continue;
            }
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
                return cost[static_cast<size_t>(a)] < cost[static_cast<size_t>(b)];
            });
            auto c_at = [&](int pos) { return cost[static_cast<size_t>(order[static_cast<size_t>(pos)])]; };
            std::priority_queue<Set, std::vector<Set>, std::greater<Set>> heap;
            heap.push({c_at(0), 1u, 0});
            for (int64_t j = 1; j < P; ++j) {
                Set s = heap.top();
                heap.pop();
                int32_t flip = 0;
                for (int pos = 0; pos < nb; ++pos)
                    if (s.mask & (1u << pos)) flip |= 1 << order[static_cast<size_t>(pos)];
                o[j] = code ^ flip;
                if (s.max_pos + 1 < nb) {
                    const int nx = s.max_pos + 1;
                    heap.push({s.cost - c_at(s.max_pos) + c_at(nx), (s.mask & ~(1u << s.max_pos)) | (1u << nx), nx});
                    heap.push({s.cost + c_at(nx), s.mask | (1u << nx), nx});
                }
            }
        }
    });
    return out.to(x.device());
}

// ---- indexes ----------------------------------------------------------------------------------------------------

std::vector<std::string> ann_index_kinds() { return {"exact", "lsh", "sq8"}; }

bool ann_have_faiss() {
#ifdef DC_HAVE_FAISS
    return true;
#else
    return false;
#endif
}

namespace {

at::Tensor as_rows(const at::Tensor& x, int64_t dim, const char* what) {
    DC_CHECK(x.dim() == 2 && x.size(1) == dim, what << " expects [n, " << dim << "], found " << x.sizes());
    return x.detach().to(at::kCPU, at::kFloat).contiguous();
}

// Pads a (scores, ids) pair with (−inf, −1) up to k columns.
std::pair<at::Tensor, at::Tensor> pad_results(at::Tensor scores, at::Tensor ids, int64_t nq, int64_t k) {
    if (scores.size(1) == k) return {scores, ids};
    at::Tensor s = at::full({nq, k}, -std::numeric_limits<float>::infinity(), at::kFloat);
    at::Tensor i = at::full({nq, k}, -1, at::kLong);
    if (scores.size(1) > 0) {
        s.narrow(1, 0, scores.size(1)).copy_(scores);
        i.narrow(1, 0, ids.size(1)).copy_(ids);
    }
    return {s, i};
}

// Exact re-scoring of candidate ids [nq, c] (−1 = none) against stored floats x [n, d]: best k by inner product.
std::pair<at::Tensor, at::Tensor> rescore(const at::Tensor& q, const at::Tensor& x, const at::Tensor& cand, int64_t k) {
    const int64_t nq = q.size(0), c = cand.size(1);
    at::Tensor valid = cand.ge(0);
    at::Tensor safe = cand.clamp_min(0);
    at::Tensor xs = x.index_select(0, safe.reshape({-1})).view({nq, c, x.size(1)});    // [nq, c, d]
    at::Tensor sc = at::bmm(xs, q.unsqueeze(2)).squeeze(2);                              // [nq, c]
    sc.masked_fill_(valid.logical_not(), -std::numeric_limits<float>::infinity());
    const int64_t kk = std::min(k, c);
    auto top = sc.topk(kk, 1, true, true);
    at::Tensor ids = cand.gather(1, std::get<1>(top));
    ids.masked_fill_(std::get<0>(top).isneginf(), -1);
    return pad_results(std::get<0>(top), ids, nq, k);
}

class IndexBase : public AnnIndex {
public:
    IndexBase(std::string kind, int64_t dim, const AnnIndexParams& p) : m_kind(std::move(kind)), m_dim(dim), m_p(p) {}
    std::string kind() const override { return m_kind; }
    int64_t dim() const override { return m_dim; }
    int64_t size() const override { return m_n; }

protected:
    std::string m_kind;
    int64_t m_dim;
    AnnIndexParams m_p;
    int64_t m_n = 0;
};

// Float rows stored in chunks, concatenated on demand.
struct FloatStore {
    std::vector<at::Tensor> parts;
    at::Tensor all;
    void add(const at::Tensor& x) {
        parts.push_back(x);
        all = at::Tensor();
    }
    const at::Tensor& get(int64_t dim) {
        if (!all.defined()) {
            all = parts.empty() ? at::zeros({0, dim}, at::kFloat) : at::cat(parts, 0);   // dtype of the parts
            parts = {all};
        }
        return all;
    }
    void clear() { parts.clear(), all = at::Tensor(); }
    int64_t bytes() const {
        int64_t b = 0;
        for (const auto& t : parts) b += t.numel() * static_cast<int64_t>(t.element_size());
        return b;
    }
};

class TorchExact : public IndexBase {
public:
    using IndexBase::IndexBase;
    bool uses_faiss() const override { return false; }
    int64_t bytes() const override { return m_x.bytes(); }
    void add(const at::Tensor& x) override {
        at::Tensor r = as_rows(x, m_dim, "AnnIndex::add");
        m_x.add(r);
        m_n += r.size(0);
    }
    void reset() override { m_x.clear(), m_n = 0; }
    std::pair<at::Tensor, at::Tensor> search(const at::Tensor& q, int64_t k) override {
        at::Tensor qq = as_rows(q, m_dim, "AnnIndex::search");
        const at::Tensor& x = m_x.get(m_dim);
        const int64_t kk = std::min(k, m_n);
        if (kk == 0) return pad_results(at::zeros({qq.size(0), 0}), at::zeros({qq.size(0), 0}, at::kLong), qq.size(0), k);
        auto top = qq.mm(x.t()).topk(kk, 1, true, true);
        return pad_results(std::get<0>(top), std::get<1>(top), qq.size(0), k);
    }

private:
    FloatStore m_x;
};

class TorchLsh : public IndexBase {
public:
    TorchLsh(int64_t dim, const AnnIndexParams& p) : IndexBase("lsh", dim, p) {
        m_bits = p.lsh_bits > 0 ? p.lsh_bits : static_cast<int>(2 * dim);
        m_rerank = p.rerank >= 0 ? p.rerank : 16;
        // bits may exceed 16 here (a Hamming ranking, not a bucket code): draw a [dim, bits] matrix directly.
        m_planes = lsh_planes(1, dim * m_bits, 1, p.seed).view({dim, m_bits});
    }
    bool uses_faiss() const override { return false; }
    int64_t bytes() const override { return m_codes.bytes() + m_x.bytes(); }   // ±1 codes as float + floats
    void add(const at::Tensor& x) override {
        at::Tensor r = as_rows(x, m_dim, "AnnIndex::add");
        m_x.add(r);
        m_codes.add(signs(r));
        m_n += r.size(0);
    }
    void reset() override { m_x.clear(), m_codes.clear(), m_n = 0; }
    std::pair<at::Tensor, at::Tensor> search(const at::Tensor& q, int64_t k) override {
        at::Tensor qq = as_rows(q, m_dim, "AnnIndex::search");
        const int64_t nq = qq.size(0);
        const int64_t c = std::min(m_n, std::max<int64_t>(k, k * std::max(m_rerank, 1)));
        if (c == 0) return pad_results(at::zeros({nq, 0}), at::zeros({nq, 0}, at::kLong), nq, k);
        at::Tensor qs = signs(qq);
        at::Tensor agree = qs.mm(m_codes.get(m_bits).t());   // [nq, n] = bits − 2·Hamming
        at::Tensor cand = std::get<1>(agree.topk(c, 1, true, true));
        if (m_rerank == 0) {
            at::Tensor ids = cand.narrow(1, 0, std::min(k, c));
            at::Tensor x = m_x.get(m_dim);
            at::Tensor sc = at::bmm(x.index_select(0, ids.reshape({-1})).view({nq, ids.size(1), m_dim}),
                                    qq.unsqueeze(2)).squeeze(2);
            return pad_results(sc, ids, nq, k);
        }
        return rescore(qq, m_x.get(m_dim), cand, k);
    }

private:
    at::Tensor signs(const at::Tensor& x) const { return x.mm(m_planes).gt(0).to(at::kFloat).mul_(2).sub_(1); }   // ±1
    int m_bits = 0, m_rerank = 16;
    at::Tensor m_planes;   // [dim, bits]
    FloatStore m_x, m_codes;
};

class TorchSq8 : public IndexBase {
public:
    TorchSq8(int64_t dim, const AnnIndexParams& p) : IndexBase("sq8", dim, p) { m_rerank = p.rerank >= 0 ? p.rerank : 0; }
    bool uses_faiss() const override { return false; }
    int64_t bytes() const override {
        return m_codes.bytes() + m_pending.bytes() + (m_rerank > 0 ? m_x.bytes() : 0) + 8 * m_dim;
    }
    void add(const at::Tensor& x) override {
        at::Tensor r = as_rows(x, m_dim, "AnnIndex::add");
        if (m_rerank > 0) m_x.add(r);
        if (m_trained)
            m_codes.add(encode(r));
        else
            m_pending.add(r);
        m_n += r.size(0);
    }
    void reset() override { m_x.clear(), m_codes.clear(), m_pending.clear(), m_n = 0, m_trained = false; }
    std::pair<at::Tensor, at::Tensor> search(const at::Tensor& q, int64_t k) override {
        at::Tensor qq = as_rows(q, m_dim, "AnnIndex::search");
        const int64_t nq = qq.size(0);
        train_if_needed();
        if (m_n == 0) return pad_results(at::zeros({nq, 0}), at::zeros({nq, 0}, at::kLong), nq, k);
        // Decode (c + 0.5) / 255 · (max − min) + min, as FAISS's QT_8bit does.
        at::Tensor dec = (m_codes.get(m_dim).to(at::kFloat) + 0.5f) / 255.0f * m_vdiff + m_vmin;   // [n, d]
        const int64_t c = std::min(m_n, m_rerank > 0 ? k * m_rerank : k);
        auto top = qq.mm(dec.t()).topk(c, 1, true, true);
        if (m_rerank > 0) return rescore(qq, m_x.get(m_dim), std::get<1>(top), k);
        return pad_results(std::get<0>(top), std::get<1>(top), nq, k);
    }

private:
    void train_if_needed() {
        if (m_trained) return;
        const at::Tensor& x = m_pending.get(m_dim);
        if (x.size(0) == 0) return;
        m_vmin = std::get<0>(x.min(0));
        m_vdiff = (std::get<0>(x.max(0)) - m_vmin).clamp_min(1e-20f);
        m_trained = true;
        m_codes.add(encode(x));
        m_pending.clear();
    }
    at::Tensor encode(const at::Tensor& x) const {
        return ((x - m_vmin) / m_vdiff * 255.0f).floor().clamp(0, 255).to(at::kByte);   // levels 0..255
    }
    int m_rerank = 0;
    bool m_trained = false;
    at::Tensor m_vmin, m_vdiff;   // [d]
    FloatStore m_x, m_codes, m_pending;
};

#ifdef DC_HAVE_FAISS
using faiss_idx = faiss::Index::idx_t;

class FaissIndex : public IndexBase {
public:
    FaissIndex(const std::string& kind, int64_t dim, const AnnIndexParams& p) : IndexBase(kind, dim, p) {
        const int d = static_cast<int>(dim);
        if (kind == "exact") {
            m_index = std::make_unique<faiss::IndexFlatIP>(d);
            m_rerank = 0;
        } else if (kind == "lsh") {
            const int bits = p.lsh_bits > 0 ? p.lsh_bits : 2 * d;
            m_index = std::make_unique<faiss::IndexLSH>(d, bits, true, false);
            m_rerank = p.rerank >= 0 ? p.rerank : 16;
        } else {
            m_index = std::make_unique<faiss::IndexScalarQuantizer>(d, faiss::ScalarQuantizer::QT_8bit,
                                                                    faiss::METRIC_INNER_PRODUCT);
            m_rerank = p.rerank >= 0 ? p.rerank : 0;
        }
    }
    bool uses_faiss() const override { return true; }
    int64_t bytes() const override {
        return m_index->ntotal * static_cast<int64_t>(m_index->sa_code_size()) + m_pending.bytes() +
               (m_rerank > 0 ? m_x.bytes() : 0);
    }
    void add(const at::Tensor& x) override {
        at::Tensor r = as_rows(x, m_dim, "AnnIndex::add");
        if (m_rerank > 0) m_x.add(r);
        if (m_index->is_trained)
            m_index->add(r.size(0), r.data_ptr<float>());
        else
            m_pending.add(r);
        m_n += r.size(0);
    }
    void reset() override {
        m_index->reset();
        m_x.clear(), m_pending.clear(), m_n = 0;
    }
    std::pair<at::Tensor, at::Tensor> search(const at::Tensor& q, int64_t k) override {
        at::Tensor qq = as_rows(q, m_dim, "AnnIndex::search");
        const int64_t nq = qq.size(0);
        if (!m_index->is_trained) {
            const at::Tensor& x = m_pending.get(m_dim);
            if (x.size(0) == 0) return pad_results(at::zeros({nq, 0}), at::zeros({nq, 0}, at::kLong), nq, k);
            m_index->train(x.size(0), x.data_ptr<float>());
            m_index->add(x.size(0), x.data_ptr<float>());
            m_pending.clear();
        }
        const int64_t c = std::max<int64_t>(1, std::min(m_n, m_rerank > 0 ? k * m_rerank : k));
        if (m_n == 0) return pad_results(at::zeros({nq, 0}), at::zeros({nq, 0}, at::kLong), nq, k);
        at::Tensor dist = at::empty({nq, c}, at::kFloat);
        at::Tensor lab = at::empty({nq, c}, at::kLong);
        static_assert(sizeof(faiss_idx) == sizeof(int64_t), "FAISS ids are 64-bit");
        m_index->search(nq, qq.data_ptr<float>(), c, dist.data_ptr<float>(),
                        reinterpret_cast<faiss_idx*>(lab.data_ptr<int64_t>()));
        if (m_rerank > 0 || m_kind == "lsh") {
            // IndexLSH reports Hamming distances: re-score its candidates (with rerank 0, only the best k).
            at::Tensor cand = m_rerank > 0 ? lab : lab.narrow(1, 0, std::min(k, c));
            return rescore(qq, m_x.get(m_dim), cand, k);
        }
        dist.masked_fill_(lab.lt(0), -std::numeric_limits<float>::infinity());
        return pad_results(dist, lab, nq, k);
    }

private:
    std::unique_ptr<faiss::Index> m_index;
    int m_rerank = 0;
    FloatStore m_x, m_pending;
};
#endif

}  // namespace

std::unique_ptr<AnnIndex> make_ann_index(const std::string& kind, int64_t dim, const AnnIndexParams& params) {
    auto kinds = ann_index_kinds();
    DC_CHECK(std::find(kinds.begin(), kinds.end(), kind) != kinds.end(),
             "unknown ANN index \"" << kind << "\": expected one of exact, lsh, sq8");
    DC_CHECK(dim >= 1, "ANN index dimension must be ≥ 1, found " << dim);
    DC_CHECK(params.lsh_bits >= 0, "ANN lsh_bits must be ≥ 0 (0 = 2·dim), found " << params.lsh_bits);
#ifdef DC_HAVE_FAISS
    if (params.use_faiss) {
        AnnIndexParams p = params;
        if (kind == "lsh" && p.rerank == 0) p.rerank = 1;   // IndexLSH ranks by Hamming: re-score at least k
        return std::make_unique<FaissIndex>(kind, dim, p);
    }
#endif
    if (kind == "exact") return std::make_unique<TorchExact>(kind, dim, params);
    if (kind == "lsh") return std::make_unique<TorchLsh>(dim, params);
    return std::make_unique<TorchSq8>(dim, params);
}

}  // namespace dc
