// Helpers for the app tests: run the built dreamcaster binary, temporary folders, simple PNG access.
#pragma once

#include <sys/wait.h>

#if DC_GUI
#include <stb_image.h>
#endif

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace dc_test {

inline std::string dreamcaster_binary() { return std::string(DC_BINARY_DIR) + "/app/dreamcaster"; }

struct RunResult {
    int code = -1;        // exit status (-1: did not exit normally)
    std::string output;   // stdout and stderr together
};

// Runs `prefix dreamcaster args` through the shell; prefix is e.g. "env -u DISPLAY".
inline RunResult run_dreamcaster(const std::string& args, const std::string& prefix = "") {
    const std::string cmd = prefix + (prefix.empty() ? "" : " ") + "'" + dreamcaster_binary() + "' " + args + " 2>&1";
    RunResult r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// A fresh folder under the system temp dir, removed when the object goes away.
class TempDir {
public:
    explicit TempDir(const std::string& tag) {
        std::random_device rd;
        m_path = std::filesystem::temp_directory_path() / ("dc_" + tag + "_" + std::to_string(rd()));
        std::filesystem::create_directories(m_path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    std::string file(const std::string& name) const { return (m_path / name).string(); }
    const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

inline void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

#if DC_GUI
// An RGB8 PNG read back for screenshot checks (empty when the file cannot be read).
struct Png {
    int w = 0, h = 0;
    std::vector<uint8_t> rgb;   // [h, w, 3]
    const uint8_t* at(int x, int y) const { return &rgb[(size_t(y) * w + x) * 3]; }
};

inline Png load_png(const std::string& path) {
    Png p;
    int n = 0;
    uint8_t* px = stbi_load(path.c_str(), &p.w, &p.h, &n, 3);
    if (!px) return p;
    p.rgb.assign(px, px + size_t(p.w) * p.h * 3);
    stbi_image_free(px);
    return p;
}
#endif

}  // namespace dc_test
