// world_model/world_model.cpp — WorldModel loading/export and the Session (sampler + KV caches).
#include "world_model/world_model.h"

#include <c10/core/GradMode.h>
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "common/common.h"
#include "world_model/cuda_graphs.h"
#include "world_model/world_model_impl.h"

#if defined(DC_HAVE_CUDA) && __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace dc {

namespace wm {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void sync_device(const at::Tensor& t) {   // waits for the device queue (timings); a no-op on the CPU
    if (t.defined() && t.is_cuda()) (void)t.reshape({-1})[0].item<float>();
}

namespace {

std::string shape_str(at::IntArrayRef s) {
    std::ostringstream os;
    os << '[';
    for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
    os << ']';
    return os.str();
}

std::string shape_str(const std::vector<int64_t>& s) { return shape_str(at::IntArrayRef(s)); }

}  // namespace

at::Device parse_device(const std::string& device) {
    if (device == "cpu") return at::Device(at::kCPU);
    if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
        DC_CHECK(at::hasCUDA(), "device '" << device << "' requested but this build of LibTorch has no CUDA "
                                           << "(or no GPU is visible); use --device cpu");
        return at::Device(device);
    }
    DC_FAIL("unknown device '" << device << "'; accepted: cpu, cuda, cuda:N");
}

std::string vocab_sha256(const game::Vocabulary& vocab) {
    std::string all;
    for (const auto& w : vocab.words()) all += w + "\n";
    return sha256_hex(all.data(), all.size());
}

ModelImpl::ModelImpl(const ModelConfig& cfg, const std::string& device)
    : net(cfg), vocab(game::Vocabulary::load_default()), m_device("cpu") {
    move_to(device);
}

ModelImpl::ModelImpl(const Net& shared_net, const game::Vocabulary& vocabulary)
    : net(shared_net), vocab(vocabulary), m_device(shared_net.device().str()) {}

void ModelImpl::move_to(const std::string& device) {
    const at::Device dev = parse_device(device);
    // Inference on CUDA keeps bf16 weights and computes in bf16; the CPU stays fp32 (bit-exact replays).
    if (dev.is_cuda()) {
        net.to(dev, at::kBFloat16, at::kBFloat16);
        net.params().own_views();   // aligned weights: cuBLAS's vectorised kernels (see ParamStore::own_views)
    } else {
        net.to(dev, at::kFloat, at::kFloat);
    }
    m_device = device;
}

std::string ModelImpl::describe() const {
    const auto& c = net.config();
    std::ostringstream os;
    os << std::fixed << std::setprecision(2) << "world model: " << net.params().numel() / 1e6 << "M params (AE "
       << net.params().numel_prefix("ae.") / 1e6 << "M, DiT " << net.params().numel_prefix("dit.") / 1e6
       << "M, prompt " << net.params().numel_prefix("prompt.") / 1e6 << "M), " << c.dit.depth << " layers x "
       << c.dit.width << " wide, " << c.dit.heads() << " heads, latent " << c.grid_w() << "x" << c.grid_h() << "x"
       << c.ae.latent_channels;
    if (meta.contains("training") && meta["training"].contains("dit_steps"))
        os << ", trained " << meta["training"].value("ae_steps", 0) << " AE + " << meta["training"]["dit_steps"]
           << " DiT steps";
    os << " on " << m_device;
    return os.str();
}

void load_weights(Net& net, const nlohmann::json& file, const std::string& dir) {
    DC_CHECK(file.contains("shards") && file["shards"].is_array() && !file["shards"].empty(),
             "model file has no 'shards' list");
    const std::string want_dtype = file.value("dtype", std::string("F32"));
    DC_CHECK(want_dtype == "F32" || want_dtype == "BF16",
             "model file: dtype must be F32 or BF16, found '" << want_dtype << "'");
    std::map<std::string, std::pair<std::vector<int64_t>, at::Tensor>> expected;   // name -> shape, destination
    for (const auto& [name, t] : net.params().named_tensors()) expected[name] = {t.sizes().vec(), t};
    std::vector<std::string> problems;
    std::set<std::string> seen;
    for (const auto& sh : file["shards"]) {
        DC_CHECK(sh.contains("file") && sh["file"].is_string(), "model file: a shard has no 'file'");
        const std::string path = dir + "/" + sh["file"].get<std::string>();
        DC_CHECK(std::filesystem::exists(path), "weight shard '" << path << "' is missing");
        st::File f = st::File::read(path);   // structure first: truncated/foreign files say so
        if (sh.contains("sha256")) {
            const std::string got = sha256_file(path);
            DC_CHECK(got == sh["sha256"].get<std::string>(),
                     "weight shard '" << path << "' has SHA-256 " << got << " but the model file expects "
                                      << sh["sha256"].get<std::string>() << " (corrupted or replaced file)");
        }
        for (const auto& e : f.entries()) {
            auto it = expected.find(e.name);
            if (it == expected.end()) {
                problems.push_back("unexpected tensor '" + e.name + "' in " + sh["file"].get<std::string>());
                continue;
            }
            if (e.dtype != want_dtype) {
                problems.push_back("tensor '" + e.name + "': dtype " + e.dtype + ", expected " + want_dtype);
                continue;
            }
            if (e.shape != it->second.first) {
                problems.push_back("tensor '" + e.name + "': shape " + shape_str(e.shape) + ", expected " +
                                   shape_str(it->second.first));
                continue;
            }
            at::Tensor src = f.tensor(e.name);
            at::Tensor& dst = it->second.second;
            {
                c10::NoGradGuard ng;
                dst.copy_(src.to(dst.device(), dst.scalar_type()));
            }
            seen.insert(e.name);
        }
    }
    for (const auto& [name, v] : expected)
        if (!seen.count(name) && std::find_if(problems.begin(), problems.end(), [&](const std::string& p) {
                                     return p.find("'" + name + "'") != std::string::npos;
                                 }) == problems.end())
            problems.push_back("missing tensor '" + name + "' " + shape_str(v.first));
    if (!problems.empty()) {
        std::ostringstream os;
        os << "model weights do not match the architecture (" << problems.size() << " problem(s)):";
        for (size_t i = 0; i < problems.size() && i < 8; ++i) os << "\n  " << problems[i];
        if (problems.size() > 8) os << "\n  … and " << problems.size() - 8 << " more";
        DC_FAIL(os.str());
    }
}

std::shared_ptr<ModelImpl> load_model(const std::string& config_path, const std::string& device) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(config_path));
    } catch (const nlohmann::json::exception& e) {
        DC_FAIL("model file '" << config_path << "' is not valid JSON: " << e.what());
    }
    DC_CHECK(j.value("format", std::string()) == "dreamcaster-world-model",
             "'" << config_path << "' is not a Dreamcaster model file (expected \"format\": "
                 << "\"dreamcaster-world-model\")");
    DC_CHECK(j.value("version", 0) == 1, "model file '" << config_path << "' has version " << j.value("version", 0)
                                                        << ", this build reads version 1");
    DC_CHECK(j.contains("architecture"), "model file '" << config_path << "' has no 'architecture'");
    ModelConfig cfg = ModelConfig::from_json(j["architecture"]);
    auto m = std::make_shared<ModelImpl>(cfg, "cpu");
    const std::string vs = vocab_sha256(m->vocab);
    DC_CHECK(cfg.dit.vocab_size == m->vocab.size() && (cfg.dit.vocab_sha256.empty() || cfg.dit.vocab_sha256 == vs),
             "model '" << config_path << "' was trained with a different prompt vocabulary (" << cfg.dit.vocab_size
                       << " words, sha " << cfg.dit.vocab_sha256.substr(0, 12) << ") than assets/prompt_vocab.txt ("
                       << m->vocab.size() << " words, sha " << vs.substr(0, 12) << ")");
    const std::string dir = std::filesystem::path(config_path).parent_path().string();
    load_weights(m->net, j, dir.empty() ? "." : dir);
    for (const char* k : {"training", "data", "metrics"})
        if (j.contains(k)) m->meta[k] = j[k];
    m->path = config_path;
    m->move_to(device);
    return m;
}

void export_model(const Net& net, const std::string& json_path, const nlohmann::json& meta, st::DType dtype) {
    const std::filesystem::path p(json_path);
    const std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
    std::filesystem::create_directories(dir);
    const std::string stem = p.stem().string();
    auto shards = st::save_sharded(dir, stem, net.params().named_tensors(), dtype, kMaxShardBytes,
                                   {{"format", "pt"}, {"model", stem}});
    nlohmann::json j;
    j["format"] = "dreamcaster-world-model";
    j["version"] = 1;
    j["architecture"] = net.config().to_json();
    j["dtype"] = st::dtype_name(dtype);
    j["params"] = net.params().numel();
    j["shards"] = nlohmann::json::array();
    for (const auto& s : shards)
        j["shards"].push_back({{"file", s.file}, {"sha256", s.sha256}, {"bytes", s.bytes}, {"tensors", s.tensors}});
    for (auto it = meta.begin(); it != meta.end(); ++it) j[it.key()] = it.value();
    const std::string tmp = json_path + ".tmp";
    {
        std::ofstream f(tmp);
        DC_CHECK(f.good(), "cannot write '" << tmp << "'");
        f << j.dump(2) << "\n";
        DC_CHECK(f.good(), "write to '" << tmp << "' failed");
    }
    std::filesystem::rename(tmp, json_path);
}

at::Tensor image_to_tensor(const game::Image& img, at::Device device) {
    DC_CHECK(img.width > 0 && img.height > 0 &&
                 img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3,
             "image: expected " << img.width << "x" << img.height << "x3 bytes, found " << img.rgb.size());
    at::Tensor t = at::from_blob(const_cast<uint8_t*>(img.rgb.data()), {1, img.height, img.width, 3}, at::kByte);
    return t.to(device).permute({0, 3, 1, 2}).to(at::kFloat).div(255.0).contiguous();   // [1, 3, H, W]
}

at::Tensor image_bytes(const at::Tensor& t) {
    at::Tensor x = t.dim() == 4 ? t[0] : t;   // [3, H, W]
    return x.detach().to(at::kFloat).clamp(0, 1).mul(255.0).round().to(at::kByte).permute({1, 2, 0});
}

void tensor_to_image(const at::Tensor& t, game::Image& out) { bytes_to_image(image_bytes(t), out); }

void bytes_to_image(const at::Tensor& rgb, game::Image& out) {
    const at::Tensor x = rgb.contiguous().cpu();   // [H, W, 3]
    out.height = static_cast<int>(x.size(0));
    out.width = static_cast<int>(x.size(1));
    out.rgb.resize(static_cast<size_t>(x.numel()));
    std::memcpy(out.rgb.data(), x.data_ptr<uint8_t>(), out.rgb.size());
}

namespace {

class ReferenceAttention : public Attention {
public:
    const AttentionSpec& spec() const override { return m_spec; }
    at::Tensor self_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const KvCache& cache,
                           const AttentionContext& ctx, AttentionStats* stats) override {
        at::Tensor keys = k, values = v;   // [1, H, N, D]
        at::Tensor bias = at::zeros({1, q.size(1), k.size(2)}, q.options().dtype(at::kFloat));   // [1, H, N]
        if (cache.size() > 0) {
            at::Tensor cb = cache.bias().to(at::kFloat);   // [1, H, T]
            if (ctx.temporal_slope.defined()) {
                at::Tensor dist = (ctx.frame - cache.frames()).to(at::kFloat).to(q.device());   // [T]
                cb = cb - ctx.temporal_slope.to(q.device()).view({1, -1, 1}) * dist.view({1, 1, -1});
            }
            keys = at::cat({cache.keys().to(q.scalar_type()), k}, 2);
            values = at::cat({cache.values().to(q.scalar_type()), v}, 2);
            bias = at::cat({cb, bias}, 2);
        }
        if (stats) {
            ++stats->calls;
            stats->query_rows += q.size(1) * q.size(2);
            stats->keys_available += q.size(1) * q.size(2) * keys.size(2);
            stats->keys_attended += q.size(1) * q.size(2) * keys.size(2);
        }
        return masked_attention(q, keys, values, bias.unsqueeze(2), at::Tensor());
    }
    at::Tensor cross_attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& valid,
                            const AttentionContext&, AttentionStats* stats) override {
        if (stats) {
            const int64_t n = valid.sum().item<int64_t>() * q.size(1);
            stats->cross_available += n;
            stats->cross_kept += n;
        }
        return masked_attention(q, k, v, at::Tensor(), valid);
    }
    void commit(KvCache& cache, const at::Tensor&, const at::Tensor& k, const at::Tensor& v,
                const AttentionContext& ctx, AttentionStats* stats) override {
        cache.append(k, v, ctx.frame);
        if (stats) stats->committed += k.size(2);
    }

private:
    AttentionSpec m_spec = AttentionSpec{"dense", "{}"};
};

}  // namespace

Attention::Ptr make_reference_attention() { return std::make_unique<ReferenceAttention>(); }

}  // namespace wm

// -------------------------------------------------------------------------------------------------------------------
// WorldModel

WorldModelPtr WorldModel::load(const std::string& config_path, const std::string& device) {
    return wm::load_model(config_path, device);
}

// -------------------------------------------------------------------------------------------------------------------
// Session

struct Session::Impl {
    std::shared_ptr<const wm::ModelImpl> model;
    SessionConfig cfg;
    Attention::Ptr attn, pending_attn;
    std::vector<KvCache> caches;
    wm::PromptKV prompt;
    std::string prompt_text, pending_prompt;
    bool has_pending_prompt = false;
    at::Tensor prev;   // [1, C, h, w] latent of the last committed frame
    int64_t frame = -1;
    at::Device dev{at::kCPU};

    const wm::Net& net() const { return model->net; }

    // Replaces the attention; the fused CUDA graphs read tensors the old one owns, so they go first.
    void set_attention(Attention::Ptr a) {
        if (graphs) graphs->drop_fused();
        attn = std::move(a);
    }

    void encode_prompt(const std::string& text) {
        std::vector<int32_t> ids = model->vocab.tokenize(text, net().config().dit.prompt_len);   // throws on bad words
        at::Tensor tok = at::from_blob(ids.data(), {1, static_cast<int64_t>(ids.size())}, at::kInt).to(at::kLong);
        at::Tensor valid = tok.ne(model->vocab.pad_id());
        valid.index_put_({0, 0}, true);   // token 0 always valid: it carries the empty prompt
        tok = tok.to(dev);
        valid = valid.to(dev);
        prompt = net().prompt_kv(net().encode_prompt(tok, valid), valid);
        prompt_text = text;
    }

    at::Tensor cond(float t, const game::Action& a) const {
        at::Tensor tt = at::full({1, 1}, t, at::TensorOptions().device(dev));
        const float ctx_noise = cfg.ctx_noise >= 0 ? cfg.ctx_noise : net().config().sampler.ctx_noise;
        at::Tensor cn = at::full({1, 1}, ctx_noise, at::TensorOptions().device(dev));
        const std::array<float, 4> v = action_vector(a);
        at::Tensor av = at::tensor(at::ArrayRef<float>(v.data(), v.size())).view({1, 1, 4}).to(dev);
        return net().cond(tt, cn, av);   // [1, 1, W]
    }

    // CUDA graphs of the DiT stages and the decoder (world_model/cuda_graphs.h), made on the first CUDA pass;
    // dropped (with a log line) if capturing fails, and the session goes on launching ops from the host. The set
    // with the cross-attention inside is captured by DitGraphs itself when a pass allows it (its failure only turns
    // that set off).
    std::unique_ptr<wm::DitGraphs> graphs;
    bool graphs_failed = false;

    // The graphs, captured on first use for tensors shaped like `like`; nullptr when this session runs without
    // them (CPU, a CPU build, SessionConfig::cuda_graphs off, or a capture that failed: logged once). Only capture
    // failures turn graphs off: errors of a pass itself (attention, out of memory) propagate as they would without.
    wm::DitGraphs* use_graphs(const at::Tensor& like, bool decoder) {
        if (graphs_failed || !cfg.cuda_graphs || !dev.is_cuda() || !wm::DitGraphs::available()) return nullptr;
        try {
            if (!graphs) graphs = std::make_unique<wm::DitGraphs>(net());
            if (!decoder && !graphs->dit_ready()) graphs->capture_dit(like);
            if (decoder && !graphs->decoder_ready()) graphs->capture_decoder(like);
        } catch (const std::exception& e) {
            dc::log(LogLevel::warn, std::string("CUDA graphs off for this session, ops run one by one: ") + e.what());
            graphs.reset();
            graphs_failed = true;
            return nullptr;
        }
        return graphs.get();
    }

    static std::array<float, 4> action_vector(const game::Action& a) {
        return {std::clamp(a.forward, -1.f, 1.f), std::clamp(a.strafe, -1.f, 1.f), std::clamp(a.turn, -1.f, 1.f),
                a.use ? 1.f : 0.f};
    }

    // One DiT pass at flow time t (commit: also writes this frame's K/V into the caches).
    at::Tensor dit(const at::Tensor& x, float t, const game::Action& a, int step, bool commit, AttentionStats* st) {
        const float cn = cfg.ctx_noise >= 0 ? cfg.ctx_noise : net().config().sampler.ctx_noise;
        if (wm::DitGraphs* g = use_graphs(x, false)) {
            wm::CachedAttention ca(net(), prompt, caches, *attn, ctx(step), commit, st);
            return g->run(x, prev, t, cn, action_vector(a), ca);
        }
        at::Tensor y = net().dit_cached(x, prev, cond(t, a), prompt, caches, *attn, ctx(step), commit, st);
        return y.defined() ? y[0] : y;
    }

    at::Tensor decode(const at::Tensor& z) {
        RECORD_USER_SCOPE("dc::decode");
        if (wm::DitGraphs* g = use_graphs(z, true)) return g->decode(z);
        return net().decode(z);
    }

    AttentionContext ctx(int step) const {
        AttentionContext c;
        c.frame = frame;
        c.step = step;
        c.n_steps = cfg.n_steps;
        c.measure_recall = cfg.recall_every > 0 && frame % cfg.recall_every == 0;
        // One block per recall frame, the blocks taking turns (AttentionContext::recall_turn): a measurement is
        // dozens of small reference ops per call, and measuring every block made a recall frame cost ~6 normal
        // frames on an H100 (bench/results/play-h100.md).
        if (c.measure_recall) c.recall_turn = frame / cfg.recall_every;
        return c;
    }

    void commit(const at::Tensor& x, const game::Action& a, AttentionStats* st) {
        RECORD_USER_SCOPE("dc::commit_pass");
        dit(x, net().config().sampler.commit_t, a, cfg.n_steps, true, st);
        prev = x;
    }

    void new_caches() {
        caches.clear();
        const auto& d = net().config().dit;
        // A budget evicts down to 7/8 of itself (KvCache::budget_slack): with TempCache adding a hundred or so
        // tokens a frame, a 32k-token budget then compacts once every ~30 frames rather than on every frame.
        constexpr double kBudgetSlack = 0.125;
        for (int l = 0; l < d.depth; ++l) {
            caches.emplace_back(d.heads(), d.head_dim, net().compute_dtype(), dev);
            caches.back().max_tokens = cfg.max_cache_tokens;
            caches.back().budget_slack = kBudgetSlack;
        }
    }

    // Session::device_frame: each CUDA step's frame as RGBA8 in a ring of device buffers (the host frame is made as
    // before). Shared so that a DeviceFrame handed out keeps the memory allocated after this session is gone.
    struct DeviceRing {
        std::array<at::Tensor, Session::kDeviceFrameRing> slots;   // each [H, W, 4] uint8 on the session's device
    };
    std::shared_ptr<DeviceRing> device_ring;
    uint64_t device_steps = 0;   // steps that filled a ring slot; the newest is in slot (device_steps - 1) % ring
    bool device_valid = false;   // the newest slot holds the last step's frame (false after reset)

    // rgb: [H, W, 3] uint8, the frame's bytes on dev (the host frame is copied from the same tensor). Enqueues the
    // RGBA8 copy into the next ring slot on the current stream; the host copy that follows in step() synchronizes it.
    void fill_device_frame(const at::Tensor& rgb) {
        if (!dev.is_cuda()) return;
        if (!device_ring) device_ring = std::make_shared<DeviceRing>();
        at::Tensor& slot = device_ring->slots[device_steps % Session::kDeviceFrameRing];   // [H, W, 4]
        if (!slot.defined() || slot.size(0) != rgb.size(0) || slot.size(1) != rgb.size(1))
            slot = at::empty({rgb.size(0), rgb.size(1), 4}, rgb.options());
        slot.narrow(2, 0, 3).copy_(rgb);
        slot.narrow(2, 3, 1).fill_(255);
        ++device_steps;
        device_valid = true;
    }

    DeviceFrame device_frame() const {
        DeviceFrame f;
        if (!device_valid || !device_ring || device_steps == 0) return f;
        const at::Tensor& slot = device_ring->slots[(device_steps - 1) % Session::kDeviceFrameRing];   // [H, W, 4]
        f.rgba = slot.data_ptr();
        f.height = static_cast<int>(slot.size(0));
        f.width = static_cast<int>(slot.size(1));
        f.device = slot.device().index();
        f.serial = device_steps;
        f.owner = device_ring;
        return f;
    }

    void step(const game::Action& a, game::Image& out, FrameStats* stats, const game::Image* forced) {
        DC_CHECK(frame >= 0, "Session::step before Session::reset");
        c10::InferenceMode guard;
        if (pending_attn) set_attention(std::move(pending_attn));
        if (has_pending_prompt) {
            encode_prompt(pending_prompt);
            has_pending_prompt = false;
        }
        ++frame;
        AttentionStats st;
        const auto t0 = std::chrono::steady_clock::now();
        const auto& mc = net().config();
        // Noise from a CPU generator seeded by (seed, frame): identical on every device.
        at::Generator gen = at::detail::createCPUGenerator(cfg.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(frame));
        at::Tensor x = at::randn({1, mc.ae.latent_channels, mc.grid_h(), mc.grid_w()}, gen, at::TensorOptions())
                           .to(dev);   // [1, C, h, w]
        const int S = cfg.n_steps;
        for (int s = 0; s < S; ++s) {
            const float t = 1.f - static_cast<float>(s) / S, tn = 1.f - static_cast<float>(s + 1) / S;
            at::Tensor x0 = dit(x, t, a, s, false, &st);   // [1, C, h, w]
            x = tn > 0 ? x0 + (x - x0) * (tn / t) : x0;   // Euler step of the rectified flow, x0-parametrised
        }
        wm::sync_device(x);
        const double denoise_ms = wm::ms_since(t0);
        const auto t1 = std::chrono::steady_clock::now();
        at::Tensor img = decode(x);   // [1, 3, H, W]
        const at::Tensor rgb = wm::image_bytes(img);   // [H, W, 3] uint8, converted once for both copies
        fill_device_frame(rgb);       // CUDA only; completed by the host copy below, which waits for the stream
        wm::bytes_to_image(rgb, out);
        const double decode_ms = wm::ms_since(t1);
        const auto t2 = std::chrono::steady_clock::now();
        if (forced) x = net().encode(wm::image_to_tensor(*forced, dev));
        commit(x, a, &st);
        wm::sync_device(prev);
        const double commit_ms = wm::ms_since(t2);
        if (stats) {
            stats->frame = frame;
            stats->denoise_ms = denoise_ms;
            stats->commit_ms = commit_ms;
            stats->decode_ms = decode_ms;
            fill_cache_stats(*stats);
            st.resolve();   // the frame's device-side counts, read back once
            stats->attention = st;
        }
    }

    void fill_cache_stats(FrameStats& s) const {
#if defined(DC_HAVE_CUDA) && __has_include(<c10/cuda/CUDACachingAllocator.h>)
        if (dev.is_cuda()) {
            const auto ds = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.has_index() ? dev.index() : 0);
            s.gpu_allocated_bytes = static_cast<int64_t>(ds.allocated_bytes[0].current);   // [0] = aggregate
            s.gpu_reserved_bytes = static_cast<int64_t>(ds.reserved_bytes[0].current);
        }
#endif
        s.cache_tokens = s.cache_bytes = 0;
        s.layer_tokens.clear();
        s.layer_bytes.clear();
        for (const auto& c : caches) {
            s.layer_tokens.push_back(c.size());
            s.layer_bytes.push_back(c.bytes());
            s.cache_tokens += c.size();
            s.cache_bytes += c.bytes();
        }
    }
};

Session::Session(WorldModelPtr model, SessionConfig config) : m_impl(std::make_unique<Impl>()) {
    auto impl = std::dynamic_pointer_cast<const wm::ModelImpl>(model);
    DC_CHECK(impl, "Session needs a model created by WorldModel::load");
    DC_CHECK(config.n_steps >= 1 && config.n_steps <= 16, "n_steps must be in 1..16, found " << config.n_steps);
    m_impl->model = impl;
    m_impl->cfg = config;
    m_impl->dev = impl->net.device();
    m_impl->attn = make_attention(config.attention);
}

Session::~Session() = default;

void Session::reset(const game::Image& start_frame, const std::string& prompt) {
    auto& m = *m_impl;
    c10::InferenceMode guard;
    const auto& mc = m.net().config();
    DC_CHECK(start_frame.width == mc.frame_width && start_frame.height == mc.frame_height,
             "start frame must be " << mc.frame_width << "x" << mc.frame_height << ", found " << start_frame.width
                                    << "x" << start_frame.height);
    m.encode_prompt(prompt);
    m.has_pending_prompt = false;
    if (m.pending_attn) m.set_attention(std::move(m.pending_attn));
    m.new_caches();
    m.frame = 0;
    m.device_valid = false;   // frame 0 is the caller's own (host) frame
    at::Tensor z = m.net().encode(wm::image_to_tensor(start_frame, m.dev));   // [1, C, h, w]
    m.prev = z;
    m.commit(z, game::Action{}, nullptr);   // frame 0: its own previous frame, no action (as in training)
}

void Session::step(const game::Action& action, game::Image& out, FrameStats* stats) {
    m_impl->step(action, out, stats, nullptr);
}

void wm::SessionAccess::step_teacher_forced(Session& s, const game::Action& a, const game::Image& real,
                                            game::Image& out) {
    s.m_impl->step(a, out, nullptr, &real);
}

void wm::SessionAccess::use_reference_attention(Session& s) {
    s.m_impl->set_attention(wm::make_reference_attention());
    s.m_impl->pending_attn.reset();
}

int64_t wm::SessionAccess::fused_graph_passes(const Session& s) {
    return s.m_impl->graphs ? s.m_impl->graphs->fused_passes() : 0;
}

void Session::set_prompt(const std::string& prompt) {
    m_impl->model->vocab.tokenize(prompt, m_impl->net().config().dit.prompt_len);   // validate now (throws)
    m_impl->pending_prompt = prompt;
    m_impl->has_pending_prompt = true;
}

void Session::set_attention(const AttentionSpec& spec) { m_impl->pending_attn = make_attention(spec); }

void Session::set_steps(int n_steps) {
    DC_CHECK(n_steps >= 1 && n_steps <= 16, "n_steps must be in 1..16, found " << n_steps);
    m_impl->cfg.n_steps = n_steps;
}

const SessionConfig& Session::config() const { return m_impl->cfg; }

int64_t Session::frame() const { return m_impl->frame; }

DeviceFrame Session::device_frame() const { return m_impl->device_frame(); }

}  // namespace dc
