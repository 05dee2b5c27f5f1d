// dreamcaster — play a first-person maze game that a neural world model dreams frame by frame.
// parse -> dispatch to the subcommand (app/cmd_*.cpp) -> exit code. See app/commands.h.
#include <CLI/CLI.hpp>

#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>

#include "app/commands.h"
#include "common/common.h"

namespace {
void write_str(const char* s) {
    size_t n = 0;
    while (s[n]) ++n;
    ssize_t ignored = write(STDERR_FILENO, s, n);
    (void)ignored;
}

void write_dec(unsigned x) {
    char buf[12];
    int i = 11;
    buf[i] = '\0';
    do {
        buf[--i] = static_cast<char>('0' + x % 10);
        x /= 10;
    } while (x && i > 0);
    write_str(buf + i);
}

void write_hex(uintptr_t x) {
    char buf[19] = "0x";
    for (int i = 0; i < 16; ++i) buf[2 + i] = "0123456789abcdef"[(x >> (60 - 4 * i)) & 0xf];
    buf[18] = '\0';
    write_str(buf);
}

// A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints the signal, the faulting instruction and stack pointer,
// the return address on top of the stack (the caller, when the crash is a call through a null or stale pointer,
// where the backtrace itself stops) and a raw backtrace to stderr before the default action, so a crash in a long
// run (training, benchmarks) leaves something to debug. Async-signal-safe calls only: write(2) and
// backtrace_symbols_fd.
void crash_handler(int sig, siginfo_t* info, void* context) {
    write_str("dreamcaster: fatal signal ");
    write_dec(static_cast<unsigned>(sig));
    write_str(" at address ");
    write_hex(reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr));
#if defined(__x86_64__)
    if (context) {
        const auto* uc = static_cast<const ucontext_t*>(context);
        const uintptr_t pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
        const uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
        write_str("; pc ");
        write_hex(pc);
        write_str(", sp ");
        write_hex(sp);
        write_str("\nreturn address on the stack (the caller when pc is not code):\n");
        void* ret[1] = {sp ? *reinterpret_cast<void* const*>(sp) : nullptr};
        backtrace_symbols_fd(ret, 1, STDERR_FILENO);
    }
#else
    (void)context;
#endif
    write_str("\nbacktrace (addr2line -e dreamcaster -f -C ADDR):\n");
    void* frames[64];
    const int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_crash_handler() {
    void* warm[1];
    backtrace(warm, 1);   // loads libgcc's unwinder now, not inside the handler
    struct sigaction sa {};
    sa.sa_sigaction = crash_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
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
