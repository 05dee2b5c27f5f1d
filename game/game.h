// game/game.h — the reference game: a deterministic first-person raycaster the world model learns from.
//
//   dc::game::Vocabulary vocab = dc::game::Vocabulary::load_default();          // assets/prompt_vocab.txt
//   dc::game::Game game(dc::game::Level::load_named("e1m1"));                 // assets/levels/e1m1.txt
//   game.set_prompt("the brick walls are dark red; thick fog", vocab);         // throws dc::Error on bad words
//   game.reset(/*seed=*/42);
//   auto agent = dc::game::make_agent("random_walk", /*seed=*/7);
//   dc::game::Image frame;
//   for (int i = 0; i < 100; ++i) { game.step(agent->act(game)); game.render(frame); }
//
// Everything is deterministic from (level, prompt, seed, action sequence): the same inputs give bit-identical frames
// on any machine (no floating-point reductions whose order depends on threads; no global state). One game tick is
// one model frame (15 Hz nominal). Rendering is single-threaded and allocation-free after the first frame.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dc::game {

// One tick of player input. Axes are analog in [-1, 1] (values outside are clamped): forward (+ = ahead),
// strafe (+ = right), turn (+ = clockwise / right). `use` opens the door the player faces, within reach.
struct Action {
    float forward = 0.f;
    float strafe = 0.f;
    float turn = 0.f;
    bool use = false;
};

// Player pose in map cells: x grows to the east (columns), y to the south (rows); angle in radians, 0 = east,
// +pi/2 = south (clockwise on screen, matching turn > 0).
struct Pose {
    float x = 0.f;
    float y = 0.f;
    float angle = 0.f;
};

// An RGB8 image, row-major, top row first, 3 bytes per pixel.
struct Image {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> rgb;   // [height, width, 3]
    uint64_t hash() const;      // FNV-1a 64 over size and pixels: equal images <=> equal hashes (for tests/replay)
};

// Surface patterns of the procedural textures.
enum class Pattern : uint8_t { plain, stripes, checker, brick, dots };
const char* pattern_name(Pattern p);

// Appearance of one material (a wall kind, the floor or the ceiling).
struct Material {
    std::array<uint8_t, 3> color{128, 128, 128};   // base colour
    Pattern pattern = Pattern::plain;
    float brightness = 1.f;                        // multiplier, 0.3 (dark) .. 1.6 (bright)
    bool operator==(const Material& o) const;
    bool operator!=(const Material& o) const { return !(*this == o); }
};

// Names of the wall materials (the level's digits 1..N map to them in order), then "floor" and "ceiling".
// The prompt grammar addresses materials by these names ("the brick walls ...", "the floor ...").
const std::vector<std::string>& material_names();
constexpr int kNumWallMaterials = 6;   // brick, metal, stone, wood, tile, moss (order of material_names())
constexpr int kMaterialFloor = kNumWallMaterials;
constexpr int kMaterialCeiling = kNumWallMaterials + 1;
constexpr int kNumMaterials = kNumWallMaterials + 2;

// The full look of the world: one Material per material slot plus global effects.
struct Style {
    std::array<Material, kNumMaterials> materials;
    float fog = 0.08f;          // fog density per cell of distance (0 = none): colour * e^(-fog * distance)
    std::array<uint8_t, 3> fog_color{0, 0, 0};   // what distance fades to (defaults(): a dark blue-grey haze)
    float light = 1.f;          // global light level
    static Style defaults();    // the look of the empty prompt (materials listed in game/README.md)
    bool operator==(const Style& o) const;
};

// The fixed prompt vocabulary and grammar (assets/prompt_vocab.txt). A prompt is clauses separated by ';' ',' or '.':
//   "the <material> walls are <colour-words> [and <pattern>]" | "the floor is ..." | "the ceiling is ..." |
//   "<fog-amount> fog" | "<light-level> light"   (exact grammar in the vocabulary file's header)
// Unknown words or malformed clauses throw dc::Error naming the word, its position (word number and column) and
// listing the words accepted there. A clause changes only the materials (or the fog/light) it names.
class Vocabulary {
public:
    static Vocabulary load(const std::string& path);
    static Vocabulary load_default();   // asset_path("prompt_vocab.txt")
    // Parses a prompt into a Style (starting from Style::defaults()); clauses apply left to right.
    Style parse(const std::string& prompt) const;
    // Token ids of a prompt for the world model's cross-attention, padded with pad_id() to max_len (0 = no pad).
    // Ids are stable: the position of the word in the vocabulary file. One sep_id() between non-empty clauses.
    // Throws like parse() on unknown words and malformed clauses, and when there are more than max_len tokens.
    std::vector<int32_t> tokenize(const std::string& prompt, int max_len = 128) const;
    int size() const;   // number of token ids, including the pad and separator tokens
    int pad_id() const;
    int sep_id() const;   // the clause-separator token
    const std::vector<std::string>& words() const;

private:
    struct Impl;
    std::shared_ptr<const Impl> m_impl;
};

// A grid level from an ASCII file (format in assets/levels/README.md; lines starting with '#' are comments):
// '1'..'6' walls of material 1..6, '.' floor, 'D' door (slides open on use), 'S' spawn (facing east unless
// one of '>' 'v' '<' '^' is used instead of 'S'), 'o' a moving sprite's start (patrols along its corridor).
// The border must be walls; exactly one spawn; a door sits between walls on two opposite sides.
struct Level {
    std::string name;
    int width = 0;
    int height = 0;
    std::vector<char> cells;   // [height, width]
    char at(int x, int y) const;   // outside the grid reads as wall '1'
    static Level parse(const std::string& text, const std::string& name);   // throws dc::Error with line:column
    static Level load(const std::string& path);
    static Level load_named(const std::string& name);   // asset_path("levels/" + name + ".txt")
    static std::vector<std::string> names();            // levels shipped in assets/levels/
};

struct GameConfig {
    int width = 128;             // frame width in pixels (the world model expects 128)
    int height = 128;            // frame height in pixels
    float fov_deg = 66.f;        // horizontal field of view
    float tick_hz = 15.f;        // game ticks per second (one model frame per tick)
    float move_speed = 2.4f;     // cells per second at forward = 1
    float turn_speed = 2.4f;     // radians per second at turn = 1
    float player_radius = 0.2f;  // collision radius in cells
};

// Dynamic state visible to agents and tests.
struct DoorState {
    int x = 0, y = 0;
    float open = 0.f;        // 0 closed .. 1 fully open (1 s to open; open doors stay open until reset)
    bool opening = false;    // sliding now
};
struct SpriteState {          // a floating orb; sprites do not collide with the player
    float x = 0.f, y = 0.f;
};

class Game {
public:
    explicit Game(Level level, GameConfig config = {});
    ~Game();
    Game(const Game&);
    Game& operator=(const Game&);

    void set_prompt(const std::string& prompt, const Vocabulary& vocab);   // throws on bad prompt; keeps old style
    void set_style(const Style& style);
    const Style& style() const;
    const std::string& prompt() const;

    void reset(uint64_t seed);        // spawn pose, doors closed, sprites at start; the seed varies nothing visible
                                      // except what documents say it varies (sprite phase)
    // One tick: `use` (opens the door whose cell is the first solid one straight ahead, if its centre is within
    // 1.5 cells), turn, move with collision (sliding along walls), doors slide, sprites advance.
    void step(const Action& action);
    // Resizes out to width x height on first use. Uses per-game scratch buffers: do not render one Game from two
    // threads at once (copies are independent).
    void render(Image& out) const;

    const Pose& pose() const;
    void set_pose(const Pose& pose);  // for tests and scripted starts; no collision check
    int64_t tick() const;
    const Level& level() const;
    const GameConfig& config() const;
    const std::vector<DoorState>& doors() const;
    const std::vector<SpriteState>& sprites() const;
    bool is_solid(float x, float y) const;   // wall or not fully open door at that point
    // Distance from the player's position along `angle` to the first solid cell (walls, doors not fully open).
    float ray_distance(float angle) const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// Scripted agents: deterministic from their seed and the game state they observe.
class Agent {
public:
    virtual ~Agent() = default;
    virtual Action act(const Game& game) = 0;
    virtual std::string name() const = 0;
};
// Names: "random_walk" (momentum), "wall_follow", "explore", "turn360", "go_and_return", "door_use"
// (behaviours described in game/README.md). Actions are analog and smoothed; every agent escapes when stuck.
std::unique_ptr<Agent> make_agent(const std::string& name, uint64_t seed);   // throws dc::Error listing names
const std::vector<std::string>& agent_names();

// Action scripts (text): one action per line "forward strafe turn use" (axes in [-1, 1], use 0/1); '#' comments;
// a line "repeat N" repeats the previous action N more times. Used by --headless play, tests and benchmarks.
// Errors name source_name:line (load_action_script: the path) and what was expected.
std::vector<Action> parse_action_script(const std::string& text, const std::string& source_name);
std::vector<Action> load_action_script(const std::string& path);

}  // namespace dc::game
