// KvCache: per-layer storage of committed frames, exact byte accounting, LSH codes kept in sync.
#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>

#include "attention/attention_impl.h"
#include "common/common.h"

namespace dc {

namespace {

int64_t live_entry_bytes(int64_t h, int64_t d, at::ScalarType dt) {
    // keys + values (dtype) + bias (float32 per head) + frame (int64) + group size (int32)
    return 2 * h * d * static_cast<int64_t>(c10::elementSize(dt)) + 4 * h + 8 + 4;
}

}  // namespace

int64_t BucketLayout::bytes() const {
    int64_t b = 0;
    for (const at::Tensor* t : {&perm, &offsets_t})
        if (t->defined()) b += t->numel() * static_cast<int64_t>(t->element_size());
    return b;
}

KvCache::Impl::Impl(int64_t h, int64_t d, at::ScalarType dt, at::Device dev)
    : n_heads(h), head_dim(d), dtype(dt), device(dev) {}

void KvCache::Impl::reserve(int64_t need) {
    if (need <= capacity) return;
    // Doubling (amortised O(1) per token); the CUDA kernels read the live views with their head stride in place.
    int64_t cap = std::max<int64_t>({need, 2 * capacity, 256});
    auto fo = at::TensorOptions().device(device);
    at::Tensor nk = at::empty({1, n_heads, cap, head_dim}, fo.dtype(dtype));
    at::Tensor nv = at::empty({1, n_heads, cap, head_dim}, fo.dtype(dtype));
    at::Tensor nb = at::zeros({1, n_heads, cap}, fo.dtype(at::kFloat));
    at::Tensor nf = at::zeros({cap}, fo.dtype(at::kLong));
    at::Tensor ng = at::ones({cap}, fo.dtype(at::kInt));
    at::Tensor nc;
    if (code_tag != 0) nc = at::zeros({1, n_heads, cap}, fo.dtype(at::kInt));
    if (size > 0) {
        nk.narrow(2, 0, size).copy_(k.narrow(2, 0, size));
        nv.narrow(2, 0, size).copy_(v.narrow(2, 0, size));
        nb.narrow(2, 0, size).copy_(bias.narrow(2, 0, size));
        nf.narrow(0, 0, size).copy_(frames.narrow(0, 0, size));
        ng.narrow(0, 0, size).copy_(group.narrow(0, 0, size));
        if (code_tag != 0) nc.narrow(2, 0, size).copy_(codes.narrow(2, 0, size));
    }
    k = nk;
    v = nv;
    bias = nb;
    frames = nf;
    group = ng;
    codes = nc;
    capacity = cap;
}

void KvCache::Impl::touched() {
    ++version;
    layout.reset();
    derived.clear();
}

void KvCache::Impl::adopt_appended(int64_t n, int64_t frame) {
    DC_CHECK(n >= 0 && size + n <= capacity, "KvCache: " << n << " rows written past the capacity " << capacity);
    if (n == 0) return;
    host_frames.insert(host_frames.end(), static_cast<size_t>(n), frame);
    host_group.insert(host_group.end(), static_cast<size_t>(n), 1);
    frame_count[frame] += n;
    size += n;
    log_written_range(frame, size - n, size);
    touched();
}

void KvCache::Impl::log_written(int64_t frame, const int64_t* rows, int64_t n) {
    if (frame < write_log_from || n <= 0) return;
    std::vector<int64_t>& w = write_log[frame];
    w.insert(w.end(), rows, rows + n);
    while (static_cast<int64_t>(write_log.size()) > kWriteLogFrames) {   // drop the oldest frame's rows
        write_log_from = std::max(write_log_from, write_log.begin()->first + 1);
        write_log.erase(write_log.begin());
    }
}

void KvCache::Impl::log_written_range(int64_t frame, int64_t begin, int64_t end) {
    std::vector<int64_t> rows(static_cast<size_t>(std::max<int64_t>(0, end - begin)));
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = begin + static_cast<int64_t>(i);
    log_written(frame, rows.data(), static_cast<int64_t>(rows.size()));
}

void KvCache::Impl::restart_write_log(int64_t from_frame) {
    write_log.clear();
    write_log_from = from_frame;
}

bool KvCache::Impl::rows_since(int64_t lo, std::vector<int64_t>& out) const {
    out.clear();
    if (lo < write_log_from) return false;
    for (auto it = write_log.lower_bound(lo); it != write_log.end(); ++it)
        for (int64_t t : it->second)
            if (host_frames[static_cast<size_t>(t)] >= lo) out.push_back(t);   // not moved to an older frame
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return true;
}

void KvCache::Impl::recompute_codes(int64_t begin, int64_t end) {
    if (code_tag == 0 || end <= begin) return;
    codes.narrow(2, begin, end - begin).copy_(lsh_codes(k.narrow(2, begin, end - begin), code_planes));
}

KvCache::KvCache(int64_t n_heads, int64_t head_dim, at::ScalarType dtype, at::Device device) {
    DC_CHECK(n_heads >= 1 && head_dim >= 1,
             "KvCache expects n_heads ≥ 1 and head_dim ≥ 1, found " << n_heads << " and " << head_dim);
    DC_CHECK(at::isFloatingType(dtype), "KvCache expects a floating dtype, found " << dtype);
    // A device without an index ("cuda") means the current one: resolve it so device checks compare equal.
    const at::Device dev =
        device.is_cpu() ? device : at::empty({0}, at::TensorOptions().device(device)).device();
    m_impl = std::make_unique<Impl>(n_heads, head_dim, dtype, dev);
}
KvCache::~KvCache() = default;
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;

int64_t KvCache::n_heads() const { return m_impl->n_heads; }
int64_t KvCache::head_dim() const { return m_impl->head_dim; }
at::ScalarType KvCache::dtype() const { return m_impl->dtype; }
at::Device KvCache::device() const { return m_impl->device; }
int64_t KvCache::size() const { return m_impl->size; }
int64_t KvCache::version() const { return m_impl->version; }

std::vector<int64_t> KvCache::frame_ids() const {
    std::vector<int64_t> ids;
    ids.reserve(m_impl->frame_count.size());
    for (const auto& kv : m_impl->frame_count) ids.push_back(kv.first);
    return ids;
}
int64_t KvCache::n_frames() const { return static_cast<int64_t>(m_impl->frame_count.size()); }

at::Tensor KvCache::keys() const {
    const Impl& m = *m_impl;
    if (m.capacity == 0)
        return at::empty({1, m.n_heads, 0, m.head_dim}, at::TensorOptions().dtype(m.dtype).device(m.device));
    return m.k.narrow(2, 0, m.size);
}
at::Tensor KvCache::values() const {
    const Impl& m = *m_impl;
    if (m.capacity == 0)
        return at::empty({1, m.n_heads, 0, m.head_dim}, at::TensorOptions().dtype(m.dtype).device(m.device));
    return m.v.narrow(2, 0, m.size);
}
at::Tensor KvCache::bias() const {
    const Impl& m = *m_impl;
    if (m.capacity == 0) return at::empty({1, m.n_heads, 0}, at::TensorOptions().dtype(at::kFloat).device(m.device));
    return m.bias.narrow(2, 0, m.size);
}
at::Tensor KvCache::frames() const {
    const Impl& m = *m_impl;
    if (m.capacity == 0) return at::empty({0}, at::TensorOptions().dtype(at::kLong).device(m.device));
    return m.frames.narrow(0, 0, m.size);
}
at::Tensor KvCache::group_sizes() const {
    const Impl& m = *m_impl;
    if (m.capacity == 0) return at::empty({0}, at::TensorOptions().dtype(at::kInt).device(m.device));
    return m.group.narrow(0, 0, m.size);
}

namespace {

void check_kv(const CacheImpl& m, const at::Tensor& k, const at::Tensor& v, const char* what) {
    DC_CHECK(k.defined() && v.defined(), "KvCache::" << what << " expects defined k and v");
    DC_CHECK(k.dim() == 4 && k.size(0) == 1 && k.size(1) == m.n_heads && k.size(3) == m.head_dim,
             "KvCache::" << what << " expects k of shape [1, " << m.n_heads << ", N, " << m.head_dim
                         << "], found " << k.sizes());
    DC_CHECK(v.sizes() == k.sizes(),
             "KvCache::" << what << " expects v shaped like k " << k.sizes() << ", found " << v.sizes());
    DC_CHECK(k.device() == m.device && v.device() == m.device,
             "KvCache::" << what << " expects tensors on " << m.device << ", found " << k.device() << " and "
                         << v.device());
}

}  // namespace

void KvCache::append(const at::Tensor& k, const at::Tensor& v, int64_t frame) {
    RECORD_USER_SCOPE("dc::KvCache::append");
    Impl& m = *m_impl;
    check_kv(m, k, v, "append");
    const int64_t n = k.size(2);
    if (n == 0) return;
    m.reserve(m.size + n);
    m.k.narrow(2, m.size, n).copy_(k.detach());
    m.v.narrow(2, m.size, n).copy_(v.detach());
    m.bias.narrow(2, m.size, n).zero_();
    m.frames.narrow(0, m.size, n).fill_(frame);
    m.group.narrow(0, m.size, n).fill_(1);
    m.host_frames.insert(m.host_frames.end(), static_cast<size_t>(n), frame);
    m.host_group.insert(m.host_group.end(), static_cast<size_t>(n), 1);
    m.frame_count[frame] += n;
    m.size += n;
    m.log_written_range(frame, m.size - n, m.size);
    m.recompute_codes(m.size - n, m.size);
    if (m.store) bucket_store_append(*m.store, m, m.size - n, m.size);
    m.touched();
}

void KvCache::update(const at::Tensor& idx, const at::Tensor& k, const at::Tensor& v, int64_t frame,
                     const at::Tensor& group_size) {
    RECORD_USER_SCOPE("dc::KvCache::update");
    Impl& m = *m_impl;
    check_kv(m, k, v, "update");
    DC_CHECK(idx.dim() == 1 && idx.scalar_type() == at::kLong,
             "KvCache::update expects idx [M] int64, found " << idx.sizes() << " " << idx.scalar_type());
    const int64_t n = idx.size(0);
    DC_CHECK(k.size(2) == n && group_size.dim() == 1 && group_size.size(0) == n,
             "KvCache::update expects k/v [1, H, " << n << ", D] and group_size [" << n << "], found "
                                                   << k.sizes() << " and " << group_size.sizes());
    if (n == 0) return;
    at::Tensor idx_h = idx.to(at::kCPU).contiguous();
    at::Tensor gs_h = group_size.to(at::kCPU).to(at::kLong).contiguous();
    const int64_t* ip = idx_h.data_ptr<int64_t>();
    const int64_t* gp = gs_h.data_ptr<int64_t>();
    std::vector<int64_t> sorted(ip, ip + n);
    std::sort(sorted.begin(), sorted.end());
    for (int64_t j = 0; j < n; ++j) {
        DC_CHECK(sorted[static_cast<size_t>(j)] >= 0 && sorted[static_cast<size_t>(j)] < m.size,
                 "KvCache::update index " << sorted[static_cast<size_t>(j)] << " is outside [0, " << m.size << ")");
        DC_CHECK(j == 0 || sorted[static_cast<size_t>(j)] != sorted[static_cast<size_t>(j - 1)],
                 "KvCache::update expects distinct indices, found " << sorted[static_cast<size_t>(j)] << " twice");
        DC_CHECK(gp[j] >= 1 && gp[j] <= INT32_MAX, "KvCache::update group size must be ≥ 1, found " << gp[j]);
    }
    m.log_written(frame, ip, n);
    for (int64_t j = 0; j < n; ++j) {
        int64_t& f = m.host_frames[static_cast<size_t>(ip[j])];
        if (--m.frame_count[f] == 0) m.frame_count.erase(f);
        f = frame;
        ++m.frame_count[frame];
        m.host_group[static_cast<size_t>(ip[j])] = static_cast<int32_t>(gp[j]);
    }
    at::Tensor idx_d = idx.to(m.device);
    at::Tensor gs_d = group_size.to(m.device);
    m.k.index_copy_(2, idx_d, k.detach().to(m.dtype));
    m.v.index_copy_(2, idx_d, v.detach().to(m.dtype));
    m.bias.index_copy_(2, idx_d, gs_d.to(at::kFloat).log().view({1, 1, n}).expand({1, m.n_heads, n}).contiguous());
    m.frames.index_fill_(0, idx_d, frame);
    m.group.index_copy_(0, idx_d, gs_d.to(at::kInt));
    if (m.code_tag != 0)
        m.codes.index_copy_(2, idx_d, lsh_codes(k.detach().to(m.dtype), m.code_planes));
    if (m.store) bucket_store_update(*m.store, m, std::vector<int64_t>(ip, ip + n));
    m.touched();
}

void KvCache::compact(const at::Tensor& keep) {
    Impl& m = *m_impl;
    DC_CHECK(keep.dim() == 1 && keep.size(0) == m.size && keep.scalar_type() == at::kBool,
             "KvCache::compact expects keep [" << m.size << "] bool, found " << keep.sizes() << " "
                                               << keep.scalar_type());
    at::Tensor keep_h = keep.to(at::kCPU).contiguous();
    const bool* kp = keep_h.data_ptr<bool>();
    std::vector<int64_t> idx;
    idx.reserve(static_cast<size_t>(m.size));
    for (int64_t t = 0; t < m.size; ++t)
        if (kp[t]) idx.push_back(t);
    compact(idx);
}

void KvCache::compact(const std::vector<int64_t>& idx) {
    RECORD_USER_SCOPE("dc::KvCache::compact");
    Impl& m = *m_impl;
    const int64_t n = static_cast<int64_t>(idx.size());
    for (int64_t j = 0; j < n; ++j)
        DC_CHECK(idx[static_cast<size_t>(j)] >= 0 && idx[static_cast<size_t>(j)] < m.size &&
                     (j == 0 || idx[static_cast<size_t>(j)] > idx[static_cast<size_t>(j - 1)]),
                 "KvCache::compact expects ascending rows in [0, " << m.size << "), found "
                                                                   << idx[static_cast<size_t>(j)] << " at " << j);
    if (n == m.size) return;
    std::vector<int64_t> nf(static_cast<size_t>(n));
    std::vector<int32_t> ng(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
        nf[static_cast<size_t>(j)] = m.host_frames[static_cast<size_t>(idx[static_cast<size_t>(j)])];
        ng[static_cast<size_t>(j)] = m.host_group[static_cast<size_t>(idx[static_cast<size_t>(j)])];
    }
    at::Tensor it = at::tensor(idx, at::TensorOptions().dtype(at::kLong)).to(m.device);
    at::Tensor k = m.k.narrow(2, 0, m.size).index_select(2, it);
    at::Tensor v = m.v.narrow(2, 0, m.size).index_select(2, it);
    at::Tensor b = m.bias.narrow(2, 0, m.size).index_select(2, it);
    at::Tensor f = m.frames.narrow(0, 0, m.size).index_select(0, it);
    at::Tensor g = m.group.narrow(0, 0, m.size).index_select(0, it);
    at::Tensor c;
    if (m.code_tag != 0) c = m.codes.narrow(2, 0, m.size).index_select(2, it);
    // Release memory when most of the storage is unused (a window or budget keeps the cache small).
    const bool shrink = m.capacity > 1024 && n < m.capacity / 4;
    if (shrink) {
        m.size = 0;
        m.capacity = 0;
        m.k = m.v = m.bias = m.frames = m.group = m.codes = at::Tensor();
        m.reserve(std::max<int64_t>(n, 1));
    }
    m.k.narrow(2, 0, n).copy_(k);
    m.v.narrow(2, 0, n).copy_(v);
    m.bias.narrow(2, 0, n).copy_(b);
    m.frames.narrow(0, 0, n).copy_(f);
    m.group.narrow(0, 0, n).copy_(g);
    if (m.code_tag != 0) {
        if (!m.codes.defined()) m.codes = at::zeros({1, m.n_heads, m.capacity}, m.k.options().dtype(at::kInt));
        m.codes.narrow(2, 0, n).copy_(c);
    }
    m.size = n;
    m.frame_count.clear();
    for (int64_t fr : nf) ++m.frame_count[fr];
    m.host_frames = std::move(nf);
    m.host_group = std::move(ng);
    m.restart_write_log(m.frame_count.empty() ? 0 : m.frame_count.rbegin()->first + 1);
    if (m.store) bucket_store_compact(*m.store, idx);
    m.touched();
}

void KvCache::clear() {
    Impl& m = *m_impl;
    m.size = 0;
    m.host_frames.clear();
    m.host_group.clear();
    m.frame_count.clear();
    m.restart_write_log(0);
    m.store.reset();
    m.touched();
}

at::Tensor KvCache::key_codes(const at::Tensor& planes, uint64_t tag) const {
    Impl& m = *m_impl;
    DC_CHECK(tag != 0, "KvCache::key_codes expects a non-zero tag");
    DC_CHECK(planes.dim() == 3 && planes.size(0) == m.n_heads && planes.size(1) == m.head_dim,
             "KvCache::key_codes expects planes [" << m.n_heads << ", " << m.head_dim << ", bits], found "
                                                   << planes.sizes());
    if (m.code_tag != tag) {
        m.code_tag = tag;
        m.code_planes = planes.to(m.device, at::kFloat).contiguous();
        m.codes = at::zeros({1, m.n_heads, std::max<int64_t>(m.capacity, 1)},
                            at::TensorOptions().dtype(at::kInt).device(m.device));
        m.recompute_codes(0, m.size);
        m.layout.reset();
        m.store.reset();
    }
    return m.codes.narrow(2, 0, m.size);
}

int64_t KvCache::bytes() const { return m_impl->size * live_entry_bytes(m_impl->n_heads, m_impl->head_dim, m_impl->dtype); }
int64_t KvCache::capacity_bytes() const {
    return m_impl->capacity * live_entry_bytes(m_impl->n_heads, m_impl->head_dim, m_impl->dtype);
}
int64_t KvCache::index_bytes() const {
    const Impl& m = *m_impl;
    int64_t b = m.code_tag != 0 && m.codes.defined() ? m.codes.numel() * 4 : 0;
    if (m.layout) b += m.layout->bytes();
    if (m.store) b += m.store->bytes();
    return b;
}

}  // namespace dc
