// The shipped world model (assets/models/default.json) on the CPU: it loads, its first dreamed frames stay close to
// the real game driven by the same actions, and a prompt change restyles the material it names.
#ifdef DC_HAVE_WORLD_MODEL
// Before Catch: torch's headers (through world_model.h) define glog's CHECK, which Catch's must replace.
#include "world_model/world_model.h"
#endif
#include <catch2/catch.hpp>

#ifdef DC_HAVE_WORLD_MODEL
#include <cstdlib>
#include <string>
#include <vector>

#include "app/image_metrics.h"
#include "common/common.h"
#include "game/game.h"

namespace {

struct Start {
    dc::game::Game game;
    dc::game::Image frame;
};

Start real_start(const std::string& prompt) {
    Start s{dc::game::Game(dc::game::Level::load_named("e1m1")), {}};
    s.game.set_prompt(prompt, dc::game::Vocabulary::load_default());
    s.game.reset(7);
    s.game.render(s.frame);
    return s;
}

// Mean of red minus blue over the pixels of `mask` (0..255 scale).
double red_minus_blue(const dc::game::Image& im, const std::vector<bool>& mask) {
    double sum = 0;
    int64_t n = 0;
    for (size_t p = 0; p < mask.size(); ++p) {
        if (!mask[p]) continue;
        sum += static_cast<double>(im.rgb[3 * p]) - static_cast<double>(im.rgb[3 * p + 2]);
        ++n;
    }
    REQUIRE(n > 0);
    return sum / static_cast<double>(n);
}

}  // namespace

TEST_CASE("the shipped model dreams the next frames close to the real game", "[app]") {
    auto model = dc::WorldModel::load(dc::asset_path("models/default.json"), "cpu");
    const std::string prompt = "the brick walls are dark red";
    Start s = real_start(prompt);
    dc::SessionConfig sc;
    sc.seed = 3;
    dc::Session session(model, sc);
    session.reset(s.frame, prompt);
    dc::game::Image prev = s.frame, real, dream;
    dc::game::Action a;
    a.forward = 0.6f;
    a.turn = 0.15f;
    const int frames = 4;
    for (int f = 1; f <= frames; ++f) {
        session.step(a, dream);
        s.game.step(a);
        s.game.render(real);
        const double pd = dc::app::psnr(dream, real), pc = dc::app::psnr(prev, real);
        INFO("frame " << f << ": dream " << pd << " dB, copy-last " << pc << " dB");
        CHECK(pd >= 26.0);   // floor: the held-out evaluation averages 27 dB at horizon 1 (copy-last 24 dB)
        CHECK(pd > pc);      // and it predicts the motion better than "nothing changes"
        prev = real;
    }
    // (Measured here: 30.8–32.3 dB a frame against copy-last's 26.8–27.1 dB on this slow walk.)
}

TEST_CASE("a prompt change restyles the material it names in the shipped model's dream", "[app]") {
    // The player stands at the spawn of e1m1 in the default look; the prompt then names the floor red, or blue, from
    // the next frame on. The real game shows which pixels are floor (those the two prompts colour differently) and
    // how far apart the two looks are; the dream must move the floor's colour the same way by a good part of that.
    auto model = dc::WorldModel::load(dc::asset_path("models/default.json"), "cpu");
    Start s = real_start("");
    Start red = real_start("the floor is red"), blue = real_start("the floor is blue");
    const size_t pixels = static_cast<size_t>(s.frame.width) * static_cast<size_t>(s.frame.height);
    std::vector<bool> floor(pixels);
    int64_t floor_pixels = 0;
    for (size_t p = 0; p < pixels; ++p) {
        int d = 0;
        for (int c = 0; c < 3; ++c) d += std::abs(int(red.frame.rgb[3 * p + c]) - int(blue.frame.rgb[3 * p + c]));
        floor[p] = d > 60;
        floor_pixels += floor[p] ? 1 : 0;
    }
    REQUIRE(floor_pixels > static_cast<int64_t>(pixels / 10));   // the spawn view shows floor
    const double real_shift = red_minus_blue(red.frame, floor) - red_minus_blue(blue.frame, floor);
    REQUIRE(real_shift > 100);

    auto dream_after = [&](const std::string& prompt) {
        dc::SessionConfig sc;
        sc.seed = 5;
        dc::Session session(model, sc);
        session.reset(s.frame, "");
        session.set_prompt(prompt);
        dc::game::Image out;
        for (int f = 0; f < 8; ++f) session.step(dc::game::Action{}, out);
        return out;
    };
    const double dream_shift = red_minus_blue(dream_after("the floor is red"), floor) -
                               red_minus_blue(dream_after("the floor is blue"), floor);
    INFO("floor red - blue, red prompt minus blue prompt: real game " << real_shift << ", dream after 8 frames "
                                                                      << dream_shift);
    CHECK(dream_shift >= 0.25 * real_shift);
    // (Measured here: real game 196, dream 214; weights trained without high-noise prompt-change frames: 0.5.)
}

#endif  // DC_HAVE_WORLD_MODEL
