// dreamcaster — play a first-person maze game that a neural world model dreams frame by frame.
// parse -> dispatch to the subcommand (app/cmd_*.cpp) -> exit code. See app/commands.h.
#include <CLI/CLI.hpp>

#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <exception>

#include "app/commands.h"
#include "common/common.h"

namespace {
// A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints the signal and a raw backtrace to stderr before the
// default action, so a crash in a long run (training, benchmarks) leaves something to debug. Async-signal-safe calls
// only: write(2) and backtrace_symbols_fd.
void crash_handler(int sig) {
    const char head[] = "dreamcaster: fatal signal; backtrace (addr2line -e dreamcaster -f -C ADDR):\n";
    ssize_t ignored = write(STDERR_FILENO, head, sizeof head - 1);
    (void)ignored;
    void* frames[64];
    const int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

void install_crash_handler() {
    void* warm[1];
    backtrace(warm, 1);   // loads libgcc's unwinder now, not inside the handler
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, crash_handler);
}
}  // namespace

int main(int argc, char** argv) {
    install_crash_handler();
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
