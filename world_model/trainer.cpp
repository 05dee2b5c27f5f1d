// world_model/trainer.cpp — autoencoder and DiT training (see trainer.h for the user's view).
//
// Decisions (DESIGN.md §4; measured reasons in docs/world_model.md):
//   * Two phases: the autoencoder trains alone (L1 + MSE), then is frozen (its EMA weights) for the DiT phase, so the
//     DiT's targets do not move and clips can be encoded once into a replay buffer (MEASURED: pre-encoded data
//     quadrupled throughput). Each buffered clip is used `reuse` times on average; fresh clips stream in every step.
//   * Objective: rectified flow, x_t = (1 - t) x0 + t eps, x0-parametrised (the network predicts the clean latent as a
//     residual over the previous frame), MSE on x0 over frames 1..K-1. Diffusion forcing: every frame of a clip has its
//     own t (logit-normal); with probability p_clean_ctx a frame gets a small t in [0, t_ctx_max] instead, so the
//     model sees clean context like the t = 0 commit pass at inference. The previous-frame channels get their own noise
//     level s = ctx_noise_max * u^2 (GameNGen's noise augmentation), fed to the model as a condition.
//   * Restyling: a clip may switch prompt at a random frame (data.prompt_change_prob); the first frame with the new
//     prompt is the only one the prompt alone explains, so its loss can be weighted up (change_weight), it can be
//     drawn at high noise more often (change_t_high: where the sampler's first steps set the look from the prompt),
//     and its error relative to copy-last at t > 0.9 is logged on its own ("prompt-change frames x copy-last":
//     near 1 = the prompt is ignored).
//   * Optimiser: AdamW on one flat fp32 master buffer (phase range only), EMA of the same buffer, global-norm gradient
//     clipping, warm-up then cosine (or constant) learning rate. On CUDA the networks compute in bf16 (see
//     model_impl.h); on the CPU everything is fp32.
#include "world_model/trainer.h"

#include <c10/core/GradMode.h>
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#if defined(DC_HAVE_CUDA) && __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define DC_TRAINER_CUDA_RUNTIME 1
#endif

#include "common/common.h"
#include "world_model/data_impl.h"
#include "world_model/distributed_impl.h"
#include "world_model/evaluator_impl.h"
#include "world_model/world_model_impl.h"

namespace dc {
namespace wm {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct PhaseConfig {
    int64_t steps = 2000;        // optimiser steps of the phase
    int batch = 32;              // frames (ae) or clips (dit) per step
    double lr = 3e-4;            // peak learning rate
    int warmup = 200;            // linear warm-up steps
    double weight_decay = 0.0;   // AdamW decay of matrices/filters
    double ema = 0.999;          // EMA decay (ramped: min(ema, (1 + step) / (10 + step)))
    std::string schedule = "cosine";   // "cosine" (to min_lr_frac) or "const"
    double min_lr_frac = 0.1;    // cosine floor as a fraction of lr
    double grad_clip = 1.0;      // global-norm clip (0 = off)
    int buffer_clips = 1024;     // replay buffer capacity in clips
    double reuse = 4;            // mean uses of a buffered clip (ae: of a frame) before it is replaced
    double minutes = 0;          // phase budget in training minutes over all chunks (0 = steps only); the phase
                                 // ends at `steps` or `minutes`, whichever comes first, and the cosine schedule
                                 // follows whichever is further along — robust to an unknown device speed
};

struct TrainConfig {
    DataConfig data;
    PhaseConfig ae, dit;
    float logit_mean = 0.f;      // logit-normal t sampling (SD3): mid noise levels get most samples
    float logit_std = 1.f;
    float p_clean_ctx = 0.25f;   // chance a frame is near-clean context (t in [0, t_ctx_max])
    float t_ctx_max = 0.05f;
    float ctx_noise_max = 0.3f;  // noise augmentation of the previous-frame channels, s = ctx_noise_max * u^2
                                 // (u ~ U[0, 1]: half the frames below 0.075) — robustness of long rollouts
    float change_t_high = 0.f;   // chance a prompt-change frame gets t in [0.9, 1] (else the usual t): at those noise
                                 // levels the input no longer shows the look, so the prompt is learnt where the
                                 // sampler's first steps need it (logit-normal t puts 1.4% of frames above 0.9)
    float change_weight = 1.f;   // loss weight of the first frame rendered with a clip's new prompt (other frames:
                                 // 1). Only that frame needs the prompt — later ones can copy the new look from
                                 // their previous frame — so restyling is a small share of the loss unless weighted up
    int threads = 0;             // data threads (0 = all cores but two, at least one)
    double checkpoint_minutes = 2;   // checkpoint + export period
    int log_every = 50;          // progress line period (steps)
    int stats_clips = 64;        // clips used to measure the latent mean/std before the DiT phase
    uint64_t seed = 1;           // noise/batch seed (the data seed is data.seed)
    int eval_clips = 8;          // held-out clips for the metrics written into model.json
};

// ---- JSON binding: one list of fields per struct serves both directions and rejects unknown keys. ----
template <class F>
void fields(PhaseConfig& c, F&& f) {
    f("steps", c.steps), f("batch", c.batch), f("lr", c.lr), f("warmup", c.warmup);
    f("weight_decay", c.weight_decay), f("ema", c.ema), f("schedule", c.schedule), f("min_lr_frac", c.min_lr_frac);
    f("grad_clip", c.grad_clip), f("buffer_clips", c.buffer_clips), f("reuse", c.reuse), f("minutes", c.minutes);
}
template <class F>
void fields(DataConfig& c, F&& f) {
    f("clip_frames", c.clip_frames), f("agents", c.agents), f("levels", c.levels);
    f("prompt_change_prob", c.prompt_change_prob), f("empty_prompt_prob", c.empty_prompt_prob);
    f("max_clauses", c.max_clauses), f("warmup_max", c.warmup_max), f("random_spawn", c.random_spawn);
    f("seed", c.seed), f("rank", c.rank);
}
template <class F>
void fields(TrainConfig& c, F&& f) {
    f("logit_mean", c.logit_mean), f("logit_std", c.logit_std), f("p_clean_ctx", c.p_clean_ctx);
    f("t_ctx_max", c.t_ctx_max), f("ctx_noise_max", c.ctx_noise_max), f("threads", c.threads);
    f("change_weight", c.change_weight), f("change_t_high", c.change_t_high);
    f("checkpoint_minutes", c.checkpoint_minutes), f("log_every", c.log_every), f("stats_clips", c.stats_clips);
    f("seed", c.seed), f("eval_clips", c.eval_clips);
}

template <class T>
json to_json_fields(T& c) {
    json j = json::object();
    fields(c, [&](const char* k, auto& v) { j[k] = v; });
    return j;
}
template <class T>
void from_json_fields(const json& j, T& c, const std::string& where) {
    DC_CHECK(j.is_object(), "training config: '" << where << "' must be an object");
    std::vector<std::string> known;
    fields(c, [&](const char* k, auto& v) {
        known.emplace_back(k);
        if (!j.contains(k)) return;
        try {
            v = j.at(k).get<std::decay_t<decltype(v)>>();
        } catch (const std::exception& e) {
            DC_FAIL("training config: '" << where << k << "' has the wrong type: " << j.at(k).dump());
        }
    });
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
        if (where.empty() && (it.key() == "data" || it.key() == "ae" || it.key() == "dit")) continue;
        std::ostringstream os;
        for (const auto& k : known) os << ' ' << k;
        DC_FAIL("training config: unknown field '" << where << it.key() << "'; accepted:" << os.str());
    }
}

json train_to_json(TrainConfig c) {
    json j = to_json_fields(c);
    j["data"] = to_json_fields(c.data);
    j["ae"] = to_json_fields(c.ae);
    j["dit"] = to_json_fields(c.dit);
    return j;
}

TrainConfig train_from_json(const json& j) {
    TrainConfig c;
    from_json_fields(j, c, "");
    if (j.contains("data")) from_json_fields(j["data"], c.data, "data.");
    if (j.contains("ae")) from_json_fields(j["ae"], c.ae, "ae.");
    if (j.contains("dit")) from_json_fields(j["dit"], c.dit, "dit.");
    for (const PhaseConfig* p : {&c.ae, &c.dit}) {
        DC_CHECK(p->batch >= 1 && p->steps >= 0 && p->lr > 0 && p->buffer_clips >= 1 && p->reuse > 0,
                 "training config: batch, buffer_clips, reuse and lr must be positive");
        DC_CHECK(p->schedule == "cosine" || p->schedule == "const",
                 "training config: schedule must be cosine or const, found '" << p->schedule << "'");
    }
    DC_CHECK(c.data.clip_frames >= 2, "training config: data.clip_frames must be >= 2");
    DC_CHECK(c.change_weight >= 0, "training config: change_weight must be >= 0, found " << c.change_weight);
    DC_CHECK(c.change_t_high >= 0 && c.change_t_high <= 1,
             "training config: change_t_high must be in [0, 1], found " << c.change_t_high);
    return c;
}

TrainConfig train_preset(const std::string& name) {
    TrainConfig c;
    if (name == "default") {   // tuned for one H100/H200; a chunk is <= 9 minutes
        c.data.clip_frames = 9;
        // Budgets in training minutes (steps are only a cap): ~5 min autoencoder + ~15 min DiT fit a 30-minute GPU
        // session in three 8-minute chunks with build and evaluation.
        c.ae = PhaseConfig{50000, 48, 5e-4, 300, 0.0, 0.999, "cosine", 0.05, 1.0, 1024, 4, 5.0};
        c.dit = PhaseConfig{200000, 64, 3e-4, 500, 0.01, 0.9995, "cosine", 0.1, 1.0, 4096, 4, 15.0};
        c.checkpoint_minutes = 3;
        c.data.prompt_change_prob = 0.5f;   // restyling: half the clips change prompt, and the changed frame
        c.change_weight = 4.f;              // weighs 4 frames (measured: at 0.2 / 1 the prompt was ignored)
        c.change_t_high = 0.5f;             // half of those at t >= 0.9 (measured on the spawn's floor, red vs blue:
                                            // 3% of the real game's shift without, 109% with)
        return c;
    }
    if (name == "tiny") {   // about a minute on 2 CPU cores
        c.data.clip_frames = 4;
        c.data.warmup_max = 40;
        c.ae = PhaseConfig{80, 4, 3e-3, 5, 0.0, 0.9, "const", 1.0, 1.0, 16, 4, 0.0};
        c.dit = PhaseConfig{100, 2, 2e-3, 5, 0.0, 0.9, "const", 1.0, 1.0, 16, 4, 0.0};
        c.threads = 1;
        c.checkpoint_minutes = 100;
        c.log_every = 20;
        c.stats_clips = 8;
        c.eval_clips = 2;
        return c;
    }
    DC_FAIL("unknown training preset '" << name << "'; accepted: tiny, default");
}

// Sets "a.b.c=value" in a JSON tree; the path must exist (typos fail with the accepted keys).
void apply_override(json& root, const std::string& kv) {
    const auto eq = kv.find('=');
    DC_CHECK(eq != std::string::npos, "--set expects key=value, found '" << kv << "'");
    const std::string key = kv.substr(0, eq), val = kv.substr(eq + 1);
    json* node = &root;
    std::istringstream ks(key);
    std::string part;
    std::vector<std::string> parts;
    while (std::getline(ks, part, '.')) parts.push_back(part);
    for (size_t i = 0; i < parts.size(); ++i) {
        DC_CHECK(node->is_object() && node->contains(parts[i]),
                 "--set " << key << ": no field '" << parts[i] << "' here; accepted: " << [&] {
                     std::string s;
                     if (node->is_object())
                         for (auto it = node->begin(); it != node->end(); ++it) s += it.key() + " ";
                     return s;
                 }());
        node = &(*node)[parts[i]];
    }
    json v;
    try {
        v = json::parse(val);
    } catch (const std::exception&) {
        v = val;   // bare strings
    }
    *node = v;
}

// ---- run state ----
struct RunState {
    std::string phase = "ae";     // "ae" | "dit" | "done"
    int64_t ae_step = 0, dit_step = 0;
    uint64_t next_clip = 0;       // next clip index of the data stream
    int64_t adam_t = 0;
    double train_seconds = 0;     // wall-clock seconds of training over all chunks
    double ae_seconds = 0, dit_seconds = 0;   // time spent in each phase's loop over all chunks
    json chunks = json::array();  // per chunk: device, seconds, steps
    json history = json::array(); // logged losses
    json to_json() const {
        return {{"phase", phase},     {"ae_step", ae_step},         {"dit_step", dit_step},
                {"next_clip", next_clip}, {"adam_t", adam_t},       {"train_seconds", train_seconds},
                {"ae_seconds", ae_seconds}, {"dit_seconds", dit_seconds},
                {"chunks", chunks},   {"history", history}};
    }
    static RunState from_json(const json& j) {
        RunState s;
        s.phase = j.at("phase").get<std::string>();
        s.ae_step = j.at("ae_step").get<int64_t>();
        s.dit_step = j.at("dit_step").get<int64_t>();
        s.next_clip = j.at("next_clip").get<uint64_t>();
        s.adam_t = j.at("adam_t").get<int64_t>();
        s.train_seconds = j.at("train_seconds").get<double>();
        s.ae_seconds = j.value("ae_seconds", 0.0);
        s.dit_seconds = j.value("dit_seconds", 0.0);
        s.chunks = j.value("chunks", json::array());
        s.history = j.value("history", json::array());
        return s;
    }
};

std::string progress(const PhaseConfig& pc, double phase_s) {   // " (3.2/6.0 min)" when a phase budget is set
    if (pc.minutes <= 0) return "";
    std::ostringstream os;
    os << std::fixed << std::setprecision(1) << " (" << phase_s / 60 << "/" << pc.minutes << " min)";
    return os.str();
}

uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::string device_name(const at::Device& dev) {
    if (!dev.is_cuda()) return "cpu (" + std::to_string(std::thread::hardware_concurrency()) + " cores)";
#ifdef DC_TRAINER_CUDA_RUNTIME
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, dev.has_index() ? dev.index() : 0) == cudaSuccess) return prop.name;
#endif
    return "cuda";
}

// Decisions every rank must take at the same step (world_model/distributed.h): agreed through the gradient
// all-reduce, so they cost no extra collective.
struct StepFlags {
    bool phase_done = false;    // the phase reached its steps or minutes
    bool out_of_time = false;   // --minutes is up
    bool checkpoint = false;    // rank 0's checkpoint period has passed
    double phase_s = 0;         // rank 0's phase time: the learning-rate schedule may follow minutes, and every rank
                                // must take the same step
};

class Trainer {
public:
    Trainer(const TrainOptions& o) : m_opt(o) {}
    TrainResult run();

private:
    using clock = std::chrono::steady_clock;
    double elapsed_s() const { return std::chrono::duration<double>(clock::now() - m_t0).count(); }
    bool out_of_time() const {
        return m_opt.minutes > 0 && elapsed_s() > m_opt.minutes * 60.0 - m_reserve_s;
    }
    void setup();
    void run_ae();
    void run_dit();
    void fill_buffer(bool latents);
    void refresh(int n, bool latents);
    void put_clips(const std::vector<Clip>& clips, bool latents);   // into slots index % capacity
    at::Tensor encode_frames(const at::Tensor& rgb) const;   // [n, H, W, 3] uint8 -> [n, C, h, w] normalised
    void measure_latent_stats();
    at::Tensor phase_grads(const at::Tensor& loss);
    void opt_step(const PhaseConfig& pc, int64_t step, double phase_s, const at::Tensor& g);
    double lr_at(const PhaseConfig& pc, int64_t step, double phase_s) const;
    static bool phase_done(const PhaseConfig& pc, int64_t step, double phase_s) {
        return step >= pc.steps || (pc.minutes > 0 && phase_s >= pc.minutes * 60);
    }
    void start_phase_range(bool ae);
    void checkpoint(bool final_export);
    void load_checkpoint(const std::string& dir);
    void export_ema(const std::string& json_path);
    void log_line(const std::string& s) const {
        if (!m_opt.quiet && m_rank == 0) dc::log(LogLevel::info, s);
    }
    int local_batch(const PhaseConfig& pc) const { return pc.batch / m_world; }   // this rank's share
    uint64_t rank_seed(uint64_t s) const { return m_rank == 0 ? s : mix(s, 0xd1570000ull + m_rank); }
    // All-reduces this rank's gradient g (in place, to the mean over ranks) together with the step's loss and the
    // local stop/checkpoint decisions; returns the agreed flags and sets loss to the mean loss over ranks.
    StepFlags sync_step(at::Tensor& g, at::Tensor& loss, bool local_phase_done, double phase_s);
    void sync_params();                 // rank 0's parameters, EMA and buffers to every rank
    bool any_rank(bool local);          // true when it is true on some rank (all ranks call; local with one rank)
    std::vector<std::string> rank_param_hashes();   // SHA-256 of each rank's parameters (all ranks call)
    void join_group(const DistEnv& env);

    TrainOptions m_opt;
    json m_run;                    // {"model": …, "train": …}
    TrainConfig m_tc;
    std::unique_ptr<ModelImpl> m_model;
    at::Device m_dev{at::kCPU};
    RunState m_state;
    at::Tensor m_ema;              // [P] EMA of the flat buffer
    at::Tensor m_adam_m, m_adam_v; // [n] over the phase range
    at::Tensor m_adam_m_loaded, m_adam_v_loaded;   // from a checkpoint, for the phase it was saved in
    int64_t m_begin = 0, m_end = 0;   // phase range in the flat buffer
    at::Tensor m_decay;            // [n] decay mask of the range
    std::vector<at::Tensor> m_phase_views;
    std::vector<int64_t> m_phase_numel;
    std::unique_ptr<ClipStream> m_stream;
    // replay buffer (one clip per slot)
    at::Tensor m_buf_x;            // ae: [N, K, 3, H, W] uint8; dit: [N, K, C, h, w] float
    at::Tensor m_buf_act;          // [N, K, 4]
    at::Tensor m_buf_tok;          // [N, 2, P] int64
    at::Tensor m_buf_pof;          // [N, K] int64
    int64_t m_buf_n = 0;
    clock::time_point m_t0;
    double m_reserve_s = 5;
    double m_last_ckpt_s = 0;
    double m_chunk_start_train_s = 0;
    std::string m_out;
    TrainResult m_res;
    int64_t m_chunk_ae_steps = 0, m_chunk_dit_steps = 0;
    bool m_init_needs_stats = false;
    int m_rank = 0, m_world = 1;
    std::unique_ptr<ProcessGroup> m_pg;   // data-parallel group (world > 1)
    std::string m_dev_name;
};

void Trainer::setup() {
    m_t0 = clock::now();
    m_dev = parse_device(m_opt.device);
    DistEnv env = dist_env_from_environment();
    env.timeout_s = m_opt.dist_timeout_s;
    if (env.active()) join_group(env);
    m_out = m_opt.out_dir.empty() ? m_opt.resume_dir : m_opt.out_dir;
    if (!m_opt.resume_dir.empty() && m_opt.out_dir == TrainOptions().out_dir) m_out = m_opt.resume_dir;
    fs::create_directories(m_out);
    if (!m_opt.resume_dir.empty()) {
        const std::string run_path = m_opt.resume_dir + "/run.json";
        DC_CHECK(fs::exists(m_opt.resume_dir + "/checkpoint/state.json"),
                 "--resume " << m_opt.resume_dir << ": no checkpoint/state.json there");
        m_run = json::parse(read_text_file(run_path));
    } else {
        json model = ModelConfig::preset(m_opt.preset).to_json();
        m_run = {{"model", model}, {"train", train_to_json(train_preset(m_opt.preset))}};
        if (!m_opt.config_path.empty()) {
            json f;
            try {
                f = json::parse(read_text_file(m_opt.config_path));
            } catch (const json::exception& e) {
                DC_FAIL("training config '" << m_opt.config_path << "' is not valid JSON: " << e.what());
            }
            m_run.merge_patch(f);
        }
    }
    json init;   // --init: the model file whose weights (and architecture, counters) start this run
    if (m_opt.resume_dir.empty() && !m_opt.init_model.empty()) {
        try {
            init = json::parse(read_text_file(m_opt.init_model));
        } catch (const json::exception& e) {
            DC_FAIL("--init " << m_opt.init_model << " is not valid JSON: " << e.what());
        }
        DC_CHECK(init.contains("architecture"), "--init " << m_opt.init_model << " is not a model file");
        m_run["model"] = init["architecture"];
    }
    for (const auto& s : m_opt.set) apply_override(m_run, s);
    m_tc = train_from_json(m_run["train"]);
    if (m_opt.threads >= 0) m_tc.threads = m_opt.threads;
    if (m_world > 1) {
        m_tc.data.rank = static_cast<uint64_t>(m_rank);   // each rank renders its own clips
        if (m_tc.threads <= 0)   // the host's cores shared by its ranks
            m_tc.threads = std::max(1, (static_cast<int>(std::thread::hardware_concurrency()) - 2) /
                                           std::max(1, env.local_world_size));
        for (const PhaseConfig* pc : {&m_tc.ae, &m_tc.dit})
            DC_CHECK(pc->batch % m_world == 0 && pc->batch >= m_world,
                     "the global batch (" << pc->batch << ") must be a multiple of the number of ranks (" << m_world
                                          << "): set train.ae.batch / train.dit.batch with --set");
    }
    if (m_opt.log_every > 0) m_tc.log_every = m_opt.log_every;
    if (m_opt.checkpoint_minutes > 0) m_tc.checkpoint_minutes = m_opt.checkpoint_minutes;
    DC_CHECK(m_opt.phase == "ae" || m_opt.phase == "dit" || m_opt.phase == "both",
             "--phase must be ae, dit or both, found '" << m_opt.phase << "'");
    if (m_opt.steps >= 0) (m_opt.phase == "ae" ? m_tc.ae : m_tc.dit).steps = m_opt.steps;
    m_run["train"] = train_to_json(m_tc);

    ModelConfig mc = ModelConfig::from_json(m_run["model"]);
    game::Vocabulary vocab = game::Vocabulary::load_default();
    mc.dit.vocab_size = vocab.size();
    mc.dit.vocab_sha256 = vocab_sha256(vocab);
    mc.dit.prompt_len = std::min(mc.dit.prompt_len, 128);
    m_run["model"] = mc.to_json();
    m_model = std::make_unique<ModelImpl>(mc, "cpu");
    m_model->net.to(m_dev, at::kFloat, m_dev.is_cuda() ? at::kBFloat16 : at::kFloat);
    if (m_dev.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
    m_ema = m_model->net.params().flat().clone();
    if (!m_opt.resume_dir.empty()) {
        load_checkpoint(m_opt.resume_dir + "/checkpoint");
    } else if (!init.is_null()) {
        // Warm restart from an exported model (e.g. one brought back from another machine): its EMA weights become
        // the live and EMA weights, step counters and phase minutes continue from its "training" section, the
        // optimiser moments start again from zero (with warm-up). Not bit-exact like --resume, but portable: a model
        // is 4 files of <= 15 MiB.
        const std::string dir = fs::path(m_opt.init_model).parent_path().string();
        load_weights(m_model->net, init, dir.empty() ? "." : dir);
        m_ema.copy_(m_model->net.params().flat());
        const json tr = init.value("training", json::object());
        m_state.ae_step = tr.value("ae_steps", int64_t{0});
        m_state.dit_step = tr.value("dit_steps", int64_t{0});
        m_state.ae_seconds = tr.value("ae_minutes", 0.0) * 60;
        m_state.dit_seconds = tr.value("dit_minutes", 0.0) * 60;
        m_state.train_seconds = tr.value("minutes", 0.0) * 60;
        if (tr.contains("chunks")) m_state.chunks = tr["chunks"];
        if (init.contains("data")) m_state.next_clip = init["data"].value("clips_generated", uint64_t{0});
        const bool ae_finished = tr.value("phase", std::string("ae")) != "ae";
        m_state.phase = ae_finished ? "dit" : "ae";
        if (m_opt.phase == "dit" && !ae_finished) {
            m_state.phase = "dit";
            m_init_needs_stats = true;   // the autoencoder ends here: measure the latent statistics first
        }
        std::ostringstream os;
        os << "initialised from " << m_opt.init_model << " (ae step " << m_state.ae_step << ", dit step "
           << m_state.dit_step << "; optimiser restarts)";
        log_line(os.str());
    }
    if (m_state.phase == "done" && !phase_done(m_tc.dit, m_state.dit_step, m_state.dit_seconds))
        m_state.phase = "dit";   // more steps or minutes asked
    if (m_opt.phase == "dit" && m_state.phase == "ae") {
        DC_CHECK(m_state.ae_step > 0 || !init.is_null(),
                 "--phase dit needs a trained autoencoder: --resume a run past its ae phase or --init MODEL.json");
        m_state.phase = "dit";        // the autoencoder ends early here
        m_state.adam_t = 0;
        m_adam_m_loaded = m_adam_v_loaded = at::Tensor();
        m_init_needs_stats = true;
    }
    if (m_rank == 0) std::ofstream(m_out + "/run.json") << m_run.dump(2) << "\n";
    m_reserve_s = m_dev.is_cuda() ? 8 : 3;
    m_chunk_start_train_s = m_state.train_seconds;
    m_dev_name = device_name(m_dev);
    if (m_world > 1) {
        sync_params();
        m_dev_name += " x " + std::to_string(m_world) + " ranks (" + m_pg->backend() + ")";
    }
    log_line(m_model->describe() + " | training on " + m_dev_name);
}

void Trainer::join_group(const DistEnv& env) {
    m_rank = env.rank;
    m_world = env.world_size;
    if (m_dev.is_cuda() && !m_dev.has_index()) m_dev = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
#ifdef DC_TRAINER_CUDA_RUNTIME
    if (m_dev.is_cuda()) {
        const cudaError_t e = cudaSetDevice(m_dev.index());
        DC_CHECK(e == cudaSuccess, "rank " << m_rank << ": cannot use " << m_dev.str() << ": " << cudaGetErrorString(e)
                                           << " (one GPU per rank: LOCAL_RANK selects it)");
    }
#endif
    m_pg = std::make_unique<ProcessGroup>(env, m_dev);
}

void Trainer::sync_params() {
    c10::NoGradGuard ng;
    auto& ps = m_model->net.params();
    m_pg->broadcast(ps.flat(), 0, "parameters");
    m_pg->broadcast(m_ema, 0, "EMA parameters");
    for (const auto& [name, b] : ps.buffers()) {
        at::Tensor t = ps.buffer(name);
        m_pg->broadcast(t, 0, "buffers");
    }
}

std::vector<std::string> Trainer::rank_param_hashes() {
    c10::NoGradGuard ng;
    std::vector<at::Tensor> parts = {m_model->net.params().flat().to(at::kCPU)};
    for (const auto& [name, b] : m_model->net.params().buffers()) parts.push_back(b.to(at::kCPU).to(at::kFloat).reshape({-1}));
    const at::Tensor all = at::cat(parts).contiguous();
    const std::string mine = sha256_hex(all.data_ptr(), static_cast<size_t>(all.numel()) * all.element_size());
    if (m_world == 1) return {mine};
    // Gather through a sum: each rank writes its digest (32 bytes as 4 int64 words) into its own row.
    at::Tensor rows = at::zeros({m_world, 4}, at::TensorOptions().dtype(at::kLong));
    for (int w = 0; w < 4; ++w)
        rows[m_rank][w] = static_cast<int64_t>(std::stoull(mine.substr(static_cast<size_t>(w) * 16, 16), nullptr, 16));
    at::Tensor dev_rows = rows.to(m_dev);
    m_pg->allreduce_sum(dev_rows, "parameter checksums");
    rows = dev_rows.to(at::kCPU);
    std::vector<std::string> out;
    for (int r = 0; r < m_world; ++r) {
        std::ostringstream os;
        for (int w = 0; w < 4; ++w)
            os << std::hex << std::setw(16) << std::setfill('0') << static_cast<uint64_t>(rows[r][w].item<int64_t>());
        out.push_back(os.str());
    }
    return out;
}

bool Trainer::any_rank(bool local) {
    if (m_world == 1) return local;
    at::Tensor t = at::full({1}, local ? 1.f : 0.f, at::TensorOptions().dtype(at::kFloat)).to(m_dev);
    m_pg->allreduce_sum(t, "stop flags");
    return t.item<float>() > 0;
}

StepFlags Trainer::sync_step(at::Tensor& g, at::Tensor& loss, bool local_phase_done, double phase_s) {
    StepFlags f;
    f.phase_done = local_phase_done;
    f.phase_s = phase_s;
    f.out_of_time = out_of_time();
    f.checkpoint = m_rank == 0 && elapsed_s() - m_last_ckpt_s > m_tc.checkpoint_minutes * 60;
    if (m_world == 1) {
        loss = loss.detach();
        return f;
    }
    c10::NoGradGuard ng;
    const int64_t n = g.numel();
    const float rank0_s = m_rank == 0 ? static_cast<float>(phase_s) : 0.f;   // a sum gives every rank rank 0's
    const at::Tensor flags = at::tensor({f.phase_done ? 1.f : 0.f, f.out_of_time ? 1.f : 0.f, f.checkpoint ? 1.f : 0.f,
                                         rank0_s},
                                        at::TensorOptions().dtype(at::kFloat))
                                 .to(m_dev);
    // One fused bucket: [gradient | loss | flags], ~4 bytes per trained parameter.
    at::Tensor buf = at::cat({g.reshape({-1}).to(at::kFloat), loss.detach().to(at::kFloat).reshape({1}), flags});
    m_pg->allreduce_sum(buf, "gradients");
    const at::Tensor agreed = buf.narrow(0, n + 1, 4).to(at::kCPU);   // sums, before the division below
    buf.narrow(0, 0, n + 1).div_(static_cast<double>(m_world));
    g = buf.narrow(0, 0, n);
    loss = buf.narrow(0, n, 1).reshape({});
    const float* a = agreed.data_ptr<float>();
    f.phase_done = a[0] > 0;
    f.out_of_time = a[1] > 0;
    f.checkpoint = a[2] > 0;
    f.phase_s = a[3];
    return f;
}

double Trainer::lr_at(const PhaseConfig& pc, int64_t step, double phase_s) const {
    double f = pc.warmup > 0 ? std::min(1.0, static_cast<double>(step + 1) / pc.warmup) : 1.0;
    if (pc.schedule == "cosine" && pc.steps > 0) {
        double p = static_cast<double>(step) / static_cast<double>(pc.steps);
        if (pc.minutes > 0) p = std::max(p, phase_s / (pc.minutes * 60));
        p = std::clamp(p, 0.0, 1.0);
        f *= pc.min_lr_frac + (1 - pc.min_lr_frac) * 0.5 * (1 + std::cos(M_PI * p));
    }
    return pc.lr * f;
}

void Trainer::start_phase_range(bool ae) {
    const auto& infos = m_model->net.params().infos();
    const auto views = m_model->net.params().views();
    m_begin = -1;
    m_end = 0;
    m_phase_views.clear();
    m_phase_numel.clear();
    for (size_t i = 0; i < infos.size(); ++i) {
        const bool is_ae = infos[i].name.rfind("ae.", 0) == 0;
        if (is_ae != ae) continue;
        if (m_begin < 0) m_begin = infos[i].offset;
        DC_CHECK(infos[i].offset == m_end || m_end == 0 || infos[i].offset == m_end,
                 "parameters of a phase must be contiguous");
        m_end = infos[i].offset + infos[i].numel;
        m_phase_views.push_back(views[i]);
        m_phase_numel.push_back(infos[i].numel);
    }
    const int64_t n = m_end - m_begin;
    m_decay = m_model->net.params().decay_mask().narrow(0, m_begin, n).contiguous();
    m_adam_m = at::zeros({n}, m_ema.options());
    m_adam_v = at::zeros({n}, m_ema.options());
    m_model->net.params().set_requires_grad(false);
    for (auto& v : m_phase_views) v.requires_grad_(true);
}

at::Tensor Trainer::phase_grads(const at::Tensor& loss) {
    auto grads = torch::autograd::grad({loss}, m_phase_views, {}, false, false, true);
    std::vector<at::Tensor> flat;
    flat.reserve(grads.size());
    for (size_t i = 0; i < grads.size(); ++i)
        flat.push_back(grads[i].defined() ? grads[i].reshape({-1}).to(at::kFloat)
                                          : at::zeros({m_phase_numel[i]}, m_ema.options()));
    return at::cat(flat);   // [n]
}

void Trainer::opt_step(const PhaseConfig& pc, int64_t step, double phase_s, const at::Tensor& g_in) {
    c10::NoGradGuard ng;
    at::Tensor g = g_in;
    if (pc.grad_clip > 0) {
        at::Tensor norm = g.norm();
        g = g * at::clamp_max(pc.grad_clip / (norm + 1e-6), 1.0);
    }
    const double b1 = 0.9, b2 = 0.99, eps = 1e-8, lr = lr_at(pc, step, phase_s);
    ++m_state.adam_t;
    const double bc1 = 1 - std::pow(b1, static_cast<double>(m_state.adam_t));
    const double bc2 = 1 - std::pow(b2, static_cast<double>(m_state.adam_t));
    m_adam_m.mul_(b1).add_(g, 1 - b1);
    m_adam_v.mul_(b2).addcmul_(g, g, 1 - b2);
    at::Tensor p = m_model->net.params().flat().narrow(0, m_begin, m_end - m_begin);
    if (pc.weight_decay > 0) p.addcmul_(p, m_decay, -lr * pc.weight_decay);
    p.addcdiv_(m_adam_m, (m_adam_v / bc2).sqrt_().add_(eps), -lr / bc1);
    const double d = std::min(pc.ema, (1.0 + step) / (10.0 + step));
    m_ema.narrow(0, m_begin, m_end - m_begin).mul_(d).add_(p, 1 - d);
}

at::Tensor Trainer::encode_frames(const at::Tensor& rgb) const {
    c10::NoGradGuard ng;
    at::Tensor img = rgb.to(m_dev).permute({0, 3, 1, 2}).to(at::kFloat).div(255.0);   // [n, 3, H, W]
    std::vector<at::Tensor> outs;
    for (int64_t i = 0; i < img.size(0); i += 256) outs.push_back(m_model->net.encode(img.narrow(0, i, std::min<int64_t>(256, img.size(0) - i))));
    return at::cat(outs);   // [n, C, h, w]
}

void Trainer::put_clips(const std::vector<Clip>& clips, bool latents) {
    if (clips.empty()) return;
    const int64_t n = static_cast<int64_t>(clips.size()), K = clips[0].frames, H = clips[0].height,
                  W = clips[0].width, Pn = static_cast<int64_t>(clips[0].tokens.size() / 2);
    at::Tensor rgb = at::empty({n, K, H, W, 3}, at::kByte);   // [n, K, H, W, 3]
    at::Tensor act = at::empty({n, K, 4}, at::kFloat);
    at::Tensor tok = at::empty({n, 2, Pn}, at::kInt);
    at::Tensor pof = at::empty({n, K}, at::kLong);
    std::vector<int64_t> slots(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const Clip& c = clips[static_cast<size_t>(i)];
        DC_CHECK(c.frames == K && c.height == H && c.width == W, "data: clips of different sizes in one batch");
        std::memcpy(rgb[i].data_ptr(), c.rgb.data(), c.rgb.size());
        std::memcpy(act[i].data_ptr(), c.actions.data(), c.actions.size() * sizeof(float));
        std::memcpy(tok[i].data_ptr(), c.tokens.data(), c.tokens.size() * sizeof(int32_t));
        for (int64_t k = 0; k < K; ++k) pof[i][k] = static_cast<int64_t>(c.prompt_of[static_cast<size_t>(k)]);
        slots[static_cast<size_t>(i)] = static_cast<int64_t>(c.index % static_cast<uint64_t>(m_buf_n));
    }
    at::Tensor idx = at::tensor(slots, at::kLong).to(m_dev);
    at::Tensor x;
    if (latents) {
        at::Tensor z = encode_frames(rgb.view({n * K, H, W, 3}));   // [n*K, C, h, w]
        x = z.view({n, K, z.size(1), z.size(2), z.size(3)});
    } else {
        x = rgb.to(m_dev).permute({0, 1, 4, 2, 3});   // [n, K, 3, H, W]
    }
    m_buf_x.index_copy_(0, idx, x.to(m_buf_x.scalar_type()));
    m_buf_act.index_copy_(0, idx, act.to(m_dev));
    m_buf_tok.index_copy_(0, idx, tok.to(m_dev).to(at::kLong));
    m_buf_pof.index_copy_(0, idx, pof.to(m_dev));
}

void Trainer::fill_buffer(bool latents) {
    const PhaseConfig& pc = latents ? m_tc.dit : m_tc.ae;
    const ModelConfig& mc = m_model->net.config();
    const int64_t N = pc.buffer_clips, K = m_tc.data.clip_frames;
    auto opt = at::TensorOptions().device(m_dev);
    if (latents)
        m_buf_x = at::zeros({N, K, mc.ae.latent_channels, mc.grid_h(), mc.grid_w()}, opt.dtype(at::kFloat));
    else
        m_buf_x = at::zeros({N, K, 3, mc.frame_height, mc.frame_width}, opt.dtype(at::kByte));
    m_buf_act = at::zeros({N, K, 4}, opt.dtype(at::kFloat));
    m_buf_tok = at::zeros({N, 2, mc.dit.prompt_len}, opt.dtype(at::kLong));
    m_buf_pof = at::zeros({N, K}, opt.dtype(at::kLong));
    m_buf_n = N;
    if (m_state.next_clip < static_cast<uint64_t>(N)) m_state.next_clip = static_cast<uint64_t>(N);
    const uint64_t first = m_state.next_clip - static_cast<uint64_t>(N);
    m_stream.reset();
    m_stream = std::make_unique<ClipStream>(m_tc.data, first, m_tc.threads, mc.dit.prompt_len);
    const auto t0 = clock::now();
    std::vector<Clip> batch;
    for (uint64_t i = first; i < m_state.next_clip; ++i) {
        batch.push_back(m_stream->next());
        if (batch.size() == 64 || i + 1 == m_state.next_clip) {
            put_clips(batch, latents);
            batch.clear();
        }
    }
    std::ostringstream os;
    os << "buffer: " << N << " clips x " << K << " frames " << (latents ? "encoded" : "rendered") << " in "
       << std::fixed << std::setprecision(1) << std::chrono::duration<double>(clock::now() - t0).count()
       << " s (data threads " << std::setprecision(0) << m_stream->frames_per_second() << " frames/s)";
    log_line(os.str());
}

void Trainer::refresh(int n, bool latents) {
    std::vector<Clip> clips;
    for (int i = 0; i < n; ++i) clips.push_back(m_stream->next());
    put_clips(clips, latents);
    m_state.next_clip = clips.back().index + 1;
}

void Trainer::measure_latent_stats() {
    // The autoencoder is final: use its EMA weights from now on, then measure per-channel latent mean/std.
    c10::NoGradGuard ng;
    auto& net = m_model->net;
    const int64_t n_ae = net.params().numel_prefix("ae.");
    net.params().flat().narrow(0, 0, n_ae).copy_(m_ema.narrow(0, 0, n_ae));
    net.params().buffer("ae.latent_mean").fill_(0);
    net.params().buffer("ae.latent_std").fill_(1);
    DataConfig dc = m_tc.data;
    dc.seed = mix(dc.seed, 0x57a75);
    dc.rank = 0;   // the same clips on every rank
    ClipStream s(dc, 0, m_tc.threads, net.config().dit.prompt_len);
    std::vector<at::Tensor> zs;
    for (int i = 0; i < m_tc.stats_clips; ++i) {
        Clip c = s.next();
        at::Tensor rgb = at::from_blob(c.rgb.data(), {c.frames, c.height, c.width, 3}, at::kByte);
        zs.push_back(encode_frames(rgb));
    }
    at::Tensor z = at::cat(zs).transpose(0, 1).reshape({net.config().ae.latent_channels, -1});   // [C, n*h*w]
    at::Tensor mu = z.mean({1}, true);                                 // [C, 1]
    at::Tensor sd = (z - mu).pow(2).mean({1}).sqrt().clamp_min(1e-3);   // [C] per-channel std
    net.params().buffer("ae.latent_mean").copy_(mu.view({-1}));
    net.params().buffer("ae.latent_std").copy_(sd);
    if (m_world > 1) {   // bit-identical on every rank even where kernels differ
        m_pg->broadcast(net.params().buffer("ae.latent_mean"), 0, "latent statistics");
        m_pg->broadcast(net.params().buffer("ae.latent_std"), 0, "latent statistics");
    }
    std::ostringstream os;
    os << "latent statistics from " << zs.size() << " clips: mean |mu| " << std::setprecision(3)
       << mu.abs().mean().item<float>() << ", std " << sd.min().item<float>() << ".." << sd.max().item<float>();
    log_line(os.str());
}

void Trainer::run_ae() {
    const PhaseConfig& pc = m_tc.ae;
    if (phase_done(pc, m_state.ae_step, m_state.ae_seconds)) {   // (the switch itself happened when it ended)
        m_state.phase = "dit";
        return;
    }
    start_phase_range(true);
    if (m_state.adam_t > 0 && m_adam_m_loaded.defined()) {
        DC_CHECK(m_adam_m_loaded.numel() == m_adam_m.numel(),
                 "checkpoint optimiser state has " << m_adam_m_loaded.numel() << " values, the phase has "
                                                   << m_adam_m.numel());
        m_adam_m.copy_(m_adam_m_loaded);
        m_adam_v.copy_(m_adam_v_loaded);
    }
    m_adam_m_loaded = m_adam_v_loaded = at::Tensor();
    fill_buffer(false);
    const int K = m_tc.data.clip_frames;
    const int B = local_batch(pc);
    const int refresh_n = std::max(1, static_cast<int>(std::ceil(B / (pc.reuse * K))));
    at::Tensor loss_acc = at::zeros({}, m_ema.options()), mse_acc = at::zeros({}, m_ema.options());
    int n_acc = 0;
    auto tlog = clock::now();
    bool first_window = true;
    const auto phase_t0 = clock::now();
    const double phase_s0 = m_state.ae_seconds;
    auto phase_s = [&] { return phase_s0 + std::chrono::duration<double>(clock::now() - phase_t0).count(); };
    bool completed = any_rank(phase_done(pc, m_state.ae_step, phase_s()));   // agreed: ranks' clocks differ
    bool stop = completed || any_rank(out_of_time());
    while (!stop) {
        const int64_t step = m_state.ae_step;
        m_state.ae_seconds = phase_s();
        refresh(refresh_n, false);
        std::mt19937_64 rng(rank_seed(mix(m_tc.seed, 0xae000000ull + static_cast<uint64_t>(step))));
        std::vector<int64_t> ci(B), fi(B);
        for (int b = 0; b < B; ++b) {
            ci[b] = static_cast<int64_t>(rng() % static_cast<uint64_t>(m_buf_n));
            fi[b] = static_cast<int64_t>(rng() % static_cast<uint64_t>(K));
        }
        at::Tensor flat_idx = at::tensor(ci, at::kLong) * K + at::tensor(fi, at::kLong);
        at::Tensor img = m_buf_x.view({m_buf_n * K, 3, m_buf_x.size(3), m_buf_x.size(4)})
                             .index_select(0, flat_idx.to(m_dev))
                             .to(at::kFloat)
                             .div(255.0);   // [B, 3, H, W]
        at::Tensor rec = m_model->net.decode_raw(m_model->net.encode_raw(img));
        at::Tensor d = rec - img;
        at::Tensor mse = d.pow(2).mean();
        at::Tensor loss = d.abs().mean() + mse;
        at::Tensor g = phase_grads(loss);
        const StepFlags flags = sync_step(g, loss, phase_done(pc, step + 1, phase_s()), m_state.ae_seconds);
        opt_step(pc, step, flags.phase_s, g);
        loss_acc += loss;
        mse_acc += mse.detach();   // this rank's (logged as reconstruction PSNR)
        ++n_acc;
        ++m_state.ae_step;
        ++m_chunk_ae_steps;
        completed = flags.phase_done;
        stop = flags.phase_done || flags.out_of_time;
        if (n_acc == m_tc.log_every || flags.phase_done) {
            const double l = loss_acc.item<double>() / n_acc, m = mse_acc.item<double>() / n_acc;
            const double dt = std::chrono::duration<double>(clock::now() - tlog).count();
            const double fps = n_acc * pc.batch / dt;   // global batch: frames/s over all ranks
            if (first_window) m_res.ae_first_loss = l, first_window = false;
            m_res.ae_last_loss = l;
            m_res.samples_per_s = fps;
            m_res.data_frames_per_s = m_stream->frames_per_second();
            std::ostringstream os;
            os << std::fixed << "[ae] step " << m_state.ae_step << "/" << pc.steps << progress(pc, phase_s())
               << " loss " << std::setprecision(5) << l << " psnr " << std::setprecision(2)
               << 10 * std::log10(1.0 / std::max(m, 1e-10)) << " dB lr " << std::scientific << std::setprecision(2)
               << lr_at(pc, step, phase_s()) << std::fixed << " | "
               << std::setprecision(0) << fps << " frames/s train, " << m_res.data_frames_per_s
               << " frames/s data | " << std::setprecision(1) << elapsed_s() / 60 << " min";
            log_line(os.str());
            m_state.history.push_back({{"phase", "ae"}, {"step", m_state.ae_step}, {"loss", l}, {"mse", m}});
            loss_acc.zero_();
            mse_acc.zero_();
            n_acc = 0;
            tlog = clock::now();
        }
        if (flags.checkpoint) checkpoint(false);
    }
    m_state.ae_seconds = phase_s();
    if (completed) {
        m_state.phase = "dit";
        m_state.adam_t = 0;
        measure_latent_stats();
    }
}

void Trainer::run_dit() {
    const PhaseConfig& pc = m_tc.dit;
    if (phase_done(pc, m_state.dit_step, m_state.dit_seconds)) {
        m_state.phase = "done";
        return;
    }
    auto& net = m_model->net;
    start_phase_range(false);
    if (m_state.adam_t > 0 && m_adam_m_loaded.defined()) {
        DC_CHECK(m_adam_m_loaded.numel() == m_adam_m.numel(),
                 "checkpoint optimiser state has " << m_adam_m_loaded.numel() << " values, the phase has "
                                                   << m_adam_m.numel());
        m_adam_m.copy_(m_adam_m_loaded);
        m_adam_v.copy_(m_adam_v_loaded);
    }
    m_adam_m_loaded = m_adam_v_loaded = at::Tensor();
    if (m_init_needs_stats) {
        measure_latent_stats();
        m_init_needs_stats = false;
    }
    fill_buffer(true);
    const ModelConfig& mc = net.config();
    const int64_t K = m_tc.data.clip_frames, B = local_batch(pc), C = mc.ae.latent_channels;
    const int64_t Pn = mc.dit.prompt_len;
    const int pad = m_model->vocab.pad_id();
    const int refresh_n = std::max(1, static_cast<int>(std::ceil(static_cast<double>(B) / pc.reuse)));
    at::Tensor loss_acc = at::zeros({}, m_ema.options());
    at::Tensor rel_num = at::zeros({}, m_ema.options()), rel_den = at::zeros({}, m_ema.options());
    at::Tensor chg_num = at::zeros({}, m_ema.options()), chg_den = at::zeros({}, m_ema.options());
    int n_acc = 0;
    auto tlog = clock::now();
    bool first_window = true;
    auto fopt = at::TensorOptions().device(m_dev).dtype(at::kFloat);
    at::Tensor frame_w = at::ones({1, K}, fopt);
    frame_w.index_put_({0, 0}, 0.f);   // frame 0 is its own previous frame: no loss
    frame_w = frame_w / frame_w.sum() ;
    const auto phase_t0 = clock::now();
    const double phase_s0 = m_state.dit_seconds;
    auto phase_s = [&] { return phase_s0 + std::chrono::duration<double>(clock::now() - phase_t0).count(); };
    bool completed = any_rank(phase_done(pc, m_state.dit_step, phase_s()));   // agreed: ranks' clocks differ
    bool stop = completed || any_rank(out_of_time());
    while (!stop) {
        const int64_t step = m_state.dit_step;
        m_state.dit_seconds = phase_s();
        refresh(refresh_n, true);
        std::mt19937_64 rng(rank_seed(mix(m_tc.seed, 0xd17000000ull + static_cast<uint64_t>(step))));
        std::vector<int64_t> ci(B);
        for (auto& c : ci) c = static_cast<int64_t>(rng() % static_cast<uint64_t>(m_buf_n));
        at::Tensor idx = at::tensor(ci, at::kLong).to(m_dev);
        at::Tensor z = m_buf_x.index_select(0, idx);        // [B, K, C, h, w]
        at::Tensor act = m_buf_act.index_select(0, idx);    // [B, K, 4]
        at::Tensor tok = m_buf_tok.index_select(0, idx);    // [B, 2, P]
        at::Tensor pof = m_buf_pof.index_select(0, idx);    // [B, K]
        at::manual_seed(rank_seed(mix(m_tc.seed, 0x5eed000000ull + static_cast<uint64_t>(step))));
        at::Tensor t = at::sigmoid(at::randn({B, K}, fopt) * m_tc.logit_std + m_tc.logit_mean);   // [B, K]
        at::Tensor clean = at::rand({B, K}, fopt) < m_tc.p_clean_ctx;
        t = at::where(clean, at::rand({B, K}, fopt) * m_tc.t_ctx_max, t);
        // The first frame of each clip's new prompt: the only frame whose look its previous frame does not give.
        at::Tensor changed = at::cat({at::zeros({B, 1}, pof.options()),
                                      pof.narrow(1, 1, K - 1) - pof.narrow(1, 0, K - 1)}, 1).gt(0);   // [B, K]
        // ... and the noise levels where only the prompt can tell the new look (the sampler's first steps).
        at::Tensor high = changed.logical_and(at::rand({B, K}, fopt) < m_tc.change_t_high);
        t = at::where(high, 1.f - at::rand({B, K}, fopt) * 0.1f, t);
        at::Tensor s = at::rand({B, K}, fopt).pow(2) * m_tc.ctx_noise_max;   // [B, K], skewed toward clean
        at::Tensor eps = at::randn_like(z), eps2 = at::randn_like(z);
        auto bc = [](const at::Tensor& a) { return a.view({a.size(0), a.size(1), 1, 1, 1}); };
        at::Tensor xt = (1 - bc(t)) * z + bc(t) * eps;
        at::Tensor zprev = at::cat({z.narrow(1, 0, 1), z.narrow(1, 0, K - 1)}, 1);
        at::Tensor prev = (1 - bc(s)) * zprev + bc(s) * eps2;
        at::Tensor cond = net.cond(t, s, act);   // [B, K, W]
        at::Tensor tk = tok.view({B * 2, Pn});
        at::Tensor valid = tk.ne(pad);
        valid.select(1, 0).fill_(true);
        PromptKV kv2 = net.prompt_kv(net.encode_prompt(tk, valid), valid);   // rows b*2 + prompt
        at::Tensor rows = (at::arange(B, idx.options()).unsqueeze(1) * 2 + pof).reshape({B * K});   // [B*K]
        PromptKV kv;
        kv.valid = kv2.valid.index_select(0, rows);
        for (size_t l = 0; l < kv2.k.size(); ++l) {
            kv.k.push_back(kv2.k[l].index_select(0, rows));
            kv.v.push_back(kv2.v[l].index_select(0, rows));
        }
        at::Tensor x0 = net.dit_masked(xt, prev, cond, kv);   // [B, K, C, h, w]
        at::Tensor per_frame = (x0 - z).pow(2).mean({2, 3, 4});   // [B, K]
        at::Tensor w = frame_w + changed.to(at::kFloat) * ((m_tc.change_weight - 1.f) * frame_w);   // [B, K]
        at::Tensor loss = (per_frame * w).sum() / B;
        at::Tensor g = phase_grads(loss);
        const StepFlags flags = sync_step(g, loss, phase_done(pc, step + 1, phase_s()), m_state.dit_seconds);
        opt_step(pc, step, flags.phase_s, g);
        loss_acc += loss;
        {   // progress vs copy-last in latent space, on frames whose input is mostly noise (t > 0.7)
            c10::NoGradGuard ng;
            at::Tensor hi = (t > 0.7).to(at::kFloat) * frame_w;   // [B, K]
            at::Tensor copy_err = (zprev - z).pow(2).mean({2, 3, 4});   // [B, K]
            rel_num += (per_frame.detach() * hi).sum();
            rel_den += (copy_err * hi).sum();
            // prompt-change frames at t > 0.9, where the noisy input hardly shows the new look: the prompt must
            at::Tensor hc = (t > 0.9).to(at::kFloat) * frame_w * changed.to(at::kFloat);
            chg_num += (per_frame.detach() * hc).sum();
            chg_den += (copy_err * hc).sum();
        }
        ++n_acc;
        ++m_state.dit_step;
        ++m_chunk_dit_steps;
        completed = flags.phase_done;
        stop = flags.phase_done || flags.out_of_time;
        if (n_acc == m_tc.log_every || flags.phase_done) {
            const double l = loss_acc.item<double>() / n_acc;
            const double rel = rel_num.item<double>() / std::max(rel_den.item<double>(), 1e-12);
            const double cden = chg_den.item<double>();
            const double chg = cden > 0 ? chg_num.item<double>() / cden : -1;
            const double dt = std::chrono::duration<double>(clock::now() - tlog).count();
            const double cps = n_acc * pc.batch / dt;   // global batch: clips/s over all ranks
            if (first_window) m_res.dit_first_loss = l, first_window = false;
            m_res.dit_last_loss = l;
            m_res.samples_per_s = cps;
            m_res.data_frames_per_s = m_stream->frames_per_second();
            std::ostringstream os;
            os << std::fixed << "[dit] step " << m_state.dit_step << "/" << pc.steps << progress(pc, phase_s())
               << " loss " << std::setprecision(5) << l << " (x copy-last " << std::setprecision(3) << rel
               << ") lr " << std::scientific << std::setprecision(2) << lr_at(pc, step, phase_s()) << std::fixed << " | " << std::setprecision(1) << cps
               << " clips/s (" << std::setprecision(0) << cps * K
               << " frames/s) train, " << m_res.data_frames_per_s << " frames/s data | " << std::setprecision(1)
               << elapsed_s() / 60 << " min";
            if (chg >= 0) os << " | prompt-change frames x copy-last " << std::setprecision(3) << chg;
            log_line(os.str());
            m_state.history.push_back(
                {{"phase", "dit"}, {"step", m_state.dit_step}, {"loss", l}, {"vs_copy_last", rel}});
            if (chg >= 0) m_state.history.back()["change_vs_copy_last"] = chg;
            loss_acc.zero_();
            rel_num.zero_();
            rel_den.zero_();
            chg_num.zero_();
            chg_den.zero_();
            n_acc = 0;
            tlog = clock::now();
        }
        if (flags.checkpoint) checkpoint(false);
        (void)C;
    }
    m_state.dit_seconds = phase_s();
    if (completed) m_state.phase = "done";
}

void Trainer::export_ema(const std::string& json_path) {
    c10::NoGradGuard ng;
    auto& flat = m_model->net.params().flat();
    at::Tensor live = flat.clone();
    flat.copy_(m_ema);
    json meta;
    const double gpu_min = m_state.train_seconds / 60.0;
    json devices = json::array();
    for (const auto& c : m_state.chunks) devices.push_back(c.value("device", ""));
    meta["training"] = {{"ae_steps", m_state.ae_step},
                        {"dit_steps", m_state.dit_step},
                        {"phase", m_state.phase},
                        {"minutes", gpu_min},
                        {"ae_minutes", m_state.ae_seconds / 60},
                        {"dit_minutes", m_state.dit_seconds / 60},
                        {"device_minutes", gpu_min},
                        {"devices", devices},
                        {"chunks", m_state.chunks},
                        {"config", m_run["train"]},
                        {"weights", "EMA"}};
    meta["data"] = {{"source", "reference game (game/), scripted agents, random levels/spawns/prompts"},
                    {"agents", m_tc.data.agents.empty() ? game::agent_names() : m_tc.data.agents},
                    {"levels", m_tc.data.levels.empty() ? game::Level::names() : m_tc.data.levels},
                    {"clip_frames", m_tc.data.clip_frames},
                    {"clips_generated", m_state.next_clip},
                    {"held_out", "clip seeds with bit 63 set (dreamcaster eval) are never used in training"}};
    json metrics = json::object();
    if (!m_state.history.empty()) metrics["last_logged"] = m_state.history.back();
    if (m_tc.eval_clips > 0 && m_state.ae_step > 0) {
        try {
            QuickMetrics q = quick_metrics(m_model->net, m_model->vocab, m_tc.data, m_tc.eval_clips,
                                           m_state.dit_step > 0);
            metrics["heldout_clips"] = m_tc.eval_clips;
            metrics["ae_psnr"] = q.ae_psnr;
            metrics["copy_last_psnr"] = q.copy_last_psnr;
            if (m_state.dit_step > 0) metrics["teacher_forced_psnr"] = q.teacher_forced_psnr;
        } catch (const std::exception& e) {
            metrics["error"] = e.what();
        }
    }
    meta["metrics"] = metrics;
    m_model->meta = meta;
    export_model(m_model->net, json_path, meta, st::DType::bf16);
    flat.copy_(live);
}

void Trainer::checkpoint(bool final_export) {
    c10::NoGradGuard ng;
    std::vector<std::string> hashes;
    if (m_world > 1) {   // every rank takes part; a diverged group stops before overwriting the last checkpoint
        hashes = rank_param_hashes();
        for (int r = 1; r < m_world; ++r)
            DC_CHECK(hashes[static_cast<size_t>(r)] == hashes[0],
                     "parameters differ between rank 0 (sha256 " << hashes[0].substr(0, 16) << "…) and rank " << r
                                                                 << " (" << hashes[static_cast<size_t>(r)].substr(0, 16)
                                                                 << "…) at step ae " << m_state.ae_step << ", dit "
                                                                 << m_state.dit_step
                                                                 << "; the previous checkpoint is kept");
        if (m_rank != 0) {
            m_last_ckpt_s = elapsed_s();
            return;
        }
    }
    const double now = elapsed_s();
    m_state.train_seconds = m_chunk_start_train_s + now;
    json chunk = {{"device", m_dev_name}, {"ranks", m_world}, {"seconds", now}, {"ae_steps", m_chunk_ae_steps},
                  {"dit_steps", m_chunk_dit_steps}};
    json st = m_state.to_json();
    st["ranks"] = m_world;
    if (!hashes.empty()) st["rank_param_sha256"] = hashes;
    st["chunks"].push_back(chunk);
    const std::string dir = m_out + "/checkpoint", tmp = m_out + "/checkpoint.new";
    remove_tree(tmp);
    fs::create_directories(tmp);
    st::save(tmp + "/params.safetensors", m_model->net.params().named_tensors(), st::DType::f32);
    st::save(tmp + "/ema.safetensors", {{"ema", m_ema}}, st::DType::f32);
    // Optimiser moments of the running phase (or those loaded, when this call trained nothing).
    at::Tensor am = m_adam_m.defined() ? m_adam_m : m_adam_m_loaded, av = m_adam_v.defined() ? m_adam_v : m_adam_v_loaded;
    if (!am.defined()) am = av = at::zeros({0});
    st::save(tmp + "/adam.safetensors", {{"m", am}, {"v", av}}, st::DType::f32);
    std::ofstream(tmp + "/state.json") << st.dump(2) << "\n";
    remove_tree(dir);
    fs::rename(tmp, dir);
    RunState saved = m_state;
    m_state.chunks = st["chunks"];
    export_ema(m_out + "/model.json");
    m_state = saved;
    m_last_ckpt_s = elapsed_s();
    log_line(std::string(final_export ? "final " : "") + "checkpoint: " + dir + " (step ae " +
             std::to_string(m_state.ae_step) + ", dit " + std::to_string(m_state.dit_step) + "), model " + m_out +
             "/model.json");
}

void Trainer::load_checkpoint(const std::string& dir) {
    m_state = RunState::from_json(json::parse(read_text_file(dir + "/state.json")));
    st::File p = st::File::read(dir + "/params.safetensors");
    {
        c10::NoGradGuard ng;
        for (const auto& [name, t] : m_model->net.params().named_tensors()) {
            at::Tensor src = p.tensor(name);
            DC_CHECK(src.sizes() == t.sizes(), "checkpoint tensor '" << name << "' has another shape than the run's model");
            at::Tensor dst = t;
            dst.copy_(src.to(dst.device(), dst.scalar_type()));
        }
        m_ema.copy_(st::File::read(dir + "/ema.safetensors").tensor("ema").to(m_dev));
        st::File a = st::File::read(dir + "/adam.safetensors");
        m_adam_m_loaded = a.tensor("m").to(m_dev);
        m_adam_v_loaded = a.tensor("v").to(m_dev);
    }
    std::ostringstream os;
    os << "resumed " << dir << ": phase " << m_state.phase << ", ae step " << m_state.ae_step << ", dit step "
       << m_state.dit_step << ", " << std::fixed << std::setprecision(1) << m_state.train_seconds / 60
       << " min trained so far";
    log_line(os.str());
}

TrainResult Trainer::run() {
    setup();
    const bool want_ae = m_opt.phase != "dit", want_dit = m_opt.phase != "ae";
    if (m_state.phase == "ae" && want_ae) run_ae();
    if (m_state.phase == "dit" && want_dit && !any_rank(out_of_time())) run_dit();
    m_stream.reset();
    checkpoint(true);
    if (!m_opt.export_path.empty() && m_rank == 0) {
        export_ema(m_opt.export_path);
        log_line("exported " + m_opt.export_path);
    }
    m_res.ae_step = m_state.ae_step;
    m_res.dit_step = m_state.dit_step;
    m_res.finished = (m_opt.phase == "ae" && m_state.phase != "ae") || m_state.phase == "done";
    m_res.model_path = m_out + "/model.json";
    m_res.world_size = m_world;
    return m_res;
}

}  // namespace wm

TrainResult train_world_model(const TrainOptions& options) {
    wm::Trainer t(options);
    return t.run();
}

std::string train_config_json(const std::string& preset) {
    wm::ModelConfig mc = wm::ModelConfig::preset(preset);
    nlohmann::json j = {{"model", mc.to_json()}, {"train", wm::train_to_json(wm::train_preset(preset))}};
    return j.dump(2);
}

}  // namespace dc
