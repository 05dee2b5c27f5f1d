// game/game_impl.h — private to dc_game: deterministic math, the RNG, cell helpers and Game's state.
//
// Determinism: everything that reaches a frame or an agent's decision goes through IEEE-754 basic operations
// (+ - * / sqrt floor), compiled with -ffp-contract=off (no fused multiply-add), so results are bit-identical
// across compilers and optimisation levels (checked: g++ 12 -O0..-O3 -march=native, clang++ 14 -O2/-O3). libm's
// sin/cos/exp/atan2 are not guaranteed to round alike across libraries, so the few transcendental functions the
// game needs are written here from basic operations.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "game/game.h"

namespace dc::game::detail {

constexpr double kPi = 3.14159265358979323846;
constexpr double kTwoPi = 6.28318530717958647692;

// sin and cos of x (|x| up to ~1e6 keeps ~1e-15 accuracy): Cody-Waite reduction to [-pi/4, pi/4], Taylor series.
void det_sincos(double x, double& s, double& c);
inline double det_sin(double x) {
    double s, c;
    det_sincos(x, s, c);
    return s;
}
inline double det_cos(double x) {
    double s, c;
    det_sincos(x, s, c);
    return c;
}
// e^x, x clamped to [-700, 700]; relative error ~1e-15.
double det_exp(double x);
// atan2(y, x) in (-pi, pi]; atan2(0, 0) = 0.
double det_atan2(double y, double x);
// Wraps an angle into [-pi, pi).
float wrap_angle(float a);
double wrap_angle(double a);

inline float clampf(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}
// Clamps an action axis: NaN reads as 0.
inline float clamp_axis(float v) {
    return v == v ? clampf(v, -1.f, 1.f) : 0.f;
}

// SplitMix64: tiny, fast, and the same sequence everywhere.
class Rng {
public:
    explicit Rng(uint64_t seed) : m_state(seed) {}
    uint64_t next() {
        uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform() { return float(next() >> 40) * (1.f / 16777216.f); }  // [0, 1)
    float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
    int uniform_int(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }  // [lo, hi]
    bool chance(float p) { return uniform() < p; }

private:
    uint64_t m_state;
};

uint64_t hash_mix(uint64_t a, uint64_t b);   // combines two values into a well-mixed 64-bit value
uint64_t hash_string(const std::string& s);  // FNV-1a 64

// Level cell classes.
inline bool is_wall_char(char c) {
    return c >= '1' && c <= '6';
}
inline bool is_spawn_char(char c) {
    return c == 'S' || c == '>' || c == 'v' || c == '<' || c == '^';
}
inline bool is_open_char(char c) {
    return c == '.' || c == 'o' || is_spawn_char(c);
}  // floor the player walks on

constexpr int kTexSize = 32;                  // procedural texture resolution (texels per cell edge)
constexpr int kTexIndexDoor = kNumMaterials;  // textures: the 8 materials, then the fixed door texture
constexpr int kNumTextures = kNumMaterials + 1;
constexpr float kDoorOpenSeconds = 1.f;  // time a door takes to slide fully open
constexpr float kUseReach = 1.5f;        // max distance from the player to a door's centre for `use`
constexpr float kSpriteSpeed = 1.2f;     // sprite patrol speed, cells per second
constexpr float kSpriteRadius = 0.2f;    // sprite ball radius in cells (drawn; sprites do not collide)
constexpr int kSpriteMaxRun = 8;         // a patrol extends at most this many cells each way from its start

// A sprite's patrol: back and forth along one axis between two cell centres.
struct SpritePath {
    float x0 = 0.f, y0 = 0.f;  // one end (cell centre)
    float x1 = 0.f, y1 = 0.f;  // other end
    float length = 0.f;        // distance between the ends, cells
    float phase = 0.f;         // distance along the round trip at tick 0 (from the seed), cells
};

// Result of casting one ray through the grid.
struct RayHit {
    float dist = 0.f;  // perpendicular distance when the ray direction has unit forward component
    int side = 0;      // 0: hit a face of constant x (east/west face), 1: constant y (north/south face)
    int texture = 0;   // texture index (material or door)
    float u = 0.f;     // horizontal texture coordinate in [0, 1)
};

}  // namespace dc::game::detail

namespace dc::game {

struct Game::Impl {
    Level level;
    GameConfig config;
    Style style;
    std::string prompt;

    Pose spawn;
    Pose pose;
    int64_t tick = 0;
    uint64_t seed = 0;

    std::vector<int8_t> wall_material;  // [height, width] material index 0..5 of a wall cell, -1 otherwise
    std::vector<int> door_index;        // [height, width] index into doors, -1 otherwise
    std::vector<DoorState> doors;
    std::vector<uint8_t> door_panel_x;  // [n_doors] 1: panel is the plane x = const (passage runs east-west)
    std::vector<SpriteState> sprites;
    std::vector<detail::SpritePath> sprite_paths;

    // Textures for the current style: [kNumTextures, kTexSize, kTexSize, 3] linear RGB 0..255, with the material
    // brightness and the global light level applied.
    std::vector<float> textures;

    // Render scratch (sized once; render() allocates nothing after the first frame).
    mutable std::vector<float> zbuffer;       // [width] perpendicular wall distance per column
    mutable std::vector<float> row_dist;      // [height, 5] floor/ceiling distance, shade, fog colour term
    mutable std::vector<int> sprite_order;    // [n_sprites]
    mutable std::vector<float> sprite_depth;  // [n_sprites]

    Impl(Level l, GameConfig c);
    void build_tables();
    void build_textures();
    void place_sprites();
    bool solid_cell(int cx, int cy) const;  // wall or door not fully open
    // Walks the grid from (px, py) along (dx, dy) to the first solid cell; returns the ray parameter where the ray
    // enters it (the distance for a unit direction) and the cell in (cx, cy).
    float first_solid(float px, float py, float dx, float dy, int& cx, int& cy) const;
    // Casts from (px, py) along (dx, dy); doors are hit at their sliding panel. Never fails (the grid is closed).
    detail::RayHit cast(float px, float py, float dx, float dy) const;
    void render(Image& out) const;
};

}  // namespace dc::game
