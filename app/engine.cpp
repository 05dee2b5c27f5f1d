// Engines by name, the reference game engine, and what every engine shares (host memory, defaults).
#include "app/engine.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "app/engine_impl.h"
#include "common/common.h"

namespace dc::app {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
}

// The reference game (game/): exact frames, the ground truth the world model learns.
class ReferenceEngine final : public Engine {
public:
    explicit ReferenceEngine(const EngineConfig& config)
        : m_vocab(game::Vocabulary::load_default()), m_game(game::Level::load_named(config.level)) {
        if (!config.prompt.empty()) m_game.set_prompt(config.prompt, m_vocab);
    }
    std::string name() const override { return "reference"; }
    void reset(uint64_t seed, game::Image& out) override {
        const auto t0 = std::chrono::steady_clock::now();
        m_game.reset(seed);
        m_stats = EngineStats{};
        m_stats.simulate_ms = ms_since(t0);
        const auto t1 = std::chrono::steady_clock::now();
        m_game.render(out);
        m_stats.render_ms = ms_since(t1);
        m_stats.step_ms = ms_since(t0);
        m_stats.rss_bytes = host_rss_bytes();
    }
    void step(const game::Action& action, game::Image& out) override {
        const auto t0 = std::chrono::steady_clock::now();
        m_game.step(action);
        m_stats.simulate_ms = ms_since(t0);
        const auto t1 = std::chrono::steady_clock::now();
        m_game.render(out);
        m_stats.render_ms = ms_since(t1);
        m_stats.step_ms = ms_since(t0);
        m_stats.rss_bytes = host_rss_bytes();
        ++m_stats.frame;
    }
    void set_prompt(const std::string& prompt) override { m_game.set_prompt(prompt, m_vocab); }
    const std::string& prompt() const override { return m_game.prompt(); }
    bool redraw(game::Image& out) override {
        m_game.render(out);
        return true;
    }
    std::optional<game::Pose> pose() const override { return m_game.pose(); }
    float tick_hz() const override { return m_game.config().tick_hz; }
    const EngineStats& stats() const override { return m_stats; }
    std::string describe() const override { return "reference game (exact frames)"; }

private:
    game::Vocabulary m_vocab;
    game::Game m_game;
    EngineStats m_stats;
};

}  // namespace

void Engine::set_attention(const std::string&, const std::string&) {
    DC_FAIL("the " << name()
                   << " engine has no attention settings; they apply to the neural and side-by-side "
                      "engines");
}

void Engine::set_steps(int) {
    DC_FAIL("the " << name() << " engine has no denoising steps; they apply to the neural and side-by-side engines");
}

void Engine::set_cache_budget(int64_t) {
    DC_FAIL("the " << name() << " engine has no KV cache; a budget applies to the neural and side-by-side engines");
}

void Engine::resync() {
    DC_FAIL("resync restarts the dream from the real frame: it needs the side-by-side engine, found the " << name()
                                                                                                          << " engine");
}

std::unique_ptr<Engine> make_reference_engine(const EngineConfig& config) {
    return std::make_unique<ReferenceEngine>(config);
}

const std::vector<std::string>& known_engine_names() {
    static const std::vector<std::string> names{"reference", "neural", "side-by-side"};
    return names;
}

std::vector<std::string> engine_names() {
#ifdef DC_HAVE_WORLD_MODEL
    return {"reference", "neural", "side-by-side"};
#else
    return {"reference"};
#endif
}

std::unique_ptr<Engine> make_engine(const std::string& name, const EngineConfig& config) {
    const auto have = engine_names();
    if (std::find(have.begin(), have.end(), name) == have.end()) {
        const auto& known = known_engine_names();
        if (std::find(known.begin(), known.end(), name) != known.end())
            DC_FAIL("engine '" << name << "' is not in this build; this build has: " << join(have));
        DC_FAIL("unknown engine '" << name << "'; this build has: " << join(have));
    }
#ifdef DC_HAVE_WORLD_MODEL
    if (name == "neural") return make_neural_engine(config);
    if (name == "side-by-side") return make_side_by_side_engine(config);
#endif
    return make_reference_engine(config);
}

std::string default_model_path() {
    try {
        return (std::filesystem::path(assets_dir()) / "models" / "default.json").string();
    } catch (const dc::Error&) {
        return "";
    }
}

#ifndef DC_HAVE_WORLD_MODEL
std::string default_device() {
    return "cpu";
}
#endif

int64_t host_rss_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long long size = 0, resident = 0;
    const int n = std::fscanf(f, "%lld %lld", &size, &resident);
    std::fclose(f);
    if (n != 2) return 0;
    return static_cast<int64_t>(resident) * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace dc::app
