// `dreamcaster bench rollout` (see rollout_bench.h): configurations run one after another in this process, each
// against the real game in lockstep; per-frame rows go to rollout.csv, the summary to summary.md.
#ifdef DC_HAVE_WORLD_MODEL

#include "app/rollout_bench.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "app/image_metrics.h"
#include "app/kineto_trace.h"
#include "common/common.h"
#include "game/game.h"
#include "world_model/world_model.h"

#if defined(DC_HAVE_CUDA) && __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<ATen/cuda/CUDAContext.h>)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#define DC_ROLLOUT_CUDA 1
#endif

namespace dc::app {

const std::vector<std::string> kRolloutCsvColumns = {"config",
                                                     "frame",
                                                     "step_ms",
                                                     "fps",
                                                     "fps_avg16",
                                                     "denoise_ms",
                                                     "commit_ms",
                                                     "decode_ms",
                                                     "cache_tokens",
                                                     "cache_bytes",
                                                     "gpu_allocated_bytes",
                                                     "gpu_peak_bytes",
                                                     "gpu_reserved_bytes",
                                                     "rss_bytes",
                                                     "rss_peak_bytes",
                                                     "density",
                                                     "recall",
                                                     "merge_rate",
                                                     "kept_fraction",
                                                     "psnr_dense",
                                                     "ssim_dense",
                                                     "psnr_real",
                                                     "ssim_real",
                                                     "x",
                                                     "y",
                                                     "angle"};

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

constexpr double kTurnPerTick = 2.4 / 15.0;  // radians per tick at turn = 1 (GameConfig turn_speed / tick_hz)
constexpr double kMovePerTick = 2.4 / 15.0;  // cells per tick at forward = 1
constexpr double kPi = 3.14159265358979323846;

double secs_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string fmt(double v, int prec = 1) {
    if (!std::isfinite(v)) return "n/a";
    std::ostringstream os;
    os << std::fixed << std::setprecision(prec) << v;
    return os.str();
}

std::string pct(double fraction, int prec = 0) {
    return std::isfinite(fraction) ? fmt(100 * fraction, prec) + "%" : "n/a";
}

std::string mb(double bytes) {
    return bytes < 0 ? "n/a" : fmt(bytes / 1e6, 1);
}

// ---- device: card name, memory statistics ---------------------------------------------------------------------

bool is_cuda(const std::string& device) {
    return device.rfind("cuda", 0) == 0;
}

#ifdef DC_ROLLOUT_CUDA
int cuda_index(const std::string& device) {
    const auto colon = device.find(':');
    return colon == std::string::npos ? 0 : std::stoi(device.substr(colon + 1));
}
#endif

std::string card_name(const std::string& device) {
#ifdef DC_ROLLOUT_CUDA
    if (is_cuda(device)) return at::cuda::getDeviceProperties(cuda_index(device))->name;
#else
    DC_CHECK(!is_cuda(device), "--device " << device << ": this build has no CUDA; use --device cpu");
#endif
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return "cpu (" + std::to_string(n) + " cores)";
}

// Host peak RSS (VmHWM) is reset by writing 5 to /proc/self/clear_refs (Linux ≥ 4.0).
bool reset_host_peak() {
    std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    const bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
}

std::pair<int64_t, int64_t> host_rss() {  // current (VmRSS), peak (VmHWM) bytes
    std::ifstream in("/proc/self/status");
    std::string line;
    int64_t rss = -1, hwm = -1;
    while (std::getline(in, line)) {
        long long kb = 0;
        if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kb) == 1) rss = kb * 1024;
        if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &kb) == 1) hwm = kb * 1024;
    }
    return {rss, hwm};
}

void reset_gpu_peak(const std::string& device) {
#ifdef DC_ROLLOUT_CUDA
    if (is_cuda(device)) {
        c10::cuda::CUDACachingAllocator::emptyCache();  // a configuration starts without the previous one's blocks
        c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(cuda_index(device)));
    }
#else
    (void)device;
#endif
}

int64_t gpu_peak(const std::string& device) {
#ifdef DC_ROLLOUT_CUDA
    if (is_cuda(device)) {
        const auto ds =
            c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(cuda_index(device)));
        return static_cast<int64_t>(ds.allocated_bytes[0].peak);  // [0] = aggregate over pools
    }
#else
    (void)device;
#endif
    return -1;
}

// Peak figures of the card for the roofline: a table for the GPUs the project runs on, a measurement on the CPU.
struct Peak {
    double flops = 0, bytes_per_s = 0;
    std::string source;
};

Peak measure_cpu_peak() {
    c10::NoGradGuard no_grad;
    Peak p;
    at::Tensor a = at::randn({512, 512}), b = at::randn({512, 512});
    (void)at::mm(a, b);
    int n = 0;
    auto t0 = clock_type::now();
    while (secs_since(t0) < 0.3 || n < 3) {
        (void)at::mm(a, b);
        ++n;
    }
    p.flops = 2.0 * 512 * 512 * 512 * n / secs_since(t0);
    std::vector<char> src(size_t{256} << 20, 1), dst(src.size());
    std::memcpy(dst.data(), src.data(), src.size());
    t0 = clock_type::now();
    for (int i = 0; i < 3; ++i) std::memcpy(dst.data(), src.data(), src.size());
    p.bytes_per_s = 2.0 * 3 * static_cast<double>(src.size()) / secs_since(t0);  // read + write
    p.source = "measured here: 512² fp32 matmul " + fmt(p.flops / 1e9, 0) + " GFLOP/s, memcpy " +
               fmt(p.bytes_per_s / 1e9, 1) + " GB/s (read + write)";
    return p;
}

Peak card_peak(const std::string& device, const std::string& card) {
    if (!is_cuda(device)) return measure_cpu_peak();
    Peak p;
    if (card.find("H200") != std::string::npos) {
        p = {989e12, 4.8e12, "H200 datasheet: 989 TFLOP/s bf16 dense, 4.8 TB/s"};
    } else if (card.find("H100") != std::string::npos) {
        p = {989e12, 3.35e12, "H100 SXM datasheet: 989 TFLOP/s bf16 dense, 3.35 TB/s"};
    } else {
        p.source = "no peak figures for this card: floor not computed";
    }
    return p;
}

std::string git_commit() {
    // A copy of the tree without its history (a build machine) names its commit in DC_COMMIT.
    if (const char* c = std::getenv("DC_COMMIT"); c != nullptr && *c != '\0') return c;
    std::string dir;
    try {
        dir = (std::filesystem::path(assets_dir()) / "..").string();
    } catch (const dc::Error&) {
        dir = ".";
    }
    const std::string cmd = "git -C '" + dir + "' describe --always --dirty --abbrev=12 2>/dev/null";
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
        char buf[128];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out.empty() ? "unknown (not a git checkout)" : out;
}

std::string today() {
    std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
    return buf;
}

// ---- the model's shape, for the roofline ---------------------------------------------------------------------

struct ModelShape {
    int layers = 0, width = 0, head_dim = 0, heads = 0, mlp = 0, latent = 0, tokens = 0, prompt_len = 0;
    std::vector<int> dec_channels;
    int dec_blocks_low = 0;
    double dit_flops_per_pass = 0;   // everything but attention scores, one DiT pass over one frame
    double dit_params_per_pass = 0;  // weights read by one pass (cross k/v of the prompt are computed once)
    double dec_flops = 0, dec_params = 0;
};

ModelShape model_shape(const std::string& config_path) {
    std::ifstream in(config_path);
    DC_CHECK(in, "cannot read the model config '" << config_path << "'");
    json j;
    try {
        in >> j;
    } catch (const json::exception& e) {
        DC_FAIL("model config '" << config_path << "' is not valid JSON: " << e.what());
    }
    ModelShape s;
    try {
        const json& a = j.at("architecture");
        const json& d = a.at("dit");
        s.layers = d.at("depth").get<int>();
        s.width = d.at("width").get<int>();
        s.head_dim = d.at("head_dim").get<int>();
        s.heads = s.width / s.head_dim;
        s.mlp = d.at("mlp_hidden").get<int>();
        s.prompt_len = d.at("prompt_len").get<int>();
        s.latent = a.at("ae").at("latent_channels").get<int>();
        s.dec_channels = a.at("ae").at("dec_channels").get<std::vector<int>>();
        s.dec_blocks_low = a.at("ae").at("dec_blocks_low").get<int>();
        const int ds = a.at("downsample").get<int>();
        s.tokens = (a.at("frame_width").get<int>() / ds) * (a.at("frame_height").get<int>() / ds);
    } catch (const json::exception& e) {
        DC_FAIL("model config '" << config_path << "': expected architecture.dit/ae fields, found: " << e.what());
    }
    const double N = s.tokens, W = s.width, M = s.mlp, C = s.latent;
    // Per block: qkv (3W²), proj (W²), cross q and proj (2W²), MLP (2WM), depthwise 3×3 on the hidden (9M).
    const double block_flops = 2 * N * (6 * W * W + 2 * W * M + 9 * M);
    const double block_params = 6 * W * W + 2 * W * M + 9 * M + 6 * W * W;  // + adaLN (6W², one token)
    // Input 3×3 conv over [x ‖ previous frame] (2C channels) and the output projection.
    s.dit_flops_per_pass = s.layers * block_flops + 2 * N * (2 * C * 9 * W + W * C);
    s.dit_params_per_pass = s.layers * block_params + 2 * C * 9 * W + W * C;
    // Decoder: 3×3 convs at the grid (in, 2 per low block), then per level ×2: up conv + one residual block.
    double pix = N, f = 0, p = 0;
    auto conv = [&](double cin, double cout) {
        f += 2 * cin * cout * 9 * pix;
        p += cin * cout * 9;
    };
    if (!s.dec_channels.empty()) {
        conv(C, s.dec_channels[0]);
        for (int b = 0; b < 2 * s.dec_blocks_low; ++b) conv(s.dec_channels[0], s.dec_channels[0]);
        for (size_t i = 1; i < s.dec_channels.size(); ++i) {
            pix *= 4;
            conv(s.dec_channels[i - 1], s.dec_channels[i]);
            conv(s.dec_channels[i], s.dec_channels[i]);
            conv(s.dec_channels[i], s.dec_channels[i]);
        }
        conv(s.dec_channels.back(), 3);
    }
    s.dec_flops = f;
    s.dec_params = p;
    return s;
}

// FLOPs and bytes of one frame from the model's shape and what the attention did (FrameStats::attention).
struct FrameCost {
    double flops = 0, bytes = 0, kv_bytes = 0;
};

FrameCost frame_cost(const ModelShape& s, const FrameStats& st, int steps, bool cuda) {
    FrameCost c;
    const double passes = steps + 1;  // S denoising passes + the commit pass
    const double N = s.tokens, D = s.head_dim, H = s.heads;
    const AttentionStats& a = st.attention;
    c.flops = passes * s.dit_flops_per_pass + s.dec_flops + 4 * D * static_cast<double>(a.keys_attended) +
              4 * D * N * static_cast<double>(a.cross_kept);
    const double wbytes = cuda ? 2 : 4;  // bf16 on CUDA, float32 on the CPU
    // Cached (key, head) pairs read: per self call H·T_attended = (keys_attended − rows·N) / N over all calls.
    const double key_heads =
        std::max(0.0, (static_cast<double>(a.keys_attended) - static_cast<double>(a.query_rows) * N) / N);
    const double per_key =
        st.cache_tokens > 0 ? static_cast<double>(st.cache_bytes) / static_cast<double>(st.cache_tokens) : 0;
    const double per_key_head = H > 0 ? (per_key - 12) / H : 0;  // K + V + bias of one head (frame, size shared)
    c.kv_bytes = key_heads * per_key_head;
    c.bytes = passes * s.dit_params_per_pass * wbytes + s.dec_params * wbytes + c.kv_bytes +
              N * s.layers * per_key;  // + the commit's writes
    return c;
}

// ---- actions -----------------------------------------------------------------------------------------------------

std::string action_line(double fwd, double turn, bool use) {
    std::ostringstream os;
    os << std::setprecision(7) << fwd << " 0 " << turn << " " << (use ? 1 : 0);
    return os.str();
}

void emit(std::ostringstream& os, int64_t& n, double fwd, double turn, int64_t ticks, bool use = false) {
    if (ticks <= 0) return;
    os << action_line(fwd, turn, use) << "\n";
    if (ticks > 1) os << "repeat " << ticks - 1 << "\n";
    n += ticks;
}

std::string actions_to_script(const std::vector<game::Action>& actions, const std::string& header) {
    std::ostringstream os;
    os << header;
    for (size_t i = 0; i < actions.size();) {
        size_t j = i + 1;
        auto same = [](const game::Action& a, const game::Action& b) {
            return a.forward == b.forward && a.strafe == b.strafe && a.turn == b.turn && a.use == b.use;
        };
        while (j < actions.size() && same(actions[i], actions[j])) ++j;
        os << std::setprecision(9) << actions[i].forward << " " << actions[i].strafe << " " << actions[i].turn << " "
           << (actions[i].use ? 1 : 0) << "\n";
        if (j - i > 1) os << "repeat " << (j - i - 1) << "\n";
        i = j;
    }
    return os.str();
}

}  // namespace

std::string revisit_script(int64_t away_frames, int64_t* first_revisit_frame) {
    // Exact whole turns: 40 ticks make 360°, 20 make 180°, 10 make 90°.
    const double t90 = (kPi / 2) / (10 * kTurnPerTick);
    const double f2 = 2.0 / (13 * kMovePerTick);  // 2 cells in 13 ticks
    std::ostringstream os;
    int64_t n = 0;
    os << "# revisit walk, level e1m1 (generated by dreamcaster bench rollout): 360° in the spawn room, out through\n"
          "# the east door, up and down the metal hall, back, 180° and 360° in the spawn room.\n";
    os << "# 360° at the spawn\n";
    emit(os, n, 0, t90, 40);
    os << "# east to the door, open it, wait until it is open, on into the hall (x 3.5 -> 14.38)\n";
    emit(os, n, 1, 0, 30);
    emit(os, n, 0, 0, 1, true);
    emit(os, n, 0, 0, 18);
    emit(os, n, 1, 0, 38);
    os << "# face south; up and down the hall (92 ticks a round: 2 cells south, 4 north, 2 south)\n";
    emit(os, n, 0, t90, 10);
    const int64_t rounds = away_frames > 0 ? (away_frames + 91) / 92 : 0;
    for (int64_t r = 0; r < rounds; ++r) {
        emit(os, n, f2, 0, 13);
        emit(os, n, 0, t90, 20);
        emit(os, n, f2, 0, 26);
        emit(os, n, 0, t90, 20);
        emit(os, n, f2, 0, 13);
    }
    os << "# face west and walk back to the spawn (68 ticks)\n";
    emit(os, n, 0, t90, 10);
    emit(os, n, 1, 0, 68);
    os << "# revisit: the spawn room from frame " << n << ": 180° to face east as at the start, then 360°\n";
    if (first_revisit_frame) *first_revisit_frame = n;
    emit(os, n, 0, t90, 20);
    emit(os, n, 0, t90, 40);
    return os.str();
}

RolloutConfigDef rollout_config(const std::string& name) {
    const std::string accepted =
        "dense, dense-torch, window16, tempcache, annsa, annca, all, windowN (N frames + 1 sink), window-eq (revisit "
        "only), or an attention type such as tempcache+window; any of them + \"-eager\" (no CUDA graphs) or + "
        "\"-budgetN\" (at most N cached tokens per layer)";
    const std::string eager = "-eager";
    const size_t budget_at = name.rfind("-budget");
    if (budget_at != std::string::npos && budget_at > 0) {
        const std::string digits = name.substr(budget_at + 7);
        DC_CHECK(!digits.empty() && digits.size() <= 9 && digits.find_first_not_of("0123456789") == std::string::npos &&
                     std::stoll(digits) >= 1,
                 "configuration \"" << name << "\": expected <configuration>-budgetN with N ≥ 1 tokens per layer");
        RolloutConfigDef d = rollout_config(name.substr(0, budget_at));
        d.name = name;
        d.label += ", budget " + digits + " tokens/layer";
        d.max_cache_tokens = std::stoll(digits);
        return d;
    }
    if (name.size() > eager.size() && name.compare(name.size() - eager.size(), eager.size(), eager) == 0) {
        RolloutConfigDef d = rollout_config(name.substr(0, name.size() - eager.size()));
        d.name = name;
        d.label += ", no CUDA graphs";
        d.cuda_graphs = false;
        return d;
    }
    RolloutConfigDef d;
    d.name = name;
    d.params_json = "{}";
    if (name == "dense") {
        d.type = "dense";
        d.label = "Dense, unbounded (split-KV kernel on CUDA)";
    } else if (name == "dense-torch") {
        d.type = "dense";
        d.params_json = R"({"dense":{"kernel":"torch"}})";
        d.label = "Dense, unbounded (torch ops)";
    } else if (name == "all") {
        d.type = "tempcache+annsa+annca";
        d.label = "TempCache + AnnSA + AnnCA";
    } else if (name.rfind("window", 0) == 0 && name.size() > 6 &&
               name.find_first_not_of("0123456789", 6) == std::string::npos) {
        const std::string digits = name.substr(6);
        DC_CHECK(digits.size() <= 9 && std::stoll(digits) >= 1,
                 "configuration \"" << name << "\": expected windowN with N ≥ 1 frames");
        d.type = "window";
        d.params_json = R"({"window":{"frames":)" + std::to_string(std::stoll(digits)) + R"(,"sinks":1}})";
        d.label = "Window-" + digits + " (+1 sink)";
    } else {
        DC_CHECK(!name.empty() && name.find_first_of(" {") == std::string::npos,
                 "unknown configuration \"" << name << "\": expected " << accepted);
        try {
            d.type = AttentionSpec::parse(name).type;
        } catch (const dc::Error& e) {
            DC_FAIL("unknown configuration \"" << name << "\": expected " << accepted << " (" << e.message() << ")");
        }
        d.label = d.type == "tempcache" ? "TempCache"
                  : d.type == "annsa"   ? "AnnSA"
                  : d.type == "annca"   ? "AnnCA"
                                        : d.type;
    }
    return d;
}

namespace {

// ---- one configuration's rollout ----------------------------------------------------------------------------------

struct Row {
    int64_t frame = 0;
    double step_ms = 0, fps_avg = 0, denoise_ms = 0, commit_ms = 0, decode_ms = 0;
    int64_t cache_tokens = 0, cache_bytes = 0, gpu_alloc = -1, gpu_peak = -1, gpu_reserved = -1, rss = -1,
            rss_peak = -1;
    double density = 1, recall = -1, merge_rate = 0, kept = 1;
    double psnr_dense = NAN, ssim_dense = NAN, psnr_real = NAN, ssim_real = NAN;
    float x = 0, y = 0, angle = 0;
    FrameCost cost;
};

struct RunResult {
    RolloutConfigDef def;
    std::vector<Row> rows;
    bool truncated = false;  // stopped by the time limit
    double wall_s = 0;
};

std::string csv_cell(double v, int prec = 4) {
    if (!std::isfinite(v)) return "";
    std::ostringstream os;
    os << std::setprecision(prec + 4) << v;
    return os.str();
}

std::string csv_int(int64_t v) {
    return v < 0 ? "" : std::to_string(v);
}

void write_row(std::ostream& out, const std::string& config, const Row& r) {
    out << config << "," << r.frame << "," << csv_cell(r.step_ms) << "," << csv_cell(1000.0 / r.step_ms) << ","
        << csv_cell(r.fps_avg) << "," << csv_cell(r.denoise_ms) << "," << csv_cell(r.commit_ms) << ","
        << csv_cell(r.decode_ms) << "," << r.cache_tokens << "," << r.cache_bytes << "," << csv_int(r.gpu_alloc) << ","
        << csv_int(r.gpu_peak) << "," << csv_int(r.gpu_reserved) << "," << csv_int(r.rss) << "," << csv_int(r.rss_peak)
        << "," << csv_cell(r.density) << "," << (r.recall >= 0 ? csv_cell(r.recall) : "") << ","
        << csv_cell(r.merge_rate) << "," << csv_cell(r.kept) << "," << csv_cell(r.psnr_dense) << ","
        << csv_cell(r.ssim_dense) << "," << csv_cell(r.psnr_real) << "," << csv_cell(r.ssim_real) << ","
        << csv_cell(r.x) << "," << csv_cell(r.y) << "," << csv_cell(r.angle) << "\n";
}

void write_header(std::ostream& out) {
    for (size_t i = 0; i < kRolloutCsvColumns.size(); ++i) out << (i ? "," : "") << kRolloutCsvColumns[i];
    out << "\n";
}

// Image metrics of one frame, off the model's thread on CUDA (they cost ~10 ms a frame; the GPU frame is shorter).
struct MetricJob {
    size_t row = 0;
    game::Image dream, real;
    const game::Image* ref = nullptr;  // the dense frame, or null
    bool do_ssim = true;
};

class MetricWorker {
public:
    MetricWorker(std::vector<Row>& rows, bool threaded) : m_rows(rows), m_threaded(threaded) {
        if (m_threaded) m_thread = std::thread([this] { loop(); });
    }
    ~MetricWorker() { finish(); }
    void push(MetricJob job) {
        if (!m_threaded) {
            run(job);
            return;
        }
        std::unique_lock<std::mutex> lock(m_mutex);
        m_space.wait(lock, [&] { return m_jobs.size() < 256; });
        m_jobs.push_back(std::move(job));
        m_ready.notify_one();
    }
    void finish() {
        if (!m_threaded || !m_thread.joinable()) return;
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_done = true;
        }
        m_ready.notify_one();
        m_thread.join();
    }

private:
    void run(const MetricJob& j) {
        Row& r = m_rows[j.row];
        r.psnr_real = psnr(j.dream, j.real);
        if (j.do_ssim) r.ssim_real = ssim(j.dream, j.real);
        if (j.ref) {
            r.psnr_dense = psnr(j.dream, *j.ref);
            if (j.do_ssim) r.ssim_dense = ssim(j.dream, *j.ref);
        }
    }
    void loop() {
        for (;;) {
            MetricJob job;
            {
                std::unique_lock<std::mutex> lock(m_mutex);
                m_ready.wait(lock, [&] { return m_done || !m_jobs.empty(); });
                if (m_jobs.empty()) return;
                job = std::move(m_jobs.front());
                m_jobs.pop_front();
            }
            m_space.notify_one();
            run(job);
        }
    }
    std::vector<Row>& m_rows;
    bool m_threaded;
    std::thread m_thread;
    std::mutex m_mutex;
    std::condition_variable m_ready, m_space;
    std::deque<MetricJob> m_jobs;
    bool m_done = false;
};

struct Workload {
    WorldModelPtr model;
    ModelShape shape;
    std::string level, prompt;
    uint64_t seed = 1;
    std::vector<game::Action> actions;  // one per frame
};

RunResult run_config(const RolloutBenchConfig& o, const Workload& w, const RolloutConfigDef& def,
                     std::vector<game::Image>* keep_frames, const std::vector<game::Image>* ref, bool quiet) {
    RunResult res;
    res.def = def;
    const int64_t frames = static_cast<int64_t>(w.actions.size());
    const bool cuda = is_cuda(o.device);
    SessionConfig sc;
    sc.n_steps = o.steps;
    sc.seed = w.seed;
    sc.recall_every = o.recall_every;
    sc.attention = AttentionSpec::parse(def.type, def.params_json);
    sc.cuda_graphs = def.cuda_graphs;
    sc.max_cache_tokens = def.max_cache_tokens;
    const game::Vocabulary vocab = game::Vocabulary::load_default();
    game::Game g(game::Level::load_named(w.level));
    g.set_prompt(w.prompt, vocab);
    g.reset(w.seed);
    game::Image real, dream;
    g.render(real);
    if (keep_frames) keep_frames->assign(static_cast<size_t>(frames), game::Image{});
    res.rows.resize(static_cast<size_t>(frames));
    reset_gpu_peak(o.device);
    const bool host_peak_ok = reset_host_peak();
    Session session(w.model, sc);
    session.reset(real, w.prompt);
    const auto t_start = clock_type::now();
    int64_t done = 0;
    {
        MetricWorker metrics(res.rows, cuda);
        double ms_window[16] = {};
        KinetoTrace trace;
        for (int64_t f = 1; f <= frames; ++f) {
            const game::Action& a = w.actions[static_cast<size_t>(f - 1)];
            FrameStats st;
            if (o.trace_at > 0 && f == o.trace_at) trace.start();
            const auto t0 = clock_type::now();
            session.step(a, dream, &st);
            const double step_ms = secs_since(t0) * 1000.0;
            if (trace.running() && (f == o.trace_at + 2 || f == frames))
                trace.stop((std::filesystem::path(o.out_dir) / ("trace-" + def.name + ".json")).string());
            g.step(a);
            g.render(real);
            Row& r = res.rows[static_cast<size_t>(f - 1)];
            r.frame = f;
            r.step_ms = step_ms;
            ms_window[f % 16] = step_ms;
            double sum = 0;
            const int64_t n_avg = std::min<int64_t>(f, 16);
            for (int64_t i = 0; i < n_avg; ++i) sum += ms_window[(f - i + 16) % 16];
            r.fps_avg = 1000.0 * static_cast<double>(n_avg) / sum;
            r.denoise_ms = st.denoise_ms;
            r.commit_ms = st.commit_ms;
            r.decode_ms = st.decode_ms;
            r.cache_tokens = st.cache_tokens;
            r.cache_bytes = st.cache_bytes;
            if (cuda) {
                r.gpu_alloc = st.gpu_allocated_bytes;
                r.gpu_reserved = st.gpu_reserved_bytes;
                r.gpu_peak = gpu_peak(o.device);
            }
            const auto rss = host_rss();
            r.rss = rss.first;
            r.rss_peak = host_peak_ok ? rss.second : -1;
            r.density = st.attention.density();
            r.recall = st.attention.recall();
            r.merge_rate = st.attention.merge_rate();
            r.kept = st.attention.cross_kept_fraction();
            r.x = g.pose().x;
            r.y = g.pose().y;
            r.angle = g.pose().angle;
            r.cost = frame_cost(w.shape, st, o.steps, cuda);
            MetricJob job;
            job.row = static_cast<size_t>(f - 1);
            job.do_ssim = o.ssim_every <= 1 || f % o.ssim_every == 0;
            if (keep_frames) {
                (*keep_frames)[static_cast<size_t>(f - 1)] = dream;
                job.ref = &(*keep_frames)[static_cast<size_t>(f - 1)];
            } else if (ref && static_cast<size_t>(f) <= ref->size()) {
                job.ref = &(*ref)[static_cast<size_t>(f - 1)];
            }
            job.dream = dream;
            job.real = real;
            metrics.push(std::move(job));
            done = f;
            if (!quiet && (f % 50 == 0 || f == frames))
                std::fprintf(stderr, "rollout %s: frame %lld/%lld  %.1f ms/frame  cache %.1f MB  %.0f s\n",
                             def.name.c_str(), static_cast<long long>(f), static_cast<long long>(frames), step_ms,
                             static_cast<double>(st.cache_bytes) / 1e6, secs_since(t_start));
            if (o.config_timeout_s > 0 && secs_since(t_start) > o.config_timeout_s && f < frames) {
                res.truncated = true;
                break;
            }
        }
        metrics.finish();
    }
    res.rows.resize(static_cast<size_t>(done));
    if (keep_frames) keep_frames->resize(static_cast<size_t>(done));
    res.wall_s = secs_since(t_start);
    return res;
}

// ---- statistics over rows -----------------------------------------------------------------------------------------

int64_t half_window(int64_t frames) {
    return std::max<int64_t>(0, std::min<int64_t>(25, frames / 20));
}

// Mean of field over frames [at − h, at + h] clipped to the run; NaN when no row is there.
double mean_around(const std::vector<Row>& rows, int64_t at, int64_t h, const std::function<double(const Row&)>& fn) {
    double s = 0;
    int64_t n = 0;
    for (const Row& r : rows) {
        if (r.frame < at - h || r.frame > at + h) continue;
        const double v = fn(r);
        if (!std::isfinite(v)) continue;
        s += v;
        ++n;
    }
    return n ? s / static_cast<double>(n) : NAN;
}

double mean_all(const std::vector<Row>& rows, const std::function<double(const Row&)>& fn, int64_t from = 1,
                int64_t to = std::numeric_limits<int64_t>::max()) {
    double s = 0;
    int64_t n = 0;
    for (const Row& r : rows) {
        if (r.frame < from || r.frame > to) continue;
        const double v = fn(r);
        if (!std::isfinite(v)) continue;
        s += v;
        ++n;
    }
    return n ? s / static_cast<double>(n) : NAN;
}

double min_all(const std::vector<Row>& rows, const std::function<double(const Row&)>& fn) {
    double m = NAN;
    for (const Row& r : rows) {
        const double v = fn(r);
        if (std::isfinite(v) && !(v >= m)) m = v;
    }
    return m;
}

const Row* row_at(const std::vector<Row>& rows, int64_t frame) {
    for (const Row& r : rows)
        if (r.frame == frame) return &r;
    return nullptr;
}

double mem_peak(const Row& r, bool cuda) {
    return static_cast<double>(cuda ? r.gpu_peak : r.rss_peak);
}

// ---- plots ---------------------------------------------------------------------------------------------------------

std::string find_gnuplot_script(const std::string& given) {
    if (!given.empty()) return given;
    try {
        const auto p = std::filesystem::path(assets_dir()) / ".." / "bench" / "rollout.gp";
        if (std::filesystem::exists(p)) return std::filesystem::weakly_canonical(p).string();
    } catch (const dc::Error&) {
    }
    return "";
}

bool have_gnuplot() {
    return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

}  // namespace

RolloutBenchResult run_rollout_bench(const RolloutBenchConfig& o) {
    DC_CHECK(o.frames >= 1, "--frames: expected a positive frame count, found " << o.frames);
    DC_CHECK(o.steps >= 1 && o.steps <= 16, "--steps: expected 1..16, found " << o.steps);
    DC_CHECK(!o.configs.empty() || o.revisit, "--configs: expected at least one configuration, found none");
    DC_CHECK(o.ssim_every >= 1, "--ssim-every: expected ≥ 1, found " << o.ssim_every);
    DC_CHECK(o.trace_at <= 0 || KinetoTrace::available(),
             "--trace-at: expected a CUDA build (LibTorch's Kineto profiler), found a build without it");
    DC_CHECK(o.device == "cpu" || is_cuda(o.device),
             "--device: expected cpu, cuda or cuda:N, found \"" << o.device << "\"");
    const std::string commit = git_commit();  // now: the tree may move on during a long run
    std::vector<RolloutConfigDef> defs;
    for (const auto& name : o.configs) {
        DC_CHECK(name != "window-eq", "configuration \"window-eq\" exists in the revisit test only (--revisit)");
        for (const auto& d : defs) DC_CHECK(d.name != name, "--configs names \"" << name << "\" twice");
        defs.push_back(rollout_config(name));
    }
    for (const auto& name : o.revisit_configs)
        if (name != "window-eq") (void)rollout_config(name);
    // Dense first: its frames are the reference of every other configuration.
    std::stable_partition(defs.begin(), defs.end(), [](const RolloutConfigDef& d) { return d.name == "dense"; });

    std::string model_path = o.model_path;
    if (model_path.empty()) model_path = (std::filesystem::path(assets_dir()) / "models" / "default.json").string();
    DC_CHECK(std::filesystem::exists(model_path),
             "--model: expected a model config (JSON) file, found no file at '" << model_path << "'");

    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    DC_CHECK(!ec, "--out-dir: cannot create '" << o.out_dir << "': " << ec.message());
    const std::filesystem::path out(o.out_dir);
    const bool cuda = is_cuda(o.device);

    Workload w;
    w.level = o.level;
    w.prompt = o.prompt;
    w.seed = o.seed;
    w.shape = model_shape(model_path);
    const game::Vocabulary vocab = game::Vocabulary::load_default();
    (void)vocab.parse(w.prompt);  // a bad prompt fails before the model loads

    // Actions: a script (repeated to length) or the held-out agent driven by the real game.
    std::string actions_source;
    if (!o.script.empty()) {
        const auto script = game::load_action_script(o.script);
        DC_CHECK(!script.empty(), "--script '" << o.script << "': expected at least one action, found none");
        for (int64_t i = 0; i < o.frames; ++i) w.actions.push_back(script[static_cast<size_t>(i) % script.size()]);
        actions_source = "script " + o.script + " (" + std::to_string(script.size()) + " actions" +
                         (static_cast<int64_t>(script.size()) < o.frames ? ", repeated" : "") + ")";
    } else {
        const uint64_t agent_seed = o.seed | (uint64_t{1} << 63);  // held out: never a training seed
        game::Game g(game::Level::load_named(o.level));
        g.set_prompt(o.prompt, vocab);
        g.reset(o.seed);
        auto agent = game::make_agent(o.agent, agent_seed);
        for (int64_t i = 0; i < o.frames; ++i) {
            w.actions.push_back(agent->act(g));
            g.step(w.actions.back());
        }
        std::ostringstream os;
        os << "agent " << o.agent << ", held-out seed 0x" << std::hex << agent_seed;
        actions_source = os.str();
    }
    {
        std::ofstream f(out / "actions.txt");
        f << actions_to_script(w.actions, "# actions of dreamcaster bench rollout: " + actions_source + "\n");
        DC_CHECK(f, "cannot write '" << (out / "actions.txt").string() << "'");
    }

    const auto t_load = clock_type::now();
    w.model = WorldModel::load(model_path, o.device);
    const double load_s = secs_since(t_load);
    const std::string card = card_name(o.device);
    const Peak peak = card_peak(o.device, card);
    if (!o.quiet)
        std::fprintf(stderr, "rollout: %s on %s, %lld frames, %zu configurations (model loaded in %.1f s)\n",
                     w.model->describe().c_str(), card.c_str(), static_cast<long long>(o.frames), defs.size(), load_s);

    // Warm-up (not recorded): first-call costs (allocator, kernels, BLAS) would otherwise land on the first row.
    {
        game::Game g(game::Level::load_named(w.level));
        g.set_prompt(w.prompt, vocab);
        g.reset(w.seed);
        game::Image img;
        g.render(img);
        SessionConfig sc;
        sc.n_steps = o.steps;
        sc.attention = AttentionSpec::parse("tempcache+annsa+annca", R"({"annsa":{"min_cache_tokens":0}})");
        Session s(w.model, sc);
        s.reset(img, w.prompt);
        for (int i = 0; i < 3; ++i) s.step(w.actions[static_cast<size_t>(i) % w.actions.size()], img);
    }

    // ---- the matrix ----
    std::vector<RunResult> runs;
    std::vector<game::Image> dense_frames;
    const std::string csv_path = (out / "rollout.csv").string();
    {
        std::ofstream csv(csv_path);
        DC_CHECK(csv, "cannot write '" << csv_path << "'");
        write_header(csv);
        for (const auto& d : defs) {
            const bool is_ref = d.name == "dense";
            runs.push_back(run_config(o, w, d, is_ref ? &dense_frames : nullptr,
                                      dense_frames.empty() ? nullptr : &dense_frames, o.quiet));
            for (const Row& r : runs.back().rows) write_row(csv, d.name, r);
            csv.flush();
        }
        DC_CHECK(csv, "writing '" << csv_path << "' failed");
    }

    // ---- the revisit test ----
    struct Revisit {
        std::vector<RunResult> runs;
        int64_t first = 0, last = 0, eq_frames = 0, eq_at = 0;
        double pose_error = NAN, tempcache_bytes = NAN, frame_bytes = NAN;
        std::string note;
    } rv;
    if (o.revisit) {
        DC_CHECK(o.level == "e1m1", "--revisit walks level e1m1's spawn room; found --level " << o.level);
        int64_t first = 0;
        std::string text = revisit_script(0, &first);
        const int64_t away = std::max<int64_t>(0, o.revisit_at - first);
        text = revisit_script(away, &first);
        {
            std::ofstream f(out / "revisit.txt");
            f << text;
        }
        Workload rw = w;
        rw.actions = game::parse_action_script(text, "revisit walk");
        rv.first = first;
        rv.last = static_cast<int64_t>(rw.actions.size());
        // Where the real game is at the revisit vs the end of the first 360° (same spot, facing west vs east).
        {
            game::Game g(game::Level::load_named(o.level));
            g.reset(o.seed);
            game::Pose p40, pf;
            for (int64_t i = 0; i < rv.first; ++i) {
                g.step(rw.actions[static_cast<size_t>(i)]);
                if (i + 1 == 40) p40 = g.pose();
            }
            pf = g.pose();
            rv.pose_error = std::hypot(pf.x - p40.x, pf.y - p40.y);
        }
        std::vector<std::string> order;
        for (const auto& n : o.revisit_configs)
            if (n == "tempcache")
                order.insert(order.begin(), n);
            else
                order.push_back(n);
        const std::string csv2 = (out / "revisit.csv").string();
        std::ofstream csv(csv2);
        DC_CHECK(csv, "cannot write '" << csv2 << "'");
        write_header(csv);
        for (const auto& name : order) {
            RolloutConfigDef d;
            if (name == "window-eq") {
                const RunResult* tc = nullptr;
                for (const auto& r : rv.runs)
                    if (r.def.name == "tempcache") tc = &r;
                if (!tc) {
                    rv.note += "window-eq skipped: it needs tempcache in --revisit-configs. ";
                    continue;
                }
                const Row* at = row_at(tc->rows, rv.first);
                if (!at) at = tc->rows.empty() ? nullptr : &tc->rows.back();
                if (!at || at->cache_tokens <= 0) continue;
                // One frame's bytes in every layer: tokens × layers × bytes per entry.
                rv.frame_bytes = static_cast<double>(w.shape.tokens) * w.shape.layers *
                                 (static_cast<double>(at->cache_bytes) / static_cast<double>(at->cache_tokens));
                rv.tempcache_bytes = static_cast<double>(at->cache_bytes);
                // The window keeps frames + 1 sink: total frames = bytes / frame bytes.
                rv.eq_frames = std::max<int64_t>(1, std::llround(rv.tempcache_bytes / rv.frame_bytes) - 1);
                d = rollout_config("window" + std::to_string(rv.eq_frames));
                d.name = "window-eq";
                d.label = "Window-" + std::to_string(rv.eq_frames) + " (+1 sink) = TempCache's bytes at frame " +
                          std::to_string(at->frame);
                rv.eq_at = at->frame;
            } else {
                d = rollout_config(name);
            }
            rv.runs.push_back(run_config(o, rw, d, nullptr, nullptr, o.quiet));
            for (const Row& r : rv.runs.back().rows) write_row(csv, d.name, r);
            csv.flush();
        }
    }

    // ---- plots ----
    std::string plot_note;
    bool plots = false;
    {
        std::ofstream f(out / "plot_vars.gp");
        std::string names, rnames;
        for (const auto& r : runs) names += (names.empty() ? "" : " ") + r.def.name;
        for (const auto& r : rv.runs) rnames += (rnames.empty() ? "" : " ") + r.def.name;
        f << "# written by dreamcaster bench rollout for bench/rollout.gp\n"
          << "configs = \"" << names << "\"\n"
          << "revisit_configs = \"" << rnames << "\"\n"
          << "revisit_first = " << rv.first << "\n"
          << "memcol = " << (cuda ? 12 : 15) << "\n"
          << "memlabel = \"" << (cuda ? "peak GPU memory allocated (MB)" : "peak host RSS (MB)") << "\"\n"
          << "card = \"" << card << "\"\n";
    }
    const std::string gp = find_gnuplot_script(o.gnuplot_script);
    const std::string plot_cmd = "gnuplot -e \"dir='" + o.out_dir + "'\" " + (gp.empty() ? "bench/rollout.gp" : gp);
    if (gp.empty()) {
        plot_note = "Plots not made: bench/rollout.gp was not found (pass --gnuplot-script). Make them with `" +
                    plot_cmd + "`.";
    } else if (!have_gnuplot()) {
        plot_note =
            "Plots not made: gnuplot is not installed on this machine. Make them elsewhere with `" + plot_cmd + "`.";
    } else {
        const std::string cmd = "gnuplot -e " + shell_quote("dir='" + o.out_dir + "'") + " " + shell_quote(gp);
        plots = std::system(cmd.c_str()) == 0;
        if (!plots) plot_note = "Plots failed: `" + plot_cmd + "` exited with an error.";
    }

    // ---- summary ----
    const RunResult* dense = nullptr;
    for (const auto& r : runs)
        if (r.def.name == "dense") dense = &r;
    const int64_t F = o.frames, h = half_window(F);
    const int64_t f100 = std::min<int64_t>(100, F), f300 = std::min<int64_t>(300, F);
    // Speed figures leave out the frames that measure recall (every recall_every-th: dense reference attention for
    // sampled rows, an instrument of the bench and the overlay, not part of the method; dense has nothing to
    // measure there). The CSV keeps every frame.
    auto recall_frame = [&](const Row& r) { return o.recall_every > 1 && r.frame % o.recall_every == 0; };
    auto step_ms = [&](const Row& r) { return recall_frame(r) ? NAN : r.step_ms; };
    auto fps = [&](const Row& r) { return recall_frame(r) ? NAN : 1000.0 / r.step_ms; };
    std::ostringstream md;
    md << "# Long rollout — " << card << "\n\n";
    md << "Date " << today() << ", commit `" << commit << "` (at the start), card **" << card << "**"
       << (cuda ? "" : " (torch threads: " + std::to_string(at::get_num_threads()) + ")") << ".\n";
    // The shipped model is named as the project knows it, not by this machine's install path.
    const std::string model_label = o.model_path.empty() ? "assets/models/default.json" : o.model_path;
    md << "Model `" << model_label << "` (" << w.model->describe() << "), device " << o.device << ", S=" << o.steps
       << ", seed " << o.seed << ", level " << o.level << ", prompt \"" << o.prompt << "\".\n";
    md << "Actions: " << actions_source << " (`actions.txt`). " << F << " frames per configuration; frame 0 is the "
       << "real spawn view, every later frame is dreamed. Figures \"at frame N\" are means over frames N ± " << h
       << " (the last " << 2 * h + 1 << " frames for the final one); fps = 1000 / the model's step time.";
    if (o.recall_every > 1)
        md << " Speed figures leave out the frames that measure recall (one in " << o.recall_every << ", `--recall-every`: "
           << "dense reference attention for sampled rows); `rollout.csv` has every frame.";
    md << "\n\n";

    md << "## Speed and memory\n\n";
    md << "| configuration | ms/frame @" << f100 << " | ms/frame @" << F << " | fps @" << F << " | fps " << F << "/"
       << f100 << " | speedup vs dense @" << F << " | denoise / commit / decode ms @" << F << " | cache MB @" << F
       << " | " << (cuda ? "peak GPU MB" : "peak RSS MB") << " @" << f300 << " → @" << F << " | growth |\n";
    md << "|---|---|---|---|---|---|---|---|---|---|\n";
    // Figures "at the end" are at frame F, or at the last frame a configuration stopped at the time limit reached.
    // Speedups compare the two runs at the last frame both reached (named when it is not the end).
    auto end_of = [&](const RunResult& r) { return (r.rows.empty() ? F : r.rows.back().frame) - h; };
    auto dense_at = [&](int64_t frame) { return dense ? mean_around(dense->rows, frame, h, step_ms) : NAN; };
    auto common_end = [&](const RunResult& r) { return dense ? std::min(end_of(r), end_of(*dense)) : end_of(r); };
    auto speedup = [&](const RunResult& r) {   // dense ms / this ms at the common frame
        const int64_t c = common_end(r);
        return dense_at(c) / mean_around(r.rows, c, h, step_ms);
    };
    auto speedup_cell = [&](const RunResult& r) {
        const double sp = speedup(r);
        if (!(sp > 0)) return std::string("n/a");
        const int64_t c = common_end(r);
        return fmt(sp, 2) + "×" + (c != end_of(r) ? " (@" + std::to_string(c + h) + ")" : std::string());
    };
    for (const auto& r : runs) {
        const double a = mean_around(r.rows, f100, h, step_ms), b = mean_around(r.rows, end_of(r), h, step_ms);
        const double fa = mean_around(r.rows, f100, h, fps), fb = mean_around(r.rows, end_of(r), h, fps);
        const Row* r300 = row_at(r.rows, f300);
        const Row* rend = r.rows.empty() ? nullptr : &r.rows.back();
        const double m300 = r300 ? mem_peak(*r300, cuda) : NAN, mend = rend ? mem_peak(*rend, cuda) : NAN;
        md << "| " << r.def.name << (r.truncated ? " (stopped at frame " + std::to_string(r.rows.size()) + ")" : "")
           << " | " << fmt(a) << " | " << fmt(b) << " | " << fmt(fb) << " | " << pct(fb / fa) << " | "
           << speedup_cell(r) << " | "
           << fmt(mean_around(r.rows, end_of(r), h, [](const Row& x) { return x.denoise_ms; })) << " / "
           << fmt(mean_around(r.rows, end_of(r), h, [](const Row& x) { return x.commit_ms; })) << " / "
           << fmt(mean_around(r.rows, end_of(r), h, [](const Row& x) { return x.decode_ms; })) << " | "
           << (rend ? mb(static_cast<double>(rend->cache_bytes)) : "n/a") << " | " << mb(m300) << " → " << mb(mend)
           << " | " << (m300 > 0 ? fmt(100 * (mend / m300 - 1), 1) + "%" : "n/a") << " |\n";
    }
    md << "\n## Quality and attention\n\n";
    md << "PSNR/SSIM vs dense: each frame against the dense rollout's frame (same seed and actions; 100 dB = "
          "identical). vs real: against the real game in lockstep. Means over the whole rollout (min in brackets).\n\n";
    md << "| configuration | PSNR vs dense dB | SSIM vs dense | PSNR vs real dB | SSIM vs real | density | recall | "
          "merge rate | AnnCA kept |\n|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : runs) {
        auto pd = [](const Row& x) { return x.psnr_dense; };
        md << "| " << r.def.name << " | " << fmt(mean_all(r.rows, pd), 2) << " (" << fmt(min_all(r.rows, pd), 2) << ")"
           << " | " << fmt(mean_all(r.rows, [](const Row& x) { return x.ssim_dense; }), 3) << " | "
           << fmt(mean_all(r.rows, [](const Row& x) { return x.psnr_real; }), 2) << " ("
           << fmt(min_all(r.rows, [](const Row& x) { return x.psnr_real; }), 2) << ") | "
           << fmt(mean_all(r.rows, [](const Row& x) { return x.ssim_real; }), 3) << " | "
           << fmt(mean_all(r.rows, [](const Row& x) { return x.density; }), 3) << " | "
           << fmt(mean_all(r.rows, [](const Row& x) { return x.recall >= 0 ? x.recall : NAN; }), 3) << " | "
           << fmt(mean_all(r.rows, [](const Row& x) { return x.merge_rate; }), 3) << " | "
           << fmt(mean_all(r.rows, [](const Row& x) { return x.kept; }), 3) << " |\n";
    }

    // Roofline.
    md << "\n## Roofline at frame " << F << "\n\n";
    md << "FLOPs: DiT linear layers from the model config (" << w.shape.layers << " blocks, width " << w.shape.width
       << ", " << w.shape.heads << " heads of " << w.shape.head_dim << ", MLP " << w.shape.mlp << ", " << w.shape.tokens
       << " tokens) × (S + 1 commit) passes, attention as 4·D·(keys scored) from the frame's "
          "measured counts (density and AnnCA kept fraction included), and the decoder's convolutions. Bytes: weights "
          "once per pass, the cached K/V/bias each self-attention call actually scores, the commit's writes; "
          "activations are not counted (they fit in cache). Peak: "
       << peak.source << ". Floor = max(FLOPs / peak FLOP/s, bytes / peak bandwidth).\n\n";
    md << "| configuration | GFLOP/frame | GB/frame | KV GB/frame | floor ms | measured ms | measured / floor | KV "
          "bandwidth achieved |\n|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : runs) {
        if (r.rows.empty()) continue;
        const double fl = mean_around(r.rows, end_of(r), h, [](const Row& x) { return x.cost.flops; });
        const double by = mean_around(r.rows, end_of(r), h, [](const Row& x) { return x.cost.bytes; });
        const double kv = mean_around(r.rows, end_of(r), h, [](const Row& x) { return x.cost.kv_bytes; });
        const double ms = mean_around(r.rows, end_of(r), h, step_ms);
        const double dc_ms = mean_around(r.rows, end_of(r), h, [](const Row& x) { return x.denoise_ms + x.commit_ms; });
        double floor_ms = NAN;
        if (peak.flops > 0 && peak.bytes_per_s > 0)
            floor_ms = 1000.0 * std::max(fl / peak.flops, by / peak.bytes_per_s);
        const double bw = kv / (dc_ms / 1000.0);
        md << "| " << r.def.name << " | " << fmt(fl / 1e9, 1) << " | " << fmt(by / 1e9, 3) << " | " << fmt(kv / 1e9, 3)
           << " | " << fmt(floor_ms, 2) << " | " << fmt(ms, 1) << " | " << fmt(ms / floor_ms, 1) << "× | "
           << fmt(bw / 1e9, 1) << " GB/s"
           << (peak.bytes_per_s > 0 ? " (" + fmt(100 * bw / peak.bytes_per_s, 0) + "% of peak)" : "") << " |\n";
    }
    md << "\nKV bandwidth achieved = KV bytes / (denoise + commit time): a lower bound on the attention kernel's "
          "own bandwidth (the time includes the rest of the DiT).\n";

    // Targets.
    md << "\n## Targets (DESIGN.md §8)\n\n| target | measured | result |\n|---|---|---|\n";
    auto verdict = [](bool ok, const std::string& miss) { return ok ? std::string("met") : "missed: " + miss; };
    const RunResult* all = nullptr;
    for (const auto& r : runs)
        if (r.def.name == "all") all = &r;
    if (dense && all && !all->rows.empty()) {
        const double sp = speedup(*all);
        const double pd = mean_all(all->rows, [](const Row& x) { return x.psnr_dense; });
        md << "| all modules ≥ 15× faster than dense at frame " << F << " | " << speedup_cell(*all) << " | "
           << verdict(sp >= 15, "by " + fmt(15 / sp, 1) + "×") << " |\n";
        md << "| all modules PSNR vs dense ≥ 30 dB | " << fmt(pd, 2) << " dB | "
           << verdict(pd >= 30, "by " + fmt(30 - pd, 1) + " dB") << " |\n";
    }
    for (const auto& r : runs) {
        if (r.def.name == "dense" || r.def.name == "dense-torch" || !dense || r.rows.empty()) continue;
        const double sp = speedup(r);
        const double pd = mean_all(r.rows, [](const Row& x) { return x.psnr_dense; });
        md << "| " << r.def.name << ": ≥ 15× vs dense, PSNR vs dense ≥ 30 dB | " << speedup_cell(r) << ", " << fmt(pd, 2)
           << " dB | "
           << verdict(sp >= 15 && pd >= 30, (sp < 15 ? "speed by " + fmt(15 / sp, 1) + "× " : "") +
                                                (pd < 30 ? "quality by " + fmt(30 - pd, 1) + " dB" : ""))
           << " |\n";
    }
    for (const auto& r : runs) {
        if (r.rows.empty()) continue;
        const double fa = mean_around(r.rows, f100, h, fps), fb = mean_around(r.rows, end_of(r), h, fps);
        const Row* r300 = row_at(r.rows, f300);
        const double m300 = r300 ? mem_peak(*r300, cuda) : NAN, mend = mem_peak(r.rows.back(), cuda);
        const double growth = 100 * (mend / m300 - 1);
        md << "| " << r.def.name << ": fps @" << F << " ≥ 90% of @" << f100 << "; peak memory growth " << f300 << "→"
           << F << " ≤ 5% | " << pct(fb / fa) << ", " << (m300 > 0 ? fmt(growth, 1) + "%" : "n/a") << " | "
           << verdict(fb >= 0.9 * fa && m300 > 0 && growth <= 5,
                      (fb < 0.9 * fa ? "fps by " + fmt(90 - 100 * fb / fa, 0) + " points " : "") +
                          (m300 > 0 && growth > 5 ? "memory by " + fmt(growth - 5, 1) + " points" : "") +
                          (m300 > 0 ? "" : "no memory figure"))
           << " |\n";
    }
    if (dense && !dense->rows.empty() && peak.bytes_per_s > 0) {
        const double kv = mean_around(dense->rows, end_of(*dense), h, [](const Row& x) { return x.cost.kv_bytes; });
        const double dc_ms =
            mean_around(dense->rows, end_of(*dense), h, [](const Row& x) { return x.denoise_ms + x.commit_ms; });
        const double frac = kv / (dc_ms / 1000.0) / peak.bytes_per_s;
        md << "| dense kernel ≥ 50% of KV bandwidth | " << pct(frac) << " (lower bound) | "
           << verdict(frac >= 0.5, "by " + fmt(50 - 100 * frac, 0) + " points") << " |\n";
    }
    if (cuda) {
        for (const auto& r : runs) {   // every configuration with all three modules (all, all-budgetN, …)
            if (r.def.type != "tempcache+annsa+annca" || r.rows.empty()) continue;
            const double fb = mean_all(r.rows, fps);
            md << "| ≥ 60 fps sustained (" << r.def.name << ": all modules, mean over the rollout) | " << fmt(fb, 1)
               << " fps | " << verdict(fb >= 60, "by " + fmt(60 - fb, 1) + " fps") << " |\n";
        }
    }

    // Revisit.
    double tc_rev = NAN, w16_rev = NAN, weq_rev = NAN;
    if (o.revisit) {
        md << "\n## Revisit test\n\n";
        md << "Walk (`revisit.txt`, " << rv.last
           << " frames): 360° at the spawn, out through the east door into the "
              "metal hall, up and down it, back to the spawn; the player is back at frame "
           << rv.first << " (real-game position " << fmt(rv.pose_error, 3)
           << " cells from where the first 360° ended), then turns 180° and 360°: frames " << rv.first + 1 << "–"
           << rv.last << " are the revisit. Equal cache bytes: window-eq keeps W frames + 1 sink with (W + 1) × "
           << "one frame's bytes (" << mb(rv.frame_bytes) << " MB, all layers) = TempCache's cache at frame "
           << rv.eq_at << " (" << mb(rv.tempcache_bytes) << " MB) → W = " << rv.eq_frames << ". " << rv.note
           << "\n\n| configuration | PSNR vs real, revisit dB | SSIM vs real, revisit | PSNR vs real, frames 1–40 "
              "(first 360°) | cache MB at the revisit |\n|---|---|---|---|---|\n";
        for (const auto& r : rv.runs) {
            auto pr = [](const Row& x) { return x.psnr_real; };
            const double p = mean_all(r.rows, pr, rv.first + 1, rv.last);
            if (r.def.name == "tempcache") tc_rev = p;
            if (r.def.name == "window16") w16_rev = p;
            if (r.def.name == "window-eq") weq_rev = p;
            const Row* at = row_at(r.rows, rv.first);
            md << "| " << r.def.label << (r.truncated ? " (stopped early)" : "") << " | " << fmt(p, 2) << " | "
               << fmt(mean_all(
                          r.rows, [](const Row& x) { return x.ssim_real; }, rv.first + 1, rv.last),
                      3)
               << " | " << fmt(mean_all(r.rows, pr, 1, 40), 2) << " | "
               << (at ? mb(static_cast<double>(at->cache_bytes)) : "n/a") << " |\n";
        }
        if (std::isfinite(tc_rev) && std::isfinite(w16_rev))
            md << "\nTarget: TempCache ≥ 3 dB above Window-16 at the revisit: " << fmt(tc_rev - w16_rev, 2) << " dB — "
               << verdict(tc_rev - w16_rev >= 3, "by " + fmt(3 - (tc_rev - w16_rev), 2) + " dB") << ".";
        if (std::isfinite(tc_rev) && std::isfinite(weq_rev))
            md << " At equal bytes (window-eq): " << fmt(tc_rev - weq_rev, 2) << " dB.";
        md << "\n";
    }

    md << "\n## Files\n\n`rollout.csv` (columns: ";
    for (size_t i = 0; i < kRolloutCsvColumns.size(); ++i) md << (i ? ", " : "") << kRolloutCsvColumns[i];
    md << "), `actions.txt`" << (o.revisit ? ", `revisit.csv`, `revisit.txt`" : "");
    if (plots)
        md << "; plots: `fps.png` (fps vs frame), `memory.png` (peak memory vs frame), `psnr.png` (PSNR vs dense), "
              "`psnr_real.png` (PSNR vs the real game)"
           << (o.revisit ? ", `revisit.png`" : "") << ".\n";
    else
        md << ".\n\n" << plot_note << "\n";
    bool any_truncated = false;
    for (const auto& r : runs) any_truncated = any_truncated || r.truncated;
    for (const auto& r : rv.runs) any_truncated = any_truncated || r.truncated;
    if (any_truncated)
        md << "\nSome configurations stopped early at the time limit (--config-timeout " << fmt(o.config_timeout_s, 0)
           << " s): their \"final\" figures are at the frame they reached, not at frame " << F << ".\n";
    md << "\nWall time per configuration:";
    for (const auto& r : runs) md << " " << r.def.name << " " << fmt(r.wall_s, 0) << " s;";
    for (const auto& r : rv.runs) md << " revisit " << r.def.name << " " << fmt(r.wall_s, 0) << " s;";
    md << "\n";

    RolloutBenchResult result;
    result.summary = md.str();
    result.csv_path = csv_path;
    result.plots = plots;
    {
        std::ofstream f(out / "summary.md");
        f << result.summary;
        DC_CHECK(f, "cannot write '" << (out / "summary.md").string() << "'");
    }
    if (!o.summary_path.empty()) {
        const auto parent = std::filesystem::path(o.summary_path).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ec);
        std::ofstream f(o.summary_path);
        f << result.summary;
        DC_CHECK(f, "--summary: cannot write '" << o.summary_path << "'");
    }
    return result;
}

}  // namespace dc::app

#endif  // DC_HAVE_WORLD_MODEL
