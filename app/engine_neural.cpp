// The neural engine: dc::Session (world_model/) dreams every frame from the player's actions.
//
// Start: the level's spawn view rendered by the real game (in the prompt's style) is the session's first context
// frame (Session::reset), and frame 0 shows it. Every later frame is the model's.
// Failures: a load failure throws (play falls back to the reference engine). An out-of-memory error during a step
// (CUDA caching allocator, or std::bad_alloc) is caught: the per-layer cache budget is halved (from the cache size at
// that moment when it was unbounded) and the session restarts from the last frame shown; when the budget would go
// below kMinBudgetTokens, a CUDA session moves to the CPU instead. Each fallback is logged (dc::log -> overlay).
#include <ATen/Context.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <new>
#include <sstream>

#include "app/engine_impl.h"
#include "common/common.h"
#include "world_model/world_model.h"

namespace dc::app {

namespace {

constexpr int64_t kMinBudgetTokens = 1024;  // per layer: 4 frames of 256 tokens, the least worth dreaming with

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

bool is_out_of_memory(const std::exception& e) {
    if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
    std::string w = e.what();
    std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return w.find("out of memory") != std::string::npos;
}

std::string first_line(const std::string& s) {
    const auto nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
}

class NeuralEngineImpl final : public NeuralEngine {
public:
    explicit NeuralEngineImpl(const EngineConfig& config)
        : m_config(config), m_vocab(game::Vocabulary::load_default()), m_game(game::Level::load_named(config.level)) {
        if (!config.prompt.empty()) m_game.set_prompt(config.prompt, m_vocab);  // throws on bad words
        m_prompt = config.prompt;
        m_path = config.model_path.empty() ? default_model_path() : config.model_path;
        m_device = config.device.empty() ? default_device() : config.device;
        DC_CHECK(!m_path.empty(), "no model file given and no assets folder to find models/default.json in");
        try {
            m_model = WorldModel::load(m_path, m_device);
        } catch (const dc::Error& e) {
            DC_FAIL("could not load the world model " << m_path << ": " << e.message());
        } catch (const std::exception& e) {
            DC_FAIL("could not load the world model " << m_path << " on " << m_device << ": " << first_line(e.what()));
        }
        game::Image probe;
        m_game.render(probe);
        DC_CHECK(m_model->frame_width() == probe.width && m_model->frame_height() == probe.height,
                 "the world model " << m_path << " makes " << m_model->frame_width() << "x" << m_model->frame_height()
                                    << " frames, but the game renders " << probe.width << "x" << probe.height);
        m_spec = AttentionSpec::parse(config.attention_type, config.attention_params);
        m_full_params = AttentionSpec::from_config(m_spec.config()).params_json;
        m_session_config.n_steps = config.n_steps;
        m_session_config.seed = config.seed;
        m_session_config.max_cache_tokens = config.max_cache_tokens;
        DC_CHECK(config.max_cache_tokens >= 0,
                 "cache budget must be >= 0 tokens per layer (0 = unbounded), found " << config.max_cache_tokens);
        new_session();
        dc::log(LogLevel::info, m_model->describe());
    }

    std::string name() const override { return "neural"; }
    bool has_model() const override { return true; }
    std::string describe() const override { return m_model->describe(); }
    DeviceFrame device_frame() const override { return m_session->device_frame(); }

    void reset(uint64_t seed, game::Image& out) override {
        const auto t0 = std::chrono::steady_clock::now();
        m_game.reset(seed);
        m_game.render(out);  // the real spawn view: the dream starts from it
        const double render_ms = ms_since(t0);
        m_session_config.seed = seed;
        m_frame = 0;
        new_session();
        m_session->reset(out, m_prompt);
        m_last = out;
        m_stats = EngineStats{};
        fill_settings();
        m_stats.render_ms = render_ms;
        m_stats.step_ms = ms_since(t0);
        m_stats.simulate_ms = m_stats.step_ms - render_ms;
        m_stats.rss_bytes = host_rss_bytes();
    }

    void step(const game::Action& action, game::Image& out) override {
        const auto t0 = std::chrono::steady_clock::now();
        FrameStats fs;
        try {
            if (m_config.inject_oom_at >= 0 && m_frame + 1 == m_config.inject_oom_at && !m_injected) {
                m_injected = true;
                throw std::runtime_error("simulated CUDA out of memory (--set inject_oom_at=" +
                                         std::to_string(m_config.inject_oom_at) + ")");
            }
            m_session->step(action, out, &fs);
        } catch (const std::exception& e) {
            if (!is_out_of_memory(e)) throw;
            recover_from_oom(first_line(e.what()));
            m_session->step(action, out, &fs);  // once more; a second failure goes to the caller
        }
        ++m_frame;
        m_last = out;
        fill_stats(fs, ms_since(t0));
    }

    void set_prompt(const std::string& prompt) override {
        const std::string old = m_game.prompt();
        m_game.set_prompt(prompt, m_vocab);  // throws: nothing changed
        try {
            m_session->set_prompt(prompt);
        } catch (...) {
            m_game.set_prompt(old, m_vocab);
            throw;
        }
        m_prompt = prompt;
    }
    const std::string& prompt() const override { return m_prompt; }
    bool redraw(game::Image&) override { return false; }  // a new prompt shows from the next dreamed frame
    std::optional<game::Pose> pose() const override { return std::nullopt; }
    float tick_hz() const override { return m_game.config().tick_hz; }
    const EngineStats& stats() const override { return m_stats; }

    void set_attention(const std::string& type, const std::string& params_json) override {
        AttentionSpec spec = AttentionSpec::parse(type, params_json);  // throws naming what is accepted
        m_session->set_attention(spec);                                // make_attention: throws on what parse let by
        m_spec = spec;
        m_last_recall = -1;   // a figure of the old configuration would mislead
        m_full_params = AttentionSpec::from_config(m_spec.config()).params_json;
    }
    void set_steps(int n_steps) override {
        m_session->set_steps(n_steps);  // throws outside 1..16
        m_session_config.n_steps = n_steps;
    }
    void set_cache_budget(int64_t tokens) override {
        DC_CHECK(tokens >= 0, "cache budget must be >= 0 tokens per layer (0 = unbounded), found " << tokens);
        m_session_config.max_cache_tokens = tokens;
        restart_from(m_last);
    }
    void restart_from(const game::Image& frame) override {
        DC_CHECK(!frame.rgb.empty(), "restart_from before the first reset");
        // A different noise seed per restart point, so a restart does not replay the noise of frames 1, 2, ...
        m_session_config.seed = m_config.seed + static_cast<uint64_t>(m_frame);
        new_session();
        m_session->reset(frame, m_prompt);
        m_last = frame;
    }

private:
    void new_session() {
        SessionConfig sc = m_session_config;
        sc.attention = m_spec;
        m_session = std::make_unique<Session>(m_model, sc);
    }

    void recover_from_oom(const std::string& what) {
        const int64_t now_tokens = m_stats.layer_tokens.empty()
                                       ? 0
                                       : *std::max_element(m_stats.layer_tokens.begin(), m_stats.layer_tokens.end());
        const int64_t old_budget = m_session_config.max_cache_tokens;
        const int64_t budget = (old_budget > 0 ? old_budget : now_tokens) / 2;
        std::ostringstream msg;
        msg << "out of memory at frame " << m_frame + 1 << " on " << m_device << " (" << what << "): ";
        if (budget >= kMinBudgetTokens) {
            m_session_config.max_cache_tokens = budget;
            msg << "KV cache budget set to " << budget << " tokens per layer; the dream restarts from frame "
                << m_frame;
        } else if (m_device != "cpu") {
            m_device = "cpu";
            m_model = WorldModel::load(m_path, m_device);
            msg << "moved the model to the CPU; the dream restarts from frame " << m_frame;
        } else {
            DC_FAIL("out of memory at frame " << m_frame + 1 << " on the CPU with a cache budget of " << old_budget
                                              << " tokens per layer: " << what);
        }
        dc::log(LogLevel::warn, msg.str());
        restart_from(m_last);
    }

    void fill_settings() {
        m_stats.n_steps = m_session_config.n_steps;
        m_stats.attention = m_spec.type;
        m_stats.attention_params = m_full_params;
        m_stats.device = m_device;
        m_stats.budget_tokens = m_session_config.max_cache_tokens;
    }

    void fill_stats(const FrameStats& fs, double total_ms) {
        EngineStats& s = m_stats;
        s.frame = m_frame;
        s.step_ms = total_ms;
        s.denoise_ms = fs.denoise_ms;
        s.commit_ms = fs.commit_ms;
        s.decode_ms = fs.decode_ms;
        s.simulate_ms = fs.denoise_ms + fs.commit_ms;
        s.render_ms = fs.decode_ms;
        s.cache_tokens = fs.cache_tokens;
        s.cache_bytes = fs.cache_bytes;
        s.layer_tokens = fs.layer_tokens;
        s.layer_bytes = fs.layer_bytes;
        s.rss_bytes = host_rss_bytes();
        const bool gpu = m_device != "cpu";
        s.gpu_allocated_bytes = gpu ? fs.gpu_allocated_bytes : -1;
        s.gpu_reserved_bytes = gpu ? fs.gpu_reserved_bytes : -1;
        const AttentionStats& a = fs.attention;
        s.density = a.keys_available > 0 ? a.density() : -1;
        if (a.recall_calls > 0) m_last_recall = a.recall();   // measured every SessionConfig::recall_every frames
        s.recall = m_last_recall;
        s.merge_rate = a.committed > 0 ? a.merge_rate() : -1;
        s.kept_fraction = a.cross_available > 0 ? a.cross_kept_fraction() : -1;
        fill_settings();
    }

    EngineConfig m_config;
    game::Vocabulary m_vocab;
    game::Game m_game;  // renders the spawn view the dream starts from
    std::string m_path, m_device;
    WorldModelPtr m_model;
    SessionConfig m_session_config;  // steps, seed, budget (attention comes from m_spec)
    AttentionSpec m_spec;            // in force from the next frame
    std::string m_full_params;       // m_spec's parameters, every field written out
    std::unique_ptr<Session> m_session;
    double m_last_recall = -1;       // newest measured AnnSA recall (-1: none yet)
    std::string m_prompt;
    game::Image m_last;   // the last frame shown: where restarts continue from
    int64_t m_frame = 0;  // frames since reset (continues across restarts)
    bool m_injected = false;
    EngineStats m_stats;
};

}  // namespace

std::string default_device() {
    return at::hasCUDA() ? "cuda" : "cpu";
}

std::unique_ptr<NeuralEngine> make_neural_engine(const EngineConfig& config) {
    return std::make_unique<NeuralEngineImpl>(config);
}

}  // namespace dc::app
