// Weights I/O: safetensors round trip and every loader error a user can meet (missing tensor, wrong shape, wrong
// dtype, bad checksum, truncated file, not a safetensors file).
#include <unistd.h>

#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/common.h"
#include "world_model/safetensors_impl.h"
#include "world_model/world_model.h"
#include "world_model/world_model_impl.h"

namespace fs = std::filesystem;
using dc::wm::ModelConfig;

namespace {

fs::path temp_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("dc_wm_test_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const dc::Error& e) {
        return e.what();
    }
    return "(no error)";
}

// Writes a tiny model (random weights) to dir/model.json and returns the path.
std::string write_tiny_model(const fs::path& dir, dc::st::DType dtype = dc::st::DType::bf16) {
    ModelConfig cfg = ModelConfig::preset("tiny");
    dc::game::Vocabulary vocab = dc::game::Vocabulary::load_default();
    cfg.dit.vocab_size = vocab.size();
    cfg.dit.vocab_sha256 = dc::wm::vocab_sha256(vocab);
    dc::wm::ModelImpl m(cfg, "cpu");
    const std::string path = (dir / "model.json").string();
    dc::wm::export_model(m.net, path, {{"training", {{"ae_steps", 0}, {"dit_steps", 0}}}}, dtype);
    return path;
}

void rewrite_shard(const std::string& model_json, const std::function<void(std::vector<
                                                                     std::pair<std::string, at::Tensor>>&)>& edit,
                   dc::st::DType dtype, bool update_sha) {
    nlohmann::json j = nlohmann::json::parse(dc::read_text_file(model_json));
    const fs::path dir = fs::path(model_json).parent_path();
    const std::string shard = (dir / j["shards"][0]["file"].get<std::string>()).string();
    dc::st::File f = dc::st::File::read(shard);
    std::vector<std::pair<std::string, at::Tensor>> ts;
    for (const auto& e : f.entries()) ts.emplace_back(e.name, f.tensor(e.name));
    edit(ts);
    dc::st::save(shard, ts, dtype);
    if (update_sha) {
        j["shards"][0]["sha256"] = dc::sha256_file(shard);
        std::ofstream(model_json) << j.dump(2);
    }
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes and values (f32 exact, bf16 rounded)", "[world_model]") {
    const fs::path dir = temp_dir("st");
    at::manual_seed(3);
    at::Tensor a = at::randn({3, 4, 5});
    at::Tensor b = at::arange(7, at::kFloat);
    at::Tensor e = at::zeros({0, 3});
    dc::st::save((dir / "f32.safetensors").string(), {{"b", b}, {"a", a}, {"empty", e}}, dc::st::DType::f32,
                     {{"note", "hello"}});
    auto f = dc::st::File::read((dir / "f32.safetensors").string());
    REQUIRE(f.entries().size() == 3);
    CHECK(f.metadata().at("note") == "hello");
    CHECK(f.find("a")->shape == std::vector<int64_t>{3, 4, 5});
    CHECK(f.find("a")->dtype == "F32");
    CHECK(at::equal(f.tensor("a"), a));
    CHECK(at::equal(f.tensor("b"), b));
    CHECK(f.tensor("empty").sizes() == e.sizes());
    CHECK(f.find("missing") == nullptr);

    dc::st::save((dir / "bf16.safetensors").string(), {{"a", a}}, dc::st::DType::bf16);
    auto g = dc::st::File::read((dir / "bf16.safetensors").string());
    CHECK(g.find("a")->dtype == "BF16");
    CHECK(at::equal(g.tensor("a"), a.to(at::kBFloat16).to(at::kFloat)));
    // header is 8-byte aligned and the file is exactly header + data
    std::ifstream in((dir / "bf16.safetensors").string(), std::ios::binary | std::ios::ate);
    const auto size = static_cast<uint64_t>(in.tellg());
    in.seekg(0);
    uint64_t hn = 0;
    in.read(reinterpret_cast<char*>(&hn), 8);
    CHECK(hn % 8 == 0);
    CHECK(size == 8 + hn + 60 * 2);
    fs::remove_all(dir);
}

TEST_CASE("sharded export stays under the shard limit and loads back bit-exactly", "[world_model]") {
    const fs::path dir = temp_dir("shards");
    at::manual_seed(1);
    std::vector<std::pair<std::string, at::Tensor>> ts;
    for (int i = 0; i < 6; ++i) ts.emplace_back("t" + std::to_string(i), at::randn({1000}));
    auto shards = dc::st::save_sharded(dir.string(), "m", ts, dc::st::DType::f32, 8000);
    CHECK(shards.size() == 3);   // two 4000-byte tensors per shard
    for (const auto& s : shards) {
        CHECK(s.bytes < 8000 + 1024);
        CHECK(s.sha256 == dc::sha256_file((dir / s.file).string()));
    }
    auto f = dc::st::File::read((dir / shards[1].file).string());
    CHECK(at::equal(f.tensor("t2"), ts[2].second));
    fs::remove_all(dir);
}

TEST_CASE("a model file loads and says what it is", "[world_model]") {
    const fs::path dir = temp_dir("load_ok");
    const std::string path = write_tiny_model(dir);
    auto m = dc::WorldModel::load(path, "cpu");
    CHECK(m->n_layers() == ModelConfig::preset("tiny").dit.depth);
    CHECK(m->frame_width() == 128);
    CHECK(m->describe().find("params") != std::string::npos);
    // every shard is at most 15 MiB
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") CHECK(fs::file_size(e.path()) <= 15u * 1024 * 1024);
    fs::remove_all(dir);
}

TEST_CASE("loader errors name exactly what mismatched", "[world_model]") {
    using dc::st::DType;
    const fs::path dir = temp_dir("load_err");
    SECTION("missing tensor") {
        const std::string path = write_tiny_model(dir);
        rewrite_shard(path, [](auto& ts) { ts.erase(ts.begin()); }, DType::bf16, true);
        const std::string err = error_of([&] { dc::WorldModel::load(path); });
        CHECK(err.find("missing tensor 'ae.dec.in.b'") != std::string::npos);
    }
    SECTION("wrong shape") {
        const std::string path = write_tiny_model(dir);
        rewrite_shard(path, [](auto& ts) { ts[0].second = at::zeros({3}); }, DType::bf16, true);
        const std::string err = error_of([&] { dc::WorldModel::load(path); });
        CHECK(err.find("tensor 'ae.dec.in.b': shape [3], expected [48]") != std::string::npos);
    }
    SECTION("wrong dtype") {
        const std::string path = write_tiny_model(dir);
        rewrite_shard(path, [](auto&) {}, DType::f32, true);
        const std::string err = error_of([&] { dc::WorldModel::load(path); });
        CHECK(err.find("dtype F32, expected BF16") != std::string::npos);
    }
    SECTION("bad checksum") {
        const std::string path = write_tiny_model(dir);
        rewrite_shard(path, [](auto& ts) { ts[0].second = ts[0].second + 1; }, DType::bf16, false);
        const std::string err = error_of([&] { dc::WorldModel::load(path); });
        CHECK(err.find("SHA-256") != std::string::npos);
        CHECK(err.find("corrupted") != std::string::npos);
    }
    SECTION("truncated file") {
        const std::string path = write_tiny_model(dir);
        nlohmann::json j = nlohmann::json::parse(dc::read_text_file(path));
        const fs::path shard = dir / j["shards"][0]["file"].get<std::string>();
        fs::resize_file(shard, fs::file_size(shard) / 2);
        const std::string err = error_of([&] { dc::WorldModel::load(path); });
        CHECK(err.find("truncated") != std::string::npos);
    }
    SECTION("not a safetensors file") {
        const std::string path = write_tiny_model(dir);
        nlohmann::json j = nlohmann::json::parse(dc::read_text_file(path));
        const fs::path shard = dir / j["shards"][0]["file"].get<std::string>();
        std::ofstream(shard, std::ios::trunc) << "<html>this is a web page, not weights</html>";
        const std::string err = error_of([&] { dc::WorldModel::load(path); });
        CHECK(err.find("is not a safetensors file") != std::string::npos);
        std::ofstream(shard, std::ios::trunc) << "abc";
        CHECK(error_of([&] { dc::WorldModel::load(path); }).find("is not a safetensors file") != std::string::npos);
    }
    SECTION("missing shard and foreign JSON") {
        const std::string path = write_tiny_model(dir);
        nlohmann::json j = nlohmann::json::parse(dc::read_text_file(path));
        fs::remove(dir / j["shards"][0]["file"].get<std::string>());
        CHECK(error_of([&] { dc::WorldModel::load(path); }).find("is missing") != std::string::npos);
        std::ofstream(dir / "other.json") << R"({"name": "something else"})";
        CHECK(error_of([&] { dc::WorldModel::load((dir / "other.json").string()); })
                  .find("not a Dreamcaster model file") != std::string::npos);
    }
    fs::remove_all(dir);
}
