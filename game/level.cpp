// game/level.cpp — ASCII levels (format in assets/levels/README.md).
#include <algorithm>
#include <filesystem>
#include <sstream>

#include "common/common.h"
#include "game/game_impl.h"

namespace dc::game {

namespace {

constexpr int kMaxLevelSize = 256;  // keeps per-frame ray walks short and the format hand-editable

std::string describe(char c) {
    if (c == ' ') return "' ' (space)";
    if (c == '\t') return "a tab";
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) {
        std::ostringstream os;
        os << "byte 0x" << std::hex << int(static_cast<unsigned char>(c));
        return os.str();
    }
    return std::string("'") + c + "'";
}

Level parse_level(const std::string& text, const std::string& name, const std::string& label) {
    // Collect grid rows with their file line numbers; '#' lines are comments; blank lines only around the grid.
    std::vector<std::pair<int, std::string>> rows;
    std::istringstream in(text);
    std::string line;
    int line_no = 0;
    int blank_after_grid = 0;  // line number of a blank line seen after the grid started
    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
        if (!line.empty() && line[0] == '#') continue;
        if (line.empty()) {
            if (!rows.empty() && blank_after_grid == 0) blank_after_grid = line_no;
            continue;
        }
        DC_CHECK(blank_after_grid == 0, label << ":" << blank_after_grid
                                              << ":1: expected a grid row (levels have no "
                                                 "blank lines inside the grid), found an empty line");
        rows.emplace_back(line_no, line);
    }
    DC_CHECK(!rows.empty(), label << ":1:1: expected a grid of cells, found no rows");

    Level lv;
    lv.name = name;
    lv.width = int(rows[0].second.size());
    lv.height = int(rows.size());
    DC_CHECK(lv.height >= 3 && lv.width >= 3 && lv.height <= kMaxLevelSize && lv.width <= kMaxLevelSize,
             label << ":" << rows[0].first << ":1: expected a grid from 3x3 to " << kMaxLevelSize << "x"
                   << kMaxLevelSize << " cells, found " << lv.width << "x" << lv.height);
    lv.cells.reserve(size_t(lv.width) * size_t(lv.height));
    int n_spawn = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
        const auto& [ln, s] = rows[r];
        DC_CHECK(int(s.size()) == lv.width,
                 label << ":" << ln << ":" << std::min<size_t>(s.size(), size_t(lv.width)) + 1 << ": expected "
                       << lv.width << " columns like line " << rows[0].first << ", found " << s.size());
        for (size_t c = 0; c < s.size(); ++c) {
            const char ch = s[c];
            const bool ok = detail::is_wall_char(ch) || detail::is_open_char(ch) || ch == 'D';
            DC_CHECK(ok, label << ":" << ln << ":" << c + 1
                               << ": expected a cell: '1'..'6' (wall materials), '.' (floor), 'D' (door), "
                                  "'S' '>' 'v' '<' '^' (spawn), 'o' (sprite); found "
                               << describe(ch));
            const bool border = r == 0 || r + 1 == rows.size() || c == 0 || c + 1 == s.size();
            DC_CHECK(!border || detail::is_wall_char(ch), label << ":" << ln << ":" << c + 1
                                                                << ": expected a wall '1'..'6' on the border, found "
                                                                << describe(ch));
            if (detail::is_spawn_char(ch)) {
                DC_CHECK(n_spawn == 0, label << ":" << ln << ":" << c + 1
                                             << ": expected one spawn ('S' '>' 'v' '<' '^'), found a second one");
                ++n_spawn;
            }
            lv.cells.push_back(ch);
        }
    }
    DC_CHECK(n_spawn == 1,
             label << ":" << rows[0].first << ":1: expected one spawn ('S' '>' 'v' '<' '^') in the grid, found none");
    // Doors sit between two walls on opposite sides, with a passage through them.
    for (int y = 0; y < lv.height; ++y) {
        for (int x = 0; x < lv.width; ++x) {
            if (lv.at(x, y) != 'D') continue;
            const bool we = detail::is_wall_char(lv.at(x - 1, y)) && detail::is_wall_char(lv.at(x + 1, y));
            const bool ns = detail::is_wall_char(lv.at(x, y - 1)) && detail::is_wall_char(lv.at(x, y + 1));
            DC_CHECK(we != ns, label << ":" << rows[size_t(y)].first << ":" << x + 1
                                     << ": expected a door between walls on exactly two opposite sides (west and "
                                        "east, or north and south), found "
                                     << (we ? "walls on all four sides" : "no such pair of walls"));
        }
    }
    return lv;
}

}  // namespace

char Level::at(int x, int y) const {
    if (x < 0 || y < 0 || x >= width || y >= height) return '1';
    return cells[size_t(y) * size_t(width) + size_t(x)];
}

Level Level::parse(const std::string& text, const std::string& name) {
    return parse_level(text, name, name);
}

Level Level::load(const std::string& path) {
    const std::string text = read_text_file(path);
    return parse_level(text, std::filesystem::path(path).stem().string(), path);
}

Level Level::load_named(const std::string& name) {
    std::string path;
    try {
        path = asset_path("levels/" + name + ".txt");
    } catch (const Error&) {
        std::string known;
        try {
            for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
        } catch (const Error&) {
        }
        DC_FAIL("no level named '" << name << "'; expected one of: " << (known.empty() ? "(none found)" : known));
    }
    return load(path);
}

std::vector<std::string> Level::names() {
    namespace fs = std::filesystem;
    std::vector<std::string> out;
    const fs::path dir = fs::path(assets_dir()) / "levels";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".txt") out.push_back(e.path().stem().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace dc::game
