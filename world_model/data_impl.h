// world_model/data_impl.h — training/evaluation clips from the reference game (private to world_model).
//
//   dc::wm::DataConfig dcfg;  dcfg.clip_frames = 9;
//   dc::wm::ClipStream stream(dcfg, /*first_index=*/0, /*threads=*/4);
//   dc::wm::Clip c = stream.next();          // clips come in index order, each deterministic from (seed, index)
//
// A clip is K consecutive game ticks of one scripted agent in one level: frame 0 is the context start (its action is
// "none"), frame k > 0 is the frame after action k. Each clip has up to two prompts (the second one applies from
// frame prompt_change on, when the clip changes its prompt). Everything is a pure function of (DataConfig, index):
// threads only decide when a clip is ready, never what it contains, so a resumed run sees the same data.
//
// Held-out split: clip seeds of training streams have bit 63 clear; evaluation streams (held_out = true) set it, so
// no evaluation seed (agent, spawn, warm-up, prompts) is ever used in training.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "game/game.h"

namespace dc::wm {

struct DataConfig {
    int clip_frames = 9;                 // K frames per clip (frame 0 = context start): 8 predicted frames
    std::vector<std::string> agents;     // scripted agents to draw from; empty = all of game::agent_names()
    std::vector<std::string> levels;     // levels to draw from; empty = all of game::Level::names()
    float prompt_change_prob = 0.2f;     // chance a clip switches prompt at a random frame (teaches restyling)
    float empty_prompt_prob = 0.1f;      // chance of the empty prompt (the default look)
    int max_clauses = 4;                 // sampled prompts have 1..max_clauses clauses
    int warmup_max = 200;                // random 0..warmup_max agent ticks before recording (varied views)
    bool random_spawn = true;            // start at a random free cell and angle instead of the level's spawn
    uint64_t seed = 1;                   // base seed of the stream
    uint64_t rank = 0;                   // process rank (distinct streams per process)
    bool held_out = false;               // evaluation split (seed bit 63 set)
};

struct Clip {
    uint64_t index = 0, seed = 0;
    int frames = 0, width = 0, height = 0;
    std::vector<uint8_t> rgb;            // [K, H, W, 3]
    std::vector<float> actions;          // [K, 4] forward, strafe, turn, use (frame 0: zeros)
    std::vector<int32_t> tokens;         // [2, P] prompt token ids (padded)
    std::vector<uint8_t> prompt_of;      // [K] 0 or 1: which prompt frame k was rendered with
    std::string agent, level, prompt[2];
};

// Samples a prompt from the vocabulary grammar (assets/prompt_vocab.txt): wall, floor/ceiling, fog and light
// clauses with colours, modifiers and patterns. Every returned prompt parses.
class PromptSampler {
public:
    explicit PromptSampler(const game::Vocabulary& vocab);
    std::string sample(std::mt19937_64& rng, int max_clauses) const;

private:
    const game::Vocabulary* m_vocab;
    std::map<std::string, std::vector<std::string>> m_words;   // kind -> words ("material", "colour", …)
};

uint64_t clip_seed(const DataConfig& cfg, uint64_t index);
// Renders one clip (single-threaded, deterministic).
Clip make_clip(const DataConfig& cfg, uint64_t index, const game::Vocabulary& vocab,
               const std::vector<game::Level>& levels, int prompt_len, const PromptSampler* sampler = nullptr);

// A pool of threads, each with its own game, producing clips first_index, first_index + 1, … in order.
class ClipStream {
public:
    ClipStream(DataConfig cfg, uint64_t first_index, int threads, int prompt_len, int lookahead = 0);
    ~ClipStream();
    Clip next();
    uint64_t next_index() const { return m_next; }
    double frames_per_second() const;   // generation rate of the pool so far (wall clock)

private:
    void worker();
    DataConfig m_cfg;
    int m_prompt_len;
    game::Vocabulary m_vocab;
    std::unique_ptr<PromptSampler> m_sampler;
    std::vector<game::Level> m_levels;
    std::mutex m_mu;
    std::condition_variable m_cv_ready, m_cv_space;
    std::map<uint64_t, Clip> m_ready;
    uint64_t m_next;          // next index handed to the consumer
    uint64_t m_claim;         // next index a worker claims
    size_t m_lookahead;
    bool m_stop = false;
    std::vector<std::thread> m_threads;
    int64_t m_frames_made = 0;
    double m_start_s = 0;
};

}  // namespace dc::wm
