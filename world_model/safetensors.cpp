// world_model/safetensors.cpp — safetensors reader/writer (see safetensors_impl.h).
#include "world_model/safetensors_impl.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/common.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace dc::st {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;   // the format's own limit (100 MB)

size_t dtype_size(const std::string& d) {
    if (d == "F32" || d == "I32" || d == "U32") return 4;
    if (d == "BF16" || d == "F16" || d == "I16" || d == "U16") return 2;
    if (d == "F64" || d == "I64" || d == "U64") return 8;
    if (d == "I8" || d == "U8" || d == "BOOL") return 1;
    return 0;
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::ostringstream os;
    os << '[';
    for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
    os << ']';
    return os.str();
}

}  // namespace

const char* dtype_name(DType d) { return d == DType::bf16 ? "BF16" : "F32"; }

void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors, DType dtype,
          const std::map<std::string, std::string>& metadata) {
    std::vector<std::pair<std::string, at::Tensor>> sorted = tensors;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    const at::ScalarType st = dtype == DType::bf16 ? at::kBFloat16 : at::kFloat;
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        nlohmann::ordered_json m = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata) m[k] = v;
        header["__metadata__"] = m;
    }
    std::vector<at::Tensor> data;
    uint64_t offset = 0;
    for (const auto& [name, t] : sorted) {
        DC_CHECK(t.defined(), "safetensors: tensor '" << name << "' is undefined");
        DC_CHECK(name != "__metadata__", "safetensors: '__metadata__' is reserved");
        at::Tensor c = t.detach().to(at::kCPU).to(st).contiguous();   // [same shape]
        const uint64_t n = static_cast<uint64_t>(c.numel()) * c.element_size();
        std::vector<int64_t> shape(c.sizes().begin(), c.sizes().end());
        header[name] = {{"dtype", dtype_name(dtype)}, {"shape", shape}, {"data_offsets", {offset, offset + n}}};
        offset += n;
        data.push_back(c);
    }
    std::string h = header.dump();
    while (h.size() % 8) h.push_back(' ');
    const uint64_t hn = h.size();
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        DC_CHECK(f.good(), "safetensors: cannot write '" << tmp << "'");
        f.write(reinterpret_cast<const char*>(&hn), 8);
        f.write(h.data(), static_cast<std::streamsize>(h.size()));
        for (const auto& c : data)
            f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
        f.flush();
        DC_CHECK(f.good(), "safetensors: write to '" << tmp << "' failed (disk full?)");
    }
    DC_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "safetensors: cannot rename '" << tmp << "' to '" << path
                                                                                         << "'");
}

File File::read(const std::string& path) {
    File out;
    out.m_path = path;
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    DC_CHECK(f.good(), "safetensors: cannot open '" << path << "'");
    const auto size = static_cast<uint64_t>(f.tellg());
    f.seekg(0);
    DC_CHECK(size >= 8, "'" << path << "' is not a safetensors file: " << size
                            << " bytes, expected at least an 8-byte header length");
    uint64_t hn = 0;
    f.read(reinterpret_cast<char*>(&hn), 8);
    DC_CHECK(hn <= kMaxHeaderBytes && hn <= size - 8,
             "'" << path << "' is not a safetensors file (or is truncated): header length " << hn << " but the file has "
                 << size << " bytes");
    std::string h(hn, '\0');
    f.read(h.data(), static_cast<std::streamsize>(hn));
    DC_CHECK(f.good(), "safetensors: read of '" << path << "' failed");
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(h);
    } catch (const std::exception& e) {
        DC_FAIL("'" << path << "' is not a safetensors file: its header is not JSON (" << e.what() << ")");
    }
    DC_CHECK(header.is_object(), "'" << path << "' is not a safetensors file: header is not a JSON object");
    const uint64_t data_size = size - 8 - hn;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            DC_CHECK(it->is_object(), "'" << path << "': __metadata__ is not an object");
            for (auto m = it->begin(); m != it->end(); ++m)
                if (m->is_string()) out.m_metadata[m.key()] = m->get<std::string>();
            continue;
        }
        const auto& e = *it;
        DC_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets") &&
                     e["dtype"].is_string() && e["shape"].is_array() && e["data_offsets"].is_array() &&
                     e["data_offsets"].size() == 2,
                 "'" << path << "' is not a safetensors file: entry '" << it.key()
                     << "' lacks dtype/shape/data_offsets");
        Entry en;
        en.name = it.key();
        en.dtype = e["dtype"].get<std::string>();
        for (const auto& d : e["shape"]) {
            DC_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0,
                     "'" << path << "': entry '" << en.name << "' has a bad shape");
            en.shape.push_back(d.get<int64_t>());
        }
        DC_CHECK(e["data_offsets"][0].is_number_unsigned() && e["data_offsets"][1].is_number_unsigned(),
                 "'" << path << "': entry '" << en.name << "' has bad data_offsets");
        en.begin = e["data_offsets"][0].get<uint64_t>();
        en.end = e["data_offsets"][1].get<uint64_t>();
        const size_t es = dtype_size(en.dtype);
        DC_CHECK(es > 0, "'" << path << "': entry '" << en.name << "' has unknown dtype '" << en.dtype << "'");
        uint64_t numel = 1;
        for (int64_t d : en.shape) numel *= static_cast<uint64_t>(d);
        DC_CHECK(en.end >= en.begin && en.end - en.begin == numel * es,
                 "'" << path << "': entry '" << en.name << "' " << en.dtype << shape_str(en.shape) << " needs "
                     << numel * es << " bytes but its data_offsets span " << (en.end - en.begin));
        DC_CHECK(en.end <= data_size, "'" << path << "' is truncated: entry '" << en.name << "' ends at byte "
                                          << en.end << " of the data section, which has only " << data_size
                                          << " bytes");
        out.m_entries.push_back(en);
    }
    std::sort(out.m_entries.begin(), out.m_entries.end(),
              [](const Entry& a, const Entry& b) { return a.name < b.name; });
    out.m_data.resize(data_size);
    f.read(reinterpret_cast<char*>(out.m_data.data()), static_cast<std::streamsize>(data_size));
    DC_CHECK(f.good() || data_size == 0, "safetensors: read of the data of '" << path << "' failed");
    return out;
}

const Entry* File::find(const std::string& name) const {
    auto it = std::lower_bound(m_entries.begin(), m_entries.end(), name,
                               [](const Entry& e, const std::string& n) { return e.name < n; });
    return it != m_entries.end() && it->name == name ? &*it : nullptr;
}

at::Tensor File::tensor(const std::string& name) const {
    const Entry* e = find(name);
    DC_CHECK(e, "'" << m_path << "' has no tensor '" << name << "'");
    at::ScalarType st;
    if (e->dtype == "F32") st = at::kFloat;
    else if (e->dtype == "BF16") st = at::kBFloat16;
    else DC_FAIL("'" << m_path << "': tensor '" << name << "' has dtype " << e->dtype << ", expected F32 or BF16");
    at::Tensor t = at::empty(e->shape, at::TensorOptions().dtype(st));   // [shape]
    if (e->end > e->begin) std::memcpy(t.data_ptr(), m_data.data() + e->begin, e->end - e->begin);
    return t.to(at::kFloat);
}

std::vector<ShardInfo> save_sharded(const std::string& dir, const std::string& stem,
                                    const std::vector<std::pair<std::string, at::Tensor>>& tensors, DType dtype,
                                    int64_t max_bytes, const std::map<std::string, std::string>& metadata) {
    const int64_t es = dtype == DType::bf16 ? 2 : 4;
    std::vector<std::vector<std::pair<std::string, at::Tensor>>> groups(1);
    int64_t cur = 0;
    for (const auto& nt : tensors) {
        const int64_t n = nt.second.numel() * es;
        if (!groups.back().empty() && cur + n > max_bytes) {
            groups.emplace_back();
            cur = 0;
        }
        groups.back().push_back(nt);
        cur += n;
    }
    std::vector<ShardInfo> out;
    for (size_t i = 0; i < groups.size(); ++i) {
        std::ostringstream name;
        name << stem << '-' << std::setw(5) << std::setfill('0') << i << ".safetensors";
        const std::string path = dir + "/" + name.str();
        save(path, groups[i], dtype, metadata);
        ShardInfo s;
        s.file = name.str();
        s.sha256 = sha256_file(path);
        std::ifstream f(path, std::ios::binary | std::ios::ate);
        s.bytes = static_cast<int64_t>(f.tellg());
        for (const auto& nt : groups[i]) s.tensors.push_back(nt.first);
        out.push_back(s);
    }
    return out;
}

}  // namespace dc::st
