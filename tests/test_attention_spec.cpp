// AttentionSpec parsing: types, parameters, defaults, and the errors a user sees for bad ones.
#include <catch2/catch.hpp>

#include "attention/attention.h"
#include "common/common.h"

namespace {

std::string error_of(const std::string& type, const std::string& params) {
    try {
        dc::make_attention(dc::AttentionSpec::parse(type, params));
    } catch (const dc::Error& e) {
        return e.message();
    }
    return "no error";
}

}  // namespace

TEST_CASE("attention types parse in any order and print canonically", "[attention]") {
    for (const auto& t : dc::attention_types()) CHECK(dc::make_attention(dc::AttentionSpec::parse(t)) != nullptr);
    auto s = dc::AttentionSpec::parse("annca+annsa+tempcache", R"({"tempcache": {"tau": 0.85}})");
    CHECK(s.type == "tempcache+annsa+annca");
    CHECK(s.to_string() == R"(tempcache+annsa+annca {"tempcache":{"tau":0.85}})");
    dc::AttentionConfig c = s.config();
    CHECK(c.tempcache);
    CHECK(c.annsa);
    CHECK(c.annca);
    CHECK(!c.window);
    CHECK(c.tempcache_params.tau == 0.85);
    CHECK(c.annsa_params.bits == dc::AnnSAParams{}.bits);
    CHECK(dc::AttentionSpec::parse("tempcache+window").type == "tempcache+window");
    // A config written out and parsed back is the same config.
    c.window = true;
    c.window_params.frames = 7;
    c.annca_params.probes = 3;
    dc::AttentionConfig back = dc::AttentionSpec::from_config(c).config();
    CHECK(back.window);
    CHECK(back.window_params.frames == 7);
    CHECK(back.annca_params.probes == 3);
    CHECK(back.tempcache_params.tau == 0.85);
    // Defaults of every part are listed for the GUI.
    const std::string d = dc::default_attention_params_json();
    for (const char* key : {"\"tau\":0.9", "\"frames\":16", "\"dense_step_fraction\":0.3", "\"lookback\":1"})
        CHECK(d.find(key) != std::string::npos);
}

TEST_CASE("bad attention types and parameters say what was expected and what was found", "[attention]") {
    CHECK(error_of("flash", "{}").find("unknown attention type \"flash\"") != std::string::npos);
    CHECK(error_of("flash", "{}").find("dense, window, tempcache, annsa, annca") != std::string::npos);
    CHECK(error_of("annsa+annsa", "{}").find("names \"annsa\" twice") != std::string::npos);
    CHECK(error_of("dense+annsa", "{}").find("part \"dense\"") != std::string::npos);
    CHECK(error_of("annsa+", "{}").find("ends with '+'") != std::string::npos);
    CHECK(error_of("", "{}").find("attention type is empty") != std::string::npos);
    CHECK(error_of("dense", "[1]").find("must be a JSON object") != std::string::npos);
    CHECK(error_of("dense", "{tau").find("unparsable") != std::string::npos);
    CHECK(error_of("tempcache", R"({"tau": 0.9})").find("unknown attention params key \"tau\"") != std::string::npos);
    CHECK(error_of("tempcache", R"({"tempcache": 0.9})").find("\"tempcache\" must be an object") !=
          std::string::npos);
    CHECK(error_of("tempcache", R"({"tempcache": {"thau": 0.9}})") ==
          "unknown parameter \"tempcache.thau\": tempcache accepts tau, lookback, match_index, index_min_candidates");
    CHECK(error_of("tempcache", R"({"tempcache": {"tau": -0.1}})") ==
          "tempcache.tau must be in [0, 2] (cosine threshold; > 1 never merges), found -0.1");
    CHECK(error_of("tempcache", R"({"tempcache": {"tau": 2.5}})").find("found 2.5") != std::string::npos);
    CHECK(error_of("tempcache", R"({"tempcache": {"tau": "high"}})").find("must be a number") != std::string::npos);
    CHECK(error_of("tempcache", R"({"tempcache": {"lookback": 0}})") == "tempcache.lookback must be in 1..∞, found 0");
    CHECK(error_of("tempcache", R"({"tempcache": {"match_index": "ivf"}})") ==
          "tempcache.match_index must be \"exact\", \"lsh\" or \"sq8\", found \"ivf\"");
    CHECK(error_of("annsa", R"({"annsa": {"bits": 0}})") == "annsa.bits must be in 1..16, found 0");
    CHECK(error_of("annsa", R"({"annsa": {"bits": 17}})") == "annsa.bits must be in 1..16, found 17");
    CHECK(error_of("annsa", R"({"annsa": {"bits": 6.5}})") ==
          "annsa.bits must be an integer in 1..16, found 6.5");
    CHECK(error_of("annsa", R"({"annsa": {"probes": 0}})").find("annsa.probes must be in 1..") != std::string::npos);
    CHECK(error_of("annsa", R"({"annsa": {"dense_step_fraction": 1.5}})") ==
          "annsa.dense_step_fraction must be in [0, 1], found 1.5");
    CHECK(error_of("annsa", R"({"annsa": {"index": "hnsw"}})").find("\"lsh\", \"sq8\" or \"exact\"") !=
          std::string::npos);
    CHECK(error_of("annca", R"({"annca": {"bits": 0}})") == "annca.bits must be in 1..16, found 0");
    CHECK(error_of("annca", R"({"annca": {"probes": 0}})").find("annca.probes must be in 1..") != std::string::npos);
    CHECK(error_of("annca", R"({"annca": {"top_k": 0}})").find("annca.top_k must be in 1..") != std::string::npos);
    CHECK(error_of("window", R"({"window": {"frames": 0}})") == "window.frames must be in 1..∞, found 0");
    CHECK(error_of("window", R"({"window": {"sinks": -1}})") == "window.sinks must be in 0..∞, found -1");
    // Parameters of parts that are off are still validated (the app keeps them while toggling).
    CHECK(error_of("dense", R"({"annsa": {"bits": 0}})") == "annsa.bits must be in 1..16, found 0");
    CHECK(error_of("dense", R"({"annsa": {"bits": 8}})") == "no error");
}
