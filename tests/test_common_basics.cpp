#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "common/common.h"

TEST_CASE("DC_CHECK throws dc::Error with the message and the location", "[common]") {
    try {
        int found = 3;
        DC_CHECK(found == 4, "expected 4, found " << found);
        FAIL("no throw");
    } catch (const dc::Error& e) {
        CHECK(e.message() == "expected 4, found 3");
        CHECK(e.where().find("test_common_basics.cpp:") == 0);
    }
}

TEST_CASE("SHA-256 matches the FIPS 180-4 test vectors", "[common]") {
    CHECK(dc::sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(dc::sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string long_msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(dc::sha256_hex(long_msg.data(), long_msg.size()) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    std::string million(1000000, 'a');
    auto path = std::filesystem::temp_directory_path() / "dc_sha_test.bin";
    std::ofstream(path, std::ios::binary) << million;
    CHECK(dc::sha256_file(path.string()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    std::filesystem::remove(path);
}

TEST_CASE("asset_path finds shipped assets and names the places it looked otherwise", "[common]") {
    CHECK(std::filesystem::exists(dc::asset_path("prompt_vocab.txt")));
    try {
        dc::asset_path("no/such/asset.bin");
        FAIL("no throw");
    } catch (const dc::Error& e) {
        CHECK(std::string(e.what()).find("no/such/asset.bin") != std::string::npos);
        CHECK(std::string(e.what()).find("DC_ASSETS") != std::string::npos);
    }
}

TEST_CASE("remove_tree removes a folder with nested files and links, and accepts a missing path", "[common]") {
    namespace fs = std::filesystem;
    const fs::path root = fs::temp_directory_path() / "dc_remove_tree_test";
    fs::remove_all(root);
    fs::create_directories(root / "a" / "b");
    std::ofstream(root / "a" / "b" / "f.bin") << "x";
    std::ofstream(root / "g.txt") << "y";
    const fs::path outside = fs::temp_directory_path() / "dc_remove_tree_target.txt";
    std::ofstream(outside) << "kept";
    fs::create_symlink(outside, root / "a" / "link");   // the link goes, its target stays
    dc::remove_tree(root.string());
    CHECK_FALSE(fs::exists(root));
    CHECK(fs::exists(outside));
    fs::remove(outside);
    dc::remove_tree(root.string());   // already gone: no error
    std::ofstream(root.string()) << "a plain file";
    dc::remove_tree(root.string());
    CHECK_FALSE(fs::exists(root));
}
