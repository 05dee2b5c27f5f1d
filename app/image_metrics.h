// app/image_metrics.h — PSNR and SSIM of two RGB8 frames (dream vs real in side-by-side), without torch.
//
//   double db = dc::app::psnr(dream, real);   // 10·log10(1 / MSE) on [0, 1] values, all channels
//   double s  = dc::app::ssim(dream, real);   // mean SSIM, 11×11 Gaussian window (σ 1.5), per channel, valid region
//
// The definitions match `dreamcaster eval` (world_model/evaluator.cpp), so live figures and evaluation figures agree.
#pragma once

#include "game/game.h"

namespace dc::app {

double psnr(const game::Image& a, const game::Image& b);  // throws dc::Error on different sizes; identical: 100
double ssim(const game::Image& a, const game::Image& b);  // throws dc::Error on different sizes

}  // namespace dc::app
