// game/vocab.cpp — the prompt vocabulary (assets/prompt_vocab.txt) and the clause grammar documented there.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>
#include <unordered_map>

#include "common/common.h"
#include "game/game.h"

namespace dc::game {

namespace {

// Roles a word can play; a word may have several.
enum Role : uint32_t {
    kArticle = 1u << 0,
    kAll = 1u << 1,
    kWalls = 1u << 2,
    kVerb = 1u << 3,
    kAnd = 1u << 4,
    kFogNoun = 1u << 5,
    kLightNoun = 1u << 6,
    kMaterial = 1u << 7,
    kPattern = 1u << 8,
    kColour = 1u << 9,
    kModifier = 1u << 10,
    kFogAmount = 1u << 11,
    kLightLevel = 1u << 12,
};

enum class ModOp { brightness, whiten, blacken, saturate };

struct WordInfo {
    std::string text;
    uint32_t roles = 0;
    int material = -1;                           // material slot (kMaterial)
    Pattern pattern = Pattern::plain;            // kPattern
    std::array<float, 3> colour{0.f, 0.f, 0.f};  // kColour
    std::vector<std::pair<ModOp, float>> mods;   // kModifier
    float fog = 0.f;                             // kFogAmount
    float light = 1.f;                           // kLightLevel
};

struct Lexeme {
    std::string text;  // lowercased word, or ";" for a separator
    int column = 0;    // 1-based character position in the prompt
    int word_no = 0;   // 1-based index among the prompt's words
    int id = -1;       // token id, -1 for unknown words and separators
    bool separator = false;
};

struct VocabData {
    std::string source;                          // file the vocabulary came from
    std::vector<std::string> words;              // [size] by token id
    std::vector<WordInfo> info;                  // [size] by token id
    std::unordered_map<std::string, int> index;  // word -> token id
    int pad = -1;
    int sep = -1;

    const WordInfo* find(const std::string& w) const {
        auto it = index.find(w);
        return it == index.end() ? nullptr : &info[size_t(it->second)];
    }

    // The words with any of `roles`, grouped by class: "'fog', 'light'; colours (red, green, ...); ...".
    std::string accepted(uint32_t roles) const {
        static const std::pair<uint32_t, const char*> groups[] = {
            {kArticle | kAll | kWalls | kVerb | kAnd | kFogNoun | kLightNoun, ""},
            {kMaterial, "materials"},
            {kModifier, "modifiers"},
            {kColour, "colours"},
            {kPattern, "patterns"},
            {kFogAmount, "fog amounts"},
            {kLightLevel, "light levels"}};
        std::string out;
        for (const auto& [bits, name] : groups) {
            if (!(roles & bits)) continue;
            std::string list;
            for (const WordInfo& wi : info) {
                if (!(wi.roles & roles & bits)) continue;
                if (!list.empty()) list += ", ";
                list += *name ? wi.text : "'" + wi.text + "'";
            }
            if (list.empty()) continue;
            if (!out.empty()) out += "; ";
            out += *name ? std::string(name) + " (" + list + ")" : list;
        }
        return out;
    }

    std::vector<Lexeme> lex(const std::string& prompt) const;
    Style parse(const std::string& prompt, std::vector<Lexeme>* lexemes_out) const;
};

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool is_word_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '\'' || c == '-';
}

// The mutable colour being described by a colour phrase.
struct ColourValue {
    std::array<float, 3> rgb{0.f, 0.f, 0.f};
    float brightness = 1.f;
};

void apply_modifier(const WordInfo& m, ColourValue& c) {
    for (const auto& [op, k] : m.mods) {
        switch (op) {
            case ModOp::brightness: c.brightness *= k; break;
            case ModOp::whiten:
                for (float& v : c.rgb) v = v + (255.f - v) * k;
                break;
            case ModOp::blacken:
                for (float& v : c.rgb) v = v * (1.f - k);
                break;
            case ModOp::saturate: {
                const float grey = 0.299f * c.rgb[0] + 0.587f * c.rgb[1] + 0.114f * c.rgb[2];
                for (float& v : c.rgb) v = std::min(255.f, std::max(0.f, grey + (v - grey) * k));
                break;
            }
        }
    }
}

std::array<uint8_t, 3> to_rgb8(const std::array<float, 3>& c) {
    std::array<uint8_t, 3> out{};
    for (int i = 0; i < 3; ++i) {
        const float v = std::min(255.f, std::max(0.f, c[size_t(i)]));
        out[size_t(i)] = uint8_t(int(v + 0.5f));
    }
    return out;
}

// Recursive-descent parser over one clause's lexemes.
class ClauseParser {
public:
    ClauseParser(const VocabData& v, const std::string& prompt, const std::vector<Lexeme>& lx, size_t begin, size_t end)
        : m_vocab(v), m_prompt(prompt), m_lx(lx), m_begin(begin), m_n(end - begin) {}

    void parse(Style& style) {
        size_t i = 0;
        bool article = false;
        if (has(i, kArticle)) {
            ++i;
            article = true;
        }
        if (has(i, kAll)) {
            ++i;
            expect(i, kWalls, "expected 'walls'");
            ++i;
            targets_all_walls();
            i = parse_verb_and_looks(i, style);
        } else if (has(i, kWalls) && has(i + 1, kVerb)) {
            ++i;
            targets_all_walls();
            i = parse_verb_and_looks(i, style);
        } else if (has(i, kMaterial)) {
            i = parse_materials(i);
            i = parse_verb_and_looks(i, style);
        } else if (has(i, kFogNoun) && has(i + 1, kVerb)) {
            i = parse_fog_looks(i + 2, m_n, style, true);
        } else if (has(i, kLightNoun) && has(i + 1, kVerb)) {
            expect(i + 2, kLightLevel, "expected a light level");
            style.light = info(i + 2).light;
            i += 3;
        } else if (!article && has(i, kFogAmount | kLightLevel | kModifier | kColour | kFogNoun | kLightNoun)) {
            i = parse_prefix_form(i, style);
        } else {
            fail(i,
                 article ? "expected a material, 'walls', 'fog' or 'light'"
                         : "expected a material, 'walls', 'fog', 'light', a fog amount, a colour or a light level",
                 kMaterial | kAll | kWalls | kFogNoun | kLightNoun |
                     (article ? 0u : (kFogAmount | kLightLevel | kModifier | kColour)));
        }
        if (i < m_n) fail(i, "expected the end of the clause (';' or ',')", 0);
    }

private:
    const Lexeme& lex(size_t i) const { return m_lx[m_begin + i]; }
    const WordInfo* word(size_t i) const {
        if (i >= m_n || lex(i).id < 0) return nullptr;
        return &m_vocab.info[size_t(lex(i).id)];
    }
    const WordInfo& info(size_t i) const { return *word(i); }
    bool has(size_t i, uint32_t roles) const {
        const WordInfo* w = word(i);
        return w && (w->roles & roles);
    }
    void expect(size_t i, uint32_t roles, const std::string& what) const {
        if (!has(i, roles)) fail(i, what, roles);
    }

    // Throws: "<what> after '<previous word>', found '<word>' (word W, column C) ...; accepted here: ...".
    [[noreturn]] void fail(size_t i, const std::string& what, uint32_t accepted) const {
        std::ostringstream os;
        os << "prompt \"" << m_prompt << "\": " << what;
        os << (i == 0 ? " at the start of a clause" : " after '" + lex(i - 1).text + "'");
        if (i >= m_n) {
            const Lexeme& last = lex(m_n - 1);
            os << ", found the end of the clause (after column " << last.column + int(last.text.size()) - 1 << ")";
        } else {
            const Lexeme& l = lex(i);
            os << ", found " << (l.id < 0 ? "unknown word '" : "'") << l.text << "' (word " << l.word_no << ", column "
               << l.column << ")";
        }
        if (accepted) {
            os << "; accepted here: " << m_vocab.accepted(accepted);
        } else {
            os << "; accepted here: ';' or ',' to start the next clause";
        }
        throw Error(os.str(), __FILE__, __LINE__);
    }

    void targets_all_walls() {
        m_targets.clear();
        for (int m = 0; m < kNumWallMaterials; ++m) m_targets.push_back(m);
    }

    size_t parse_materials(size_t i) {
        m_targets.clear();
        bool any_surface = false;
        for (;;) {
            expect(i, kMaterial, "expected a material");
            const int m = info(i).material;
            if (std::find(m_targets.begin(), m_targets.end(), m) == m_targets.end()) m_targets.push_back(m);
            any_surface = any_surface || m >= kNumWallMaterials;
            ++i;
            if (has(i, kAnd) && (has(i + 1, kMaterial) || (has(i + 1, kArticle) && has(i + 2, kMaterial)))) {
                i += has(i + 1, kArticle) ? 2 : 1;
                continue;
            }
            break;
        }
        if (has(i, kWalls)) {
            if (any_surface) fail(i, "expected 'are' or 'is' ('walls' follows only wall materials)", kVerb);
            ++i;
        }
        return i;
    }

    size_t parse_verb_and_looks(size_t i, Style& style) {
        expect(i, kVerb, "expected 'are' or 'is'");
        ++i;
        bool have_colour = false, have_pattern = false;
        size_t n_looks = 0;
        while (i < m_n) {
            if (n_looks > 0 && has(i, kAnd)) {
                ++i;
                if (i >= m_n) fail(i, "expected a colour or pattern", kModifier | kColour | kPattern);
            }
            if (has(i, kPattern) && !has(i, kModifier | kColour)) {
                if (have_pattern) fail(i, "expected a colour (this clause already set a pattern)", kModifier | kColour);
                have_pattern = true;
                for (int m : m_targets) style.materials[size_t(m)].pattern = info(i).pattern;
                ++i;
            } else if (has(i, kModifier | kColour)) {
                if (have_colour) fail(i, "expected a pattern (this clause already set a colour)", kPattern);
                have_colour = true;
                const size_t start = i;
                i = skip_colour_phrase(i);
                for (int m : m_targets) {
                    Material& mat = style.materials[size_t(m)];
                    ColourValue c = colour_phrase(start, i, mat.color, mat.brightness);
                    mat.color = to_rgb8(c.rgb);
                    mat.brightness = std::min(1.6f, std::max(0.3f, c.brightness));
                }
            } else {
                fail(i, "expected a colour or pattern", kModifier | kColour | kPattern | (n_looks ? kAnd : 0u));
            }
            ++n_looks;
        }
        if (n_looks == 0) fail(i, "expected a colour or pattern", kModifier | kColour | kPattern);
        return i;
    }

    // A colour phrase: modifiers, then colours. Returns the index after it.
    size_t skip_colour_phrase(size_t i) const {
        while (has(i, kModifier)) ++i;
        while (has(i, kColour)) ++i;
        return i;
    }

    // Evaluates lexemes [b, e) as a colour phrase; without colour words the modifiers adjust `current`.
    ColourValue colour_phrase(size_t b, size_t e, const std::array<uint8_t, 3>& current, float brightness) const {
        ColourValue c;
        int n_colours = 0;
        std::array<float, 3> sum{0.f, 0.f, 0.f};
        for (size_t j = b; j < e; ++j) {
            if (!has(j, kModifier) && has(j, kColour)) {
                for (int k = 0; k < 3; ++k) sum[size_t(k)] += info(j).colour[size_t(k)];
                ++n_colours;
            }
        }
        if (n_colours > 0) {
            for (int k = 0; k < 3; ++k) c.rgb[size_t(k)] = sum[size_t(k)] / float(n_colours);
            c.brightness = 1.f;
        } else {
            for (int k = 0; k < 3; ++k) c.rgb[size_t(k)] = float(current[size_t(k)]);
            c.brightness = brightness;
        }
        for (size_t j = b; j < e; ++j) {
            if (has(j, kModifier)) apply_modifier(info(j), c);
        }
        return c;
    }

    // "light" before a colour word or another modifier is a modifier; otherwise a fog amount.
    bool is_fog_amount_here(size_t i) const {
        if (!has(i, kFogAmount)) return false;
        if (has(i, kModifier) && has(i + 1, kModifier | kColour)) return false;
        return true;
    }

    // Fog looks in [i, end): fog amounts and colour phrases. `after_verb`: at least one look is required.
    size_t parse_fog_looks(size_t i, size_t end, Style& style, bool after_verb) {
        size_t n_looks = 0;
        while (i < end) {
            if (after_verb && n_looks > 0 && has(i, kAnd)) {
                ++i;
                if (i >= end) fail(i, "expected a fog amount or a colour", kFogAmount | kModifier | kColour);
            }
            if (is_fog_amount_here(i)) {
                style.fog = info(i).fog;
                ++i;
            } else if (has(i, kModifier | kColour)) {
                const size_t start = i;
                i = skip_colour_phrase(i);
                ColourValue c = colour_phrase(start, i, style.fog_color, 1.f);
                for (float& v : c.rgb) v *= std::min(1.6f, std::max(0.3f, c.brightness));
                style.fog_color = to_rgb8(c.rgb);
            } else {
                fail(i, after_verb ? "expected a fog amount or a colour" : "expected a fog amount, a colour or 'fog'",
                     kFogAmount | kModifier | kColour | (after_verb ? 0u : kFogNoun));
            }
            ++n_looks;
        }
        if (n_looks == 0) fail(i, "expected a fog amount or a colour", kFogAmount | kModifier | kColour);
        return i;
    }

    // "<fog amounts/colours> fog" or "<light level> light".
    size_t parse_prefix_form(size_t i, Style& style) {
        const size_t start = i;
        while (i < m_n && !has(i, kFogNoun) && !(has(i, kLightNoun) && i + 1 == m_n)) {
            if (!has(i, kFogAmount | kLightLevel | kModifier | kColour)) {
                fail(i, "expected a fog amount, a colour, a light level, 'fog' or 'light'",
                     kFogAmount | kLightLevel | kModifier | kColour | kFogNoun | kLightNoun);
            }
            ++i;
        }
        if (i >= m_n) fail(i, "expected 'fog' or 'light'", kFogNoun | kLightNoun);
        const size_t head = i;
        if (has(head, kFogNoun)) {
            if (head == start)
                fail(head, "expected a fog amount or a colour before 'fog'", kFogAmount | kModifier | kColour);
            // Every word before 'fog' must be a fog amount or part of a colour phrase.
            for (size_t j = start; j < head; ++j) {
                if (!has(j, kFogAmount | kModifier | kColour)) {
                    fail(j, "expected a fog amount or a colour before 'fog'", kFogAmount | kModifier | kColour);
                }
            }
            parse_fog_looks(start, head, style, false);
        } else {
            if (head == start) fail(head, "expected a light level before 'light'", kLightLevel);
            if (!has(start, kLightLevel)) fail(start, "expected a light level before 'light'", kLightLevel);
            if (head != start + 1) fail(start + 1, "expected 'light'", kLightNoun);
            style.light = info(start).light;
        }
        return head + 1;
    }

    const VocabData& m_vocab;
    const std::string& m_prompt;
    const std::vector<Lexeme>& m_lx;
    size_t m_begin;
    size_t m_n;
    std::vector<int> m_targets;
};

std::vector<Lexeme> VocabData::lex(const std::string& prompt) const {
    std::vector<Lexeme> out;
    int word_no = 0;
    size_t i = 0;
    while (i < prompt.size()) {
        const char c = prompt[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
        } else if (c == ';' || c == ',' || c == '.') {
            Lexeme l;
            l.text = ";";
            l.column = int(i) + 1;
            l.separator = true;
            out.push_back(l);
            ++i;
        } else if (is_word_char(c)) {
            size_t j = i;
            while (j < prompt.size() && is_word_char(prompt[j])) ++j;
            Lexeme l;
            l.text = lower(prompt.substr(i, j - i));
            l.column = int(i) + 1;
            l.word_no = ++word_no;
            auto it = index.find(l.text);
            // Special tokens cannot be typed as words.
            l.id = (it == index.end() || it->second == pad || it->second == sep) ? -1 : it->second;
            out.push_back(l);
            i = j;
        } else {
            DC_FAIL("prompt \"" << prompt << "\": unexpected character '" << c << "' at column " << i + 1
                                << "; expected words (letters), or ';' ',' '.' between clauses");
        }
    }
    return out;
}

Style VocabData::parse(const std::string& prompt, std::vector<Lexeme>* lexemes_out) const {
    std::vector<Lexeme> lx = lex(prompt);
    Style style = Style::defaults();
    size_t b = 0;
    while (b < lx.size()) {
        size_t e = b;
        while (e < lx.size() && !lx[e].separator) ++e;
        if (e > b) ClauseParser(*this, prompt, lx, b, e).parse(style);
        b = e + 1;
    }
    if (lexemes_out) *lexemes_out = std::move(lx);
    return style;
}

}  // namespace

struct Vocabulary::Impl : VocabData {};

Vocabulary Vocabulary::load(const std::string& path) {
    const std::string text = read_text_file(path);
    auto impl = std::make_shared<Impl>();
    impl->source = path;
    std::istringstream in(text);
    std::string line;
    int line_no = 0;
    const std::vector<std::string>& mat_names = material_names();
    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t hash = line.find('#');
        if (hash != std::string::npos) line = line.substr(0, hash);
        std::istringstream ls(line);
        std::string kind, word;
        if (!(ls >> kind)) continue;
        const std::string where = path + ":" + std::to_string(line_no);
        DC_CHECK(ls >> word, where << ": expected a word after '" << kind << "'");
        word = lower(word);
        std::vector<std::string> args;
        for (std::string a; ls >> a;) args.push_back(a);

        auto number = [&](size_t k, float lo, float hi) {
            DC_CHECK(k < args.size(),
                     where << ": expected " << k + 1 << " value(s) after '" << word << "', found " << args.size());
            char* endp = nullptr;
            const float v = std::strtof(args[k].c_str(), &endp);
            DC_CHECK(endp && *endp == '\0' && v >= lo && v <= hi,
                     where << ": expected a number in [" << lo << ", " << hi << "], found '" << args[k] << "'");
            return v;
        };

        int id;
        auto it = impl->index.find(word);
        if (it == impl->index.end()) {
            id = int(impl->words.size());
            impl->index.emplace(word, id);
            impl->words.push_back(word);
            WordInfo wi;
            wi.text = word;
            impl->info.push_back(wi);
        } else {
            id = it->second;
        }
        WordInfo& wi = impl->info[size_t(id)];
        size_t n_args = 0;
        if (kind == "special") {
            DC_CHECK(word == "<pad>" || word == "<sep>",
                     where << ": expected '<pad>' or '<sep>', found '" << word << "'");
            (word == "<pad>" ? impl->pad : impl->sep) = id;
        } else if (kind == "grammar") {
            n_args = 1;
            DC_CHECK(!args.empty(), where << ": expected a grammar role after '" << word << "'");
            static const std::vector<std::pair<std::string, uint32_t>> roles = {
                {"article", kArticle}, {"all", kAll},     {"walls", kWalls},    {"verb", kVerb},
                {"and", kAnd},         {"fog", kFogNoun}, {"light", kLightNoun}};
            bool found = false;
            for (const auto& [name, bit] : roles) {
                if (args[0] == name) {
                    wi.roles |= bit;
                    found = true;
                }
            }
            DC_CHECK(found, where << ": expected a grammar role (article, all, walls, verb, and, fog, light), found '"
                                  << args[0] << "'");
        } else if (kind == "material") {
            n_args = 1;
            DC_CHECK(!args.empty(), where << ": expected a material name after '" << word << "'");
            auto m = std::find(mat_names.begin(), mat_names.end(), args[0]);
            DC_CHECK(m != mat_names.end(), where
                                               << ": expected a material name (brick, metal, stone, wood, tile, moss, "
                                                  "floor, ceiling), found '"
                                               << args[0] << "'");
            wi.roles |= kMaterial;
            wi.material = int(m - mat_names.begin());
        } else if (kind == "pattern") {
            n_args = 1;
            DC_CHECK(!args.empty(), where << ": expected a pattern name after '" << word << "'");
            bool found = false;
            for (Pattern p : {Pattern::plain, Pattern::stripes, Pattern::checker, Pattern::brick, Pattern::dots}) {
                if (args[0] == pattern_name(p)) {
                    wi.pattern = p;
                    found = true;
                }
            }
            DC_CHECK(found, where << ": expected a pattern name (plain, stripes, checker, brick, dots), found '"
                                  << args[0] << "'");
            wi.roles |= kPattern;
        } else if (kind == "colour") {
            n_args = 3;
            for (size_t k = 0; k < 3; ++k) wi.colour[k] = number(k, 0.f, 255.f);
            wi.roles |= kColour;
        } else if (kind == "modifier") {
            DC_CHECK(!args.empty() && args.size() % 2 == 0, where << ": expected '<op> <value>' pairs after '" << word
                                                                  << "', found " << args.size() << " value(s)");
            n_args = args.size();
            for (size_t k = 0; k < args.size(); k += 2) {
                ModOp op;
                if (args[k] == "brightness")
                    op = ModOp::brightness;
                else if (args[k] == "whiten")
                    op = ModOp::whiten;
                else if (args[k] == "blacken")
                    op = ModOp::blacken;
                else if (args[k] == "saturate")
                    op = ModOp::saturate;
                else
                    DC_FAIL(where << ": expected a modifier op (brightness, whiten, blacken, saturate), found '"
                                  << args[k] << "'");
                const bool fraction = op == ModOp::whiten || op == ModOp::blacken;
                wi.mods.emplace_back(op, number(k + 1, 0.f, fraction ? 1.f : 4.f));
            }
            wi.roles |= kModifier;
        } else if (kind == "fog") {
            n_args = 1;
            wi.fog = number(0, 0.f, 4.f);
            wi.roles |= kFogAmount;
        } else if (kind == "light") {
            n_args = 1;
            wi.light = number(0, 0.05f, 4.f);
            wi.roles |= kLightLevel;
        } else {
            DC_FAIL(where << ": expected an entry kind (special, grammar, material, pattern, colour, modifier, fog, "
                             "light), found '"
                          << kind << "'");
        }
        DC_CHECK(args.size() == n_args,
                 where << ": expected " << n_args << " value(s) after '" << word << "', found " << args.size());
    }
    DC_CHECK(impl->pad >= 0 && impl->sep >= 0, path << ": expected 'special <pad>' and 'special <sep>' entries");
    for (uint32_t needed : {kArticle, kWalls, kVerb, kAnd, kFogNoun, kLightNoun, kMaterial, kPattern, kColour}) {
        bool any = false;
        for (const WordInfo& wi : impl->info) any = any || (wi.roles & needed);
        DC_CHECK(any, path << ": the vocabulary lacks a word class the grammar needs (role bit " << needed << ")");
    }
    Vocabulary v;
    v.m_impl = std::move(impl);
    return v;
}

Vocabulary Vocabulary::load_default() {
    return load(asset_path("prompt_vocab.txt"));
}

Style Vocabulary::parse(const std::string& prompt) const {
    DC_CHECK(m_impl, "Vocabulary used before load()");
    return m_impl->parse(prompt, nullptr);
}

std::vector<int32_t> Vocabulary::tokenize(const std::string& prompt, int max_len) const {
    DC_CHECK(m_impl, "Vocabulary used before load()");
    std::vector<Lexeme> lx;
    m_impl->parse(prompt, &lx);  // validates words and grammar
    std::vector<int32_t> ids;
    bool pending_sep = false;
    for (const Lexeme& l : lx) {
        if (l.separator) {
            pending_sep = !ids.empty();
            continue;
        }
        if (pending_sep) ids.push_back(m_impl->sep);
        pending_sep = false;
        ids.push_back(l.id);
    }
    DC_CHECK(max_len <= 0 || int(ids.size()) <= max_len,
             "prompt \"" << prompt << "\" has " << ids.size() << " tokens, expected at most max_len = " << max_len);
    if (max_len > 0) ids.resize(size_t(max_len), m_impl->pad);
    return ids;
}

int Vocabulary::size() const {
    return m_impl ? int(m_impl->words.size()) : 0;
}
int Vocabulary::pad_id() const {
    return m_impl ? m_impl->pad : -1;
}
int Vocabulary::sep_id() const {
    return m_impl ? m_impl->sep : -1;
}

const std::vector<std::string>& Vocabulary::words() const {
    static const std::vector<std::string> empty;
    return m_impl ? m_impl->words : empty;
}

}  // namespace dc::game
