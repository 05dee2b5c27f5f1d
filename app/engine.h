// app/engine.h — what produces the frames the app shows: the reference game now, the neural world model later.
//
//   dc::app::EngineConfig config;  config.level = "e1m1";
//   auto engine = dc::app::make_engine("reference", config);   // throws dc::Error naming this build's engines
//   dc::game::Image frame;
//   engine->reset(/*seed=*/0, frame);                // frame 0
//   engine->step(action, frame);                     // frame 1, 2, ...
//   engine->set_prompt("the floor is mossy green");  // throws dc::Error (bad words); the old style stays
//   engine->redraw(frame);                           // the current state in the new style, where possible
//
// Engines are created by name (`dreamcaster play --engine NAME`). This build's names come from engine_names();
// the full set is known_engine_names() so that a name this build lacks gets a clear error, not "unknown".
// Adding the neural engine: implement Engine over dc::Session (world_model/world_model.h) in engine_neural.cpp,
// add it to the table in engine.cpp under DC_HAVE_WORLD_MODEL. A side-by-side engine returns both views in one
// image (twice as wide); the presenter fits any frame size.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "game/game.h"

namespace dc::app {

struct EngineConfig {
    std::string level = "e1m1";   // level name in assets/levels/ (the first map is the default start)
    std::string prompt;           // style prompt; "" = the game's default look
    uint64_t seed = 0;            // game seed (sprite phase) and, for the neural engine, its noise seed
};

// Per-step figures for the overlay, metrics files and benchmarks. Engines fill what they have.
struct EngineStats {
    int64_t frame = 0;         // frames since reset (the reset frame is 0)
    double step_ms = 0;        // wall time of the last reset/step, all of it
    double render_ms = 0;      // of which producing the image (reference: raycasting; neural: decode)
    double simulate_ms = 0;    // of which advancing the state (reference: game tick; neural: denoise + commit)
};

class Engine {
public:
    virtual ~Engine() = default;
    virtual std::string name() const = 0;
    virtual void reset(uint64_t seed, game::Image& out) = 0;                // back to the level start: frame 0
    virtual void step(const game::Action& action, game::Image& out) = 0;   // one tick -> the next frame
    virtual void set_prompt(const std::string& prompt) = 0;                // throws dc::Error; keeps the old style
    virtual const std::string& prompt() const = 0;
    // The current state drawn again (after a prompt change). False when the engine can only show the change from
    // its next frame (the neural engine).
    virtual bool redraw(game::Image& out) = 0;
    virtual std::optional<game::Pose> pose() const = 0;   // the player's pose when the engine knows it
    virtual float tick_hz() const = 0;                    // frames per second of game time
    virtual const EngineStats& stats() const = 0;
};

const std::vector<std::string>& known_engine_names();   // reference, neural, side-by-side
std::vector<std::string> engine_names();                // those this build has
// Throws dc::Error for an unknown name or one this build lacks, listing engine_names().
std::unique_ptr<Engine> make_engine(const std::string& name, const EngineConfig& config);

}  // namespace dc::app
