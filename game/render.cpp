// game/render.cpp — procedural textures and the raycasting renderer (walls, doors, floor/ceiling, sprites, fog).
//
// Per frame: one DDA ray per column (walls and door panels, z-buffer), floor and ceiling cast per pixel from
// per-row distances, billboard sprites depth-tested against the z-buffer. Shading = texel (material colour x
// brightness x global light) x side shade (faces of constant y are darker) x distance falloff, then fog:
// c = c * e^(-fog d) + fog_colour * (1 - e^(-fog d)), with d the perpendicular distance.
#include <algorithm>
#include <cmath>

#include "game/game_impl.h"

namespace dc::game {

using namespace detail;

namespace {

constexpr float kSideShade = 0.78f;     // faces of constant y (north/south) are darker than east/west faces
constexpr float kCeilingShade = 0.85f;  // the ceiling gets less light than the floor
constexpr float kFalloff = 0.05f;       // light falloff: 1 / (1 + kFalloff * distance)
constexpr float kTexelNoise = 0.05f;    // +-5% per-texel variation so plain surfaces still show motion
constexpr int kRowStride = 5;           // row table: distance, shade*fog, fog colour term (3)

float texel_noise(int tex, int tx, int ty) {
    const uint64_t h = hash_mix(uint64_t(tex) * 7919u + 17u, uint64_t(ty) * 131u + uint64_t(tx));
    return float(h >> 40) * (2.f / 16777216.f) - 1.f;  // [-1, 1)
}

// The second tone of a two-tone pattern: darker for light colours, lighter for dark ones.
std::array<float, 3> contrast_of(const std::array<float, 3>& c) {
    const float lum = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
    std::array<float, 3> o{};
    for (int k = 0; k < 3; ++k) {
        o[size_t(k)] = lum > 60.f ? c[size_t(k)] * 0.62f : std::min(255.f, c[size_t(k)] * 1.6f + 28.f);
    }
    return o;
}

std::array<float, 3> pattern_texel(Pattern p, const std::array<float, 3>& base, int tex, int tx, int ty) {
    const std::array<float, 3> alt = contrast_of(base);
    std::array<float, 3> c = base;
    switch (p) {
        case Pattern::plain: break;
        case Pattern::stripes:
            if ((tx / 4) % 2 == 1) c = alt;
            break;
        case Pattern::checker:
            if ((tx / 8 + ty / 8) % 2 == 1) c = alt;
            break;
        case Pattern::brick: {
            const int row = ty / 8;
            const int bx = (tx + (row % 2) * 8) % 16;
            if (ty % 8 == 7 || bx == 15) {
                // mortar: the base colour pulled towards a light grey
                for (int k = 0; k < 3; ++k) c[size_t(k)] = base[size_t(k)] * 0.35f + 170.f * 0.65f;
            } else {
                const int brick_id = row * 4 + ((tx + (row % 2) * 8) / 16);
                const float v = 1.f + 0.1f * texel_noise(tex + 100, brick_id, 0);
                for (float& x : c) x *= v;
            }
            break;
        }
        case Pattern::dots: {
            const float dx = float(tx % 8) - 3.5f, dy = float(ty % 8) - 3.5f;
            if (dx * dx + dy * dy <= 5.f) c = alt;
            break;
        }
    }
    return c;
}

}  // namespace

void Game::Impl::build_textures() {
    textures.assign(size_t(kNumTextures) * kTexSize * kTexSize * 3, 0.f);
    const float light = style.light;
    for (int t = 0; t < kNumTextures; ++t) {
        float* dst = textures.data() + size_t(t) * kTexSize * kTexSize * 3;
        for (int ty = 0; ty < kTexSize; ++ty) {
            for (int tx = 0; tx < kTexSize; ++tx) {
                std::array<float, 3> c;
                if (t < kNumMaterials) {
                    const Material& m = style.materials[size_t(t)];
                    const std::array<float, 3> base{float(m.color[0]), float(m.color[1]), float(m.color[2])};
                    c = pattern_texel(m.pattern, base, t, tx, ty);
                    for (float& v : c) v *= m.brightness;
                } else {
                    // The door: a steel-blue panel with a dark frame, grooves and a centre seam.
                    c = {92.f, 104.f, 122.f};
                    const bool frame = tx < 2 || tx >= kTexSize - 2 || ty < 2 || ty >= kTexSize - 2;
                    if (frame)
                        c = {52.f, 56.f, 64.f};
                    else if (ty % 6 == 0)
                        c = {70.f, 80.f, 96.f};
                    else if (tx == 15 || tx == 16)
                        c = {60.f, 66.f, 78.f};
                }
                const float n = 1.f + kTexelNoise * texel_noise(t, tx, ty);
                float* o = dst + (size_t(ty) * kTexSize + size_t(tx)) * 3;
                for (int k = 0; k < 3; ++k) o[k] = c[size_t(k)] * n * light;
            }
        }
    }
}

void Game::Impl::render(Image& out) const {
    const int w = config.width, h = config.height;
    if (out.width != w || out.height != h || out.rgb.size() != size_t(w) * size_t(h) * 3) {
        out.width = w;
        out.height = h;
        out.rgb.assign(size_t(w) * size_t(h) * 3, 0);
    }
    if (row_dist.size() != size_t(h) * kRowStride) row_dist.assign(size_t(h) * kRowStride, 0.f);
    uint8_t* px_out = out.rgb.data();

    double sn, cs, hs, hc;
    det_sincos(double(pose.angle), sn, cs);
    det_sincos(double(config.fov_deg) * (kPi / 360.0), hs, hc);
    const float tan_half = float(hs / hc);
    const float dirx = float(cs), diry = float(sn);
    const float planex = -diry * tan_half, planey = dirx * tan_half;  // camera plane points to the screen's right
    const float focal = float(w) * 0.5f / tan_half;                   // pixels per unit at distance 1
    const float horizon = float(h) * 0.5f;
    const float px = pose.x, py = pose.y;
    const float fog = style.fog;
    const float fogc[3] = {float(style.fog_color[0]), float(style.fog_color[1]), float(style.fog_color[2])};

    // Per-row floor/ceiling distance and shading (camera height 0.5).
    for (int y = 0; y < h; ++y) {
        float dy = float(y) + 0.5f - horizon;
        const bool ceiling = dy < 0.f;
        float ady = std::fabs(dy);
        if (ady < 0.25f) ady = 0.25f;
        const float dist = 0.5f * focal / ady;
        const float fogf = float(det_exp(-double(fog) * double(dist)));
        float* row = row_dist.data() + size_t(y) * kRowStride;
        row[0] = dist;
        row[1] = (ceiling ? kCeilingShade : 1.f) / (1.f + kFalloff * dist) * fogf;
        for (int k = 0; k < 3; ++k) row[2 + k] = fogc[k] * (1.f - fogf);
    }

    const float* tex_floor = textures.data() + size_t(kMaterialFloor) * kTexSize * kTexSize * 3;
    const float* tex_ceil = textures.data() + size_t(kMaterialCeiling) * kTexSize * kTexSize * 3;
    const size_t stride = size_t(w) * 3;
    for (int x = 0; x < w; ++x) {
        const float cam = 2.f * (float(x) + 0.5f) / float(w) - 1.f;
        const float rdx = dirx + planex * cam, rdy = diry + planey * cam;
        const RayHit hit = cast(px, py, rdx, rdy);
        const float perp = std::max(hit.dist, 1e-3f);
        zbuffer[size_t(x)] = perp;
        const float line_h = focal / perp;
        const float top = horizon - 0.5f * line_h;
        int y0 = int(std::ceil(top - 0.5f));
        int y1 = int(std::ceil(top + line_h - 0.5f));
        y0 = std::max(0, std::min(h, y0));
        y1 = std::max(y0, std::min(h, y1));

        // Ceiling above the wall, floor below it.
        auto surface_rows = [&](int ya, int yb, const float* tex) {
            for (int y = ya; y < yb; ++y) {
                const float* row = row_dist.data() + size_t(y) * kRowStride;
                const float wx = px + row[0] * rdx, wy = py + row[0] * rdy;
                // texel = fractional cell position; the grid's coordinates are positive, so truncation is floor
                const int tx = int(wx * float(kTexSize)) & (kTexSize - 1);
                const int ty = int(wy * float(kTexSize)) & (kTexSize - 1);
                const float* t = tex + (size_t(ty) * kTexSize + size_t(tx)) * 3;
                uint8_t* o = px_out + size_t(y) * stride + size_t(x) * 3;
                for (int k = 0; k < 3; ++k) {
                    const float v = t[k] * row[1] + row[2 + k];
                    o[k] = uint8_t(int(std::min(255.f, v) + 0.5f));
                }
            }
        };
        // Rows above the horizon are ceiling, below are floor (a wall slice always straddles the horizon).
        const int hz = int(std::ceil(horizon - 0.5f));
        surface_rows(0, std::min(y0, hz), tex_ceil);
        surface_rows(std::max(y1, hz), h, tex_floor);
        if (y0 == y1) continue;

        // The wall slice.
        const float fogf = float(det_exp(-double(fog) * double(perp)));
        const float shade = (hit.side == 1 ? kSideShade : 1.f) / (1.f + kFalloff * perp) * fogf;
        float fog_term[3];
        for (int k = 0; k < 3; ++k) fog_term[k] = fogc[k] * (1.f - fogf);
        const int tx = std::min(kTexSize - 1, int(hit.u * float(kTexSize)));
        const float* tcol = textures.data() + size_t(hit.texture) * kTexSize * kTexSize * 3 + size_t(tx) * 3;
        const float inv_h = float(kTexSize) / line_h;
        for (int y = y0; y < y1; ++y) {
            int ty = int((float(y) + 0.5f - top) * inv_h);
            ty = std::max(0, std::min(kTexSize - 1, ty));
            const float* t = tcol + size_t(ty) * kTexSize * 3;
            uint8_t* o = px_out + size_t(y) * stride + size_t(x) * 3;
            for (int k = 0; k < 3; ++k) {
                const float v = t[k] * shade + fog_term[k];
                o[k] = uint8_t(int(std::min(255.f, v) + 0.5f));
            }
        }
    }

    // Sprites: glowing orbs floating above the floor, far to near, depth-tested per column.
    const float det = dirx * planey - planex * diry;
    size_t n_vis = 0;
    for (size_t i = 0; i < sprites.size(); ++i) {
        const float rx = sprites[i].x - px, ry = sprites[i].y - py;
        const float depth = (rx * planey - planex * ry) / det;
        if (depth < 0.15f) continue;
        // insertion sort, far first; ties keep index order
        size_t j = n_vis++;
        while (j > 0 && sprite_depth[j - 1] < depth) {
            sprite_depth[j] = sprite_depth[j - 1];
            sprite_order[j] = sprite_order[j - 1];
            --j;
        }
        sprite_depth[j] = depth;
        sprite_order[j] = int(i);
    }
    const float bob_rate = float(kTwoPi) / (1.6f * config.tick_hz);  // one bob every 1.6 s
    for (size_t k = 0; k < n_vis; ++k) {
        const size_t i = size_t(sprite_order[k]);
        const float depth = sprite_depth[k];
        const float rx = sprites[i].x - px, ry = sprites[i].y - py;
        const float lateral = (dirx * ry - rx * diry) / det;  // in units of the camera plane
        const float sx = (1.f + lateral / depth) * 0.5f * float(w);
        const float radius = focal * kSpriteRadius / depth;
        const float z = 0.34f + 0.05f * float(det_sin(double(bob_rate) * double(tick) + double(i) * 1.7));
        const float sy = horizon + (0.5f - z) * focal / depth;
        const int xa = std::max(0, int(std::ceil(sx - radius - 0.5f)));
        const int xb = std::min(w - 1, int(std::floor(sx + radius - 0.5f)));
        const int ya = std::max(0, int(std::ceil(sy - radius - 0.5f)));
        const int yb = std::min(h - 1, int(std::floor(sy + radius - 0.5f)));
        const float fogf = float(det_exp(-double(fog) * double(depth)));
        const float shade = style.light / (1.f + kFalloff * depth) * fogf;
        float fog_term[3];
        for (int c = 0; c < 3; ++c) fog_term[c] = fogc[c] * (1.f - fogf);
        static constexpr float kOrb[3] = {240.f, 166.f, 48.f};
        const float inv_r = 1.f / radius;
        for (int x = xa; x <= xb; ++x) {
            if (zbuffer[size_t(x)] <= depth) continue;
            const float ux = (float(x) + 0.5f - sx) * inv_r;
            for (int y = ya; y <= yb; ++y) {
                const float uy = (float(y) + 0.5f - sy) * inv_r;
                const float d2 = ux * ux + uy * uy;
                if (d2 > 1.f) continue;
                const float nz = std::sqrt(1.f - d2);
                // light from the upper left, front
                const float lambert = std::max(0.f, -0.45f * ux - 0.5f * uy + 0.74f * nz);
                const float glow = 0.35f + 0.85f * lambert;
                uint8_t* o = px_out + size_t(y) * stride + size_t(x) * 3;
                for (int c = 0; c < 3; ++c) {
                    const float v = kOrb[c] * glow * shade + fog_term[c];
                    o[c] = uint8_t(int(std::min(255.f, v) + 0.5f));
                }
            }
        }
    }
}

}  // namespace dc::game
