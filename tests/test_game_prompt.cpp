// The prompt vocabulary and grammar (assets/prompt_vocab.txt).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "common/common.h"
#include "game/game.h"

using namespace dc::game;

namespace {

const Vocabulary& vocab() {
    static const Vocabulary v = Vocabulary::load_default();
    return v;
}

std::string error_of(const std::string& prompt) {
    try {
        vocab().parse(prompt);
    } catch (const dc::Error& e) {
        return e.message();
    }
    return "(no error)";
}

int id_of(const std::string& word) {
    const auto& w = vocab().words();
    return int(std::find(w.begin(), w.end(), word) - w.begin());
}

std::array<uint8_t, 3> rgb(int r, int g, int b) {
    return {uint8_t(r), uint8_t(g), uint8_t(b)};
}

}  // namespace

TEST_CASE("the documented example prompts parse into the expected style", "[game]") {
    const Style d = Style::defaults();
    CHECK(vocab().parse("") == d);
    CHECK(vocab().parse(" ; , ") == d);

    const Style s = vocab().parse(
        "the brick walls are dark red; the metal walls are blue and striped; the floor is mossy green; thick fog");
    CHECK(s.materials[0].color == rgb(190, 40, 36));  // red
    CHECK(s.materials[0].brightness == Approx(0.55f));
    CHECK(s.materials[0].pattern == d.materials[0].pattern);  // the clause named no pattern
    CHECK(s.materials[1].color == rgb(46, 84, 190));          // blue
    CHECK(s.materials[1].pattern == Pattern::stripes);
    CHECK(s.materials[size_t(kMaterialFloor)].color == rgb(69, 130, 54));  // mean of mossy and green
    CHECK(s.fog == Approx(0.2f));
    for (int m : {2, 3, 4, 5, kMaterialCeiling}) {
        CHECK(s.materials[size_t(m)].color == d.materials[size_t(m)].color);
        CHECK(s.materials[size_t(m)].pattern == d.materials[size_t(m)].pattern);
    }

    const Style c = vocab().parse("the ceiling is pale yellow and checkered");
    CHECK(c.materials[size_t(kMaterialCeiling)].pattern == Pattern::checker);
    const auto& cc = c.materials[size_t(kMaterialCeiling)].color;
    CHECK(int(cc[0]) > 222);  // paler than yellow (222, 198, 52)
    CHECK(int(cc[2]) > 52 + 60);
    CHECK(vocab().parse("dim light").light == Approx(0.6f));
    CHECK(vocab().parse("no fog").fog == 0.f);
    CHECK(vocab().parse("the light is bright").light == Approx(1.3f));
    CHECK(vocab().parse("light fog").fog == Approx(0.05f));
    CHECK(vocab().parse("thick white fog").fog_color == rgb(236, 236, 230));
    CHECK(vocab().parse("the fog is thick and grey").fog == Approx(0.2f));
    CHECK(vocab().parse("The Brick Walls Are RED.").materials[0].color == rgb(190, 40, 36));
}

TEST_CASE("clauses name one, several or all materials and apply left to right", "[game]") {
    const Style d = Style::defaults();
    const Style all = vocab().parse("the walls are grey");
    for (int m = 0; m < kNumWallMaterials; ++m) CHECK(all.materials[size_t(m)].color == rgb(128, 128, 128));
    CHECK(all.materials[size_t(kMaterialFloor)].color == d.materials[size_t(kMaterialFloor)].color);
    CHECK(vocab().parse("all walls are grey") == all);

    const Style two = vocab().parse("the wood and stone walls are dotted");
    CHECK(two.materials[3].pattern == Pattern::dots);
    CHECK(two.materials[2].pattern == Pattern::dots);
    CHECK(two.materials[0].pattern == d.materials[0].pattern);
    const Style fc = vocab().parse("the floor and the ceiling are brick");
    CHECK(fc.materials[size_t(kMaterialFloor)].pattern == Pattern::brick);
    CHECK(fc.materials[size_t(kMaterialCeiling)].pattern == Pattern::brick);

    const Style later = vocab().parse("the moss walls are red, the moss walls are blue");
    CHECK(later.materials[5].color == rgb(46, 84, 190));
    // Modifiers alone adjust the current colour.
    const Style darker = vocab().parse("the tile walls are dark");
    CHECK(darker.materials[4].color == d.materials[4].color);
    CHECK(darker.materials[4].brightness == Approx(0.55f));
}

TEST_CASE("unknown words name the word, its position and the accepted words", "[game]") {
    const std::string e = error_of("the metal walls are purpel");
    CHECK_THAT(e, Catch::Contains("unknown word 'purpel'"));
    CHECK_THAT(e, Catch::Contains("word 5, column 21"));
    CHECK_THAT(e, Catch::Contains("expected a colour or pattern after 'are'"));
    CHECK_THAT(e, Catch::Contains("red"));
    CHECK_THAT(e, Catch::Contains("striped"));
    CHECK_THAT(e, Catch::Contains("dark"));

    const std::string m = error_of("dim light; the brik walls are red");
    CHECK_THAT(m, Catch::Contains("unknown word 'brik'"));
    CHECK_THAT(m, Catch::Contains("word 4, column 16"));
    CHECK_THAT(m, Catch::Contains("brick, metal, stone, wood, wooden, tile, moss, floor, ceiling"));
}

TEST_CASE("malformed clauses say what was expected and what was found", "[game]") {
    CHECK_THAT(error_of("the brick walls are"),
               Catch::Contains("expected a colour or pattern after 'are', found the end of the clause"));
    CHECK_THAT(error_of("the brick walls blue"),
               Catch::Contains("expected 'are' or 'is' after 'walls', found 'blue' (word 4, column 17)"));
    CHECK_THAT(error_of("thick"), Catch::Contains("expected 'fog' or 'light' after 'thick', found the end"));
    CHECK_THAT(error_of("the floor is red and blue"),
               Catch::Contains("expected a pattern (this clause already set a colour)"));
    CHECK_THAT(error_of("the floor walls are red"), Catch::Contains("'walls' follows only wall materials"));
    CHECK_THAT(error_of("red walls"), Catch::Contains("expected a fog amount, a colour, a light level, 'fog' or "
                                                      "'light' after 'red', found 'walls'"));
    CHECK_THAT(error_of("dim fog"), Catch::Contains("expected a fog amount or a colour before 'fog'"));
    CHECK_THAT(error_of("thick light"), Catch::Contains("expected a light level before 'light'"));
    CHECK_THAT(error_of("the brick walls are red fog"), Catch::Contains("found 'fog'"));
    CHECK_THAT(error_of("the walls are red!"), Catch::Contains("unexpected character '!' at column 18"));
    CHECK_THAT(error_of("the <pad>"), Catch::Contains("unexpected character '<'"));
}

TEST_CASE("set_prompt keeps the old style when the prompt is bad", "[game]") {
    Game g(Level::load_named("e1m1"));
    g.set_prompt("the brick walls are blue", vocab());
    const Style before = g.style();
    CHECK_THROWS_AS(g.set_prompt("the brick walls are bleu", vocab()), dc::Error);
    CHECK(g.style() == before);
    CHECK(g.prompt() == "the brick walls are blue");
}

TEST_CASE("tokenize gives stable ids, separators between clauses and padding", "[game]") {
    const auto& words = vocab().words();
    CHECK(vocab().size() == int(words.size()));
    CHECK(words[size_t(vocab().pad_id())] == "<pad>");
    const int sep = id_of("<sep>");
    REQUIRE(sep < vocab().size());
    // Ids are positions in the file: <pad> is the first entry, <sep> the second, "the" the first grammar word.
    CHECK(vocab().pad_id() == 0);
    CHECK(sep == 1);
    CHECK(id_of("the") == 2);

    const auto ids = vocab().tokenize("the brick walls are dark red; thick fog", 16);
    REQUIRE(ids.size() == 16);
    const std::vector<int32_t> expect = {id_of("the"), id_of("brick"), id_of("walls"),
                                         id_of("are"), id_of("dark"),  id_of("red"),
                                         sep,          id_of("thick"), id_of("fog")};
    CHECK(std::vector<int32_t>(ids.begin(), ids.begin() + 9) == expect);
    for (size_t i = 9; i < ids.size(); ++i) CHECK(ids[i] == vocab().pad_id());
    // Leading, trailing and repeated separators collapse; max_len 0 means no padding.
    CHECK(vocab().tokenize(";; dim light ,, no fog ;", 0) ==
          std::vector<int32_t>{id_of("dim"), id_of("light"), sep, id_of("no"), id_of("fog")});
    CHECK(vocab().tokenize("", 4) == std::vector<int32_t>(4, vocab().pad_id()));
    // Too long for max_len, and unknown words, are errors.
    CHECK_THROWS_WITH(vocab().tokenize("the brick walls are dark red", 5),
                      Catch::Contains("has 6 tokens, expected at most max_len = 5"));
    CHECK_THROWS_WITH(vocab().tokenize("the brick walls are dark rd", 128), Catch::Contains("unknown word 'rd'"));
    // A 128-token prompt is accepted at the default max_len.
    std::string longp;
    for (int i = 0; i < 21; ++i) longp += "the brick walls are red; ";  // 21 * 6 - 1 = 125 tokens
    CHECK(vocab().tokenize(longp).size() == 128);
}

TEST_CASE("the vocabulary covers the required classes", "[game]") {
    int colours = 0;
    for (const char* c :
         {"red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "grey", "white", "black", "cyan"}) {
        colours += vocab().parse(std::string("the floor is ") + c).materials[size_t(kMaterialFloor)].color !=
                   Style::defaults().materials[size_t(kMaterialFloor)].color;
    }
    CHECK(colours == 12);
    for (const char* m : {"dark", "light", "pale", "bright"})
        CHECK_NOTHROW(vocab().parse(std::string("the floor is ") + m + " red"));
    const std::pair<const char*, Pattern> patterns[] = {{"plain", Pattern::plain},
                                                        {"striped", Pattern::stripes},
                                                        {"checkered", Pattern::checker},
                                                        {"brick", Pattern::brick},
                                                        {"dotted", Pattern::dots}};
    for (const auto& [word, p] : patterns) {
        CHECK(vocab().parse(std::string("the metal walls are ") + word).materials[1].pattern == p);
    }
    for (const auto& name : material_names()) {
        const bool wall = name != "floor" && name != "ceiling";
        CHECK_NOTHROW(vocab().parse("the " + name + (wall ? " walls" : "") + " are red"));
    }
}

TEST_CASE("vocabulary files are validated with file:line", "[game]") {
    const auto path = std::filesystem::temp_directory_path() / "dc_bad_vocab.txt";
    std::ofstream(path) << "special <pad>\nspecial <sep>\ncolour red 300 0 0\n";
    CHECK_THROWS_WITH(Vocabulary::load(path.string()),
                      Catch::Contains("dc_bad_vocab.txt:3: expected a number in [0, 255], found '300'"));
    std::ofstream(path) << "special <pad>\nspecial <sep>\nflavour sweet\n";
    CHECK_THROWS_WITH(Vocabulary::load(path.string()), Catch::Contains(":3: expected an entry kind"));
    std::filesystem::remove(path);
}
