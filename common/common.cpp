#include "common/common.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <vector>

namespace fs = std::filesystem;

namespace dc {

namespace {
std::string basename_of(const char* file) {
    const char* slash = std::strrchr(file, '/');
    return slash ? slash + 1 : file;
}

std::mutex g_log_mutex;
LogCallback g_log_callback;
}  // namespace

Error::Error(const std::string& what, const char* file, int line)
    : std::runtime_error(what), m_where(basename_of(file) + ":" + std::to_string(line)), m_message(what) {}

const char* log_level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warning";
        case LogLevel::error: return "error";
    }
    return "?";
}

void set_log_callback(LogCallback cb) {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    g_log_callback = std::move(cb);
}

void log(LogLevel level, const std::string& message) {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    if (g_log_callback) {
        g_log_callback(level, message);
        return;
    }
    if (level == LogLevel::debug && !std::getenv("DC_DEBUG")) return;
    std::cerr << "[dreamcaster] " << log_level_name(level) << ": " << message << "\n";
}

static std::string executable_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : exe.parent_path().string();
}

static std::vector<std::string> asset_roots() {
    std::vector<std::string> roots;
    if (const char* env = std::getenv("DC_ASSETS"); env && *env) roots.emplace_back(env);
    const std::string exe = executable_dir();
    if (!exe.empty()) {
        roots.push_back(exe + "/../assets");
        roots.push_back(exe + "/assets");
        roots.push_back(exe + "/../../assets");
    }
#ifdef DC_SOURCE_ASSETS
    roots.emplace_back(DC_SOURCE_ASSETS);
#endif
    return roots;
}

std::string assets_dir() {
    std::string tried;
    for (const auto& r : asset_roots()) {
        if (fs::is_directory(r)) return fs::weakly_canonical(r).string();
        tried += "\n  " + r;
    }
    DC_FAIL("no assets folder found; set DC_ASSETS to the project's assets/ folder. Looked in:" << tried);
}

std::string asset_path(const std::string& relative) {
    if (fs::path(relative).is_absolute() || fs::exists(relative)) {
        if (fs::exists(relative)) return relative;
    }
    std::string tried;
    for (const auto& r : asset_roots()) {
        fs::path p = fs::path(r) / relative;
        if (fs::exists(p)) return fs::weakly_canonical(p).string();
        tried += "\n  " + p.string();
    }
    DC_FAIL("asset '" << relative << "' not found (set DC_ASSETS to the assets/ folder). Looked in:" << tried);
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    DC_CHECK(in, "cannot open '" << path << "' for reading");
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
}

// ---- SHA-256 (FIPS 180-4) --------------------------------------------------------------------------------------
namespace {
struct Sha256 {
    std::array<uint32_t, 8> h{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                              0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t block[64];
    size_t block_len = 0;
    uint64_t total = 0;

    static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

    void compress(const uint8_t* p) {
        static const uint32_t k[64] = {
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
            0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
            0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
            0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
            0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
            0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
            0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = hh + s1 + ch + k[i] + w[i];
            uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = s0 + maj;
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }

    void update(const uint8_t* p, size_t n) {
        total += n;
        while (n > 0) {
            size_t take = std::min(n, size_t(64) - block_len);
            std::memcpy(block + block_len, p, take);
            block_len += take; p += take; n -= take;
            if (block_len == 64) { compress(block); block_len = 0; }
        }
    }

    std::string finish() {
        uint64_t bits = total * 8;
        uint8_t pad = 0x80;
        update(&pad, 1);
        uint8_t zero = 0;
        while (block_len != 56) update(&zero, 1);
        uint8_t len[8];
        for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (56 - 8 * i));
        update(len, 8);
        char out[65];
        for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[i]);
        return std::string(out, 64);
    }
};
}  // namespace

std::string sha256_hex(const void* data, size_t size) {
    Sha256 s;
    s.update(static_cast<const uint8_t*>(data), size);
    return s.finish();
}

std::string sha256_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    DC_CHECK(in, "cannot open '" << path << "' to compute its SHA-256");
    Sha256 s;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        s.update(reinterpret_cast<const uint8_t*>(buf.data()), size_t(in.gcount()));
    }
    return s.finish();
}

namespace {
thread_local std::string t_failed_entry;   // nftw's callback has no user pointer

int remove_entry(const char* path, const struct stat*, int type, struct FTW*) {
    const int rc = type == FTW_DP ? ::rmdir(path) : ::unlink(path);
    if (rc != 0 && errno != ENOENT) {
        t_failed_entry = path;
        return errno;
    }
    return 0;
}
}  // namespace

void remove_tree(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;   // nothing there
    t_failed_entry = path;
    const int rc = ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    DC_CHECK(rc == 0, "cannot remove '" << t_failed_entry << "' (removing '" << path
                                        << "'): " << std::strerror(rc > 0 ? rc : errno));
}

}  // namespace dc
