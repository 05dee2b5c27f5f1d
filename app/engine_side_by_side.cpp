// Side-by-side: the same actions go into the neural engine and the real game; one image twice as wide shows the
// dream on the left and the real frame on the right, and every frame carries PSNR/SSIM of dream vs real.
// resync() restarts the dream from the current real frame (the model's context becomes the truth again).
// Prompts apply to both: the real game restyles at once, the dream from its next frame.
#ifdef DC_HAVE_WORLD_MODEL
#include <chrono>
#include <cstring>

#include "app/engine_impl.h"
#include "app/image_metrics.h"
#include "common/common.h"

namespace dc::app {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

class SideBySideEngine final : public Engine {
public:
    explicit SideBySideEngine(const EngineConfig& config)
        : m_real(make_reference_engine(config)), m_dream(make_neural_engine(config)) {}

    std::string name() const override { return "side-by-side"; }
    bool has_model() const override { return true; }
    std::string describe() const override { return "dream (left) vs real (right); " + m_dream->describe(); }

    void reset(uint64_t seed, game::Image& out) override {
        const auto t0 = std::chrono::steady_clock::now();
        m_real->reset(seed, m_real_frame);
        m_dream->reset(seed, m_dream_frame);
        finish(out, t0);
    }
    void step(const game::Action& action, game::Image& out) override {
        const auto t0 = std::chrono::steady_clock::now();
        m_real->step(action, m_real_frame);
        m_dream->step(action, m_dream_frame);
        finish(out, t0);
    }
    void set_prompt(const std::string& prompt) override {
        const std::string old = m_real->prompt();
        m_real->set_prompt(prompt);  // throws: nothing changed
        try {
            m_dream->set_prompt(prompt);
        } catch (...) {
            m_real->set_prompt(old);
            throw;
        }
    }
    const std::string& prompt() const override { return m_dream->prompt(); }
    bool redraw(game::Image& out) override {
        m_real->redraw(m_real_frame);  // the real half restyles at once; the dream from its next frame
        compose(out);
        m_stats.psnr = psnr(m_dream_frame, m_real_frame);
        m_stats.ssim = ssim(m_dream_frame, m_real_frame);
        return true;
    }
    std::optional<game::Pose> pose() const override { return m_real->pose(); }
    float tick_hz() const override { return m_real->tick_hz(); }
    const EngineStats& stats() const override { return m_stats; }

    void set_attention(const std::string& type, const std::string& params) override {
        m_dream->set_attention(type, params);
    }
    void set_steps(int n) override { m_dream->set_steps(n); }
    void set_cache_budget(int64_t tokens) override { m_dream->set_cache_budget(tokens); }
    void resync() override {
        m_dream->restart_from(m_real_frame);
        m_dream_frame = m_real_frame;  // redraw() shows the dream's new starting point
    }

private:
    void compose(game::Image& out) const {
        const int w = m_real_frame.width, h = m_real_frame.height;
        DC_CHECK(m_dream_frame.width == w && m_dream_frame.height == h,
                 "side-by-side: the dream is " << m_dream_frame.width << "x" << m_dream_frame.height
                                               << " but the real frame is " << w << "x" << h);
        out.width = 2 * w;
        out.height = h;
        out.rgb.resize(static_cast<size_t>(out.width) * h * 3);
        const size_t row = static_cast<size_t>(w) * 3;
        for (int y = 0; y < h; ++y) {
            std::memcpy(&out.rgb[2 * row * y], &m_dream_frame.rgb[row * y], row);
            std::memcpy(&out.rgb[2 * row * y + row], &m_real_frame.rgb[row * y], row);
        }
    }
    void finish(game::Image& out, std::chrono::steady_clock::time_point t0) {
        compose(out);
        m_stats = m_dream->stats();  // frame, latency split, cache, memory, attention, settings
        m_stats.psnr = psnr(m_dream_frame, m_real_frame);
        m_stats.ssim = ssim(m_dream_frame, m_real_frame);
        m_stats.step_ms = ms_since(t0);
        m_stats.simulate_ms += m_real->stats().simulate_ms;
        m_stats.render_ms += m_real->stats().render_ms;
        m_stats.rss_bytes = host_rss_bytes();
    }

    std::unique_ptr<Engine> m_real;
    std::unique_ptr<NeuralEngine> m_dream;
    game::Image m_real_frame, m_dream_frame;
    EngineStats m_stats;
};

}  // namespace

std::unique_ptr<Engine> make_side_by_side_engine(const EngineConfig& config) {
    return std::make_unique<SideBySideEngine>(config);
}

}  // namespace dc::app
#endif  // DC_HAVE_WORLD_MODEL
