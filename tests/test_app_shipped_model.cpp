// The shipped world model (assets/models/default.json) on the CPU: it loads, and its first dreamed frames stay close
// to the real game driven by the same actions.
#ifdef DC_HAVE_WORLD_MODEL
// Before Catch: torch's headers (through world_model.h) define glog's CHECK, which Catch's must replace.
#include "world_model/world_model.h"
#endif
#include <catch2/catch.hpp>

#ifdef DC_HAVE_WORLD_MODEL
#include <string>

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
        CHECK(pd >= 20.0);   // floor: the held-out evaluation averages 28 dB at horizon 1 (copy-last 24 dB)
        prev = real;
    }
    // (Measured here: 22.3–22.7 dB a frame; copy-last 26.8–27.1 dB on this slow walk, where little changes from
    // frame to frame. Against copy-last the model is judged on the held-out clips of `dreamcaster eval`.)
}

#endif  // DC_HAVE_WORLD_MODEL
