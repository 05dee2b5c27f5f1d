// BucketStore: the CPU AnnSA layout (keys/values grouped by LSH bucket per head), maintained incrementally.
#include <ATen/ATen.h>

#include <cstring>

#include "attention/attention_impl.h"
#include "common/common.h"

namespace dc {

int64_t BucketStore::bytes() const {
    int64_t b = 0;
    for (const auto& bk : buckets) {
        if (bk.k.defined()) b += (bk.k.numel() + bk.v.numel()) * static_cast<int64_t>(bk.k.element_size());
        b += static_cast<int64_t>(bk.ids.capacity() * sizeof(int64_t));
    }
    for (size_t h = 0; h < bucket_of.size(); ++h)
        b += static_cast<int64_t>(bucket_of[h].size() * sizeof(int32_t) + slot_of[h].size() * sizeof(int64_t));
    return b;
}

namespace {

char* row_ptr(const at::Tensor& t, int64_t row, size_t row_bytes) {
    return static_cast<char*>(t.data_ptr()) + static_cast<size_t>(row) * row_bytes;
}

void push_row(BucketStore& s, BucketStore::Bucket& bk, const char* krow, const char* vrow, int64_t id,
              size_t row_bytes) {
    const int64_t n = bk.n();
    const int64_t cap = bk.k.defined() ? bk.k.size(0) : 0;
    if (n == cap) {
        const int64_t nc = std::max<int64_t>(16, 2 * cap);
        at::Tensor nk = at::empty({nc, s.head_dim}, at::TensorOptions().dtype(s.dt));
        at::Tensor nv = at::empty({nc, s.head_dim}, at::TensorOptions().dtype(s.dt));
        if (n > 0) {
            std::memcpy(nk.data_ptr(), bk.k.data_ptr(), static_cast<size_t>(n) * row_bytes);
            std::memcpy(nv.data_ptr(), bk.v.data_ptr(), static_cast<size_t>(n) * row_bytes);
        }
        bk.k = nk;
        bk.v = nv;
    }
    std::memcpy(row_ptr(bk.k, n, row_bytes), krow, row_bytes);
    std::memcpy(row_ptr(bk.v, n, row_bytes), vrow, row_bytes);
    bk.ids.push_back(id);
}

// Moves the bucket's last row into `slot` (swap-remove); returns the id that moved there (or −1).
int64_t remove_row(BucketStore::Bucket& bk, int64_t slot, size_t row_bytes) {
    const int64_t last = bk.n() - 1;
    int64_t moved = -1;
    if (slot != last) {
        std::memcpy(row_ptr(bk.k, slot, row_bytes), row_ptr(bk.k, last, row_bytes), row_bytes);
        std::memcpy(row_ptr(bk.v, slot, row_bytes), row_ptr(bk.v, last, row_bytes), row_bytes);
        moved = bk.ids[static_cast<size_t>(last)];
        bk.ids[static_cast<size_t>(slot)] = moved;
    }
    bk.ids.pop_back();
    return moved;
}

size_t row_bytes_of(const BucketStore& s) { return static_cast<size_t>(s.head_dim) * c10::elementSize(s.dt); }

}  // namespace

std::shared_ptr<BucketStore> build_bucket_store(const CacheImpl& m, int bits, at::ScalarType dt) {
    DC_CHECK(m.code_tag != 0, "internal: bucket store needs LSH codes");
    auto s = std::make_shared<BucketStore>();
    s->tag = m.code_tag;
    s->bits = bits;
    s->dt = dt;
    s->n_heads = m.n_heads;
    s->head_dim = m.head_dim;
    s->buckets.resize(static_cast<size_t>(m.n_heads << bits));
    s->bucket_of.assign(static_cast<size_t>(m.n_heads), {});
    s->slot_of.assign(static_cast<size_t>(m.n_heads), {});
    if (m.size > 0) {   // size every bucket once (+25% headroom) instead of growing row by row
        at::Tensor cc = m.codes.narrow(2, 0, m.size)[0].contiguous();   // [H, T] int32
        const int32_t* cp = cc.data_ptr<int32_t>();
        std::vector<int64_t> count(s->buckets.size(), 0);
        for (int64_t h = 0; h < m.n_heads; ++h)
            for (int64_t t = 0; t < m.size; ++t) ++count[static_cast<size_t>((h << bits) + cp[h * m.size + t])];
        for (size_t i = 0; i < count.size(); ++i) {
            if (count[i] == 0) continue;
            const int64_t cap = std::max<int64_t>(16, count[i] + count[i] / 4);
            s->buckets[i].k = at::empty({cap, m.head_dim}, at::TensorOptions().dtype(dt));
            s->buckets[i].v = at::empty({cap, m.head_dim}, at::TensorOptions().dtype(dt));
            s->buckets[i].ids.reserve(static_cast<size_t>(cap));
        }
    }
    bucket_store_append(*s, m, 0, m.size);
    return s;
}

void bucket_store_append(BucketStore& s, const CacheImpl& m, int64_t begin, int64_t end) {
    const int64_t n = end - begin;
    if (n <= 0) return;
    const size_t rb = row_bytes_of(s);
    at::Tensor kk = m.k.narrow(2, begin, n)[0].to(s.dt).contiguous();    // [H, n, D]
    at::Tensor vv = m.v.narrow(2, begin, n)[0].to(s.dt).contiguous();    // [H, n, D]
    at::Tensor cc = m.codes.narrow(2, begin, n)[0].contiguous();         // [H, n] int32
    const int32_t* cp = cc.data_ptr<int32_t>();
    for (int64_t h = 0; h < s.n_heads; ++h) {
        auto& bo = s.bucket_of[static_cast<size_t>(h)];
        auto& so = s.slot_of[static_cast<size_t>(h)];
        DC_CHECK(static_cast<int64_t>(bo.size()) == begin, "internal: bucket store out of sync (" << bo.size()
                                                                                                  << " vs " << begin << ")");
        bo.resize(static_cast<size_t>(end));
        so.resize(static_cast<size_t>(end));
        for (int64_t j = 0; j < n; ++j) {
            const int32_t b = cp[h * n + j];
            auto& bk = s.at(h, b);
            so[static_cast<size_t>(begin + j)] = bk.n();
            bo[static_cast<size_t>(begin + j)] = b;
            push_row(s, bk, row_ptr(kk, h * n + j, rb), row_ptr(vv, h * n + j, rb), begin + j, rb);
        }
    }
}

void bucket_store_update(BucketStore& s, const CacheImpl& m, const std::vector<int64_t>& idx) {
    const int64_t n = static_cast<int64_t>(idx.size());
    if (n == 0) return;
    const size_t rb = row_bytes_of(s);
    at::Tensor it = at::tensor(idx, at::TensorOptions().dtype(at::kLong));
    at::Tensor kk = m.k.narrow(2, 0, m.size).index_select(2, it)[0].to(s.dt).contiguous();   // [H, n, D]
    at::Tensor vv = m.v.narrow(2, 0, m.size).index_select(2, it)[0].to(s.dt).contiguous();
    at::Tensor cc = m.codes.narrow(2, 0, m.size).index_select(2, it)[0].contiguous();        // [H, n]
    const int32_t* cp = cc.data_ptr<int32_t>();
    for (int64_t h = 0; h < s.n_heads; ++h) {
        auto& bo = s.bucket_of[static_cast<size_t>(h)];
        auto& so = s.slot_of[static_cast<size_t>(h)];
        for (int64_t j = 0; j < n; ++j) {
            const size_t t = static_cast<size_t>(idx[static_cast<size_t>(j)]);
            const int32_t b_new = cp[h * n + j];
            if (bo[t] == b_new) {   // same bucket: overwrite the row in place
                std::memcpy(row_ptr(s.at(h, b_new).k, so[t], rb), row_ptr(kk, h * n + j, rb), rb);
                std::memcpy(row_ptr(s.at(h, b_new).v, so[t], rb), row_ptr(vv, h * n + j, rb), rb);
                continue;
            }
            const int64_t moved = remove_row(s.at(h, bo[t]), so[t], rb);
            if (moved >= 0) so[static_cast<size_t>(moved)] = so[t];
            auto& bk = s.at(h, b_new);
            so[t] = bk.n();
            bo[t] = b_new;
            push_row(s, bk, row_ptr(kk, h * n + j, rb), row_ptr(vv, h * n + j, rb), static_cast<int64_t>(t), rb);
        }
    }
}

void bucket_store_compact(BucketStore& s, const std::vector<int64_t>& kept) {
    const size_t rb = row_bytes_of(s);
    const size_t old_t = s.bucket_of.empty() ? 0 : s.bucket_of[0].size();
    std::vector<int64_t> remap(old_t, -1);
    for (size_t j = 0; j < kept.size(); ++j) remap[static_cast<size_t>(kept[j])] = static_cast<int64_t>(j);
    const int64_t nbk = int64_t{1} << s.bits;
    for (int64_t h = 0; h < s.n_heads; ++h) {
        auto& bo = s.bucket_of[static_cast<size_t>(h)];
        auto& so = s.slot_of[static_cast<size_t>(h)];
        bo.assign(kept.size(), 0);
        so.assign(kept.size(), 0);
        for (int64_t b = 0; b < nbk; ++b) {
            auto& bk = s.at(h, b);
            int64_t i = 0;
            while (i < bk.n()) {
                const int64_t nid = remap[static_cast<size_t>(bk.ids[static_cast<size_t>(i)])];
                if (nid < 0) {
                    remove_row(bk, i, rb);   // the moved row (old id) is examined next at the same slot
                    continue;
                }
                bk.ids[static_cast<size_t>(i)] = nid;
                bo[static_cast<size_t>(nid)] = static_cast<int32_t>(b);
                so[static_cast<size_t>(nid)] = i;
                ++i;
            }
        }
    }
}

}  // namespace dc
