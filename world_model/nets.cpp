// world_model/nets.cpp — parameter store, autoencoder, prompt encoder and causal DiT (see model_impl.h).
#include "world_model/model_impl.h"

#include <ATen/ATen.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cmath>
#include <utility>

#include "common/common.h"

namespace dc::wm {

namespace {

at::Tensor init_normal(const std::vector<int64_t>& shape, double std) {
    return at::randn(shape, at::kFloat) * std;
}

ParamStore::Init normal_fan_in(int64_t fan_in, double gain = 1.0) {
    const double std = gain / std::sqrt(static_cast<double>(fan_in));
    return [std](const std::vector<int64_t>& s) { return init_normal(s, std); };
}
ParamStore::Init zeros() {
    return [](const std::vector<int64_t>& s) { return at::zeros(s, at::kFloat); };
}
ParamStore::Init ones() {
    return [](const std::vector<int64_t>& s) { return at::ones(s, at::kFloat); };
}

void declare_linear(ParamStore& ps, const std::string& p, int64_t out, int64_t in, bool bias = true,
                    bool zero = false) {
    ps.declare(p + ".w", {out, in}, zero ? zeros() : normal_fan_in(in), true);
    if (bias) ps.declare(p + ".b", {out}, zeros(), false);
}

void declare_conv(ParamStore& ps, const std::string& p, int64_t out, int64_t in, int64_t k, int64_t groups = 1,
                  double gain = 1.0) {
    ps.declare(p + ".w", {out, in / groups, k, k}, normal_fan_in(in / groups * k * k, gain), true);
    ps.declare(p + ".b", {out}, zeros(), false);
}

void declare_gn(ParamStore& ps, const std::string& p, int64_t c) {
    ps.declare(p + ".g", {c}, ones(), false);
    ps.declare(p + ".b", {c}, zeros(), false);
}

void declare_resblock(ParamStore& ps, const std::string& p, int64_t c) {
    declare_gn(ps, p + ".n1", c);
    declare_conv(ps, p + ".c1", c, c, 3);
    declare_gn(ps, p + ".n2", c);
    declare_conv(ps, p + ".c2", c, c, 3, 1, 0.1);   // small: each block starts near identity
}

at::Tensor ln(const at::Tensor& x) {   // LayerNorm without affine, fp32
    const int64_t w = x.size(-1);
    return at::layer_norm(x.to(at::kFloat), {w}, {}, {}, 1e-6);
}

at::Tensor rms(const at::Tensor& x, const at::Tensor& g) {   // RMS norm over the last dim, fp32
    at::Tensor xf = x.to(at::kFloat);
    return xf * at::rsqrt(xf.pow(2).mean({-1}, true) + 1e-6) * g.to(at::kFloat);
}

at::Tensor upsample2(const at::Tensor& x) {   // nearest, [B, C, H, W] -> [B, C, 2H, 2W]
    const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    return x.unsqueeze(3).unsqueeze(5).expand({B, C, H, 2, W, 2}).reshape({B, C, 2 * H, 2 * W});
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// ParamStore

void ParamStore::declare(const std::string& name, std::vector<int64_t> shape, Init init, bool decay) {
    DC_CHECK(!m_index.count(name) && !m_buffers.count(name), "parameter '" << name << "' declared twice");
    ParamInfo pi;
    pi.name = name;
    pi.shape = std::move(shape);
    pi.numel = 1;
    for (int64_t d : pi.shape) pi.numel *= d;
    pi.offset = m_numel;
    pi.decay = decay;
    m_numel += pi.numel;
    m_index[name] = m_infos.size();
    m_infos.push_back(pi);
    m_inits.push_back(std::move(init));
}

void ParamStore::declare_buffer(const std::string& name, const at::Tensor& value) {
    DC_CHECK(!m_index.count(name) && !m_buffers.count(name), "buffer '" << name << "' declared twice");
    m_buffers[name] = value;
}

void ParamStore::allocate() {
    m_flat = at::empty({m_numel}, at::kFloat);   // [P]
    for (size_t i = 0; i < m_infos.size(); ++i) {
        const auto& pi = m_infos[i];
        m_flat.narrow(0, pi.offset, pi.numel).copy_(m_inits[i](pi.shape).reshape({pi.numel}));
    }
    rebuild_views();
}

void ParamStore::rebuild_views() {
    m_views.clear();
    for (const auto& pi : m_infos) m_views.push_back(m_flat.narrow(0, pi.offset, pi.numel).view(pi.shape));
}

void ParamStore::to(at::Device device, at::ScalarType dtype) {
    if (m_flat.numel() != m_numel) {   // after own_views(): pack the parameters back into one buffer
        std::vector<at::Tensor> parts;
        for (const auto& v : m_views) parts.push_back(v.detach().reshape({-1}));
        m_flat = parts.empty() ? at::empty({0}, m_flat.options()) : at::cat(parts);
    }
    m_flat = m_flat.to(device, dtype).contiguous();
    for (auto& [n, b] : m_buffers) b = b.to(device);
    rebuild_views();
}

void ParamStore::own_views() {
    for (auto& v : m_views) v = v.detach().clone(at::MemoryFormat::Contiguous);
    m_flat = at::empty({0}, m_flat.options());
}

void ParamStore::set_requires_grad(bool on) {
    for (auto& v : m_views) v.requires_grad_(on);
}

const at::Tensor& ParamStore::get(const std::string& name) const {
    auto it = m_index.find(name);
    if (it != m_index.end()) return m_views[it->second];
    auto b = m_buffers.find(name);
    DC_CHECK(b != m_buffers.end(), "model has no parameter or buffer '" << name << "'");
    return b->second;
}

at::Tensor& ParamStore::buffer(const std::string& name) {
    auto b = m_buffers.find(name);
    DC_CHECK(b != m_buffers.end(), "model has no buffer '" << name << "'");
    return b->second;
}

std::vector<std::pair<std::string, at::Tensor>> ParamStore::named_tensors() const {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (size_t i = 0; i < m_infos.size(); ++i) out.emplace_back(m_infos[i].name, m_views[i].detach());
    for (const auto& [n, b] : m_buffers) out.emplace_back(n, b);
    return out;
}

std::vector<at::Tensor> ParamStore::views() const { return m_views; }

int64_t ParamStore::numel_prefix(const std::string& prefix) const {
    int64_t n = 0;
    for (const auto& pi : m_infos)
        if (pi.name.compare(0, prefix.size(), prefix) == 0) n += pi.numel;
    return n;
}

at::Tensor ParamStore::decay_mask() const {
    at::Tensor m = at::zeros({m_numel}, at::kFloat);   // [P]
    for (const auto& pi : m_infos)
        if (pi.decay) m.narrow(0, pi.offset, pi.numel).fill_(1.f);
    return m.to(m_flat.device());
}

// ---------------------------------------------------------------------------------------------------------------
// Free functions

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim) {
    const int64_t half = dim / 2;
    at::Tensor freqs = at::exp(at::arange(half, t.options().dtype(at::kFloat)) * (-std::log(10000.0) / half));  // [half]
    at::Tensor a = t.to(at::kFloat).unsqueeze(-1) * freqs;   // [.., half]
    return at::cat({at::cos(a), at::sin(a)}, -1);            // [.., dim]
}

at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                            const at::Tensor& key_valid) {
#if TORCH_VERSION_MAJOR >= 2
    if (q.is_cuda()) {
        const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2);
        at::Tensor mask;   // [B, H, Lq, Lk] in q's dtype (broadcast views)
        if (bias.defined()) mask = bias.to(q.scalar_type()).expand({B, H, Lq, Lk});
        if (key_valid.defined()) {
            at::Tensor km = at::zeros({B, 1, 1, Lk}, q.options())
                                .masked_fill(key_valid.logical_not().view({B, 1, 1, Lk}),
                                             -std::numeric_limits<float>::infinity());
            mask = mask.defined() ? mask + km : km.expand({B, H, Lq, Lk});
        }
        return at::scaled_dot_product_attention(q, k, v, mask);
    }
#endif
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    at::Tensor logits = at::matmul(q.to(at::kFloat), k.to(at::kFloat).transpose(-2, -1)) * scale;   // [B,H,Lq,Lk]
    if (bias.defined()) logits = logits + bias.to(at::kFloat);
    if (key_valid.defined())
        logits = logits.masked_fill(key_valid.logical_not().unsqueeze(1).unsqueeze(1),
                                    -std::numeric_limits<float>::infinity());
    at::Tensor p = at::softmax(logits, -1);
    return at::matmul(p, v.to(at::kFloat)).to(q.scalar_type());   // [B, H, Lq, D]
}

at::Tensor block_causal_bias(const at::Tensor& slope, int64_t K, int64_t N) {
    at::Tensor f = at::arange(K, slope.options().dtype(at::kFloat)).repeat_interleave(N);   // [K*N]
    at::Tensor dist = f.unsqueeze(1) - f.unsqueeze(0);                                       // [L, L] fq - fk
    at::Tensor bias = -slope.to(at::kFloat).view({-1, 1, 1}) * dist.unsqueeze(0);            // [H, L, L]
    bias = bias.masked_fill((dist < 0).unsqueeze(0), -std::numeric_limits<float>::infinity());
    return bias.unsqueeze(0);                                                                // [1, H, L, L]
}

// ---------------------------------------------------------------------------------------------------------------
// Net

Net::Net(const ModelConfig& cfg) : m_cfg(cfg), m_cdt(at::kFloat) {
    const auto& ae = cfg.ae;
    const auto& d = cfg.dit;
    DC_CHECK(ae.enc_channels.size() == 4 && ae.dec_channels.size() == 4 && cfg.downsample == 8,
             "autoencoder: expected 4 channel widths per side (8x down), found " << ae.enc_channels.size() << "/"
                                                                                  << ae.dec_channels.size());
    DC_CHECK(d.width % d.head_dim == 0 && d.head_dim % 4 == 0,
             "dit.width " << d.width << " must be a multiple of head_dim " << d.head_dim << " (itself a multiple of 4)");
    DC_CHECK(d.vocab_size > 0, "dit.vocab_size must be set from the prompt vocabulary, found " << d.vocab_size);
    at::manual_seed(cfg.seed);
    ParamStore& ps = m_params;
    const int C = ae.latent_channels;
    // Autoencoder.
    const auto& ec = ae.enc_channels;
    declare_conv(ps, "ae.enc.in", ec[0], 3, 3);
    for (int i = 0; i < 4; ++i) {
        declare_resblock(ps, "ae.enc.res" + std::to_string(i), ec[i]);
        if (i < 3) declare_conv(ps, "ae.enc.down" + std::to_string(i), ec[i + 1], ec[i], 3);
    }
    declare_resblock(ps, "ae.enc.mid", ec[3]);
    declare_gn(ps, "ae.enc.out_norm", ec[3]);
    declare_conv(ps, "ae.enc.out", C, ec[3], 3);
    const auto& dc_ = ae.dec_channels;
    declare_conv(ps, "ae.dec.in", dc_[0], C, 3);
    for (int j = 0; j < ae.dec_blocks_low; ++j) declare_resblock(ps, "ae.dec.low" + std::to_string(j), dc_[0]);
    for (int i = 1; i < 4; ++i) {
        declare_conv(ps, "ae.dec.up" + std::to_string(i), dc_[i], dc_[i - 1], 3);
        declare_resblock(ps, "ae.dec.res" + std::to_string(i), dc_[i]);
    }
    declare_gn(ps, "ae.dec.out_norm", dc_[3]);
    declare_conv(ps, "ae.dec.out", 3, dc_[3], 3);
    ps.declare_buffer("ae.latent_mean", at::zeros({C}));
    ps.declare_buffer("ae.latent_std", at::ones({C}));
    // Prompt encoder.
    const int W = d.width, H = d.heads(), Hm = d.mlp_hidden;
    ps.declare("prompt.embed", {d.vocab_size, W}, [](const std::vector<int64_t>& s) { return init_normal(s, 0.02); },
               false);
    ps.declare("prompt.pos", {d.prompt_len, W}, [](const std::vector<int64_t>& s) { return init_normal(s, 0.02); },
               false);
    for (int l = 0; l < d.prompt_layers; ++l) {
        const std::string p = "prompt.l" + std::to_string(l);
        declare_linear(ps, p + ".qkv", 3 * W, W);
        declare_linear(ps, p + ".proj", W, W, true, true);
        declare_linear(ps, p + ".fc1", 2 * W, W);
        declare_linear(ps, p + ".fc2", W, 2 * W, true, true);
    }
    // DiT.
    declare_conv(ps, "dit.in", W, 2 * C, 3);
    declare_linear(ps, "dit.t0", W, 256);
    declare_linear(ps, "dit.t1", W, W);
    declare_linear(ps, "dit.n0", W, 256);
    declare_linear(ps, "dit.n1", W, W);
    declare_linear(ps, "dit.a0", W, 4);
    declare_linear(ps, "dit.a1", W, W);
    for (int l = 0; l < d.depth; ++l) {
        const std::string p = "dit.b" + std::to_string(l);
        declare_linear(ps, p + ".ada", 6 * W, W, true, true);
        declare_linear(ps, p + ".qkv", 3 * W, W);
        ps.declare(p + ".qn", {d.head_dim}, ones(), false);
        ps.declare(p + ".kn", {d.head_dim}, ones(), false);
        declare_linear(ps, p + ".proj", W, W);
        declare_linear(ps, p + ".cq", W, W, false);
        declare_linear(ps, p + ".ck", W, W, false);
        declare_linear(ps, p + ".cv", W, W, false);
        declare_linear(ps, p + ".cproj", W, W, true, true);
        declare_linear(ps, p + ".fc1", Hm, W);
        declare_conv(ps, p + ".dw", Hm, Hm, 3, Hm);
        declare_linear(ps, p + ".fc2", W, Hm);
    }
    declare_linear(ps, "dit.final_ada", 2 * W, W, true, true);
    declare_linear(ps, "dit.out", C, W, true, true);
    at::Tensor slope = at::empty({H});
    for (int h = 0; h < H; ++h) slope[h] = d.slope_max * std::pow(0.5, h);
    ps.declare_buffer("dit.temporal_slope", slope);
    ps.allocate();

    // 2-D RoPE tables: the first half of each head rotates with the row, the second half with the column.
    const int64_t gh = cfg.grid_h(), gw = cfg.grid_w(), N = gh * gw, D = d.head_dim, F = D / 4;
    at::Tensor freq = at::pow(static_cast<double>(d.rope_base), -at::arange(F, at::kFloat) / static_cast<double>(F));
    std::vector<float> rows(N), cols(N);
    for (int64_t n = 0; n < N; ++n) rows[n] = static_cast<float>(n / gw), cols[n] = static_cast<float>(n % gw);
    at::Tensor row = at::tensor(rows), col = at::tensor(cols);   // [N] grid row / column of each token
    at::Tensor ar = row.unsqueeze(1) * freq, ac = col.unsqueeze(1) * freq;                                // [N, F]
    at::Tensor ang = at::cat({ar, ar, ac, ac}, 1);   // [N, D]: (sub-block row|col) x (half a|b) x F
    m_rope_cos = at::cos(ang);
    m_rope_sin = at::sin(ang);
}

void Net::to(at::Device device, at::ScalarType param_dtype, at::ScalarType compute_dtype) {
    m_params.to(device, param_dtype);
    m_cdt = compute_dtype;
    m_rope_cos = m_rope_cos.to(device);
    m_rope_sin = m_rope_sin.to(device);
}

at::Device Net::device() const { return m_params.flat().device(); }

at::Tensor Net::temporal_slope() const { return P("dit.temporal_slope").to(at::kFloat); }

at::Tensor Net::lin(const at::Tensor& x, const std::string& p, bool bias) const {
    at::Tensor b = bias ? P(p + ".b").to(m_cdt) : at::Tensor();
    return at::linear(x.to(m_cdt), P(p + ".w").to(m_cdt), b);
}

at::Tensor Net::conv(const at::Tensor& x, const std::string& p, int64_t stride, int64_t groups) const {
    const at::Tensor& w = P(p + ".w");
    const int64_t pad = w.size(2) / 2;
    return at::conv2d(x.to(m_cdt), w.to(m_cdt), P(p + ".b").to(m_cdt), {stride, stride}, {pad, pad}, {1, 1}, groups);
}

at::Tensor Net::gn(const at::Tensor& x, const std::string& p) const {
    const int64_t c = x.size(1);
    int64_t g = std::min<int64_t>(m_cfg.ae.groups, c);
    while (c % g) --g;
    return at::group_norm(x.to(at::kFloat), g, P(p + ".g").to(at::kFloat), P(p + ".b").to(at::kFloat), 1e-6);
}

at::Tensor Net::resblock(const at::Tensor& x, const std::string& p) const {
    at::Tensor h = conv(at::silu(gn(x, p + ".n1")), p + ".c1");
    h = conv(at::silu(gn(h, p + ".n2")), p + ".c2");
    return x.to(at::kFloat) + h.to(at::kFloat);
}

at::Tensor Net::encode_raw(const at::Tensor& img) const {
    at::Tensor h = conv(img * 2.0 - 1.0, "ae.enc.in");   // [B, c0, 128, 128]
    for (int i = 0; i < 4; ++i) {
        h = resblock(h, "ae.enc.res" + std::to_string(i));
        if (i < 3) h = conv(h, "ae.enc.down" + std::to_string(i), 2);   // halves the resolution
    }
    h = resblock(h, "ae.enc.mid");   // [B, c3, 16, 16]
    return conv(at::silu(gn(h, "ae.enc.out_norm")), "ae.enc.out").to(at::kFloat);   // [B, C, 16, 16]
}

at::Tensor Net::decode_raw(const at::Tensor& z) const {
    at::Tensor h = conv(z, "ae.dec.in");   // [B, d0, 16, 16]
    for (int j = 0; j < m_cfg.ae.dec_blocks_low; ++j) h = resblock(h, "ae.dec.low" + std::to_string(j));
    for (int i = 1; i < 4; ++i) {
        h = conv(upsample2(h.to(m_cdt)), "ae.dec.up" + std::to_string(i));   // [B, d_i, 2x, 2x]
        h = resblock(h, "ae.dec.res" + std::to_string(i));
    }
    at::Tensor o = conv(at::silu(gn(h, "ae.dec.out_norm")), "ae.dec.out").to(at::kFloat);   // [B, 3, 128, 128]
    return o * 0.5 + 0.5;
}

at::Tensor Net::normalize(const at::Tensor& z) const {
    const int64_t C = z.size(-3);
    return (z.to(at::kFloat) - P("ae.latent_mean").view({C, 1, 1})) / P("ae.latent_std").view({C, 1, 1});
}

at::Tensor Net::denormalize(const at::Tensor& z) const {
    const int64_t C = z.size(-3);
    return z.to(at::kFloat) * P("ae.latent_std").view({C, 1, 1}) + P("ae.latent_mean").view({C, 1, 1});
}

at::Tensor Net::encode_prompt(const at::Tensor& tokens, const at::Tensor& valid) const {
    const auto& d = m_cfg.dit;
    const int64_t B = tokens.size(0), Pn = tokens.size(1), W = d.width, H = d.heads(), D = d.head_dim;
    DC_CHECK(Pn <= d.prompt_len, "prompt has " << Pn << " tokens, the model takes at most " << d.prompt_len);
    at::Tensor x = at::embedding(P("prompt.embed").to(at::kFloat), tokens.to(at::kLong)) +
                   P("prompt.pos").to(at::kFloat).narrow(0, 0, Pn);   // [B, P, W]
    for (int l = 0; l < d.prompt_layers; ++l) {
        const std::string p = "prompt.l" + std::to_string(l);
        at::Tensor qkv = lin(ln(x), p + ".qkv").view({B, Pn, 3, H, D}).permute({2, 0, 3, 1, 4});   // [3, B, H, P, D]
        at::Tensor o = masked_attention(qkv[0], qkv[1], qkv[2], at::Tensor(), valid);            // [B, H, P, D]
        x = x + lin(o.permute({0, 2, 1, 3}).reshape({B, Pn, W}), p + ".proj").to(at::kFloat);
        x = x + lin(at::silu(lin(ln(x), p + ".fc1").to(at::kFloat)), p + ".fc2").to(at::kFloat);
    }
    return ln(x);   // [B, P, W]
}

PromptKV Net::prompt_kv(const at::Tensor& feats, const at::Tensor& valid) const {
    const auto& d = m_cfg.dit;
    const int64_t B = feats.size(0), Pn = feats.size(1), H = d.heads(), D = d.head_dim;
    PromptKV kv;
    kv.valid = valid;
    for (int l = 0; l < d.depth; ++l) {
        const std::string p = "dit.b" + std::to_string(l);
        kv.k.push_back(lin(feats, p + ".ck", false).view({B, Pn, H, D}).permute({0, 2, 1, 3}).contiguous());
        kv.v.push_back(lin(feats, p + ".cv", false).view({B, Pn, H, D}).permute({0, 2, 1, 3}).contiguous());
    }
    return kv;
}

at::Tensor Net::cond(const at::Tensor& t, const at::Tensor& ctx_noise, const at::Tensor& action) const {
    at::Tensor te = lin(at::silu(lin(timestep_embedding(t * 1000.0, 256), "dit.t0")), "dit.t1");
    at::Tensor ne = lin(at::silu(lin(timestep_embedding(ctx_noise * 1000.0, 256), "dit.n0")), "dit.n1");
    at::Tensor ae = lin(at::silu(lin(action.to(at::kFloat), "dit.a0")), "dit.a1");
    return te.to(at::kFloat) + ne.to(at::kFloat) + ae.to(at::kFloat);   // [B, K, W]
}

at::Tensor Net::rope(const at::Tensor& x) const {
    // x: [B, K, N, H, D] float (contiguous); rotate-half inside each of the two D/2 sub-blocks.
    const int64_t N = x.size(2), D = x.size(-1), F = D / 4;
    auto sh = x.sizes().vec();
    at::Tensor xs = x.reshape({-1, 2, 2, F});   // [.., sub, half, F]
    at::Tensor rot = at::stack({-xs.select(2, 1), xs.select(2, 0)}, 2).view(sh);
    return x * m_rope_cos.view({1, 1, N, 1, D}) + rot * m_rope_sin.view({1, 1, N, 1, D});
}

void DitPass::begin(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond) {
    const auto& d = m_net.m_cfg.dit;
    m_B = x.size(0), m_K = x.size(1), m_C = x.size(2), m_gh = x.size(3), m_gw = x.size(4);
    const int64_t N = m_gh * m_gw, W = d.width;
    m_prev = prev;
    at::Tensor inp = at::cat({x.to(at::kFloat), prev.to(at::kFloat)}, 2).reshape({m_B * m_K, 2 * m_C, m_gh, m_gw});
    at::Tensor h0 = m_net.conv(inp, "dit.in");                                                   // [BK, W, gh, gw]
    m_xs = h0.to(at::kFloat).view({m_B, m_K, W, N}).permute({0, 1, 3, 2}).contiguous();         // [B, K, N, W]
    m_cs = at::silu(cond);                                                                       // [B, K, W]
}

DitPass::Qkv DitPass::qkv(int l) {
    const auto& d = m_net.m_cfg.dit;
    const int64_t B = m_B, K = m_K, N = m_gh * m_gw, H = d.heads(), D = d.head_dim;
    const std::string p = "dit.b" + std::to_string(l);
    m_mod = m_net.lin(m_cs, p + ".ada").to(at::kFloat).unsqueeze(2).chunk(6, -1);   // 6 x [B, K, 1, W]
    at::Tensor h = ln(m_xs) * (1 + m_mod[1]) + m_mod[0];
    at::Tensor qkv = m_net.lin(h, p + ".qkv").view({B, K, N, 3, H, D});
    // norm and rotate in [B, K, N, H, D] (contiguous per token), then one copy into [B, H, K*N, D]
    const at::ScalarType cdt = m_net.m_cdt;
    at::Tensor q = m_net.rope(rms(qkv.select(3, 0), m_net.P(p + ".qn"))).to(cdt).permute({0, 3, 1, 2, 4});
    at::Tensor k = m_net.rope(rms(qkv.select(3, 1), m_net.P(p + ".kn"))).to(cdt).permute({0, 3, 1, 2, 4});
    at::Tensor v = qkv.select(3, 2).to(cdt).permute({0, 3, 1, 2, 4});   // [B, H, K, N, D]
    return {q.reshape({B, H, K * N, D}), k.reshape({B, H, K * N, D}), v.reshape({B, H, K * N, D})};
}

at::Tensor DitPass::after_self(int l, const at::Tensor& o) {
    const auto& d = m_net.m_cfg.dit;
    const int64_t B = m_B, K = m_K, N = m_gh * m_gw, W = d.width, H = d.heads(), D = d.head_dim;
    const std::string p = "dit.b" + std::to_string(l);
    at::Tensor ob = o.view({B, H, K, N, D}).permute({0, 2, 3, 1, 4}).reshape({B, K, N, W});
    m_xs = m_xs + m_mod[2] * m_net.lin(ob, p + ".proj").to(at::kFloat);
    return m_net.lin(ln(m_xs), p + ".cq", false).view({B, K, N, H, D});
}

void DitPass::after_cross(int l, const at::Tensor& c) {
    const auto& d = m_net.m_cfg.dit;
    const int64_t B = m_B, K = m_K, N = m_gh * m_gw, Hm = d.mlp_hidden;
    const std::string p = "dit.b" + std::to_string(l);
    m_xs = m_xs + m_net.lin(c, p + ".cproj").to(at::kFloat);
    at::Tensor h = ln(m_xs) * (1 + m_mod[4]) + m_mod[3];
    h = m_net.lin(h, p + ".fc1");                                                                // [B, K, N, Hm]
    h = h.view({B * K, m_gh, m_gw, Hm}).permute({0, 3, 1, 2});                                  // [BK, Hm, gh, gw]
    h = at::silu(m_net.conv(h, p + ".dw", 1, Hm).to(at::kFloat));   // SiLU: ~10x cheaper than erf-GELU on CPU
    h = h.permute({0, 2, 3, 1}).reshape({B, K, N, Hm});
    m_xs = m_xs + m_mod[5] * m_net.lin(h, p + ".fc2").to(at::kFloat);
}

at::Tensor DitPass::end() {
    auto fm = m_net.lin(m_cs, "dit.final_ada").to(at::kFloat).unsqueeze(2).chunk(2, -1);   // 2 x [B, K, 1, W]
    at::Tensor out = m_net.lin(ln(m_xs) * (1 + fm[1]) + fm[0], "dit.out").to(at::kFloat);  // [B, K, N, C]
    out = out.permute({0, 1, 3, 2}).reshape({m_B, m_K, m_C, m_gh, m_gw});
    return m_prev.to(at::kFloat) + out;   // residual over the previous frame's latent
}

at::Tensor Net::dit_body(
    const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond,
    const std::function<at::Tensor(int, const at::Tensor&, const at::Tensor&, const at::Tensor&)>& self_attn,
    const std::function<at::Tensor(int, const at::Tensor&)>& cross_attn, int stop_after) const {
    DitPass pass(*this);
    pass.begin(x, prev, cond);
    for (int l = 0; l < m_cfg.dit.depth; ++l) {
        DitPass::Qkv a = pass.qkv(l);
        at::Tensor o = self_attn(l, a.q, a.k, a.v);   // [B, H, K*N, D]
        if (l == stop_after) return at::Tensor();     // commit pass: the last block's K/V are all that is needed
        pass.after_cross(l, cross_attn(l, pass.after_self(l, o)));   // cross_attn -> [B, K, N, W]
    }
    return pass.end();
}

at::Tensor Net::dit_masked(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond,
                           const PromptKV& prompt) const {
    const auto& d = m_cfg.dit;
    const int64_t B = x.size(0), K = x.size(1), N = x.size(3) * x.size(4), H = d.heads(), D = d.head_dim;
    at::Tensor bias = block_causal_bias(temporal_slope(), K, N);   // [1, H, KN, KN]
    auto self_fn = [&](int, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        return masked_attention(q, k, v, bias, at::Tensor());
    };
    auto cross_fn = [&](int l, const at::Tensor& cq) {   // cq [B, K, N, H, D]
        at::Tensor q = cq.permute({0, 1, 3, 2, 4}).reshape({B * K, H, N, D});
        at::Tensor o = masked_attention(q, prompt.k[l], prompt.v[l], at::Tensor(), prompt.valid);   // [BK, H, N, D]
        return o.view({B, K, H, N, D}).permute({0, 1, 3, 2, 4}).reshape({B, K, N, H * D});
    };
    return dit_body(x, prev, cond, self_fn, cross_fn, -1);
}

CachedAttention::CachedAttention(const Net& net, const PromptKV& prompt_kv, std::vector<KvCache>& layer_caches,
                                 Attention& attention, AttentionContext context, bool commit_pass,
                                 AttentionStats* stats_out)
    : prompt(prompt_kv), caches(layer_caches), attn(attention), ctx(std::move(context)), commit(commit_pass),
      stats(stats_out), depth(net.config().dit.depth) {
    DC_CHECK(static_cast<int>(caches.size()) == depth, "expected " << depth << " KV caches, found " << caches.size());
    ctx.n_layers = depth;
    ctx.temporal_slope = net.temporal_slope();
}

at::Tensor CachedAttention::self(int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    AttentionContext c = ctx;
    c.layer = l;
    at::Tensor o;   // [1, H, N, D]; not needed in the last block of a commit pass
    if (!commit || l + 1 < depth) o = attn.self_attend(q, k, v, caches[static_cast<size_t>(l)], c, stats);
    if (commit) {
        // Every layer commits at the pass's last block, in one commit_many: the later blocks' self-attention reads
        // other layers' caches only, and q/k/v stay untouched until the pass ends (graph outputs included).
        pending_commits.push_back(Attention::CommitJob{&caches[static_cast<size_t>(l)], q, k, v, c});
        if (l + 1 == depth) {
            attn.commit_many(pending_commits, stats);
            pending_commits.clear();
        }
    }
    return o;
}

at::Tensor CachedAttention::cross(int l, const at::Tensor& cq) { return cross(l, cq, prompt, stats); }

at::Tensor CachedAttention::cross(int l, const at::Tensor& cq, const PromptKV& prompt_kv,
                                  AttentionStats* stats_out) {   // cq [1, 1, N, H, D]
    AttentionContext c = ctx;
    c.layer = l;
    const int64_t N = cq.size(2), H = cq.size(3), D = cq.size(4);
    at::Tensor q = cq.permute({0, 1, 3, 2, 4}).reshape({1, H, N, D});
    at::Tensor o = attn.cross_attend(q, prompt_kv.k[static_cast<size_t>(l)], prompt_kv.v[static_cast<size_t>(l)],
                                     prompt_kv.valid, c, stats_out);   // [1, H, N, D]
    return o.permute({0, 2, 1, 3}).reshape({1, 1, N, H * D});
}

at::Tensor Net::dit_cached(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& cond,
                           const PromptKV& prompt, std::vector<KvCache>& caches, Attention& attn,
                           AttentionContext ctx, bool commit, AttentionStats* stats) const {
    CachedAttention ca(*this, prompt, caches, attn, std::move(ctx), commit, stats);
    auto self_fn = [&](int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        return ca.self(l, q, k, v);
    };
    auto cross_fn = [&](int l, const at::Tensor& cq) { return ca.cross(l, cq); };
    return dit_body(x.unsqueeze(1), prev.unsqueeze(1), cond, self_fn, cross_fn, ca.stop_after());
}

}  // namespace dc::wm
