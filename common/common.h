// common/common.h — what every Dreamcaster library shares: the error type, checks, one log callback and asset lookup.
//
//   DC_CHECK(width > 0, "level width must be positive, found " << width);   // throws dc::Error with file:line
//   dc::log(dc::LogLevel::info, "loaded " + path);                          // goes to the installed callback
//   std::string p = dc::asset_path("levels/e1m1.txt");                       // resolves DC_ASSETS, ../assets, source
//
// Errors: dc::Error is thrown at load, config and I/O boundaries with a message that says what was expected and what
// was found. The per-frame path returns statuses for expected outcomes instead of throwing.
#pragma once

#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace dc {

class Error : public std::runtime_error {
public:
    Error(const std::string& what, const char* file, int line);
    const std::string& where() const { return m_where; }   // "file.cpp:123"
    const std::string& message() const { return m_message; } // the message without the location

private:
    std::string m_where;
    std::string m_message;
};

enum class LogLevel { debug, info, warn, error };
using LogCallback = std::function<void(LogLevel, const std::string&)>;
// Installs the one log callback (default: "[dreamcaster] level: message" on stderr, debug hidden). Thread-safe.
void set_log_callback(LogCallback cb);
void log(LogLevel level, const std::string& message);
const char* log_level_name(LogLevel level);

// Asset lookup, first match wins: $DC_ASSETS, <dir of executable>/../assets, <dir of executable>/assets,
// the source tree's assets/ (compiled in). Throws dc::Error listing the places it looked when nothing matches.
std::string asset_path(const std::string& relative);
// The assets folder used by asset_path (for listing files); throws like asset_path when none exists.
std::string assets_dir();

// Reads a whole file; throws dc::Error naming the file when it cannot be opened.
std::string read_text_file(const std::string& path);

// Removes a file or a folder with everything in it (no error when it does not exist; throws dc::Error naming the
// entry that could not be removed). POSIX nftw, not std::filesystem::remove_all: a CUDA LibTorch wheel exports its
// own std::filesystem symbols, and its remove_all crashed when the dynamic linker bound our calls to it.
void remove_tree(const std::string& path);

// SHA-256 of a byte range / file, as 64 lowercase hex characters (weights and recordings carry checksums).
std::string sha256_hex(const void* data, size_t size);
std::string sha256_file(const std::string& path);

}  // namespace dc

#define DC_CHECK(cond, msg)                                                 \
    do {                                                                    \
        if (!(cond)) {                                                      \
            std::ostringstream dc_check_os_;                                \
            dc_check_os_ << msg; /* NOLINT */                               \
            throw ::dc::Error(dc_check_os_.str(), __FILE__, __LINE__);      \
        }                                                                   \
    } while (0)

#define DC_FAIL(msg) DC_CHECK(false, msg)
