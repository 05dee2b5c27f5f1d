// dreamcaster — play a first-person maze game that a neural world model dreams frame by frame.
// parse -> dispatch to the subcommand (app/cmd_*.cpp) -> exit code. See app/commands.h.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "app/commands.h"
#include "common/common.h"

int main(int argc, char** argv) {
    CLI::App cli{"Dreamcaster: play a first-person maze game that a neural world model dreams frame by frame.",
                 "dreamcaster"};
    cli.require_subcommand(1);
    cli.set_version_flag("--version", "dreamcaster 0.1");
    dc::app::add_play_command(cli);
    dc::app::add_bench_command(cli);
    dc::app::add_replay_command(cli);
#ifdef DC_HAVE_WORLD_MODEL
    dc::app::add_train_command(cli);
    dc::app::add_eval_command(cli);
#endif
    try {
        cli.parse(argc, argv);
    } catch (const CLI::Success& e) {
        return cli.exit(e);   // --help
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "dreamcaster: error: %s\nRun 'dreamcaster --help' (or 'dreamcaster <command> --help').\n",
                     e.what());
        return dc::app::kExitError;
    } catch (const dc::Error& e) {
        std::fprintf(stderr, "dreamcaster: error: %s\n", e.message().c_str());
        return dc::app::kExitError;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dreamcaster: error: %s\n", e.what());
        return dc::app::kExitError;
    }
    return dc::app::exit_code();
}
