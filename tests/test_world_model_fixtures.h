// Models and frames for the world_model tests: the tiny preset with the shipped vocabulary, perturbed so that every
// path of the network (self- and cross-attention, conv mixing, conditioning) shapes its output, and a synthetic frame.
#pragma once

#include <c10/core/GradMode.h>
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

#include "world_model/model_impl.h"
#include "world_model/world_model_impl.h"

namespace dc_test {

inline dc::wm::ModelConfig tiny_config() {
    dc::wm::ModelConfig cfg = dc::wm::ModelConfig::preset("tiny");
    dc::game::Vocabulary vocab = dc::game::Vocabulary::load_default();
    cfg.dit.vocab_size = vocab.size();
    cfg.dit.vocab_sha256 = dc::wm::vocab_sha256(vocab);
    return cfg;
}

// Fresh models are exactly copy-last (zero-initialised output and gates); every weight gets N(0, 0.05²) added.
inline std::shared_ptr<dc::wm::ModelImpl> perturbed_model(uint64_t seed) {
    auto m = std::make_shared<dc::wm::ModelImpl>(tiny_config(), "cpu");
    at::manual_seed(seed);
    c10::NoGradGuard ng;
    auto& flat = m->net.params().flat();
    flat.add_(at::randn_like(flat) * 0.05);
    return m;
}

// 128×128 RGB gradient pattern; `phase` shifts it.
inline dc::game::Image test_frame(int phase) {
    dc::game::Image im;
    im.width = im.height = 128;
    im.rgb.resize(128 * 128 * 3);
    for (int y = 0; y < 128; ++y)
        for (int x = 0; x < 128; ++x)
            for (int c = 0; c < 3; ++c)
                im.rgb[(y * 128 + x) * 3 + c] = static_cast<uint8_t>((x * (c + 1) + y * 3 + phase * 17) % 256);
    return im;
}

}  // namespace dc_test
