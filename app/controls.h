// app/controls.h — live changes to a running engine: what they are, the neural settings the toggles edit, `--set`,
// and toggle scripts. No torch here (the engine validates attention specs when it applies them).
//
//   dc::app::NeuralSettings s;                                    // dense, S = 4, unbounded cache
//   auto controls = dc::app::apply_setting(s, "attention=tempcache+annsa");   // -> one Control::attention
//   apply_setting(s, "tempcache.tau=0.85");                       // (or attention.tempcache.tau=0.85)
//   apply_setting(s, "annca=on");  apply_setting(s, "steps=8");  apply_setting(s, "budget=4096");
//   for (const auto& c : controls) dc::app::apply_control(*engine, c, frame);   // between steps
//
// Toggle script (`play --toggles FILE`): one change per line, '#' comments, applied before frame N is made (frame N is
// the first frame made with it; frame 0 lines apply before the level starts). N counts the run's ticks, so a reset
// in the script does not restart it.
//   frame 10 set attention=tempcache+annsa        # any --set KEY=VALUE
//   frame 10 set annsa.min_cache_tokens=0
//   frame 20 prompt the floor is mossy green
//   frame 30 resync                               # side-by-side: the dream restarts from the real frame
//   frame 40 reset                                # back to the level start
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "game/game.h"

namespace dc::app {

class Engine;

// One change to a running engine, applied between two steps.
struct Control {
    enum class Kind { reset, prompt, attention, steps, budget, resync };
    Kind kind = Kind::reset;
    std::string text;              // prompt: the prompt; attention: the spec type ("dense", "tempcache+annsa", ...)
    std::string params;            // attention: the spec's JSON params
    int64_t value = 0;             // reset: seed; steps: S; budget: tokens per layer (0 = unbounded)
    std::string describe() const;  // for the change log: "attention tempcache+annsa {...}", "steps 8", ...
};

// The outcome of a control posted to EngineRunner.
struct ControlResult {
    uint64_t id = 0;  // EngineRunner::post()'s return value
    Control control;
    int64_t frame = 0;  // the first frame made with the change (a reset: 0)
    std::string error;  // "" = applied; else why the engine refused it (its settings did not change)
};

// Applies c to the engine (reset renders frame 0 into `frame`). Returns true when `frame` holds a new image to show
// (reset, and a prompt or resync the engine can redraw). Throws dc::Error when the engine refuses (bad prompt, bad
// spec, a setting the engine does not have); the engine then keeps its old settings.
bool apply_control(Engine& engine, const Control& c, game::Image& frame);

// What the toggles panel edits and `--set` changes: the neural engine's attention parts, their parameters, S and the
// cache budget.
struct NeuralSettings {
    bool tempcache = false, window = false, annsa = false, annca = false;  // all off = dense
    nlohmann::json params = nlohmann::json::object();  // {"tempcache": {"tau": 0.9}, "annsa": {...}, ...}
    int n_steps = 4;                                   // S Euler steps per frame (1..16)
    int64_t budget_tokens = 0;                         // per-layer KV cache budget; 0 = unbounded
    int64_t inject_oom_at = -1;                        // testing: simulated out-of-memory at this frame

    std::string type() const;                // "dense" or the parts joined by '+': "tempcache+window+annsa+annca"
    std::string params_json() const;         // params as JSON text
    void set_type(const std::string& type);  // "dense" | parts joined by '+'; throws dc::Error on an unknown part
    Control attention_control() const;       // Control::attention with type() and params_json()
};

// Applies one "KEY=VALUE" to s and returns the controls a running engine needs for it. Keys:
//   attention=TYPE                         dense | tempcache | window | annsa | annca, joined by '+'
//   attention.params=JSON                  merged into the parameters ({"annsa": {"bits": 10}})
//   tempcache|window|annsa|annca=on|off    one part on or off
//   [attention.]PART.FIELD=VALUE           one parameter, e.g. tempcache.tau=0.85, window.frames=8, annsa.probes=4
//   steps=S   budget=TOKENS   prompt=TEXT   inject_oom_at=FRAME (testing)
// Throws dc::Error naming the accepted keys for an unknown one or a malformed value.
std::vector<Control> apply_setting(NeuralSettings& s, const std::string& key_value);

// One line of a toggle script.
struct ToggleEntry {
    int64_t frame = 0;     // applied before this frame is made
    std::string command;   // "set" | "prompt" | "resync" | "reset"
    std::string argument;  // set: KEY=VALUE; prompt: the prompt
    int line = 0;          // line number in the file, for messages
};
// Parses a toggle script (format above); throws dc::Error naming the file and line of a malformed line. The entries
// come back ordered by frame (lines of one frame keep their order).
std::vector<ToggleEntry> parse_toggles(const std::string& text, const std::string& source);
std::vector<ToggleEntry> load_toggles(const std::string& path);
// The controls of one entry (a "set" entry also updates s).
std::vector<Control> entry_controls(NeuralSettings& s, const ToggleEntry& e, uint64_t seed);
// The controls of every entry with frame <= `frame` from entries[next] on (advancing next), attention and steps
// changes that a later one of the same batch replaces left out. Throws dc::Error naming `source` and the line.
std::vector<Control> due_controls(NeuralSettings& s, const std::vector<ToggleEntry>& entries, size_t& next,
                                  int64_t frame, uint64_t seed, const std::string& source);

}  // namespace dc::app
