// world_model/data.cpp — clips from the reference game on CPU threads (see data_impl.h).
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "common/common.h"
#include "world_model/data_impl.h"

namespace dc::wm {

namespace {

uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class T>
const T& pick(std::mt19937_64& rng, const std::vector<T>& v) {
    return v[rng() % v.size()];
}

}  // namespace

PromptSampler::PromptSampler(const game::Vocabulary& vocab) : m_vocab(&vocab) {
    std::istringstream in(read_text_file(asset_path("prompt_vocab.txt")));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string kind, word, value;
        if (!(ls >> kind >> word) || kind.empty() || kind[0] == '#') continue;
        ls >> value;
        if (kind == "material") {
            m_words[value == "floor" || value == "ceiling" ? "surface" : "wall"].push_back(word);
        } else if (kind == "colour" || kind == "modifier" || kind == "pattern" || kind == "fog" ||
                   kind == "light") {
            m_words[kind].push_back(word);
        }
    }
    for (const char* k : {"wall", "surface", "colour", "modifier", "pattern", "fog", "light"})
        DC_CHECK(!m_words[k].empty(), "prompt vocabulary has no '" << k << "' words; the prompt sampler needs them");
}

std::string PromptSampler::sample(std::mt19937_64& rng, int max_clauses) const {
    std::uniform_real_distribution<float> u(0.f, 1.f);
    auto words = [&](const char* k) -> const std::vector<std::string>& { return m_words.at(k); };
    auto looks = [&]() {
        std::string s;
        if (u(rng) < 0.4f) s += pick(rng, words("modifier")) + " ";
        s += pick(rng, words("colour"));
        if (u(rng) < 0.15f) s += " " + pick(rng, words("colour"));
        if (u(rng) < 0.5f) s += " and " + pick(rng, words("pattern"));
        return s;
    };
    for (int attempt = 0; attempt < 20; ++attempt) {
        const int n = 1 + static_cast<int>(rng() % static_cast<uint64_t>(std::max(1, max_clauses)));
        std::string p;
        for (int i = 0; i < n; ++i) {
            const float r = u(rng);
            std::string c;
            if (r < 0.55f) {
                c = "the " + pick(rng, words("wall"));
                if (u(rng) < 0.2f) c += " and " + pick(rng, words("wall"));
                c += " walls are " + looks();
            } else if (r < 0.8f) {
                c = "the " + pick(rng, words("surface")) + " is " + looks();
            } else if (r < 0.92f) {
                c = pick(rng, words("fog")) + " fog";
            } else {
                c = pick(rng, words("light")) + " light";
            }
            p += (i ? "; " : "") + c;
        }
        try {
            m_vocab->parse(p);
            return p;
        } catch (const Error&) {
            // a rare clash (same material twice etc.): draw again
        }
    }
    return "";
}

uint64_t clip_seed(const DataConfig& cfg, uint64_t index) {
    uint64_t s = splitmix(splitmix(cfg.seed) ^ splitmix(cfg.rank * 0x632be59bd9b4e019ull + 1) ^ splitmix(index));
    return cfg.held_out ? (s | (1ull << 63)) : (s & ~(1ull << 63));
}

Clip make_clip(const DataConfig& cfg, uint64_t index, const game::Vocabulary& vocab,
               const std::vector<game::Level>& levels, int prompt_len, const PromptSampler* shared_sampler) {
    DC_CHECK(cfg.clip_frames >= 2, "data: clip_frames must be at least 2, found " << cfg.clip_frames);
    DC_CHECK(!levels.empty(), "data: no levels to draw clips from");
    Clip c;
    c.index = index;
    c.seed = clip_seed(cfg, index);
    std::mt19937_64 rng(c.seed);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    const game::Level& level = levels[rng() % levels.size()];
    const std::vector<std::string>& agents = cfg.agents.empty() ? game::agent_names() : cfg.agents;
    c.agent = pick(rng, agents);
    c.level = level.name;
    std::unique_ptr<PromptSampler> own;
    if (!shared_sampler) own = std::make_unique<PromptSampler>(vocab);
    const PromptSampler& sampler = shared_sampler ? *shared_sampler : *own;
    c.prompt[0] = u(rng) < cfg.empty_prompt_prob ? std::string() : sampler.sample(rng, cfg.max_clauses);
    game::Game g(level);
    g.set_prompt(c.prompt[0], vocab);
    g.reset(rng());
    if (cfg.random_spawn) {
        for (int tries = 0; tries < 200; ++tries) {
            const float x = static_cast<float>(rng() % static_cast<uint64_t>(level.width)) + 0.5f;
            const float y = static_cast<float>(rng() % static_cast<uint64_t>(level.height)) + 0.5f;
            const float m = 0.3f;
            if (g.is_solid(x, y) || g.is_solid(x - m, y) || g.is_solid(x + m, y) || g.is_solid(x, y - m) ||
                g.is_solid(x, y + m))
                continue;
            g.set_pose({x, y, u(rng) * 6.2831853f});
            break;
        }
    }
    auto agent = game::make_agent(c.agent, rng());
    const int warm = static_cast<int>(rng() % static_cast<uint64_t>(cfg.warmup_max + 1));
    for (int i = 0; i < warm; ++i) g.step(agent->act(g));
    const int K = cfg.clip_frames;
    int change = K;
    if (u(rng) < cfg.prompt_change_prob) {
        change = 1 + static_cast<int>(rng() % static_cast<uint64_t>(K - 1));
        c.prompt[1] = sampler.sample(rng, cfg.max_clauses);
    } else {
        c.prompt[1] = c.prompt[0];
    }
    c.frames = K;
    c.width = g.config().width;
    c.height = g.config().height;
    const size_t fsz = static_cast<size_t>(c.width) * c.height * 3;
    c.rgb.resize(fsz * K);
    c.actions.assign(static_cast<size_t>(K) * 4, 0.f);
    c.prompt_of.assign(K, 0);
    game::Image img;
    g.render(img);
    std::copy(img.rgb.begin(), img.rgb.end(), c.rgb.begin());
    for (int k = 1; k < K; ++k) {
        if (k == change) g.set_prompt(c.prompt[1], vocab);
        const game::Action a = agent->act(g);
        g.step(a);
        g.render(img);
        std::copy(img.rgb.begin(), img.rgb.end(), c.rgb.begin() + static_cast<std::ptrdiff_t>(fsz * k));
        float* av = &c.actions[static_cast<size_t>(k) * 4];
        av[0] = std::clamp(a.forward, -1.f, 1.f);
        av[1] = std::clamp(a.strafe, -1.f, 1.f);
        av[2] = std::clamp(a.turn, -1.f, 1.f);
        av[3] = a.use ? 1.f : 0.f;
        c.prompt_of[k] = k >= change ? 1 : 0;
    }
    for (int i = 0; i < 2; ++i) {
        std::vector<int32_t> t = vocab.tokenize(c.prompt[i], prompt_len);
        c.tokens.insert(c.tokens.end(), t.begin(), t.end());
    }
    return c;
}

ClipStream::ClipStream(DataConfig cfg, uint64_t first_index, int threads, int prompt_len, int lookahead)
    : m_cfg(std::move(cfg)),
      m_prompt_len(prompt_len),
      m_vocab(game::Vocabulary::load_default()),
      m_next(first_index),
      m_claim(first_index) {
    const std::vector<std::string> names = m_cfg.levels.empty() ? game::Level::names() : m_cfg.levels;
    DC_CHECK(!names.empty(), "data: no levels found in assets/levels/");
    for (const auto& n : names) m_levels.push_back(game::Level::load_named(n));
    m_sampler = std::make_unique<PromptSampler>(m_vocab);
    if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 2);
    m_lookahead = static_cast<size_t>(lookahead > 0 ? lookahead : threads * 4);
    m_start_s = now_s();
    for (int i = 0; i < threads; ++i) m_threads.emplace_back([this] { worker(); });
}

ClipStream::~ClipStream() {
    {
        std::lock_guard<std::mutex> lk(m_mu);
        m_stop = true;
    }
    m_cv_space.notify_all();
    m_cv_ready.notify_all();
    for (auto& t : m_threads) t.join();
}

void ClipStream::worker() {
    for (;;) {
        uint64_t idx;
        {
            std::unique_lock<std::mutex> lk(m_mu);
            m_cv_space.wait(lk, [&] { return m_stop || m_claim < m_next + m_lookahead; });
            if (m_stop) return;
            idx = m_claim++;
        }
        Clip c;
        std::string err;
        try {
            c = make_clip(m_cfg, idx, m_vocab, m_levels, m_prompt_len, m_sampler.get());
        } catch (const std::exception& e) {
            err = e.what();
            c.index = idx;
            c.frames = 0;
            c.agent = err;   // reported by next()
        }
        {
            std::lock_guard<std::mutex> lk(m_mu);
            m_frames_made += c.frames;
            m_ready.emplace(idx, std::move(c));
        }
        m_cv_ready.notify_all();
    }
}

Clip ClipStream::next() {
    std::unique_lock<std::mutex> lk(m_mu);
    m_cv_ready.wait(lk, [&] { return m_ready.count(m_next) > 0; });
    Clip c = std::move(m_ready[m_next]);
    m_ready.erase(m_next);
    ++m_next;
    lk.unlock();
    m_cv_space.notify_all();
    DC_CHECK(c.frames > 0, "data: clip " << c.index << " failed: " << c.agent);
    return c;
}

double ClipStream::frames_per_second() const {
    std::lock_guard<std::mutex> lk(const_cast<std::mutex&>(m_mu));
    const double dt = now_s() - m_start_s;
    return dt > 0 ? static_cast<double>(m_frames_made) / dt : 0.0;
}

}  // namespace dc::wm
