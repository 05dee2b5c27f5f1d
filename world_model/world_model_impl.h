// world_model/world_model_impl.h — the concrete WorldModel and weight files (private to world_model).
//
//   auto m = std::make_shared<dc::wm::ModelImpl>(cfg, "cpu");        // fresh parameters
//   dc::wm::export_model(m->net, "out/model.json", meta, dc::st::DType::bf16);   // JSON + shards <= 15 MiB
//   auto l = dc::wm::load_model("out/model.json", "cpu");             // verifies names/shapes/dtypes/SHA-256
//
// Model file (JSON): {"format": "dreamcaster-world-model", "version": 1, "architecture": ModelConfig,
// "dtype": "BF16"|"F32", "params": N, "shards": [{"file", "sha256", "bytes", "tensors": [...]}],
// "training": {...}, "data": {...}, "metrics": {...}}; shard files sit next to the JSON.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "world_model/model_impl.h"
#include "world_model/safetensors_impl.h"
#include "world_model/world_model.h"

namespace dc::wm {

constexpr int64_t kMaxShardBytes = 15ll * 1024 * 1024 - 256 * 1024;   // data per shard; header fits in 15 MiB

class ModelImpl : public WorldModel {
public:
    ModelImpl(const ModelConfig& cfg, const std::string& device);
    // Shares the weights of net (no copy), e.g. the trainer's networks for held-out metrics.
    ModelImpl(const Net& shared_net, const game::Vocabulary& vocabulary);
    std::string describe() const override;
    std::string device() const override { return m_device; }
    int n_layers() const override { return net.config().dit.depth; }
    int frame_width() const override { return net.config().frame_width; }
    int frame_height() const override { return net.config().frame_height; }
    void move_to(const std::string& device);   // moves weights; CUDA uses bf16 weights and compute

    Net net;
    nlohmann::json meta;               // the model file's training/data/metrics sections
    game::Vocabulary vocab;
    std::string path;                  // model file it was loaded from (empty when fresh)

private:
    std::string m_device;
};

at::Device parse_device(const std::string& device);   // "cpu" | "cuda" | "cuda:N"; throws otherwise
// SHA-256 of the vocabulary's words joined by '\n' (models are tied to the vocabulary they were trained with).
std::string vocab_sha256(const game::Vocabulary& vocab);

// Loads weights into net from a model file; throws dc::Error naming every mismatch (first few).
void load_weights(Net& net, const nlohmann::json& file, const std::string& dir);
std::shared_ptr<ModelImpl> load_model(const std::string& config_path, const std::string& device);
// Writes the model file and shards (tensors of net in `dtype`). meta: training/data/metrics sections.
void export_model(const Net& net, const std::string& json_path, const nlohmann::json& meta, st::DType dtype);

// Images: game::Image (RGB8) <-> [1, 3, H, W] float in [0, 1] on a device.
at::Tensor image_to_tensor(const game::Image& img, at::Device device);
void tensor_to_image(const at::Tensor& t, game::Image& out);   // t [1, 3, H, W] or [3, H, W]; clamps
at::Tensor image_bytes(const at::Tensor& t);   // t [1, 3, H, W] or [3, H, W] -> [H, W, 3] uint8 on t's device
void bytes_to_image(const at::Tensor& rgb, game::Image& out);   // rgb [H, W, 3] uint8, any device

double ms_since(std::chrono::steady_clock::time_point t0);
void sync_device(const at::Tensor& t);   // waits for the device queue (timings); a no-op on the CPU

// Internal session hooks used by the evaluator (teacher forcing): replaces the latent the last step committed
// with the encoding of a real frame (re-committing the cache entries of that frame).
class SessionAccess {
public:
    static void step_teacher_forced(Session& s, const game::Action& a, const game::Image& real, game::Image& out);
    // Replaces the session's attention by the model's own reference (plain torch ops, no custom kernels): the
    // trainer's held-out metrics use it so that nothing but torch runs inside a training process.
    static void use_reference_attention(Session& s);
    // DiT passes this session ran with cross-attention inside its CUDA graphs (world_model/cuda_graphs.h); 0 without
    // graphs.
    static int64_t fused_graph_passes(const Session& s);
};

// Dense attention written with plain torch ops over dc::KvCache (same logits as attention.h documents).
Attention::Ptr make_reference_attention();

}  // namespace dc::wm
