// ANN indexes (exact / lsh / sq8, FAISS and the torch versions) and LSH bucket codes.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <set>

#include "attention/ann.h"

namespace {

// Fraction of queries whose top-1 id equals the exact top-1.
double recall_at_1(const at::Tensor& ids, const at::Tensor& exact_ids) {
    return ids.select(1, 0).eq(exact_ids.select(1, 0)).to(at::kDouble).mean().item<double>();
}

}  // namespace

TEST_CASE("ANN indexes find the inner-product top-1 above their stated recall floors", "[attention]") {
    // 4000 keys of dim 384 (the TempCache match shape: 6 heads × 64), 256 queries. Two query sets:
    // near duplicates (a key + 30% noise: the TempCache case) and plain random queries (hard for sign LSH).
    at::manual_seed(5);
    const int64_t n = 4000, d = 384, nq = 256;
    at::Tensor x = at::randn({n, d});
    at::Tensor near = x.narrow(0, 0, nq) + 0.3 * at::randn({nq, d});
    at::Tensor rnd = at::randn({nq, d});
    at::Tensor ex_near = std::get<1>(near.mm(x.t()).topk(5, 1));
    at::Tensor ex_rnd = std::get<1>(rnd.mm(x.t()).topk(5, 1));
    for (bool faiss : {true, false}) {
        if (faiss && !dc::ann_have_faiss()) continue;
        for (const std::string& kind : dc::ann_index_kinds()) {
            DYNAMIC_SECTION(kind << (faiss ? " faiss" : " torch")) {
                dc::AnnIndexParams p;
                p.use_faiss = faiss;
                auto index = dc::make_ann_index(kind, d, p);
                CHECK(index->uses_faiss() == faiss);
                CHECK(index->kind() == kind);
                index->add(x.narrow(0, 0, 1000));   // added in two parts
                index->add(x.narrow(0, 1000, n - 1000));
                CHECK(index->size() == n);
                CHECK(index->bytes() > 0);
                auto res = index->search(near, 5);
                CHECK(res.first.sizes() == at::IntArrayRef({nq, 5}));
                CHECK(res.second.sizes() == at::IntArrayRef({nq, 5}));
                // Scores are sorted best first.
                CHECK(res.first.select(1, 0).ge(res.first.select(1, 4)).all().item<bool>());
                const double r_near = recall_at_1(res.second, ex_near);
                const double r_rnd = recall_at_1(index->search(rnd, 5).second, ex_rnd);
                if (kind == "exact") {
                    CHECK(r_near == 1.0);
                    CHECK(r_rnd == 1.0);
                } else if (kind == "sq8") {   // 8-bit per dimension: ~1% score error
                    CHECK(r_near >= 0.99);
                    CHECK(r_rnd >= 0.7);
                } else {                      // 768 sign bits, best 16 re-scored exactly
                    CHECK(r_near >= 0.99);
                    CHECK(r_rnd >= 0.3);
                }
                // More results than stored vectors: padded with id −1.
                auto small = dc::make_ann_index(kind, d, p);
                small->add(x.narrow(0, 0, 3));
                auto pad = small->search(near.narrow(0, 0, 2), 5);
                CHECK(pad.second.select(1, 4).eq(-1).all().item<bool>());
                CHECK(pad.second.select(1, 0).ge(0).all().item<bool>());
            }
        }
    }
    CHECK_THROWS_WITH(dc::make_ann_index("ivf", 8), Catch::Contains("expected one of exact, lsh, sq8"));
}

TEST_CASE("FAISS and the torch version of the exact index agree", "[attention]") {
    if (!dc::ann_have_faiss()) return;
    at::manual_seed(2);
    at::Tensor x = at::randn({500, 32}), q = at::randn({40, 32});
    dc::AnnIndexParams pf, pt;
    pt.use_faiss = false;
    auto a = dc::make_ann_index("exact", 32, pf), b = dc::make_ann_index("exact", 32, pt);
    a->add(x);
    b->add(x);
    auto ra = a->search(q, 3), rb = b->search(q, 3);
    CHECK(at::equal(ra.second, rb.second));
    CHECK(at::allclose(ra.first, rb.first, 1e-4, 1e-4));
}

TEST_CASE("LSH codes: deterministic planes, row-independent codes, multi-probe order", "[attention]") {
    at::Tensor p1 = dc::lsh_planes(3, 16, 6, 99), p2 = dc::lsh_planes(3, 16, 6, 99);
    CHECK(at::equal(p1, p2));
    CHECK(!at::equal(p1, dc::lsh_planes(3, 16, 6, 100)));
    CHECK(p1.sizes() == at::IntArrayRef({3, 16, 6}));
    CHECK(std::abs(p1.mean().item<double>()) < 0.2);   // N(0, 1) entries
    CHECK(p1.std().item<double>() == Approx(1.0).margin(0.15));
    at::Tensor x = at::randn({1, 3, 50, 16});
    at::Tensor codes = dc::lsh_codes(x, p1);
    CHECK(codes.sizes() == at::IntArrayRef({1, 3, 50}));
    CHECK(codes.scalar_type() == at::kInt);
    CHECK(codes.min().item<int>() >= 0);
    CHECK(codes.max().item<int>() < 64);
    // The same key hashed alone or in a batch gets the same code.
    CHECK(at::equal(dc::lsh_codes(x.narrow(2, 17, 1), p1), codes.narrow(2, 17, 1)));
    // Code bits are the signs of the projections.
    at::Tensor proj = at::einsum("bhtd,hdk->bhtk", {x, p1});
    at::Tensor expect = (proj.gt(0).to(at::kInt) * at::pow(2, at::arange(6, at::kInt))).sum(-1);
    CHECK(at::equal(codes, expect.to(at::kInt)));
    // Multi-probe: own code first, then the least confident bit flipped; all distinct; all buckets when P ≥ 2^bits.
    at::Tensor pr = dc::lsh_probe_codes(x, p1, 3);
    CHECK(at::equal(pr.select(3, 0), codes));
    at::Tensor least = proj.abs().argmin(-1).to(at::kInt);   // [1, 3, 50]
    CHECK(at::equal(pr.select(3, 1), codes.bitwise_xor(at::pow(2, least).to(at::kInt))));
    at::Tensor all = dc::lsh_probe_codes(x, p1, 100);
    CHECK(all.size(3) == 64);
    for (int64_t t = 0; t < 50; t += 7) {
        auto row = all[0][1][t].contiguous();
        std::set<int> s(row.data_ptr<int>(), row.data_ptr<int>() + 64);
        CHECK(s.size() == 64);
    }
    CHECK_THROWS_WITH(dc::lsh_planes(2, 4, 0, 1), Catch::Contains("1..16, found 0"));
    CHECK_THROWS_WITH(dc::lsh_planes(2, 4, 17, 1), Catch::Contains("1..16, found 17"));
}
