// app/commands.h — the subcommands of the dreamcaster executable.
//
// Each subcommand lives in its own file app/cmd_<name>.cpp and registers itself on the root CLI::App: its options,
// its help text and a callback that runs it. To add one: write cmd_<name>.cpp with add_<name>_command(), declare
// it here and call it from main.cpp. A command reports failure by throwing dc::Error (main prints
// "dreamcaster: error: <message>" and exits 1) or, for other outcomes, by set_exit_code().
#pragma once

namespace CLI {
class App;
}

namespace dc::app {

// Exit codes of the dreamcaster executable.
constexpr int kExitOk = 0;
constexpr int kExitError = 1;       // dc::Error, bad options, bad files
constexpr int kExitNoDisplay = 2;   // a window was asked for but none can be opened (or this build has none)
constexpr int kExitReplayMismatch = 3;   // replay: a frame differs from the recording where it must be bit-exact

void set_exit_code(int code);   // the value main() returns after the command's callback
int exit_code();

void add_play_command(CLI::App& root);    // cmd_play.cpp: play in a window, or --headless
void add_bench_command(CLI::App& root);   // cmd_bench.cpp: bench game (more modes: add them in add_bench_command)
void add_replay_command(CLI::App& root);  // cmd_replay.cpp: replay a recording, exact or A/B (app/replay.h)
#ifdef DC_HAVE_WORLD_MODEL
void add_train_command(CLI::App& root);   // cmd_train.cpp: train the world model (world_model/trainer.h)
void add_eval_command(CLI::App& root);    // cmd_eval.cpp: score the world model vs the real game
#endif

}  // namespace dc::app
