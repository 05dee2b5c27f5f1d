// world_model/evaluator_impl.h — small held-out metrics the trainer writes into model.json (private).
#pragma once

#include "world_model/data_impl.h"
#include "world_model/model_impl.h"

namespace dc::wm {

struct QuickMetrics {
    double ae_psnr = 0;               // autoencoder reconstruction (the ceiling)
    double copy_last_psnr = 0;        // previous real frame as the prediction
    double teacher_forced_psnr = 0;   // next frame from real context (S = model default, dense attention)
};
// n_clips held-out clips (data seeds with bit 63 set) of data.clip_frames frames.
QuickMetrics quick_metrics(const Net& net, const game::Vocabulary& vocab, const DataConfig& data, int n_clips,
                           bool with_dit);

double psnr(const at::Tensor& a, const at::Tensor& b);   // images [.., 3, H, W] in [0, 1]
double ssim(const at::Tensor& a, const at::Tensor& b);   // 11x11 Gaussian window (sigma 1.5), mean over channels

}  // namespace dc::wm
