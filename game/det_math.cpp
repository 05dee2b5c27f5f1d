// game/det_math.cpp — transcendental functions from IEEE basic operations only (see game_impl.h).
#include <cmath>

#include "game/game_impl.h"

namespace dc::game::detail {

namespace {
// pi/2 split so that k * kPio2Hi is exact for |k| < 2^20 (Cody-Waite).
constexpr double kPio2Hi = 1.5707963267341256e+00;
constexpr double kPio2Lo = 6.0771005065061922e-11;
constexpr double kTwoOverPi = 6.36619772367581382433e-01;
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kLog2e = 1.44269504088896338700e+00;

// Taylor series on |r| <= pi/4 (truncation error < 2e-17).
double sin_kernel(double r) {
    const double r2 = r * r;
    double p = 1.0 / 1307674368000.0;  // 1/15!
    p = p * -r2 + 1.0 / 6227020800.0;  // 1/13!
    p = p * -r2 + 1.0 / 39916800.0;    // 1/11!
    p = p * -r2 + 1.0 / 362880.0;      // 1/9!
    p = p * -r2 + 1.0 / 5040.0;        // 1/7!
    p = p * -r2 + 1.0 / 120.0;         // 1/5!
    p = p * -r2 + 1.0 / 6.0;           // 1/3!
    p = p * -r2 + 1.0;
    return r * p;
}
double cos_kernel(double r) {
    const double r2 = r * r;
    double p = 1.0 / 20922789888000.0;  // 1/16!
    p = p * -r2 + 1.0 / 87178291200.0;  // 1/14!
    p = p * -r2 + 1.0 / 479001600.0;    // 1/12!
    p = p * -r2 + 1.0 / 3628800.0;      // 1/10!
    p = p * -r2 + 1.0 / 40320.0;        // 1/8!
    p = p * -r2 + 1.0 / 720.0;          // 1/6!
    p = p * -r2 + 1.0 / 24.0;           // 1/4!
    p = p * -r2 + 1.0 / 2.0;            // 1/2!
    return 1.0 - r2 * p;
}
// atan on |t| <= tan(pi/12) ~ 0.268: odd Taylor series to t^23 (error < 1e-14).
double atan_kernel(double t) {
    const double t2 = t * t;
    double p = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2) p = p * -t2 + 1.0 / double(k);
    return t * p;
}
}  // namespace

void det_sincos(double x, double& s, double& c) {
    if (!(x == x) || std::fabs(x) > 1e9) {  // NaN or absurd angles: a defined answer instead of garbage
        s = 0.0;
        c = 1.0;
        return;
    }
    const double k = std::floor(x * kTwoOverPi + 0.5);
    const double r = (x - k * kPio2Hi) - k * kPio2Lo;
    const double sr = sin_kernel(r), cr = cos_kernel(r);
    const int64_t q = int64_t(k) & 3;
    switch (q) {
        case 0:
            s = sr;
            c = cr;
            break;
        case 1:
            s = cr;
            c = -sr;
            break;
        case 2:
            s = -sr;
            c = -cr;
            break;
        default:
            s = -cr;
            c = sr;
            break;
    }
}

double det_exp(double x) {
    if (!(x == x)) return 1.0;
    if (x > 700.0) x = 700.0;
    if (x < -700.0) x = -700.0;
    const double n = std::floor(x * kLog2e + 0.5);
    const double r = (x - n * kLn2Hi) - n * kLn2Lo;  // |r| <= 0.35
    // Horner on e^r = 1 + r(1 + r/2(1 + r/3(...))) to r^14: fixed operation order, no library calls.
    double p = 1.0;
    for (int k = 14; k >= 1; --k) p = 1.0 + p * (r / double(k));
    return std::ldexp(p, int(n));
}

double det_atan2(double y, double x) {
    if (!(x == x) || !(y == y)) return 0.0;
    if (x == 0.0 && y == 0.0) return 0.0;
    const double ax = std::fabs(x), ay = std::fabs(y);
    const bool swap = ay > ax;
    double t = swap ? ax / ay : ay / ax;  // in [0, 1]
    double a;
    constexpr double kTanPi12 = 0.26794919243112270647;
    constexpr double kInvSqrt3 = 0.57735026918962576451;
    constexpr double kPi6 = 0.52359877559829887308;
    if (t > kTanPi12) {
        a = kPi6 + atan_kernel((t - kInvSqrt3) / (1.0 + t * kInvSqrt3));
    } else {
        a = atan_kernel(t);
    }
    if (swap) a = kPi / 2.0 - a;
    if (x < 0.0) a = kPi - a;
    return y < 0.0 ? -a : a;
}

float wrap_angle(float a) {
    float w = float(wrap_angle(double(a)));
    if (w >= float(kPi)) w -= float(kTwoPi);  // float(pi) rounds above pi
    return w;
}

double wrap_angle(double a) {
    if (!(a == a)) return 0.0;
    if (a >= -kPi && a < kPi) return a;
    a = a - kTwoPi * std::floor((a + kPi) / kTwoPi);
    if (a >= kPi) a -= kTwoPi;
    if (a < -kPi) a += kTwoPi;
    return a;
}

uint64_t hash_mix(uint64_t a, uint64_t b) {
    Rng r(a ^ (b * 0xD6E8FEB86659FD93ull) ^ 0x5851F42D4C957F2Dull);
    r.next();
    return r.next();
}

uint64_t hash_string(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : s) {
        h ^= ch;
        h *= 1099511628211ull;
    }
    return h;
}

}  // namespace dc::game::detail
