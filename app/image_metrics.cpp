// PSNR and SSIM on RGB8 frames, as `dreamcaster eval` computes them (see image_metrics.h).
#include "app/image_metrics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "common/common.h"

namespace dc::app {

namespace {

void check_same(const game::Image& a, const game::Image& b, const char* what) {
    DC_CHECK(a.width == b.width && a.height == b.height && a.rgb.size() == b.rgb.size() &&
                 a.rgb.size() == static_cast<size_t>(a.width) * a.height * 3 && !a.rgb.empty(),
             what << ": expected two RGB frames of one size, found " << a.width << "x" << a.height << " and " << b.width
                  << "x" << b.height);
}

constexpr int kWin = 11;  // Gaussian window of SSIM (Wang et al. 2004), σ = 1.5

std::array<double, kWin> gaussian() {
    std::array<double, kWin> g{};
    double sum = 0;
    for (int i = 0; i < kWin; ++i) {
        const double x = i - kWin / 2;
        g[i] = std::exp(-x * x / (2 * 1.5 * 1.5));
        sum += g[i];
    }
    for (double& v : g) v /= sum;
    return g;
}

// Valid-region separable filtering of one plane [h, w] -> [h - 10, w - 10].
std::vector<double> blur(const std::vector<double>& p, int w, int h, const std::array<double, kWin>& g) {
    const int ow = w - kWin + 1, oh = h - kWin + 1;
    std::vector<double> tmp(static_cast<size_t>(h) * ow), out(static_cast<size_t>(oh) * ow);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < ow; ++x) {
            double s = 0;
            for (int k = 0; k < kWin; ++k) s += g[k] * p[static_cast<size_t>(y) * w + x + k];
            tmp[static_cast<size_t>(y) * ow + x] = s;
        }
    for (int y = 0; y < oh; ++y)
        for (int x = 0; x < ow; ++x) {
            double s = 0;
            for (int k = 0; k < kWin; ++k) s += g[k] * tmp[static_cast<size_t>(y + k) * ow + x];
            out[static_cast<size_t>(y) * ow + x] = s;
        }
    return out;
}

}  // namespace

double psnr(const game::Image& a, const game::Image& b) {
    check_same(a, b, "psnr");
    double se = 0;
    for (size_t i = 0; i < a.rgb.size(); ++i) {
        const double d = (static_cast<double>(a.rgb[i]) - b.rgb[i]) / 255.0;
        se += d * d;
    }
    const double mse = se / static_cast<double>(a.rgb.size());
    return 10.0 * std::log10(1.0 / std::max(mse, 1e-10));
}

double ssim(const game::Image& a, const game::Image& b) {
    check_same(a, b, "ssim");
    DC_CHECK(a.width >= kWin && a.height >= kWin,
             "ssim: frames must be at least 11x11, found " << a.width << "x" << a.height);
    const auto g = gaussian();
    const int w = a.width, h = a.height;
    const size_t n = static_cast<size_t>(w) * h;
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    double total = 0;
    size_t count = 0;
    std::vector<double> pa(n), pb(n), paa(n), pbb(n), pab(n);
    for (int c = 0; c < 3; ++c) {
        for (size_t i = 0; i < n; ++i) {
            pa[i] = a.rgb[i * 3 + c] / 255.0;
            pb[i] = b.rgb[i * 3 + c] / 255.0;
            paa[i] = pa[i] * pa[i];
            pbb[i] = pb[i] * pb[i];
            pab[i] = pa[i] * pb[i];
        }
        const auto ma = blur(pa, w, h, g), mb = blur(pb, w, h, g);
        const auto saa = blur(paa, w, h, g), sbb = blur(pbb, w, h, g), sab = blur(pab, w, h, g);
        for (size_t i = 0; i < ma.size(); ++i) {
            const double va = saa[i] - ma[i] * ma[i], vb = sbb[i] - mb[i] * mb[i], cab = sab[i] - ma[i] * mb[i];
            total +=
                ((2 * ma[i] * mb[i] + c1) * (2 * cab + c2)) / ((ma[i] * ma[i] + mb[i] * mb[i] + c1) * (va + vb + c2));
        }
        count += ma.size();
    }
    return total / static_cast<double>(count);
}

}  // namespace dc::app
