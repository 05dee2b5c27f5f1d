// world_model/safetensors_impl.h — reader/writer for the safetensors format (private to world_model).
//
//   dc::st::save("w.safetensors", {{"dit.in.w", t}}, dc::st::DType::bf16, {{"format", "pt"}});
//   dc::st::File f = dc::st::File::read("w.safetensors");      // throws dc::Error on truncated/foreign files
//   at::Tensor w = f.tensor("dit.in.w");                       // float32 copy on the CPU
//
// Format: 8-byte little-endian header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets"}, …,
// "__metadata__": {str: str}}, then the raw little-endian data. Supported dtypes: F32 and BF16 (what the model uses);
// other dtypes are reported by name. The reader validates every offset against the file size before touching data.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dc::st {

enum class DType { f32, bf16 };
const char* dtype_name(DType d);   // "F32", "BF16"

struct Entry {
    std::string name;
    std::string dtype;              // as written in the file ("F32", "BF16", or a foreign one)
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;    // byte offsets inside the data section
};

// Writes tensors (any float dtype, any device) converted to `dtype`, names sorted, header padded to 8 bytes.
void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors, DType dtype,
          const std::map<std::string, std::string>& metadata = {});

class File {
public:
    static File read(const std::string& path);   // reads and validates the whole file
    const std::vector<Entry>& entries() const { return m_entries; }
    const Entry* find(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }
    // float32 CPU tensor of an entry (converted from BF16); throws when missing or of an unsupported dtype.
    at::Tensor tensor(const std::string& name) const;
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
    std::vector<Entry> m_entries;
    std::map<std::string, std::string> m_metadata;
    std::vector<uint8_t> m_data;   // the data section
};

// A shard written by save_sharded.
struct ShardInfo {
    std::string file;          // file name relative to the folder
    std::string sha256;        // of the whole file
    int64_t bytes = 0;
    std::vector<std::string> tensors;
};
// Splits tensors (in the given order) into files `<dir>/<stem>-NNNNN.safetensors` of at most max_bytes of data each
// (a single tensor larger than max_bytes gets a shard of its own).
std::vector<ShardInfo> save_sharded(const std::string& dir, const std::string& stem,
                                    const std::vector<std::pair<std::string, at::Tensor>>& tensors, DType dtype,
                                    int64_t max_bytes, const std::map<std::string, std::string>& metadata = {});

}  // namespace dc::st
