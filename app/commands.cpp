// The exit code a subcommand leaves for main().
#include "app/commands.h"

namespace dc::app {

namespace {
int g_exit_code = kExitOk;
}

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

}  // namespace dc::app
