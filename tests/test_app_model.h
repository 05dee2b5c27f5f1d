// A world model for the app tests: the trainer's tiny preset, trained for a few steps once per build folder
// (<build>/test_models/tiny, guarded by a lock file so parallel test processes train it once), plus CSV helpers.
// Its frames are not good dreams; the tests check the app's plumbing (toggles, metrics, prompts, fallbacks).
#pragma once

#ifdef DC_HAVE_WORLD_MODEL
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "app/engine.h"
#include "common/common.h"
#include "world_model/trainer.h"  // no torch here: torch headers bring glog's CHECK, which would replace Catch's

namespace dc_test {

// Path of model.json of the tiny test model; trains it (about 15 s on 2 cores) when it is missing or no longer loads.
inline std::string tiny_model() {
    const std::filesystem::path dir = std::filesystem::path(DC_BINARY_DIR) / "test_models" / "tiny";
    std::filesystem::create_directories(dir.parent_path());
    const std::string lock_path = (dir.parent_path() / "tiny.lock").string();
    const int fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR, 0644);
    if (fd >= 0) ::flock(fd, LOCK_EX);
    const std::string model = (dir / "model.json").string();
    bool ok = false;
    if (std::filesystem::exists(model)) {
        try {
            dc::app::EngineConfig c;
            c.model_path = model;
            c.device = "cpu";
            dc::app::make_engine("neural", c);  // loads and checks the model file
            ok = true;
        } catch (const std::exception&) {
        }
    }
    if (!ok) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        dc::TrainOptions o;
        o.preset = "tiny";
        o.out_dir = dir.string();
        o.steps = 10;                   // DiT steps: enough for weights that react to prompt and action
        o.set = {"train.ae.steps=10"};  // autoencoder steps
        o.quiet = true;
        dc::train_world_model(o);
    }
    if (fd >= 0) {
        ::flock(fd, LOCK_UN);
        ::close(fd);
    }
    return model;
}

// A metrics CSV as rows of column name -> cell (quoted cells unquoted).
using CsvRow = std::map<std::string, std::string>;
inline std::vector<CsvRow> read_csv(const std::string& path) {
    std::ifstream in(path);
    std::vector<CsvRow> rows;
    std::string line;
    auto split = [](const std::string& l) {
        std::vector<std::string> cells;
        std::string cur;
        bool quoted = false;
        for (size_t i = 0; i < l.size(); ++i) {
            const char c = l[i];
            if (quoted) {
                if (c == '"' && i + 1 < l.size() && l[i + 1] == '"') {
                    cur += '"';
                    ++i;
                } else if (c == '"') {
                    quoted = false;
                } else {
                    cur += c;
                }
            } else if (c == '"') {
                quoted = true;
            } else if (c == ',') {
                cells.push_back(cur);
                cur.clear();
            } else {
                cur += c;
            }
        }
        cells.push_back(cur);
        return cells;
    };
    if (!std::getline(in, line)) return rows;
    const std::vector<std::string> header = split(line);
    while (std::getline(in, line)) {
        const auto cells = split(line);
        CsvRow r;
        for (size_t i = 0; i < header.size() && i < cells.size(); ++i) r[header[i]] = cells[i];
        rows.push_back(r);
    }
    return rows;
}

inline double cell(const CsvRow& r, const std::string& name) {
    auto it = r.find(name);
    if (it == r.end() || it->second.empty()) return -1;
    return std::stod(it->second);
}

}  // namespace dc_test
#endif  // DC_HAVE_WORLD_MODEL
