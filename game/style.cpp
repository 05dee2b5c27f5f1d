// game/style.cpp — images, patterns, material names and the default look.
#include "common/common.h"
#include "game/game.h"

namespace dc::game {

uint64_t Image::hash() const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint8_t b) {
        h ^= b;
        h *= 1099511628211ull;
    };
    for (int shift = 0; shift < 32; shift += 8) mix(uint8_t(uint32_t(width) >> shift));
    for (int shift = 0; shift < 32; shift += 8) mix(uint8_t(uint32_t(height) >> shift));
    for (uint8_t b : rgb) mix(b);
    return h;
}

const char* pattern_name(Pattern p) {
    switch (p) {
        case Pattern::plain: return "plain";
        case Pattern::stripes: return "stripes";
        case Pattern::checker: return "checker";
        case Pattern::brick: return "brick";
        case Pattern::dots: return "dots";
    }
    return "?";
}

const std::vector<std::string>& material_names() {
    static const std::vector<std::string> names = {"brick", "metal", "stone", "wood",
                                                   "tile",  "moss",  "floor", "ceiling"};
    return names;
}

Style Style::defaults() {
    Style s;
    auto set = [&s](int i, uint8_t r, uint8_t g, uint8_t b, Pattern p) {
        s.materials[size_t(i)].color = {r, g, b};
        s.materials[size_t(i)].pattern = p;
        s.materials[size_t(i)].brightness = 1.f;
    };
    set(0, 150, 62, 46, Pattern::brick);      // brick: red-brown bricks
    set(1, 112, 122, 140, Pattern::dots);     // metal: blue-grey plates with rivets
    set(2, 122, 119, 112, Pattern::plain);    // stone: grey
    set(3, 128, 84, 44, Pattern::stripes);    // wood: brown planks
    set(4, 176, 176, 168, Pattern::checker);  // tile: off-white tiles
    set(5, 70, 108, 52, Pattern::plain);      // moss: green
    set(kMaterialFloor, 84, 80, 74, Pattern::checker);
    set(kMaterialCeiling, 96, 98, 108, Pattern::plain);
    s.fog = 0.08f;
    s.fog_color = {40, 42, 48};  // a dark blue-grey haze rather than pure black
    s.light = 1.f;
    return s;
}

bool Material::operator==(const Material& o) const {
    return color == o.color && pattern == o.pattern && brightness == o.brightness;
}

bool Style::operator==(const Style& o) const {
    return materials == o.materials && fog == o.fog && fog_color == o.fog_color && light == o.light;
}

}  // namespace dc::game
