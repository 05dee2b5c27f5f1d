// Bindings, key names and the mapping of held keys and sticks to game actions. No GLFW or SDL here: the key codes
// are GLFW's documented GLFW_KEY_* values (checked against glfw3.h in keyboard.cpp).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/common.h"
#include "input/input.h"

namespace dc::input {

namespace {

struct CommandInfo {
    Command command;
    const char* name;
    const char* label;
};
constexpr std::array<CommandInfo, kNumCommands> kCommands{{
    {Command::forward, "forward", "move forward"},
    {Command::back, "back", "move back"},
    {Command::strafe_left, "strafe_left", "strafe left"},
    {Command::strafe_right, "strafe_right", "strafe right"},
    {Command::turn_left, "turn_left", "turn left"},
    {Command::turn_right, "turn_right", "turn right"},
    {Command::use, "use", "use (open doors)"},
    {Command::pause, "pause", "pause / resume"},
    {Command::reset, "reset", "reset the level"},
    {Command::step, "step", "single step (while paused)"},
    {Command::resync, "resync", "resync the dream to the real frame (side-by-side)"},
    {Command::screenshot, "screenshot", "screenshot (PNG)"},
    {Command::record, "record", "record on/off (a replayable folder)"},
    {Command::fullscreen, "fullscreen", "fullscreen on/off"},
    {Command::help, "help", "this help"},
    {Command::quit, "quit", "quit"},
}};

struct KeyInfo {
    const char* name;
    int code;
};

// GLFW_KEY_* values (GLFW 3.3 API, stable since 3.0).
std::vector<KeyInfo> build_key_table() {
    std::vector<KeyInfo> t;
    static const char* letters[26] = {"A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M",
                                      "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z"};
    for (int i = 0; i < 26; ++i) t.push_back({letters[i], 65 + i});
    static const char* digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    for (int i = 0; i < 10; ++i) t.push_back({digits[i], 48 + i});
    static const char* fkeys[25] = {"F1",  "F2",  "F3",  "F4",  "F5",  "F6",  "F7",  "F8",  "F9",
                                    "F10", "F11", "F12", "F13", "F14", "F15", "F16", "F17", "F18",
                                    "F19", "F20", "F21", "F22", "F23", "F24", "F25"};
    for (int i = 0; i < 25; ++i) t.push_back({fkeys[i], 290 + i});
    static const char* keypad[10] = {"Keypad0", "Keypad1", "Keypad2", "Keypad3", "Keypad4",
                                     "Keypad5", "Keypad6", "Keypad7", "Keypad8", "Keypad9"};
    for (int i = 0; i < 10; ++i) t.push_back({keypad[i], 320 + i});
    const KeyInfo named[] = {
        {"Space", 32},         {"Apostrophe", 39},    {"Comma", 44},         {"Minus", 45},
        {"Period", 46},        {"Slash", 47},         {"Semicolon", 59},     {"Equal", 61},
        {"LeftBracket", 91},   {"Backslash", 92},     {"RightBracket", 93},  {"GraveAccent", 96},
        {"Escape", 256},       {"Enter", 257},        {"Tab", 258},          {"Backspace", 259},
        {"Insert", 260},       {"Delete", 261},       {"Right", 262},        {"Left", 263},
        {"Down", 264},         {"Up", 265},           {"PageUp", 266},       {"PageDown", 267},
        {"Home", 268},         {"End", 269},          {"CapsLock", 280},     {"KeypadDecimal", 330},
        {"KeypadDivide", 331}, {"KeypadMultiply", 332}, {"KeypadSubtract", 333}, {"KeypadAdd", 334},
        {"KeypadEnter", 335},  {"LeftShift", 340},    {"LeftControl", 341},  {"LeftAlt", 342},
        {"RightShift", 344},   {"RightControl", 345}, {"RightAlt", 346},
    };
    for (const auto& k : named) t.push_back(k);
    return t;
}

const std::vector<KeyInfo>& key_table() {
    static const std::vector<KeyInfo> table = build_key_table();
    return table;
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

constexpr std::array<const char*, kNumPadAxes> kAxisNames{"leftx", "lefty", "rightx", "righty", "lefttrigger",
                                                          "righttrigger"};
constexpr std::array<const char*, kNumPadButtons> kButtonNames{
    "a",        "b",          "x",          "y",           "back",   "guide",  "start",  "leftstick",
    "rightstick", "leftshoulder", "rightshoulder", "dpup", "dpdown", "dpleft", "dpright"};

std::string join(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
    return out;
}

std::vector<std::string> command_names_list() {
    std::vector<std::string> v;
    for (const auto& c : kCommands) v.emplace_back(c.name);
    return v;
}

std::string key_names_summary() {
    return "letters A-Z, digits 0-9, F1-F25, Keypad0-Keypad9, Space, Escape, Enter, Tab, Backspace, Insert, Delete, "
           "Up, Down, Left, Right, PageUp, PageDown, Home, End, CapsLock, LeftShift, RightShift, LeftControl, "
           "RightControl, LeftAlt, RightAlt, Apostrophe, Comma, Minus, Period, Slash, Semicolon, Equal, "
           "LeftBracket, Backslash, RightBracket, GraveAccent, KeypadDecimal, KeypadDivide, KeypadMultiply, "
           "KeypadSubtract, KeypadAdd, KeypadEnter";
}

std::optional<PadAxis> axis_from_name(const std::string& name) {
    for (int i = 0; i < kNumPadAxes; ++i)
        if (lower(name) == kAxisNames[i]) return static_cast<PadAxis>(i);
    return std::nullopt;
}

std::optional<PadButton> button_from_name(const std::string& name) {
    for (int i = 0; i < kNumPadButtons; ++i)
        if (lower(name) == kButtonNames[i]) return static_cast<PadButton>(i);
    return std::nullopt;
}

std::string json_type(const nlohmann::json& j) { return j.type_name(); }

}  // namespace

const char* command_name(Command c) { return kCommands[static_cast<int>(c)].name; }
const char* command_label(Command c) { return kCommands[static_cast<int>(c)].label; }

std::optional<Command> command_from_name(const std::string& name) {
    for (const auto& c : kCommands)
        if (name == c.name) return c.command;
    return std::nullopt;
}

bool is_movement(Command c) { return static_cast<int>(c) <= static_cast<int>(Command::turn_right); }

int key_from_name(const std::string& name) {
    const std::string l = lower(name);
    if (l == "esc") return 256;
    if (l == "return") return 257;
    for (const auto& k : key_table())
        if (lower(k.name) == l) return k.code;
    return -1;
}

std::string key_name(int key) {
    for (const auto& k : key_table())
        if (k.code == key) return k.name;
    return "";
}

const std::vector<std::string>& key_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const auto& k : key_table()) v.emplace_back(k.name);
        return v;
    }();
    return names;
}

const char* pad_axis_name(PadAxis a) { return kAxisNames[static_cast<int>(a)]; }
const char* pad_button_name(PadButton b) { return kButtonNames[static_cast<int>(b)]; }

Bindings Bindings::defaults() {
    Bindings b;
    auto set = [&](Command c, std::vector<int> keys) { b.keys[static_cast<int>(c)] = std::move(keys); };
    set(Command::forward, {87, 265});          // W, Up
    set(Command::back, {83, 264});             // S, Down
    set(Command::strafe_left, {65});           // A
    set(Command::strafe_right, {68});          // D
    set(Command::turn_left, {263});            // Left
    set(Command::turn_right, {262});           // Right
    set(Command::use, {69, 32});               // E, Space
    set(Command::pause, {80});                 // P
    set(Command::reset, {82});                 // R
    set(Command::step, {78});                  // N
    set(Command::resync, {84});                // T
    set(Command::screenshot, {301});           // F12
    set(Command::record, {298});               // F9
    set(Command::fullscreen, {300});           // F11
    set(Command::help, {72, 290});             // H, F1
    set(Command::quit, {256});                 // Escape
    b.buttons[static_cast<int>(Command::use)] = {PadButton::a};
    b.buttons[static_cast<int>(Command::pause)] = {PadButton::start};
    b.buttons[static_cast<int>(Command::reset)] = {PadButton::back};
    return b;
}

Bindings Bindings::parse(const std::string& json_text, const std::string& source) {
    using nlohmann::json;
    json root;
    try {
        root = json::parse(json_text);
    } catch (const json::parse_error& e) {
        DC_FAIL(source << ": not valid JSON (" << e.what() << ")");
    }
    DC_CHECK(root.is_object(), source << ": expected a JSON object at the top level, found " << json_type(root));

    Bindings b = defaults();
    for (auto it = root.begin(); it != root.end(); ++it) {
        const std::string& k = it.key();
        if (!k.empty() && k[0] == '_') continue;
        DC_CHECK(k == "version" || k == "keyboard" || k == "gamepad",
                 source << ": unknown field \"" << k << "\"; expected version, keyboard, gamepad");
    }
    if (root.contains("version")) {
        const json& v = root["version"];
        DC_CHECK(v.is_number_integer() && v.get<int>() == 1,
                 source << ": field \"version\": expected 1, found " << v.dump());
    }

    // keyboard: { command: [key names] }
    if (root.contains("keyboard")) {
        const json& kb = root["keyboard"];
        DC_CHECK(kb.is_object(), source << ": field \"keyboard\": expected an object of command -> [key names], found "
                                        << json_type(kb));
        std::array<bool, kNumCommands> given{};
        std::array<std::vector<int>, kNumCommands> keys;
        std::vector<std::pair<int, std::string>> owner;   // key -> field that bound it
        for (auto it = kb.begin(); it != kb.end(); ++it) {
            const std::string field = "keyboard." + it.key();
            if (!it.key().empty() && it.key()[0] == '_') continue;
            auto cmd = command_from_name(it.key());
            DC_CHECK(cmd, source << ": unknown command \"" << field << "\"; expected one of "
                                 << join(command_names_list(), ", "));
            const json& list = it.value();
            DC_CHECK(list.is_array() || list.is_string(),
                     source << ": field \"" << field << "\": expected a list of key names like [\"W\", \"Up\"], found "
                            << json_type(list));
            const json arr = list.is_string() ? json::array({list}) : list;
            const int ci = static_cast<int>(*cmd);
            given[ci] = true;
            for (size_t i = 0; i < arr.size(); ++i) {
                const std::string f = field + "[" + std::to_string(i) + "]";
                DC_CHECK(arr[i].is_string(), source << ": field \"" << f << "\": expected a key name, found "
                                                    << arr[i].dump());
                const std::string name = arr[i].get<std::string>();
                const int code = key_from_name(name);
                DC_CHECK(code >= 0, source << ": field \"" << f << "\": unknown key \"" << name
                                           << "\"; expected one of: " << key_names_summary());
                for (const auto& [k, other] : owner)
                    DC_CHECK(k != code, source << ": key " << key_name(code) << " is bound twice, by \"" << other
                                               << "\" and by \"" << f << "\"");
                owner.emplace_back(code, f);
                keys[ci].push_back(code);
            }
        }
        for (int c = 0; c < kNumCommands; ++c) {
            if (given[c]) {
                b.keys[c] = keys[c];
                continue;
            }
            // A default binding loses the keys the file gave to other commands.
            auto& v = b.keys[c];
            v.erase(std::remove_if(v.begin(), v.end(),
                                   [&](int k) {
                                       return std::any_of(owner.begin(), owner.end(),
                                                          [&](const auto& o) { return o.first == k; });
                                   }),
                    v.end());
        }
    }

    if (root.contains("gamepad")) {
        const json& gp = root["gamepad"];
        DC_CHECK(gp.is_object(), source << ": field \"gamepad\": expected an object, found " << json_type(gp));
        for (auto it = gp.begin(); it != gp.end(); ++it) {
            const std::string& k = it.key();
            if (!k.empty() && k[0] == '_') continue;
            DC_CHECK(k == "dead_zone" || k == "axes" || k == "buttons",
                     source << ": unknown field \"gamepad." << k << "\"; expected dead_zone, axes, buttons");
        }
        if (gp.contains("dead_zone")) {
            const json& dz = gp["dead_zone"];
            DC_CHECK(dz.is_number() && dz.get<double>() >= 0.0 && dz.get<double>() <= 0.95,
                     source << ": field \"gamepad.dead_zone\": expected a number in [0, 0.95], found " << dz.dump());
            b.dead_zone = dz.get<float>();
        }
        if (gp.contains("axes")) {
            const json& axes = gp["axes"];
            DC_CHECK(axes.is_object(), source << ": field \"gamepad.axes\": expected an object, found "
                                              << json_type(axes));
            for (auto it = axes.begin(); it != axes.end(); ++it) {
                const std::string field = "gamepad.axes." + it.key();
                if (!it.key().empty() && it.key()[0] == '_') continue;
                AxisBinding* target = it.key() == "forward" ? &b.forward
                                      : it.key() == "strafe" ? &b.strafe
                                      : it.key() == "turn"   ? &b.turn
                                                             : nullptr;
                DC_CHECK(target, source << ": unknown field \"" << field << "\"; expected forward, strafe, turn");
                DC_CHECK(it.value().is_string(), source << ": field \"" << field
                                                        << "\": expected an axis name like \"-lefty\", found "
                                                        << it.value().dump());
                std::string name = it.value().get<std::string>();
                const bool invert = !name.empty() && name[0] == '-';
                if (invert) name = name.substr(1);
                auto axis = axis_from_name(name);
                DC_CHECK(axis, source << ": field \"" << field << "\": unknown axis \"" << name << "\"; expected "
                                      << join({kAxisNames.begin(), kAxisNames.end()}, ", ")
                                      << " (a leading '-' inverts it)");
                *target = AxisBinding{*axis, invert};
            }
        }
        if (gp.contains("buttons")) {
            const json& buttons = gp["buttons"];
            DC_CHECK(buttons.is_object(), source << ": field \"gamepad.buttons\": expected an object, found "
                                                 << json_type(buttons));
            for (auto it = buttons.begin(); it != buttons.end(); ++it) {
                const std::string field = "gamepad.buttons." + it.key();
                if (!it.key().empty() && it.key()[0] == '_') continue;
                auto cmd = command_from_name(it.key());
                DC_CHECK(cmd, source << ": unknown command \"" << field << "\"; expected one of "
                                     << join(command_names_list(), ", "));
                DC_CHECK(!is_movement(*cmd), source << ": field \"" << field
                                                    << "\": movement is bound through gamepad.axes, not buttons");
                const json& list = it.value();
                DC_CHECK(list.is_array() || list.is_string(),
                         source << ": field \"" << field << "\": expected a list of button names like [\"a\"], found "
                                << json_type(list));
                const json arr = list.is_string() ? json::array({list}) : list;
                std::vector<PadButton> v;
                for (size_t i = 0; i < arr.size(); ++i) {
                    const std::string f = field + "[" + std::to_string(i) + "]";
                    DC_CHECK(arr[i].is_string(), source << ": field \"" << f << "\": expected a button name, found "
                                                        << arr[i].dump());
                    auto btn = button_from_name(arr[i].get<std::string>());
                    DC_CHECK(btn, source << ": field \"" << f << "\": unknown button " << arr[i].dump()
                                         << "; expected " << join({kButtonNames.begin(), kButtonNames.end()}, ", "));
                    v.push_back(*btn);
                }
                b.buttons[static_cast<int>(*cmd)] = v;
            }
        }
    }
    return b;
}

Bindings Bindings::load(const std::string& path) { return parse(read_text_file(path), path); }

Bindings Bindings::load_default() { return load(asset_path("bindings.json")); }

std::string Bindings::to_json() const {
    nlohmann::ordered_json root;
    root["version"] = 1;
    nlohmann::ordered_json kb = nlohmann::ordered_json::object();
    for (int c = 0; c < kNumCommands; ++c) {
        nlohmann::ordered_json list = nlohmann::ordered_json::array();
        for (int k : keys[c]) list.push_back(key_name(k));
        kb[command_name(static_cast<Command>(c))] = list;
    }
    root["keyboard"] = kb;
    auto axis = [](const AxisBinding& a) { return std::string(a.invert ? "-" : "") + pad_axis_name(a.axis); };
    nlohmann::ordered_json gp;
    gp["dead_zone"] = dead_zone;
    gp["axes"] = {{"forward", axis(forward)}, {"strafe", axis(strafe)}, {"turn", axis(turn)}};
    nlohmann::ordered_json btn = nlohmann::ordered_json::object();
    for (int c = 0; c < kNumCommands; ++c) {
        if (buttons[c].empty()) continue;
        nlohmann::ordered_json list = nlohmann::ordered_json::array();
        for (PadButton pb : buttons[c]) list.push_back(pad_button_name(pb));
        btn[command_name(static_cast<Command>(c))] = list;
    }
    gp["buttons"] = btn;
    root["gamepad"] = gp;
    return root.dump(2) + "\n";
}

void Bindings::rebind(Command c, const std::vector<int>& new_keys) {
    for (int k : new_keys) DC_CHECK(!key_name(k).empty(), "rebind " << command_name(c) << ": unknown key code " << k);
    for (auto& v : keys)
        v.erase(std::remove_if(v.begin(), v.end(),
                               [&](int k) { return std::find(new_keys.begin(), new_keys.end(), k) != new_keys.end(); }),
                v.end());
    keys[static_cast<int>(c)] = new_keys;
}

std::optional<Command> Bindings::command_for_key(int key) const {
    for (int c = 0; c < kNumCommands; ++c)
        if (std::find(keys[c].begin(), keys[c].end(), key) != keys[c].end()) return static_cast<Command>(c);
    return std::nullopt;
}

std::optional<Command> Bindings::command_for_button(PadButton b) const {
    for (int c = 0; c < kNumCommands; ++c)
        if (std::find(buttons[c].begin(), buttons[c].end(), b) != buttons[c].end()) return static_cast<Command>(c);
    return std::nullopt;
}

std::string Bindings::describe_keys(Command c) const {
    std::vector<std::string> names;
    for (int k : keys[static_cast<int>(c)]) names.push_back(key_name(k));
    return names.empty() ? "(unbound)" : join(names, " / ");
}

std::string Bindings::describe_buttons(Command c) const {
    std::vector<std::string> names;
    for (PadButton b : buttons[static_cast<int>(c)]) names.emplace_back(pad_button_name(b));
    return join(names, " / ");
}

float apply_dead_zone(float v, float dead_zone) {
    v = std::clamp(v, -1.f, 1.f);
    const float a = std::fabs(v);
    if (a <= dead_zone) return 0.f;
    const float scaled = (a - dead_zone) / (1.f - dead_zone);
    return std::copysign(std::min(scaled, 1.f), v);
}

game::Action make_action(const HeldCommands& held, const PadState& pad, const Bindings& bindings) {
    auto h = [&](Command c) { return held[static_cast<int>(c)] ? 1.f : 0.f; };
    float forward = h(Command::forward) - h(Command::back);
    float strafe = h(Command::strafe_right) - h(Command::strafe_left);
    float turn = h(Command::turn_right) - h(Command::turn_left);
    if (pad.connected) {
        auto axis = [&](const AxisBinding& a) {
            const float v = pad.axes[static_cast<int>(a.axis)];
            return apply_dead_zone(a.invert ? -v : v, bindings.dead_zone);
        };
        forward += axis(bindings.forward);
        strafe += axis(bindings.strafe);
        turn += axis(bindings.turn);
    }
    game::Action a;
    a.forward = std::clamp(forward, -1.f, 1.f);
    a.strafe = std::clamp(strafe, -1.f, 1.f);
    a.turn = std::clamp(turn, -1.f, 1.f);
    return a;
}

}  // namespace dc::input
