// world_model/evaluator.cpp — PSNR/SSIM of the world model against the real game (see evaluator.h).
#include "world_model/evaluator.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "common/common.h"
#include "world_model/evaluator_impl.h"
#include "world_model/world_model_impl.h"

namespace dc {
namespace wm {

double psnr(const at::Tensor& a, const at::Tensor& b) {
    const double mse = (a.to(at::kFloat) - b.to(at::kFloat)).pow(2).mean().item<double>();
    return 10.0 * std::log10(1.0 / std::max(mse, 1e-10));
}

double ssim(const at::Tensor& a_in, const at::Tensor& b_in) {
    at::Tensor a = a_in.to(at::kFloat).reshape({-1, 3, a_in.size(-2), a_in.size(-1)});
    at::Tensor b = b_in.to(at::kFloat).reshape({-1, 3, b_in.size(-2), b_in.size(-1)});
    at::Tensor g = at::arange(11, a.options()) - 5.0;
    g = at::exp(-g.pow(2) / (2 * 1.5 * 1.5));
    g = g / g.sum();
    at::Tensor w = (g.unsqueeze(1) * g.unsqueeze(0)).expand({3, 1, 11, 11}).contiguous();   // [3, 1, 11, 11]
    const std::vector<int64_t> one{1, 1}, zero{0, 0};
    auto f = [&](const at::Tensor& x) { return at::conv2d(x, w, at::Tensor(), one, zero, one, 3); };
    at::Tensor mu_a = f(a), mu_b = f(b);
    at::Tensor saa = f(a * a) - mu_a * mu_a, sbb = f(b * b) - mu_b * mu_b, sab = f(a * b) - mu_a * mu_b;
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    at::Tensor s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (saa + sbb + c2));
    return s.mean().item<double>();
}

namespace {

at::Tensor clip_frames(const Clip& c) {   // [K, 3, H, W] float in [0, 1] (CPU)
    return at::from_blob(const_cast<uint8_t*>(c.rgb.data()), {c.frames, c.height, c.width, 3}, at::kByte)
        .permute({0, 3, 1, 2})
        .to(at::kFloat)
        .div(255.0);
}

game::Image frame_image(const Clip& c, int k) {
    game::Image im;
    im.width = c.width;
    im.height = c.height;
    const size_t n = static_cast<size_t>(c.width) * c.height * 3;
    im.rgb.assign(c.rgb.begin() + static_cast<std::ptrdiff_t>(n * k),
                  c.rgb.begin() + static_cast<std::ptrdiff_t>(n * (k + 1)));
    return im;
}

game::Action clip_action(const Clip& c, int k) {
    const float* a = &c.actions[static_cast<size_t>(k) * 4];
    game::Action act;
    act.forward = a[0];
    act.strafe = a[1];
    act.turn = a[2];
    act.use = a[3] > 0.5f;
    return act;
}

at::Tensor image_tensor(const game::Image& im) {   // [3, H, W] float CPU
    return at::from_blob(const_cast<uint8_t*>(im.rgb.data()), {im.height, im.width, 3}, at::kByte)
        .permute({2, 0, 1})
        .to(at::kFloat)
        .div(255.0);
}

at::Tensor ae_roundtrip(const Net& net, const at::Tensor& frames) {   // [K, 3, H, W] CPU -> same
    c10::InferenceMode g;
    std::vector<at::Tensor> out;
    for (int64_t i = 0; i < frames.size(0); i += 32) {
        at::Tensor x = frames.narrow(0, i, std::min<int64_t>(32, frames.size(0) - i)).to(net.device());
        out.push_back(net.decode(net.encode(x)).clamp(0, 1).to(at::kFloat).cpu());
    }
    return at::cat(out);
}

struct Acc {
    double psnr = 0, ssim = 0;
    int64_t n = 0;
    void add(const at::Tensor& a, const at::Tensor& b) {
        // quantise like a displayed frame, then score
        at::Tensor qa = a.clamp(0, 1).mul(255).round().div(255), qb = b.clamp(0, 1).mul(255).round().div(255);
        psnr += wm::psnr(qa, qb);
        ssim += wm::ssim(qa, qb);
        ++n;
    }
};

}  // namespace

QuickMetrics quick_metrics(const Net& net, const game::Vocabulary& vocab, const DataConfig& data, int n_clips,
                           bool with_dit) {
    DataConfig d = data;
    d.held_out = true;
    d.seed = 7;
    d.prompt_change_prob = 0;
    std::vector<game::Level> levels;
    for (const auto& n : d.levels.empty() ? game::Level::names() : d.levels)
        levels.push_back(game::Level::load_named(n));
    auto model = std::make_shared<ModelImpl>(net, vocab);
    Acc ae, copy, tf;
    for (int i = 0; i < n_clips; ++i) {
        Clip c = make_clip(d, static_cast<uint64_t>(i), vocab, levels, net.config().dit.prompt_len);
        at::Tensor fr = clip_frames(c);
        at::Tensor rec = ae_roundtrip(net, fr);
        for (int k = 0; k < c.frames; ++k) ae.add(rec[k], fr[k]);
        for (int k = 1; k < c.frames; ++k) copy.add(fr[k - 1], fr[k]);
        if (with_dit) {
            Session s(model, SessionConfig{});
            SessionAccess::use_reference_attention(s);
            s.reset(frame_image(c, 0), c.prompt[0]);
            game::Image out;
            for (int k = 1; k < c.frames; ++k) {
                SessionAccess::step_teacher_forced(s, clip_action(c, k), frame_image(c, k), out);
                tf.add(image_tensor(out), fr[k]);
            }
        }
    }
    QuickMetrics q;
    q.ae_psnr = ae.n ? ae.psnr / ae.n : 0;
    q.copy_last_psnr = copy.n ? copy.psnr / copy.n : 0;
    q.teacher_forced_psnr = tf.n ? tf.psnr / tf.n : 0;
    return q;
}

}  // namespace wm

EvalReport evaluate_world_model(const EvalOptions& o) {
    using namespace wm;
    DC_CHECK(!o.model_path.empty(), "eval: a model file is needed (--model FILE)");
    DC_CHECK(o.clips >= 1, "eval: --clips must be >= 1");
    if (o.threads > 0) at::set_num_threads(o.threads);
    auto model = load_model(o.model_path, o.device);
    const Net& net = model->net;
    int max_h = 1;
    for (int h : o.horizons) {
        DC_CHECK(h >= 1, "eval: horizons must be >= 1, found " << h);
        max_h = std::max(max_h, h);
    }
    const int frames = std::max(max_h, o.teacher_forced_frames) + 1;
    std::vector<std::string> agents = o.agents.empty() ? game::agent_names() : o.agents;
    std::vector<game::Level> levels;
    for (const auto& n : o.levels.empty() ? game::Level::names() : o.levels)
        levels.push_back(game::Level::load_named(n));
    SessionConfig sc;
    sc.n_steps = o.n_steps > 0 ? o.n_steps : net.config().sampler.n_steps;
    sc.attention = AttentionSpec::parse(o.attention, o.attention_params);
    sc.ctx_noise = o.ctx_noise;
    SessionConfig dense_sc = sc;
    dense_sc.attention = AttentionSpec::parse("dense");
    const bool vs_dense = o.attention != "dense";

    if (o.speed_frames > 0) {   // timing only: one rollout driven by a scripted agent, cache growing
        EvalReport rep;
        rep.model_description = model->describe();
        DataConfig d;
        d.held_out = true;
        d.seed = o.seed;
        d.clip_frames = o.speed_frames + 1;
        d.agents = {agents.front()};
        d.levels = o.levels;
        d.prompt_change_prob = 0;
        Clip c = make_clip(d, 0, model->vocab, levels, net.config().dit.prompt_len);
        Session s(model, sc);
        s.reset(frame_image(c, 0), c.prompt[0]);
        game::Image out;
        double total = 0;
        for (int k = 1; k <= o.speed_frames; ++k) {
            FrameStats st;
            s.step(clip_action(c, k), out, &st);
            const int64_t per_layer = st.layer_tokens.empty() ? 0 : st.layer_tokens[0];
            rep.speed.push_back({k, per_layer, st.denoise_ms, st.commit_ms, st.decode_ms});
            total += st.denoise_ms + st.commit_ms + st.decode_ms;
        }
        rep.ms_per_frame = total / o.speed_frames;
        return rep;
    }
    Acc ae;
    std::map<int, Acc> copy_h, ar_h, vs_h;
    Acc copy1, tf;
    double step_ms = 0;
    int64_t n_steps_timed = 0;
    EvalReport rep;
    rep.model_description = model->describe();
    for (int i = 0; i < o.clips; ++i) {
        DataConfig d;
        d.held_out = true;
        d.seed = o.seed;
        d.clip_frames = frames;
        d.agents = {agents[static_cast<size_t>(i) % agents.size()]};
        d.levels = o.levels;
        d.prompt_change_prob = 0;
        Clip c = make_clip(d, static_cast<uint64_t>(i), model->vocab, levels, net.config().dit.prompt_len);
        at::Tensor fr = clip_frames(c);   // [F, 3, H, W]
        at::Tensor rec = ae_roundtrip(net, fr);
        for (int k = 0; k < c.frames; ++k) ae.add(rec[k], fr[k]);
        for (int k = 1; k < c.frames; ++k) copy1.add(fr[k - 1], fr[k]);
        for (int h : o.horizons) copy_h[h].add(fr[0], fr[h]);
        game::Image out, dense_out;
        if (o.teacher_forced_frames > 0) {
            Session s(model, dense_sc);
            s.reset(frame_image(c, 0), c.prompt[0]);
            for (int k = 1; k <= o.teacher_forced_frames; ++k) {
                SessionAccess::step_teacher_forced(s, clip_action(c, k), frame_image(c, k), out);
                tf.add(image_tensor(out), fr[k]);
            }
        }
        Session s(model, sc);
        s.reset(frame_image(c, 0), c.prompt[0]);
        std::unique_ptr<Session> ds;
        if (vs_dense) {
            ds = std::make_unique<Session>(model, dense_sc);
            ds->reset(frame_image(c, 0), c.prompt[0]);
        }
        for (int k = 1; k <= max_h; ++k) {
            FrameStats st;
            s.step(clip_action(c, k), out, &st);
            step_ms += st.denoise_ms + st.commit_ms + st.decode_ms;
            ++n_steps_timed;
            if (ds) ds->step(clip_action(c, k), dense_out);
            if (std::find(o.horizons.begin(), o.horizons.end(), k) != o.horizons.end()) {
                ar_h[k].add(image_tensor(out), fr[k]);
                if (ds) vs_h[k].add(image_tensor(out), image_tensor(dense_out));
            }
        }
        if (!o.quiet) {
            std::ostringstream os;
            os << "eval clip " << i + 1 << "/" << o.clips << " (" << c.agent << ", " << c.level << ")";
            dc::log(LogLevel::info, os.str());
        }
    }
    // Restyling: held-out clips that switch prompt at a random frame (like training's prompt changes). At the first
    // frame of the new prompt, teacher-forced, the model is scored twice: told the new prompt (restyle) and left on
    // the old one (restyle_old_prompt). Equal figures mean the prompt is ignored; the real change is what the
    // previous real frame misses (restyle_copy_last).
    Acc rs_copy, rs_old, rs_new;
    for (int i = 0; i < o.restyle_clips; ++i) {
        DataConfig d;
        d.held_out = true;
        d.seed = o.seed ^ 0x7e57171eull;
        d.clip_frames = 9;
        d.agents = {agents[static_cast<size_t>(i) % agents.size()]};
        d.levels = o.levels;
        d.prompt_change_prob = 1;
        d.empty_prompt_prob = 0;
        Clip c = make_clip(d, static_cast<uint64_t>(i), model->vocab, levels, net.config().dit.prompt_len);
        const int change = static_cast<int>(std::find(c.prompt_of.begin(), c.prompt_of.end(), 1) - c.prompt_of.begin());
        if (change >= c.frames) continue;
        at::Tensor fr = clip_frames(c);   // [9, 3, H, W]
        Session s_new(model, dense_sc), s_old(model, dense_sc);
        s_new.reset(frame_image(c, 0), c.prompt[0]);
        s_old.reset(frame_image(c, 0), c.prompt[0]);
        game::Image out_new, out_old;
        for (int k = 1; k <= change; ++k) {
            if (k == change) s_new.set_prompt(c.prompt[1]);
            SessionAccess::step_teacher_forced(s_new, clip_action(c, k), frame_image(c, k), out_new);
            SessionAccess::step_teacher_forced(s_old, clip_action(c, k), frame_image(c, k), out_old);
        }
        rs_copy.add(fr[change - 1], fr[change]);
        rs_old.add(image_tensor(out_old), fr[change]);
        rs_new.add(image_tensor(out_new), fr[change]);
    }
    auto row = [&](const std::string& m, int h, const Acc& a) {
        if (a.n) rep.rows.push_back({m, h, a.psnr / a.n, a.ssim / a.n, a.n});
    };
    row("ae_ceiling", 0, ae);
    row("copy_last", 1, copy1);
    row("teacher_forced", 1, tf);
    for (int h : o.horizons) {
        if (h > 1) row("copy_last", h, copy_h[h]);
        row("autoregressive", h, ar_h[h]);
        if (vs_dense) row("vs_dense", h, vs_h[h]);
    }
    row("restyle_copy_last", 1, rs_copy);
    row("restyle_old_prompt", 1, rs_old);
    row("restyle", 1, rs_new);
    rep.ms_per_frame = n_steps_timed ? step_ms / n_steps_timed : 0;
    return rep;
}

std::string EvalReport::table() const {
    std::ostringstream os;
    os << model_description << "\n";
    if (!speed.empty()) {
        os << std::right << std::setw(7) << "frame" << std::setw(14) << "cache tok/L" << std::setw(11) << "denoise"
           << std::setw(9) << "commit" << std::setw(9) << "decode" << std::setw(10) << "ms/frame" << "\n";
        for (const auto& r : speed) {
            if ((r.frame & (r.frame - 1)) != 0 && r.frame != static_cast<int64_t>(speed.size())) continue;   // 2^k
            os << std::fixed << std::setprecision(1) << std::setw(7) << r.frame << std::setw(14) << r.cache_tokens
               << std::setw(11) << r.denoise_ms << std::setw(9) << r.commit_ms << std::setw(9) << r.decode_ms
               << std::setw(10) << r.denoise_ms + r.commit_ms + r.decode_ms << "\n";
        }
        os << std::setprecision(1) << "mean: " << ms_per_frame << " ms/frame\n";
        return os.str();
    }
    os << std::left << std::setw(20) << "metric" << std::right << std::setw(8) << "horizon" << std::setw(10)
       << "PSNR dB" << std::setw(8) << "SSIM" << std::setw(8) << "frames" << "\n";
    for (const auto& r : rows)
        os << std::left << std::setw(20) << r.metric << std::right << std::setw(8) << r.horizon << std::fixed
           << std::setprecision(2) << std::setw(10) << r.psnr << std::setprecision(3) << std::setw(8) << r.ssim
           << std::setw(8) << r.n << "\n";
    os << std::setprecision(1) << "rollout step: " << ms_per_frame << " ms/frame\n";
    return os.str();
}

void EvalReport::write_csv(const std::string& path) const {
    std::ofstream f(path);
    DC_CHECK(f.good(), "eval: cannot write '" << path << "'");
    if (!speed.empty()) {
        f << "frame,cache_tokens_per_layer,denoise_ms,commit_ms,decode_ms,total_ms\n";
        for (const auto& r : speed)
            f << r.frame << ',' << r.cache_tokens << ',' << r.denoise_ms << ',' << r.commit_ms << ',' << r.decode_ms
              << ',' << r.denoise_ms + r.commit_ms + r.decode_ms << "\n";
        return;
    }
    f << "metric,horizon,psnr_db,ssim,frames\n";
    for (const auto& r : rows)
        f << r.metric << ',' << r.horizon << ',' << std::setprecision(6) << r.psnr << ',' << r.ssim << ',' << r.n
          << "\n";
}

}  // namespace dc
