// game/action_script.cpp — text action scripts: "forward strafe turn use" per line, '#' comments, "repeat N".
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "common/common.h"
#include "game/game.h"

namespace dc::game {

namespace {
constexpr long kMaxRepeat = 10000000;  // guards against typos like "repeat 1e12" filling memory

bool parse_float(const std::string& s, float& out) {
    char* end = nullptr;
    out = std::strtof(s.c_str(), &end);
    return end && *end == '\0' && !s.empty() && std::isfinite(out);
}
}  // namespace

std::vector<Action> parse_action_script(const std::string& text, const std::string& source_name) {
    std::vector<Action> out;
    std::istringstream in(text);
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        const size_t hash = line.find('#');
        if (hash != std::string::npos) line = line.substr(0, hash);
        std::istringstream ls(line);
        std::vector<std::string> f;
        for (std::string tok; ls >> tok;) f.push_back(tok);
        if (f.empty()) continue;
        const std::string where = source_name + ":" + std::to_string(line_no);
        if (f[0] == "repeat") {
            DC_CHECK(f.size() == 2,
                     where << ": expected 'repeat N', found " << f.size() - 1 << " value(s) after 'repeat'");
            char* end = nullptr;
            const long n = std::strtol(f[1].c_str(), &end, 10);
            DC_CHECK(end && *end == '\0' && n >= 0 && n <= kMaxRepeat, where << ": expected a whole number 0.."
                                                                             << kMaxRepeat << " after 'repeat', found '"
                                                                             << f[1] << "'");
            DC_CHECK(!out.empty(), where << ": expected an action line before 'repeat', found none");
            const Action last = out.back();
            out.insert(out.end(), size_t(n), last);
            continue;
        }
        DC_CHECK(f.size() == 4, where << ": expected 4 fields 'forward strafe turn use' (or 'repeat N'), found "
                                      << f.size() << " field(s)");
        Action a;
        float* axes[3] = {&a.forward, &a.strafe, &a.turn};
        const char* names[3] = {"forward", "strafe", "turn"};
        for (int k = 0; k < 3; ++k) {
            DC_CHECK(parse_float(f[size_t(k)], *axes[k]) && *axes[k] >= -1.f && *axes[k] <= 1.f,
                     where << ": expected " << names[k] << " as a number in [-1, 1], found '" << f[size_t(k)] << "'");
        }
        DC_CHECK(f[3] == "0" || f[3] == "1", where << ": expected use as 0 or 1, found '" << f[3] << "'");
        a.use = f[3] == "1";
        out.push_back(a);
    }
    return out;
}

std::vector<Action> load_action_script(const std::string& path) {
    return parse_action_script(read_text_file(path), path);
}

}  // namespace dc::game
