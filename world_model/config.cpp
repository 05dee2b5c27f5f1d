// world_model/config.cpp — model configuration presets and JSON (see model_impl.h).
#include <sstream>

#include "common/common.h"
#include "world_model/model_impl.h"

namespace dc::wm {

ModelConfig ModelConfig::preset(const std::string& name) {
    ModelConfig c;
    if (name == "default") return c;
    if (name == "tiny") {   // learns measurably on 2 CPU cores in about a minute (CI)
        c.ae.latent_channels = 8;
        c.ae.enc_channels = {8, 16, 32, 48};
        c.ae.dec_channels = {48, 32, 16, 8};
        c.ae.dec_blocks_low = 1;
        c.ae.groups = 4;
        c.dit.width = 64;
        c.dit.depth = 2;
        c.dit.head_dim = 32;
        c.dit.mlp_hidden = 128;
        c.dit.prompt_layers = 1;
        c.sampler.n_steps = 2;
        return c;
    }
    DC_FAIL("unknown model preset '" << name << "'; accepted: tiny, default");
}

nlohmann::json ModelConfig::to_json() const {
    nlohmann::json j;
    j["frame_width"] = frame_width;
    j["frame_height"] = frame_height;
    j["downsample"] = downsample;
    j["seed"] = seed;
    j["ae"] = {{"latent_channels", ae.latent_channels}, {"enc_channels", ae.enc_channels},
               {"dec_channels", ae.dec_channels}, {"dec_blocks_low", ae.dec_blocks_low}, {"groups", ae.groups}};
    j["dit"] = {{"width", dit.width},         {"depth", dit.depth},
                {"head_dim", dit.head_dim},   {"mlp_hidden", dit.mlp_hidden},
                {"prompt_len", dit.prompt_len}, {"prompt_layers", dit.prompt_layers},
                {"vocab_size", dit.vocab_size}, {"vocab_sha256", dit.vocab_sha256},
                {"rope_base", dit.rope_base}, {"slope_max", dit.slope_max}};
    j["sampler"] = {{"n_steps", sampler.n_steps}, {"ctx_noise", sampler.ctx_noise}, {"commit_t", sampler.commit_t}};
    return j;
}

namespace {
template <class T>
void get(const nlohmann::json& j, const char* key, T& out, const std::string& where) {
    if (!j.contains(key)) return;
    try {
        out = j.at(key).get<T>();
    } catch (const std::exception& e) {
        DC_FAIL("model config: field '" << where << key << "' has the wrong type (" << e.what() << "): "
                                        << j.at(key).dump());
    }
}
void check_keys(const nlohmann::json& j, const std::vector<std::string>& known, const std::string& where) {
    DC_CHECK(j.is_object(), "model config: '" << where << "' must be an object, found " << j.dump());
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool ok = false;
        for (const auto& k : known) ok = ok || k == it.key();
        if (!ok) {
            std::ostringstream os;
            for (const auto& k : known) os << ' ' << k;
            DC_FAIL("model config: unknown field '" << where << it.key() << "'; accepted:" << os.str());
        }
    }
}
}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
    ModelConfig c;
    check_keys(j, {"frame_width", "frame_height", "downsample", "seed", "ae", "dit", "sampler"}, "");
    get(j, "frame_width", c.frame_width, "");
    get(j, "frame_height", c.frame_height, "");
    get(j, "downsample", c.downsample, "");
    get(j, "seed", c.seed, "");
    if (j.contains("ae")) {
        const auto& a = j["ae"];
        check_keys(a, {"latent_channels", "enc_channels", "dec_channels", "dec_blocks_low", "groups"}, "ae.");
        get(a, "latent_channels", c.ae.latent_channels, "ae.");
        get(a, "enc_channels", c.ae.enc_channels, "ae.");
        get(a, "dec_channels", c.ae.dec_channels, "ae.");
        get(a, "dec_blocks_low", c.ae.dec_blocks_low, "ae.");
        get(a, "groups", c.ae.groups, "ae.");
    }
    if (j.contains("dit")) {
        const auto& d = j["dit"];
        check_keys(d, {"width", "depth", "head_dim", "mlp_hidden", "prompt_len", "prompt_layers", "vocab_size",
                       "vocab_sha256", "rope_base", "slope_max"},
                   "dit.");
        get(d, "width", c.dit.width, "dit.");
        get(d, "depth", c.dit.depth, "dit.");
        get(d, "head_dim", c.dit.head_dim, "dit.");
        get(d, "mlp_hidden", c.dit.mlp_hidden, "dit.");
        get(d, "prompt_len", c.dit.prompt_len, "dit.");
        get(d, "prompt_layers", c.dit.prompt_layers, "dit.");
        get(d, "vocab_size", c.dit.vocab_size, "dit.");
        get(d, "vocab_sha256", c.dit.vocab_sha256, "dit.");
        get(d, "rope_base", c.dit.rope_base, "dit.");
        get(d, "slope_max", c.dit.slope_max, "dit.");
    }
    if (j.contains("sampler")) {
        const auto& s = j["sampler"];
        check_keys(s, {"n_steps", "ctx_noise", "commit_t"}, "sampler.");
        get(s, "n_steps", c.sampler.n_steps, "sampler.");
        get(s, "ctx_noise", c.sampler.ctx_noise, "sampler.");
        get(s, "commit_t", c.sampler.commit_t, "sampler.");
    }
    DC_CHECK(c.frame_width == 128 && c.frame_height == 128,
             "model config: frames must be 128x128 (the game's size), found " << c.frame_width << "x" << c.frame_height);
    DC_CHECK(c.dit.depth >= 1 && c.dit.width >= c.dit.head_dim && c.ae.latent_channels >= 1,
             "model config: bad sizes (depth " << c.dit.depth << ", width " << c.dit.width << ", latent channels "
                                               << c.ae.latent_channels << ")");
    return c;
}

}  // namespace dc::wm
