// game/game.cpp — Game: state, ticks, collision, doors, sprites, ray queries.
#include <algorithm>
#include <cmath>

#include "common/common.h"
#include "game/game_impl.h"

namespace dc::game {

using namespace detail;

namespace {
constexpr float kWallGap = 1e-3f;  // the player's edge stays this far from a solid cell after a collision
}

Game::Impl::Impl(Level l, GameConfig c) : level(std::move(l)), config(c), style(Style::defaults()) {
    DC_CHECK(level.width >= 1 && level.height >= 1 && level.cells.size() == size_t(level.width) * size_t(level.height),
             "level '" << level.name << "': expected " << level.width << "x" << level.height << " cells, found "
                       << level.cells.size());
    DC_CHECK(config.width >= 8 && config.width <= 4096 && config.height >= 8 && config.height <= 4096,
             "GameConfig: expected width and height in [8, 4096], found " << config.width << "x" << config.height);
    DC_CHECK(config.fov_deg >= 20.f && config.fov_deg <= 150.f,
             "GameConfig: expected fov_deg in [20, 150], found " << config.fov_deg);
    DC_CHECK(config.tick_hz >= 1.f && config.tick_hz <= 1000.f,
             "GameConfig: expected tick_hz in [1, 1000], found " << config.tick_hz);
    DC_CHECK(config.move_speed >= 0.f && config.move_speed <= 100.f && config.turn_speed >= 0.f &&
                 config.turn_speed <= 100.f,
             "GameConfig: expected move_speed and turn_speed in [0, 100], found " << config.move_speed << " and "
                                                                                  << config.turn_speed);
    DC_CHECK(config.player_radius > 0.f && config.player_radius < 0.5f,
             "GameConfig: expected player_radius in (0, 0.5), found " << config.player_radius);
    build_tables();
    build_textures();
    zbuffer.assign(size_t(config.width), 0.f);
    row_dist.assign(size_t(config.height) * 5, 0.f);
    sprite_order.assign(sprites.size(), 0);
    sprite_depth.assign(sprites.size(), 0.f);
}

void Game::Impl::build_tables() {
    const int w = level.width, h = level.height;
    wall_material.assign(size_t(w) * size_t(h), int8_t(-1));
    door_index.assign(size_t(w) * size_t(h), -1);
    doors.clear();
    door_panel_x.clear();
    sprites.clear();
    sprite_paths.clear();
    bool have_spawn = false;
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const char ch = level.at(x, y);
            const size_t i = size_t(y) * size_t(w) + size_t(x);
            if (is_wall_char(ch)) {
                wall_material[i] = int8_t(ch - '1');
            } else if (ch == 'D') {
                door_index[i] = int(doors.size());
                DoorState d;
                d.x = x;
                d.y = y;
                doors.push_back(d);
                // Walls north and south: the passage runs east-west and the panel is the plane x = const.
                door_panel_x.push_back(is_wall_char(level.at(x, y - 1)) && is_wall_char(level.at(x, y + 1)) ? 1 : 0);
            } else if (is_spawn_char(ch)) {
                have_spawn = true;
                spawn.x = float(x) + 0.5f;
                spawn.y = float(y) + 0.5f;
                spawn.angle = ch == 'v' ? float(kPi / 2) : ch == '<' ? float(-kPi) : ch == '^' ? float(-kPi / 2) : 0.f;
            } else if (ch == 'o') {
                SpritePath p;
                auto run = [&](int dx, int dy) {
                    int n = 0;
                    while (n < kSpriteMaxRun && is_open_char(level.at(x + dx * (n + 1), y + dy * (n + 1)))) ++n;
                    return n;
                };
                const int e = run(1, 0), wv = run(-1, 0), s = run(0, 1), nv = run(0, -1);
                const bool along_x = e + wv >= s + nv;
                p.x0 = float(x - (along_x ? wv : 0)) + 0.5f;
                p.y0 = float(y - (along_x ? 0 : nv)) + 0.5f;
                p.x1 = float(x + (along_x ? e : 0)) + 0.5f;
                p.y1 = float(y + (along_x ? 0 : s)) + 0.5f;
                p.length = float(along_x ? e + wv : s + nv);
                sprite_paths.push_back(p);
                SpriteState st;
                st.x = float(x) + 0.5f;
                st.y = float(y) + 0.5f;
                sprites.push_back(st);
            }
        }
    }
    DC_CHECK(have_spawn, "level '" << level.name << "': expected a spawn cell ('S' '>' 'v' '<' '^'), found none");
}

void Game::Impl::place_sprites() {
    const float per_tick = kSpriteSpeed / config.tick_hz;
    for (size_t i = 0; i < sprites.size(); ++i) {
        const SpritePath& p = sprite_paths[i];
        if (p.length <= 0.f) {
            sprites[i].x = p.x0;
            sprites[i].y = p.y0;
            continue;
        }
        const float period = 2.f * p.length;
        // The round trip position from the tick count directly (no accumulated drift); double keeps long runs exact.
        double s = double(p.phase) + double(tick) * double(per_tick);
        s = s - double(period) * std::floor(s / double(period));
        float along = float(s);
        if (along > p.length) along = period - along;
        const float f = along / p.length;
        sprites[i].x = p.x0 + (p.x1 - p.x0) * f;
        sprites[i].y = p.y0 + (p.y1 - p.y0) * f;
    }
}

bool Game::Impl::solid_cell(int cx, int cy) const {
    if (cx < 0 || cy < 0 || cx >= level.width || cy >= level.height) return true;
    const size_t i = size_t(cy) * size_t(level.width) + size_t(cx);
    if (wall_material[i] >= 0) return true;
    const int d = door_index[i];
    return d >= 0 && doors[size_t(d)].open < 1.f;
}

RayHit Game::Impl::cast(float px, float py, float dx, float dy) const {
    int mx = int(std::floor(px)), my = int(std::floor(py));
    const float ddx = dx == 0.f ? 1e30f : std::fabs(1.f / dx);
    const float ddy = dy == 0.f ? 1e30f : std::fabs(1.f / dy);
    const int sx = dx < 0.f ? -1 : 1, sy = dy < 0.f ? -1 : 1;
    float sdx = dx < 0.f ? (px - float(mx)) * ddx : (float(mx + 1) - px) * ddx;
    float sdy = dy < 0.f ? (py - float(my)) * ddy : (float(my + 1) - py) * ddy;
    const int max_steps = level.width + level.height + 4;
    RayHit hit;
    for (int step = 0; step < max_steps; ++step) {
        float t_enter;
        int side;
        if (sdx < sdy) {
            t_enter = sdx;
            sdx += ddx;
            mx += sx;
            side = 0;
        } else {
            t_enter = sdy;
            sdy += ddy;
            my += sy;
            side = 1;
        }
        const bool outside = mx < 0 || my < 0 || mx >= level.width || my >= level.height;
        const size_t i = outside ? 0 : size_t(my) * size_t(level.width) + size_t(mx);
        const int mat = outside ? 0 : wall_material[i];
        if (outside || mat >= 0) {
            hit.dist = t_enter;
            hit.side = side;
            hit.texture = mat;
            if (side == 0) {
                const float hy = py + t_enter * dy;
                const float f = hy - std::floor(hy);
                hit.u = dx > 0.f ? f : 1.f - f;
            } else {
                const float hx = px + t_enter * dx;
                const float f = hx - std::floor(hx);
                hit.u = dy > 0.f ? 1.f - f : f;
            }
            return hit;
        }
        const int d = door_index[i];
        if (d < 0) continue;
        const DoorState& door = doors[size_t(d)];
        if (door.open >= 1.f) continue;
        const float t_exit = std::min(sdx, sdy);
        float t, f;
        if (door_panel_x[size_t(d)]) {
            if (dx == 0.f) continue;
            t = (float(mx) + 0.5f - px) / dx;
            f = py + t * dy - float(my);
        } else {
            if (dy == 0.f) continue;
            t = (float(my) + 0.5f - py) / dy;
            f = px + t * dx - float(mx);
        }
        // The panel slides towards -y (or -x) by `open`: its visible part covers [0, 1 - open) of the cell.
        if (t < t_enter || t > t_exit || f < 0.f || f >= 1.f - door.open) continue;
        hit.dist = t;
        hit.side = door_panel_x[size_t(d)] ? 0 : 1;
        hit.texture = kTexIndexDoor;
        hit.u = std::min(f + door.open, 0.999f);
        return hit;
    }
    hit.dist = 1e30f;  // unreachable for a valid grid (the outside reads as wall)
    return hit;
}

float Game::Impl::first_solid(float px, float py, float dx, float dy, int& cx, int& cy) const {
    int mx = int(std::floor(px)), my = int(std::floor(py));
    const float ddx = dx == 0.f ? 1e30f : std::fabs(1.f / dx);
    const float ddy = dy == 0.f ? 1e30f : std::fabs(1.f / dy);
    const int sx = dx < 0.f ? -1 : 1, sy = dy < 0.f ? -1 : 1;
    float sdx = dx < 0.f ? (px - float(mx)) * ddx : (float(mx + 1) - px) * ddx;
    float sdy = dy < 0.f ? (py - float(my)) * ddy : (float(my + 1) - py) * ddy;
    const int max_steps = level.width + level.height + 4;
    float t = 0.f;
    for (int step = 0; step < max_steps; ++step) {
        if (sdx < sdy) {
            t = sdx;
            sdx += ddx;
            mx += sx;
        } else {
            t = sdy;
            sdy += ddy;
            my += sy;
        }
        if (solid_cell(mx, my)) break;
    }
    cx = mx;
    cy = my;
    return t;
}

// ---- Game -------------------------------------------------------------------------------------------------------

Game::Game(Level level, GameConfig config) : m_impl(std::make_unique<Impl>(std::move(level), config)) {
    reset(0);
}
Game::~Game() = default;
Game::Game(const Game& o) : m_impl(std::make_unique<Impl>(*o.m_impl)) {}
Game& Game::operator=(const Game& o) {
    if (this != &o) m_impl = std::make_unique<Impl>(*o.m_impl);
    return *this;
}

void Game::set_prompt(const std::string& prompt, const Vocabulary& vocab) {
    Style s = vocab.parse(prompt);  // throws before anything changes
    set_style(s);
    m_impl->prompt = prompt;
}

void Game::set_style(const Style& style) {
    m_impl->style = style;
    m_impl->build_textures();
}

const Style& Game::style() const {
    return m_impl->style;
}
const std::string& Game::prompt() const {
    return m_impl->prompt;
}

void Game::reset(uint64_t seed) {
    Impl& s = *m_impl;
    s.seed = seed;
    s.tick = 0;
    s.pose = s.spawn;
    for (DoorState& d : s.doors) {
        d.open = 0.f;
        d.opening = false;
    }
    for (size_t i = 0; i < s.sprite_paths.size(); ++i) {
        SpritePath& p = s.sprite_paths[i];
        Rng rng(hash_mix(seed, 0x5350524954450000ull + i));
        p.phase = rng.uniform() * 2.f * p.length;
    }
    s.place_sprites();
}

void Game::step(const Action& action) {
    Impl& s = *m_impl;
    const float dt = 1.f / s.config.tick_hz;
    float fwd = clamp_axis(action.forward), strafe = clamp_axis(action.strafe);
    const float turn = clamp_axis(action.turn);

    // 1. use: opens the door the player faces (first solid cell along the view ray) within reach.
    if (action.use) {
        double sn, cs;
        det_sincos(double(s.pose.angle), sn, cs);
        int cx = 0, cy = 0;
        s.first_solid(s.pose.x, s.pose.y, float(cs), float(sn), cx, cy);
        if (cx >= 0 && cy >= 0 && cx < s.level.width && cy < s.level.height) {
            const int d = s.door_index[size_t(cy) * size_t(s.level.width) + size_t(cx)];
            if (d >= 0) {
                DoorState& door = s.doors[size_t(d)];
                const float ddx = float(cx) + 0.5f - s.pose.x, ddy = float(cy) + 0.5f - s.pose.y;
                if (std::sqrt(ddx * ddx + ddy * ddy) <= kUseReach && door.open < 1.f) door.opening = true;
            }
        }
    }

    // 2. turn, then 3. move relative to the new heading with collision, one axis at a time (slides along walls).
    s.pose.angle = wrap_angle(s.pose.angle + turn * s.config.turn_speed * dt);
    const float len = std::sqrt(fwd * fwd + strafe * strafe);
    if (len > 1.f) {
        fwd /= len;
        strafe /= len;
    }
    double sn, cs;
    det_sincos(double(s.pose.angle), sn, cs);
    const float dirx = float(cs), diry = float(sn);
    const float step_len = s.config.move_speed * dt;
    float mvx = (dirx * fwd - diry * strafe) * step_len;  // right = (-sin, cos)
    float mvy = (diry * fwd + dirx * strafe) * step_len;
    const float r = s.config.player_radius;
    // Sub-steps of at most a quarter cell keep fast configurations from tunnelling through walls.
    const float biggest = std::max(std::fabs(mvx), std::fabs(mvy));
    const int n_sub = biggest > 0.25f ? int(std::ceil(biggest / 0.25f)) : 1;
    mvx /= float(n_sub);
    mvy /= float(n_sub);
    for (int k = 0; k < n_sub; ++k) {
        if (mvx != 0.f) {
            float nx = s.pose.x + mvx;
            const int y0 = int(std::floor(s.pose.y - r)), y1 = int(std::floor(s.pose.y + r));
            const int c = int(std::floor(mvx > 0.f ? nx + r : nx - r));
            for (int row = y0; row <= y1; ++row) {
                if (!s.solid_cell(c, row)) continue;
                nx = mvx > 0.f ? float(c) - r - kWallGap : float(c + 1) + r + kWallGap;
                break;
            }
            s.pose.x = nx;
        }
        if (mvy != 0.f) {
            float ny = s.pose.y + mvy;
            const int x0 = int(std::floor(s.pose.x - r)), x1 = int(std::floor(s.pose.x + r));
            const int c = int(std::floor(mvy > 0.f ? ny + r : ny - r));
            for (int col = x0; col <= x1; ++col) {
                if (!s.solid_cell(col, c)) continue;
                ny = mvy > 0.f ? float(c) - r - kWallGap : float(c + 1) + r + kWallGap;
                break;
            }
            s.pose.y = ny;
        }
    }

    // 4. doors slide, 5. the clock advances, 6. sprites follow the clock.
    for (DoorState& d : s.doors) {
        if (!d.opening) continue;
        d.open = std::min(1.f, d.open + dt / kDoorOpenSeconds);
        if (d.open >= 1.f) d.opening = false;
    }
    ++s.tick;
    s.place_sprites();
}

void Game::render(Image& out) const {
    m_impl->render(out);
}

const Pose& Game::pose() const {
    return m_impl->pose;
}
void Game::set_pose(const Pose& pose) {
    m_impl->pose = pose;
    m_impl->pose.angle = wrap_angle(pose.angle);
}
int64_t Game::tick() const {
    return m_impl->tick;
}
const Level& Game::level() const {
    return m_impl->level;
}
const GameConfig& Game::config() const {
    return m_impl->config;
}
const std::vector<DoorState>& Game::doors() const {
    return m_impl->doors;
}
const std::vector<SpriteState>& Game::sprites() const {
    return m_impl->sprites;
}

bool Game::is_solid(float x, float y) const {
    return m_impl->solid_cell(int(std::floor(x)), int(std::floor(y)));
}

float Game::ray_distance(float angle) const {
    double sn, cs;
    det_sincos(double(angle), sn, cs);
    int cx = 0, cy = 0;
    return m_impl->first_solid(m_impl->pose.x, m_impl->pose.y, float(cs), float(sn), cx, cy);
}

}  // namespace dc::game
