// app/engine_impl.h — the engines behind make_engine (private to app/): constructors and what side-by-side needs.
#pragma once

#include <memory>

#include "app/engine.h"

namespace dc::app {

std::unique_ptr<Engine> make_reference_engine(const EngineConfig& config);

#ifdef DC_HAVE_WORLD_MODEL
// The neural engine, with what side-by-side needs beyond Engine.
class NeuralEngine : public Engine {
public:
    // The dream goes on from `frame` (a real frame): the session restarts with that frame as its context, keeping
    // prompt, attention, steps and budget; the frame counter goes on.
    virtual void restart_from(const game::Image& frame) = 0;
};
// Loads the model (throws dc::Error saying why it cannot) and makes a session; engine_neural.cpp.
std::unique_ptr<NeuralEngine> make_neural_engine(const EngineConfig& config);
// engine_side_by_side.cpp.
std::unique_ptr<Engine> make_side_by_side_engine(const EngineConfig& config);
#endif

}  // namespace dc::app
