// app/rollout_bench.h — `dreamcaster bench rollout`: a long rollout of the shipped model under each attention
// configuration, on one card in one process, with speed, memory and quality per frame.
//
//   dc::app::RolloutBenchConfig c;
//   c.device = "cuda";  c.frames = 3000;  c.out_dir = "out/rollout";  c.revisit = true;
//   dc::app::RolloutBenchResult r = dc::app::run_rollout_bench(c);   // writes CSV, summary.md, plots
//   std::puts(r.summary.c_str());
//
// Workload: level, prompt, seed and actions are fixed; every configuration replays the same actions from the same
// real start frame with the same noise seed. Actions: a held-out agent (seed with bit 63 set, as `dreamcaster eval`)
// driven by the real game, recorded once before the first configuration, or an action script (--script) that repeats
// when it is shorter than --frames. The real game runs in lockstep with each rollout (its frames are the ground truth
// for "vs real"). Dense runs first when listed; its frames are kept in memory as RGB8 (49 KB a frame) and every later
// configuration is compared with them frame by frame ("vs dense"); without dense in the list those columns are empty.
//
// Configurations (names for --configs): dense (unbounded cache, CUDA split-KV kernel), dense-torch (dense through
// torch ops: the kernel's baseline), window16 (the newest 16 frames + 1 sink frame: the start frame), tempcache,
// annsa, annca, all (tempcache+annsa+annca); also windowN, and any attention type of attention/attention.h
// ("tempcache+window", ...) with default parameters. Any name + "-eager" ("dense-eager", "all-eager") runs the same
// configuration without CUDA graphs (every op launched from the host), to show what the graphs save; any name +
// "-budgetN" ("all-budget32768") caps each layer's cache at N tokens (whole frames evicted, oldest first).
//
// Outputs in out_dir: rollout.csv (one row per configuration and frame; columns in kRolloutCsvColumns),
// summary.md (card, commit — git's, or DC_COMMIT's where the tree has no history —, date, tables, targets, roofline), actions.txt (the actions as an action script),
// plot_vars.gp + fps.png, memory.png, psnr.png, psnr_real.png (bench/rollout.gp, when gnuplot is installed), and with
// revisit: revisit.txt (the walk), revisit.csv and revisit.png; with trace_at: trace-<config>.json.
//
// Revisit (revisit = true): a scripted walk (revisit_script) turns 360° in the spawn room, leaves it through its east
// door, walks up and down the next hall, returns and turns 360° again; the return reaches the room at frame
// ≥ revisit_at. TempCache runs it first; then window16, and window-eq: a window of the frames whose bytes equal
// TempCache's cache bytes at the revisit frame. PSNR vs the real game over the revisit frames compares them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dc::app {

struct RolloutBenchConfig {
    std::string model_path;      // "" = the shipped assets/models/default.json
    std::string device = "cpu";  // "cpu" or "cuda[:N]"
    int64_t frames = 3000;       // frames generated per configuration (DESIGN.md §8's long rollout)
    std::vector<std::string> configs = {"dense", "dense-torch", "window16", "tempcache", "annsa", "annca", "all"};
    int steps = 4;               // S denoising steps per frame
    uint64_t seed = 1;           // noise seed of the sessions and seed of the game and agent
    std::string level = "e1m1";  // level of the real game (the spawn room is the revisit's room)
    std::string prompt = "the brick walls are dark red; the metal walls are blue and striped; thick fog";
    std::string script;                   // action script file; "" = the held-out agent below
    std::string agent = "explore";        // scripted agent (game.h agent_names()) when no script is given
    std::string out_dir = "rollout-out";  // CSV, summary, plots
    std::string summary_path;    // also copy summary.md here (e.g. bench/results/rollout-h100.md); "" = no copy
    std::string gnuplot_script;  // "" = bench/rollout.gp next to the assets folder
    bool revisit = false;        // also run the revisit test after the matrix
    int64_t revisit_at = 2000;   // the revisit walk re-enters the spawn room at this frame or later
    std::vector<std::string> revisit_configs = {"tempcache", "window16", "window-eq"};
    double config_timeout_s = 0;  // stop a configuration after this many seconds (0 = never); the summary says so
    int recall_every = 8;         // AnnSA recall measured on every 8th frame (SessionConfig::recall_every)
    int ssim_every = 1;           // SSIM on every Nth frame (PSNR on every frame)
    bool quiet = false;           // no progress lines on stderr
    int64_t trace_at = 0;         // > 0: Chrome trace of frames trace_at .. trace_at + 2 of each configuration
                                  // (out_dir/trace-<config>.json; CUDA builds, app/kineto_trace.h)
};

// Columns of rollout.csv and revisit.csv, in order (bench/rollout.gp uses their positions).
extern const std::vector<std::string> kRolloutCsvColumns;

// One resolved configuration: its name, attention type and parameters, and a label for tables.
struct RolloutConfigDef {
    std::string name;
    std::string type;         // AttentionSpec type
    std::string params_json;  // AttentionSpec params
    std::string label;        // e.g. "Window-16 (+1 sink)"
    bool cuda_graphs = true;  // SessionConfig::cuda_graphs; a name ending in "-eager" turns them off (A/B on CUDA)
    int64_t max_cache_tokens = 0;  // SessionConfig::max_cache_tokens; a name ending in "-budgetN" sets N per layer
};
// Resolves a name (see the header comment); throws dc::Error listing the accepted names.
RolloutConfigDef rollout_config(const std::string& name);

// The revisit walk as an action script for level e1m1: 360° at the spawn, out through the east door, up and down
// the metal hall for at least `away_frames`, back, 180° and 360° in the spawn room. first_revisit_frame (out) is the
// frame at which the player is back in the spawn room; the script is that many frames + 60 long.
std::string revisit_script(int64_t away_frames, int64_t* first_revisit_frame = nullptr);

struct RolloutBenchResult {
    std::string summary;   // the markdown written to summary.md
    std::string csv_path;  // rollout.csv
    bool plots = false;    // the PNGs were made
};

// Runs the benchmark. Throws dc::Error on bad input (unknown configuration, frames < 1, missing model, bad script).
RolloutBenchResult run_rollout_bench(const RolloutBenchConfig& config);

}  // namespace dc::app
