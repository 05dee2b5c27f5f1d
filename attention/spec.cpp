// AttentionSpec parsing/validation, parameter defaults, AttentionStats arithmetic.
// No torch headers here: this translation unit stays cheap to compile.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attention/attention_impl.h"
#include "common/common.h"

namespace dc {

// ---- stats ------------------------------------------------------------------------------------------------------

double AttentionStats::density() const {
    DC_CHECK(!pending_keys_attended.defined(), "AttentionStats::density: device counts not read back yet (call resolve())");
    return keys_available > 0 ? static_cast<double>(keys_attended) / static_cast<double>(keys_available) : 1.0;
}
double AttentionStats::recall() const {
    DC_CHECK(!pending_recall_sum.defined(), "AttentionStats::recall: device sums not read back yet (call resolve())");
    return recall_calls > 0 ? recall_sum / static_cast<double>(recall_calls) : -1;
}
double AttentionStats::cross_kept_fraction() const {
    DC_CHECK(!pending_cross_kept.defined(), "AttentionStats::cross_kept_fraction: device counts not read back yet (call resolve())");
    return cross_available > 0 ? static_cast<double>(cross_kept) / static_cast<double>(cross_available) : 1.0;
}
double AttentionStats::cross_recall() const {
    DC_CHECK(!pending_cross_recall_sum.defined(),
             "AttentionStats::cross_recall: device sums not read back yet (call resolve())");
    return cross_recall_calls > 0 ? cross_recall_sum / static_cast<double>(cross_recall_calls) : -1;
}
double AttentionStats::merge_rate() const {
    return committed > 0 ? static_cast<double>(merged) / static_cast<double>(committed) : 0.0;
}
void AttentionStats::add(const AttentionStats& o) {
    calls += o.calls;
    query_rows += o.query_rows;
    keys_available += o.keys_available;
    keys_attended += o.keys_attended;
    recall_sum += o.recall_sum;
    recall_calls += o.recall_calls;
    cross_available += o.cross_available;
    cross_kept += o.cross_kept;
    cross_recall_sum += o.cross_recall_sum;
    cross_recall_calls += o.cross_recall_calls;
    committed += o.committed;
    merged += o.merged;
    evicted += o.evicted;
    add_pending(o.pending_keys_attended, o.pending_cross_kept);
    for (auto [mine, theirs] : {std::pair{&pending_recall_sum, &o.pending_recall_sum},
                                std::pair{&pending_cross_recall_sum, &o.pending_cross_recall_sum}})
        if (theirs->defined()) *mine = mine->defined() ? mine->add(*theirs) : *theirs;
}

// ---- spec -------------------------------------------------------------------------------------------------------

namespace {

using json = nlohmann::json;

const char* const kParts[] = {"dense", "tempcache", "window", "annsa", "annca"};
const char* const kIndexKinds = "\"lsh\", \"sq8\" or \"exact\"";

std::string join_parts() { return "dense, window, tempcache, annsa, annca (joined by '+', e.g. tempcache+annsa+annca)"; }

// Reads one field of a part's object, checking type and range; `name` is "part.field" for messages.
class Reader {
public:
    Reader(const json& obj, std::string part) : m_obj(obj), m_part(std::move(part)) {}

    void check_known(std::initializer_list<const char*> names) const {
        for (auto it = m_obj.begin(); it != m_obj.end(); ++it) {
            bool ok = false;
            std::ostringstream list;
            for (const char* n : names) {
                ok = ok || it.key() == n;
                list << (list.tellp() > 0 ? ", " : "") << n;
            }
            DC_CHECK(ok, "unknown parameter \"" << m_part << "." << it.key() << "\": " << m_part
                                                << " accepts " << list.str());
        }
    }
    void integer(const char* name, int64_t& out, int64_t lo, int64_t hi) const {
        if (!m_obj.contains(name)) return;
        const json& j = m_obj.at(name);
        DC_CHECK(j.is_number_integer(), m_part << "." << name << " must be an integer in " << range(lo, hi)
                                               << ", found " << j.dump());
        const int64_t x = j.get<int64_t>();
        DC_CHECK(x >= lo && x <= hi, m_part << "." << name << " must be in " << range(lo, hi) << ", found " << x);
        out = x;
    }
    void integer(const char* name, int& out, int64_t lo, int64_t hi) const {
        int64_t x = out;
        integer(name, x, lo, hi);
        out = static_cast<int>(x);
    }
    void unsigned_integer(const char* name, uint64_t& out) const {
        if (!m_obj.contains(name)) return;
        const json& j = m_obj.at(name);
        DC_CHECK(j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0),
                 m_part << "." << name << " must be a non-negative integer, found " << j.dump());
        out = j.get<uint64_t>();
    }
    void number(const char* name, double& out, double lo, double hi, const char* what) const {
        if (!m_obj.contains(name)) return;
        const json& j = m_obj.at(name);
        DC_CHECK(j.is_number(), m_part << "." << name << " must be a number in " << what << ", found " << j.dump());
        const double x = j.get<double>();
        DC_CHECK(std::isfinite(x) && x >= lo && x <= hi,
                 m_part << "." << name << " must be in " << what << ", found " << x);
        out = x;
    }
    void choice(const char* name, std::string& out, std::initializer_list<const char*> options,
                const char* what) const {
        if (!m_obj.contains(name)) return;
        const json& j = m_obj.at(name);
        bool ok = j.is_string();
        if (ok) {
            ok = false;
            for (const char* o : options) ok = ok || j.get<std::string>() == o;
        }
        DC_CHECK(ok, m_part << "." << name << " must be " << what << ", found " << j.dump());
        out = j.get<std::string>();
    }

private:
    static std::string range(int64_t lo, int64_t hi) {
        std::ostringstream os;
        os << lo << "..";
        if (hi == std::numeric_limits<int64_t>::max())
            os << "∞";
        else
            os << hi;
        return os.str();
    }
    const json& m_obj;
    std::string m_part;
};

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

void read_tempcache(const json& j, TempCacheParams& p) {
    Reader r(j, "tempcache");
    r.check_known({"tau", "lookback", "match_index", "index_min_candidates"});
    r.number("tau", p.tau, 0.0, 2.0, "[0, 2] (cosine threshold; > 1 never merges)");
    r.integer("lookback", p.lookback, 1, kMax);
    r.choice("match_index", p.match_index, {"exact", "lsh", "sq8"}, "\"exact\", \"lsh\" or \"sq8\"");
    r.integer("index_min_candidates", p.index_min_candidates, 1, kMax);
}

void read_dense(const json& j, DenseParams& p) {
    Reader r(j, "dense");
    r.check_known({"kernel"});
    r.choice("kernel", p.kernel, {"auto", "torch"}, "\"auto\" or \"torch\"");
}

void read_window(const json& j, WindowParams& p) {
    Reader r(j, "window");
    r.check_known({"frames", "sinks"});
    r.integer("frames", p.frames, 1, kMax);
    r.integer("sinks", p.sinks, 0, kMax);
}

void read_annsa(const json& j, AnnSAParams& p) {
    Reader r(j, "annsa");
    r.check_known({"bits", "probes", "dense_step_fraction", "sparse_block_fraction", "min_cache_tokens", "seed",
                   "index", "top_k"});
    r.integer("bits", p.bits, 1, 16);
    r.integer("probes", p.probes, 1, std::numeric_limits<int>::max());
    r.number("dense_step_fraction", p.dense_step_fraction, 0, 1, "[0, 1]");
    r.number("sparse_block_fraction", p.sparse_block_fraction, 0, 1, "[0, 1]");
    r.integer("min_cache_tokens", p.min_cache_tokens, 0, kMax);
    r.unsigned_integer("seed", p.seed);
    r.choice("index", p.index, {"lsh", "sq8", "exact"}, kIndexKinds);
    r.integer("top_k", p.top_k, 1, kMax);
}

void read_annca(const json& j, AnnCAParams& p) {
    Reader r(j, "annca");
    r.check_known({"bits", "probes", "seed", "index", "top_k"});
    r.integer("bits", p.bits, 1, 16);
    r.integer("probes", p.probes, 1, std::numeric_limits<int>::max());
    r.unsigned_integer("seed", p.seed);
    r.choice("index", p.index, {"lsh", "sq8", "exact"}, kIndexKinds);
    r.integer("top_k", p.top_k, 1, kMax);
}

std::string canonical_type(const AttentionConfig& c) {
    std::string t;
    auto add = [&](bool on, const char* name) {
        if (on) t += (t.empty() ? "" : "+") + std::string(name);
    };
    add(c.tempcache, "tempcache");
    add(c.window, "window");
    add(c.annsa, "annsa");
    add(c.annca, "annca");
    return t.empty() ? "dense" : t;
}

}  // namespace

AttentionConfig parse_attention_config(const std::string& type, const std::string& params_json) {
    AttentionConfig c;
    DC_CHECK(!type.empty(), "attention type is empty: expected " << join_parts());
    if (type != "dense") {
        std::string part;
        std::istringstream is(type);
        while (std::getline(is, part, '+')) {
            bool* flag = part == "tempcache" ? &c.tempcache
                         : part == "window"  ? &c.window
                         : part == "annsa"   ? &c.annsa
                         : part == "annca"   ? &c.annca
                                             : nullptr;
            DC_CHECK(flag != nullptr, "unknown attention type \"" << type << "\" (part \"" << part
                                                                  << "\"): expected " << join_parts());
            DC_CHECK(!*flag, "attention type \"" << type << "\" names \"" << part << "\" twice");
            *flag = true;
        }
        DC_CHECK(type.back() != '+', "attention type \"" << type << "\" ends with '+': expected " << join_parts());
    }
    json j;
    try {
        j = json::parse(params_json.empty() ? std::string("{}") : params_json);
    } catch (const json::exception& e) {
        DC_FAIL("attention params must be a JSON object, found unparsable text \"" << params_json
                                                                                 << "\": " << e.what());
    }
    DC_CHECK(j.is_object(), "attention params must be a JSON object with sub-objects dense, tempcache, window, "
                            "annsa, annca; found "
                                << j.dump());
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool known = false;
        for (const char* p : kParts) known = known || it.key() == p;
        DC_CHECK(known, "unknown attention params key \"" << it.key()
                                                          << "\": expected dense, tempcache, window, annsa or annca "
                                                             "(one object per part, e.g. {\"tempcache\": {\"tau\": 0.9}})");
        DC_CHECK(it.value().is_object(), "attention params \"" << it.key() << "\" must be an object, found "
                                                               << it.value().dump());
    }
    if (j.contains("dense")) read_dense(j["dense"], c.dense_params);
    if (j.contains("tempcache")) read_tempcache(j["tempcache"], c.tempcache_params);
    if (j.contains("window")) read_window(j["window"], c.window_params);
    if (j.contains("annsa")) read_annsa(j["annsa"], c.annsa_params);
    if (j.contains("annca")) read_annca(j["annca"], c.annca_params);
    return c;
}

AttentionSpec AttentionSpec::parse(const std::string& type, const std::string& params_json) {
    AttentionConfig c = parse_attention_config(type, params_json);
    AttentionSpec s;
    s.type = canonical_type(c);
    s.params_json = json::parse(params_json.empty() ? std::string("{}") : params_json).dump();
    return s;
}

AttentionConfig AttentionSpec::config() const { return parse_attention_config(type, params_json); }

AttentionSpec AttentionSpec::from_config(const AttentionConfig& c) {
    const auto& t = c.tempcache_params;
    const auto& w = c.window_params;
    const auto& a = c.annsa_params;
    const auto& x = c.annca_params;
    json j = {
        {"dense", {{"kernel", c.dense_params.kernel}}},
        {"tempcache",
         {{"tau", t.tau},
          {"lookback", t.lookback},
          {"match_index", t.match_index},
          {"index_min_candidates", t.index_min_candidates}}},
        {"window", {{"frames", w.frames}, {"sinks", w.sinks}}},
        {"annsa",
         {{"bits", a.bits},
          {"probes", a.probes},
          {"dense_step_fraction", a.dense_step_fraction},
          {"sparse_block_fraction", a.sparse_block_fraction},
          {"min_cache_tokens", a.min_cache_tokens},
          {"seed", a.seed},
          {"index", a.index},
          {"top_k", a.top_k}}},
        {"annca", {{"bits", x.bits}, {"probes", x.probes}, {"seed", x.seed}, {"index", x.index}, {"top_k", x.top_k}}},
    };
    return parse(canonical_type(c), j.dump());
}

std::string AttentionSpec::to_string() const { return type + " " + params_json; }

std::vector<std::string> attention_types() {
    return {"dense", "window", "tempcache", "annsa", "annca", "tempcache+annsa+annca"};
}

std::string default_attention_params_json() { return AttentionSpec::from_config(AttentionConfig{}).params_json; }

}  // namespace dc
