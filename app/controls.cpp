// Live changes: controls, the neural settings, `--set` keys and toggle scripts (see controls.h).
#include "app/controls.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "app/engine.h"
#include "common/common.h"

namespace dc::app {

namespace {

const char* const kParts[] = {"tempcache", "window", "annsa", "annca"};

bool* part_flag(NeuralSettings& s, const std::string& part) {
    if (part == "tempcache") return &s.tempcache;
    if (part == "window") return &s.window;
    if (part == "annsa") return &s.annsa;
    if (part == "annca") return &s.annca;
    return nullptr;
}

std::string trim(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

int64_t parse_int(const std::string& key, const std::string& value, int64_t lo, int64_t hi) {
    size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(value, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    DC_CHECK(used == value.size() && !value.empty() && v >= lo && v <= hi,
             key << ": expected a whole number from " << lo << " to " << hi << ", found \"" << value << "\"");
    return v;
}

const char* kAcceptedKeys =
    "attention=TYPE, attention.params=JSON, tempcache|window|annsa|annca=on|off, [attention.]PART.FIELD=VALUE "
    "(e.g. tempcache.tau=0.85, dense.kernel=torch), steps=S, budget=TOKENS, prompt=TEXT, inject_oom_at=FRAME";

}  // namespace

std::string Control::describe() const {
    std::ostringstream os;
    switch (kind) {
        case Kind::reset: os << "reset (seed " << value << ")"; break;
        case Kind::prompt: os << "prompt \"" << text << "\""; break;
        case Kind::attention: os << "attention " << text << " " << params; break;
        case Kind::steps: os << "steps S=" << value; break;
        case Kind::budget:
            if (value > 0)
                os << "cache budget " << value << " tokens per layer";
            else
                os << "cache budget unbounded";
            break;
        case Kind::resync: os << "resync the dream to the real frame"; break;
    }
    return os.str();
}

bool apply_control(Engine& engine, const Control& c, game::Image& frame) {
    switch (c.kind) {
        case Control::Kind::reset: engine.reset(static_cast<uint64_t>(c.value), frame); return true;
        case Control::Kind::prompt: engine.set_prompt(c.text); return engine.redraw(frame);
        case Control::Kind::attention: engine.set_attention(c.text, c.params); return false;
        case Control::Kind::steps: engine.set_steps(static_cast<int>(c.value)); return false;
        case Control::Kind::budget: engine.set_cache_budget(c.value); return false;
        case Control::Kind::resync: engine.resync(); return engine.redraw(frame);
    }
    return false;
}

std::string NeuralSettings::type() const {
    std::string t;
    auto add = [&](bool on, const char* name) {
        if (on) t += (t.empty() ? "" : "+") + std::string(name);
    };
    add(tempcache, "tempcache");
    add(window, "window");
    add(annsa, "annsa");
    add(annca, "annca");
    return t.empty() ? "dense" : t;
}

std::string NeuralSettings::params_json() const {
    return params.dump();
}

void NeuralSettings::set_type(const std::string& type_in) {
    const std::string type = lower(trim(type_in));
    DC_CHECK(!type.empty(),
             "attention type is empty: expected dense, or tempcache, window, annsa, annca joined by '+'");
    NeuralSettings next = *this;
    next.tempcache = next.window = next.annsa = next.annca = false;
    if (type != "dense") {
        std::istringstream is(type);
        std::string part;
        while (std::getline(is, part, '+')) {
            bool* flag = part_flag(next, trim(part));
            DC_CHECK(flag, "unknown attention part \"" << part << "\" in \"" << type_in
                                                       << "\": expected dense, or tempcache, window, annsa, annca "
                                                          "joined by '+'");
            *flag = true;
        }
    }
    *this = next;
}

Control NeuralSettings::attention_control() const {
    Control c;
    c.kind = Control::Kind::attention;
    c.text = type();
    c.params = params_json();
    return c;
}

std::vector<Control> apply_setting(NeuralSettings& s, const std::string& key_value) {
    const auto eq = key_value.find('=');
    DC_CHECK(eq != std::string::npos && eq > 0,
             "--set expects KEY=VALUE, found \"" << key_value << "\"; keys: " << kAcceptedKeys);
    std::string key = lower(trim(key_value.substr(0, eq)));
    const std::string value = trim(key_value.substr(eq + 1));
    Control c;
    if (key == "attention") {
        s.set_type(value);
        return {s.attention_control()};
    }
    if (key == "attention.params") {
        nlohmann::json patch;
        try {
            patch = nlohmann::json::parse(value);
        } catch (const nlohmann::json::exception&) {
            DC_FAIL("attention.params: expected a JSON object like {\"annsa\": {\"bits\": 10}}, found \"" << value
                                                                                                          << "\"");
        }
        DC_CHECK(patch.is_object(), "attention.params: expected a JSON object, found " << patch.dump());
        s.params.merge_patch(patch);
        return {s.attention_control()};
    }
    if (key == "steps") {
        s.n_steps = static_cast<int>(parse_int(key, value, 1, 16));
        c.kind = Control::Kind::steps;
        c.value = s.n_steps;
        return {c};
    }
    if (key == "budget") {
        s.budget_tokens = parse_int(key, value, 0, int64_t(1) << 40);
        c.kind = Control::Kind::budget;
        c.value = s.budget_tokens;
        return {c};
    }
    if (key == "prompt") {
        c.kind = Control::Kind::prompt;
        c.text = value;
        return {c};
    }
    if (key == "inject_oom_at") {
        s.inject_oom_at = parse_int(key, value, -1, int64_t(1) << 40);
        return {};
    }
    if (key.rfind("attention.", 0) == 0) key = key.substr(10);
    if (bool* flag = part_flag(s, key)) {
        const std::string v = lower(value);
        DC_CHECK(v == "on" || v == "off" || v == "true" || v == "false" || v == "1" || v == "0",
                 key << ": expected on or off, found \"" << value << "\"");
        *flag = v == "on" || v == "true" || v == "1";
        return {s.attention_control()};
    }
    const auto dot = key.find('.');
    // PART.FIELD: a parameter of a part; "dense" has parameters (dense.kernel) but no on/off switch.
    if (dot != std::string::npos && (part_flag(s, key.substr(0, dot)) || key.substr(0, dot) == "dense") &&
        dot + 1 < key.size()) {
        const std::string part = key.substr(0, dot), field = key.substr(dot + 1);
        nlohmann::json v;
        try {
            v = nlohmann::json::parse(value);
        } catch (const nlohmann::json::exception&) {
            v = value;  // bare strings: annsa.index=sq8
        }
        if (!s.params.contains(part) || !s.params[part].is_object()) s.params[part] = nlohmann::json::object();
        s.params[part][field] = v;
        return {s.attention_control()};
    }
    DC_FAIL("unknown setting \"" << key_value.substr(0, eq) << "\"; keys: " << kAcceptedKeys);
}

std::vector<ToggleEntry> parse_toggles(const std::string& text, const std::string& source) {
    std::vector<ToggleEntry> out;
    std::istringstream in(text);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        const auto hash = line.find('#');
        if (hash != std::string::npos) line = line.substr(0, hash);
        line = trim(line);
        if (line.empty()) continue;
        std::istringstream ls(line);
        std::string word, frame, command;
        ls >> word >> frame >> command;
        DC_CHECK(word == "frame" && !frame.empty() && !command.empty(),
                 source << ":" << n
                        << ": expected \"frame N set KEY=VALUE\", \"frame N prompt TEXT\", \"frame N "
                           "resync\" or \"frame N reset\", found \""
                        << line << "\"");
        ToggleEntry e;
        e.line = n;
        try {
            e.frame = parse_int("frame", frame, 0, int64_t(1) << 40);
        } catch (const dc::Error& err) {
            DC_FAIL(source << ":" << n << ": " << err.message());
        }
        e.command = command;
        std::string rest;
        std::getline(ls, rest);
        e.argument = trim(rest);
        DC_CHECK(
            command == "set" || command == "prompt" || command == "resync" || command == "reset",
            source << ":" << n << ": unknown command \"" << command << "\"; expected set, prompt, resync or reset");
        DC_CHECK(command != "set" || e.argument.find('=') != std::string::npos,
                 source << ":" << n << ": \"set\" expects KEY=VALUE, found \"" << e.argument << "\"");
        DC_CHECK((command != "resync" && command != "reset") || e.argument.empty(),
                 source << ":" << n << ": \"" << command << "\" takes no argument, found \"" << e.argument << "\"");
        out.push_back(e);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const ToggleEntry& a, const ToggleEntry& b) { return a.frame < b.frame; });
    return out;
}

std::vector<ToggleEntry> load_toggles(const std::string& path) {
    return parse_toggles(read_text_file(path), path);
}

std::vector<Control> entry_controls(NeuralSettings& s, const ToggleEntry& e, uint64_t seed) {
    Control c;
    if (e.command == "set") return apply_setting(s, e.argument);
    if (e.command == "prompt") {
        c.kind = Control::Kind::prompt;
        c.text = e.argument;
    } else if (e.command == "resync") {
        c.kind = Control::Kind::resync;
    } else {
        c.kind = Control::Kind::reset;
        c.value = static_cast<int64_t>(seed);
    }
    return {c};
}

std::vector<Control> due_controls(NeuralSettings& s, const std::vector<ToggleEntry>& entries, size_t& next,
                                  int64_t frame, uint64_t seed, const std::string& source) {
    std::vector<Control> all;
    for (; next < entries.size() && entries[next].frame <= frame; ++next) {
        const ToggleEntry& e = entries[next];
        try {
            for (const Control& c : entry_controls(s, e, seed)) all.push_back(c);
        } catch (const dc::Error& err) {
            DC_FAIL(source << ":" << e.line << ": " << err.message());
        }
    }
    std::vector<Control> out;
    for (size_t i = 0; i < all.size(); ++i) {
        bool replaced = false;
        for (size_t j = i + 1; j < all.size() && !replaced; ++j)
            replaced = all[j].kind == all[i].kind &&
                       (all[i].kind == Control::Kind::attention || all[i].kind == Control::Kind::steps);
        if (!replaced) out.push_back(all[i]);
    }
    return out;
}

}  // namespace dc::app
