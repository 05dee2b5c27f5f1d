// game/agents.cpp — scripted agents that generate training and evaluation play.
//
// Every agent is a function of its seed and the game states it has observed (pose, level, doors, ray distances),
// computed with the deterministic helpers of game_impl.h, so a (level, prompt, game seed, agent, agent seed) run
// replays bit-exactly. Actions are analog and smoothed like a person's stick input. All agents share a stuck
// detector: when the sticks asked for at least a cell of travel over 20 ticks but the player moved less than 0.2
// cells, the agent turns towards the most open direction for a moment and tells the behaviour (which replans).
#include <algorithm>
#include <cmath>
#include <deque>

#include "common/common.h"
#include "game/game_impl.h"

namespace dc::game {

using namespace detail;

namespace {

constexpr int kStuckWindow = 20;        // ticks over which progress is measured
constexpr float kStuckDistance = 0.2f;  // cells the player must move in kStuckWindow ticks while walking
constexpr float kStuckIntent = 1.f;     // cells of travel the sticks must ask for in the window to count as walking
constexpr int kSlowWindow = 45;         // ticks (3 s) over which the player must get somewhere
constexpr float kSlowDistance = 0.4f;   // cells it must get away from where the window started

float dist2(float ax, float ay, float bx, float by) {
    return (ax - bx) * (ax - bx) + (ay - by) * (ay - by);
}
float approach(float v, float target, float rate) {
    return v + (target - v) * rate;
}

// Steers toward a world point: turn proportional to the heading error, slow down while the error is large.
Action steer_to(const Game& g, float tx, float ty, float speed) {
    const Pose& p = g.pose();
    const float desired = float(det_atan2(double(ty - p.y), double(tx - p.x)));
    const float err = wrap_angle(desired - p.angle);
    const float per_tick = g.config().turn_speed / g.config().tick_hz;  // radians per tick at turn = 1
    Action a;
    a.turn = clampf(err / (2.5f * std::max(per_tick, 1e-3f)), -1.f, 1.f);
    a.forward = speed * clampf(1.f - std::fabs(err) / 1.1f, 0.f, 1.f);
    return a;
}

// True when a disc of radius r can travel in a straight line from a to b without touching a solid cell.
bool segment_clear(const Game& g, float ax, float ay, float bx, float by, float r) {
    const float dx = bx - ax, dy = by - ay;
    const float len = std::sqrt(dx * dx + dy * dy);
    if (len < 1e-4f) return !g.is_solid(ax, ay);
    const float nx = -dy / len * r, ny = dx / len * r;
    const int n = int(std::ceil(len / 0.15f));
    for (int i = 0; i <= n; ++i) {
        const float t = float(i) / float(n);
        const float x = ax + dx * t, y = ay + dy * t;
        if (g.is_solid(x, y) || g.is_solid(x + nx, y + ny) || g.is_solid(x - nx, y - ny)) return false;
    }
    return true;
}

int door_at(const Game& g, int cx, int cy) {
    const auto& doors = g.doors();
    for (size_t i = 0; i < doors.size(); ++i) {
        if (doors[i].x == cx && doors[i].y == cy) return int(i);
    }
    return -1;
}

// The door the player faces within reach (the first solid cell straight ahead), or -1.
int closed_door_ahead(const Game& g) {
    const Pose& p = g.pose();
    const float t = g.ray_distance(p.angle) + 0.01f;
    const float hx = p.x + float(det_cos(double(p.angle))) * t, hy = p.y + float(det_sin(double(p.angle))) * t;
    const int cx = int(std::floor(hx)), cy = int(std::floor(hy));
    const int d = door_at(g, cx, cy);
    if (d < 0 || g.doors()[size_t(d)].open >= 1.f) return -1;
    if (dist2(p.x, p.y, float(cx) + 0.5f, float(cy) + 0.5f) > 1.4f * 1.4f) return -1;
    return d;
}

// ---- behaviours ---------------------------------------------------------------------------------------------------

// Momentum random walk with wall avoidance (used by random_walk, turn360 and go_and_return).
class Wander {
public:
    Action step(const Game& g, Rng& rng) {
        if (--m_timer <= 0) {
            // Mostly gentle curves held for 0.7-2.3 s; sometimes a sharp turn, held briefly (no circling).
            m_tgt_fwd = rng.uniform(0.55f, 1.f);
            m_tgt_strafe = rng.chance(0.3f) ? rng.uniform(-0.45f, 0.45f) : 0.f;
            if (rng.chance(0.25f)) {
                m_tgt_turn = (rng.chance(0.5f) ? 1.f : -1.f) * rng.uniform(0.45f, 0.9f);
                m_timer = rng.uniform_int(4, 12);
            } else {
                m_tgt_turn = rng.uniform(-0.25f, 0.25f);
                m_timer = rng.uniform_int(10, 35);
            }
        }
        const float a = g.pose().angle;
        const float front = g.ray_distance(a);
        const float fl = g.ray_distance(a - 0.45f), fr = g.ray_distance(a + 0.45f);
        const float l = g.ray_distance(a - 1.2f), r = g.ray_distance(a + 1.2f);
        float tgt_fwd = m_tgt_fwd, tgt_turn = m_tgt_turn, tgt_strafe = m_tgt_strafe;
        Action out;
        const int door = closed_door_ahead(g);
        if (door >= 0 && (m_door_wait > 0 || rng.chance(0.5f))) {
            // A door ahead: open it and wait for it (most of the time).
            out.use = !g.doors()[size_t(door)].opening;
            m_door_wait = 1;
            tgt_fwd = 0.f;
            tgt_turn = 0.f;
            tgt_strafe = 0.f;
        } else if (m_avoid > 0 || front < 1.05f || fl < 0.35f || fr < 0.35f) {
            m_door_wait = 0;
            if (m_avoid <= 0) {
                // Towards the side with the most open space; keep a choice made moments ago (no dithering).
                const float open_r = std::max(r, std::max(g.ray_distance(a + 0.7f), g.ray_distance(a + 1.9f)));
                const float open_l = std::max(l, std::max(g.ray_distance(a - 0.7f), g.ray_distance(a - 1.9f)));
                if (m_since_avoid > 10) m_avoid_dir = open_r >= open_l ? 1.f : -1.f;
                m_avoid = 25;
            }
            --m_avoid;
            m_since_avoid = 0;
            tgt_turn = m_avoid_dir * rng.uniform(0.7f, 1.f);
            tgt_fwd = front < 0.6f ? 0.05f : 0.5f;
            tgt_strafe = 0.f;
            if (front > 1.6f && fl > 0.4f && fr > 0.4f) m_avoid = 0;  // the way ahead is open again
        } else {
            m_door_wait = 0;
            tgt_turn += clampf((fr - fl) * 0.12f, -0.3f, 0.3f);                  // drift away from the nearer side
            if (std::min(fl, fr) < 0.9f) tgt_strafe = fr > fl ? 0.35f : -0.35f;  // and centre in narrow passages
        }
        ++m_since_avoid;
        if ((tgt_strafe > 0.f && r < 0.7f) || (tgt_strafe < 0.f && l < 0.7f)) tgt_strafe = 0.f;
        m_fwd = approach(m_fwd, tgt_fwd, 0.3f);
        m_turn = approach(m_turn, tgt_turn, 0.35f);
        m_strafe = approach(m_strafe, tgt_strafe, 0.2f);
        out.forward = m_fwd;
        out.turn = m_turn;
        out.strafe = m_strafe;
        return out;
    }

private:
    float m_fwd = 0.6f, m_turn = 0.f, m_strafe = 0.f;
    float m_tgt_fwd = 0.8f, m_tgt_turn = 0.f, m_tgt_strafe = 0.f;
    int m_timer = 0;
    int m_avoid = 0;
    int m_since_avoid = 100;
    int m_door_wait = 0;
    float m_avoid_dir = 1.f;
};

// Follows a grid path with line-of-sight shortcuts; faces and opens closed doors on the way.
class PathFollower {
public:
    void set(std::vector<std::pair<int, int>> cells) {
        m_cells = std::move(cells);
        m_next = 0;
    }
    void append(int cx, int cy) { m_cells.emplace_back(cx, cy); }
    bool done() const { return m_next >= m_cells.size(); }
    size_t remaining() const { return m_cells.size() - m_next; }

    Action step(const Game& g, Rng& rng, float speed) {
        const Pose& p = g.pose();
        // Advance past the latest of the next few cells already reached (shortcuts may skip some).
        for (size_t j = m_next; j < m_cells.size() && j < m_next + 6; ++j) {
            const float cx = float(m_cells[j].first) + 0.5f, cy = float(m_cells[j].second) + 0.5f;
            const bool last = j + 1 == m_cells.size();
            if (dist2(p.x, p.y, cx, cy) <= (last ? 0.3f * 0.3f : 0.5f * 0.5f)) m_next = j + 1;
        }
        if (m_next > 256) {  // drop the walked part of long incremental paths
            m_cells.erase(m_cells.begin(), m_cells.begin() + std::ptrdiff_t(m_next));
            m_next = 0;
        }
        Action a;
        if (done()) return a;
        const auto [nx, ny] = m_cells[m_next];
        const int d = door_at(g, nx, ny);
        if (d >= 0 && g.doors()[size_t(d)].open < 1.f) {
            // Face the door; press use once in reach and aligned; wait while it slides.
            const float cx = float(nx) + 0.5f, cy = float(ny) + 0.5f;
            a = steer_to(g, cx, cy, speed * 0.5f);
            const float err = wrap_angle(float(det_atan2(double(cy - p.y), double(cx - p.x))) - p.angle);
            const float dist = std::sqrt(dist2(p.x, p.y, cx, cy));
            if (dist < 1.35f && std::fabs(err) < 0.3f) {
                a.use = !g.doors()[size_t(d)].opening;
                a.forward = 0.f;
            }
            return a;
        }
        // Farthest visible cell among the next few (stop before a closed door).
        size_t target = m_next;
        for (size_t j = m_next + 1; j < m_cells.size() && j < m_next + 6; ++j) {
            const int dj = door_at(g, m_cells[j].first, m_cells[j].second);
            if (dj >= 0 && g.doors()[size_t(dj)].open < 1.f) break;
            if (!segment_clear(g, p.x, p.y, float(m_cells[j].first) + 0.5f, float(m_cells[j].second) + 0.5f, 0.22f)) {
                break;
            }
            target = j;
        }
        a = steer_to(g, float(m_cells[target].first) + 0.5f, float(m_cells[target].second) + 0.5f, speed);
        a.turn = clampf(a.turn + rng.uniform(-0.04f, 0.04f), -1.f, 1.f);
        return a;
    }

private:
    std::vector<std::pair<int, int>> m_cells;
    size_t m_next = 0;
};

// Breadth-first search over non-wall cells (doors count as passable: the follower opens them).
// Returns the path to the first cell accepted by `goal` (excluding the start), empty when none is reachable.
template <class Goal>
std::vector<std::pair<int, int>> bfs_path(const Game& g, int sx, int sy, Rng& rng, Goal goal) {
    const Level& lv = g.level();
    const int w = lv.width, h = lv.height;
    std::vector<int> parent(size_t(w) * size_t(h), -2);
    std::deque<int> q;
    const int start = sy * w + sx;
    if (sx < 0 || sy < 0 || sx >= w || sy >= h) return {};
    parent[size_t(start)] = -1;
    q.push_back(start);
    int dirs[4][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
    for (int i = 3; i > 0; --i) {  // per-plan neighbour order from the agent's RNG
        const int j = rng.uniform_int(0, i);
        std::swap(dirs[i], dirs[j]);
    }
    int found = -1;
    while (!q.empty()) {
        const int c = q.front();
        q.pop_front();
        const int cx = c % w, cy = c / w;
        if (c != start && goal(cx, cy)) {
            found = c;
            break;
        }
        for (const auto& dd : dirs) {
            const int x = cx + dd[0], y = cy + dd[1];
            if (x < 0 || y < 0 || x >= w || y >= h || is_wall_char(lv.at(x, y))) continue;
            const int n = y * w + x;
            if (parent[size_t(n)] != -2) continue;
            parent[size_t(n)] = c;
            q.push_back(n);
        }
    }
    std::vector<std::pair<int, int>> path;
    for (int c = found; c >= 0 && c != start; c = parent[size_t(c)]) path.emplace_back(c % w, c / w);
    std::reverse(path.begin(), path.end());
    return path;
}

// ---- agents -------------------------------------------------------------------------------------------------------

class AgentBase : public Agent {
public:
    AgentBase(std::string name, uint64_t seed) : m_name(std::move(name)), m_rng(hash_mix(seed, hash_string(m_name))) {}
    std::string name() const override { return m_name; }

    Action act(const Game& g) override {
        const Pose& p = g.pose();
        m_history.push_back({p.x, p.y, 0.f});
        if (m_history.size() > size_t(kSlowWindow) + 1) m_history.pop_front();
        Action a;
        if (m_unstick > 0) {
            --m_unstick;
            a = steer_to(g, p.x + float(det_cos(double(m_unstick_angle))),
                         p.y + float(det_sin(double(m_unstick_angle))), 0.8f);
        } else {
            a = decide(g);
            if (spinning()) m_history.clear();  // turning in place on purpose
            if (is_stuck(g)) {
                start_unstick(g);
                on_stuck(g);
                m_history.clear();
            }
        }
        a.forward = clampf(a.forward, -1.f, 1.f);
        a.strafe = clampf(a.strafe, -1.f, 1.f);
        a.turn = clampf(a.turn, -1.f, 1.f);
        if (!m_history.empty()) {
            m_history.back().intent = std::min(1.f, std::sqrt(a.forward * a.forward + a.strafe * a.strafe));
        }
        return a;
    }

protected:
    virtual Action decide(const Game& g) = 0;
    virtual bool spinning() const { return false; }  // true while deliberately turning in place
    virtual void on_stuck(const Game&) {}

    std::string m_name;
    Rng m_rng;

private:
    // Stuck: (a) over the last kStuckWindow ticks the sticks asked for at least kStuckIntent cells of travel but
    // the player moved less than kStuckDistance (turning in place asks for none), or (b) over kSlowWindow ticks
    // the player never got kSlowDistance away from where it was (dithering in a corner).
    bool is_stuck(const Game& g) const {
        const Pose& p = g.pose();
        const size_t n = m_history.size();
        if (n > size_t(kStuckWindow)) {
            float intent = 0.f;
            for (size_t i = n - 1 - size_t(kStuckWindow); i + 1 < n; ++i) intent += m_history[i].intent;
            intent *= g.config().move_speed / g.config().tick_hz;
            const Sample& first = m_history[n - 1 - size_t(kStuckWindow)];
            if (intent >= kStuckIntent && dist2(p.x, p.y, first.x, first.y) < kStuckDistance * kStuckDistance) {
                return true;
            }
        }
        if (n > size_t(kSlowWindow)) {
            float reach = 0.f;
            for (const Sample& s : m_history)
                reach = std::max(reach, dist2(s.x, s.y, m_history.front().x, m_history.front().y));
            if (reach < kSlowDistance * kSlowDistance) return true;
        }
        return false;
    }

    // Heads for the most open of 12 directions for 8..16 ticks.
    void start_unstick(const Game& g) {
        const float offset = m_rng.uniform(0.f, 0.5f);
        float best = -1.f;
        for (int k = 0; k < 12; ++k) {
            const float ang = g.pose().angle + offset + float(k) * float(kTwoPi / 12.0);
            const float d = g.ray_distance(ang);
            if (d > best) {
                best = d;
                m_unstick_angle = ang;
            }
        }
        m_unstick = m_rng.uniform_int(8, 16);
    }

    struct Sample {
        float x, y;    // observed position
        float intent;  // |(forward, strafe)| of the action issued after observing it
    };
    std::deque<Sample> m_history;
    int m_unstick = 0;
    float m_unstick_angle = 0.f;
};

class RandomWalkAgent : public AgentBase {
public:
    explicit RandomWalkAgent(uint64_t seed) : AgentBase("random_walk", seed) {}

protected:
    Action decide(const Game& g) override { return m_wander.step(g, m_rng); }

private:
    Wander m_wander;
};

// Hand-on-the-wall rule on the grid (left or right hand from the seed): at each cell prefer turning towards the
// wall side, else straight, else away, else back. Until a wall is on that side it walks straight. It leaves a loop
// around a free-standing pillar by walking straight again. Doors count as open cells (the follower opens them).
class WallFollowAgent : public AgentBase {
public:
    explicit WallFollowAgent(uint64_t seed) : AgentBase("wall_follow", seed) {
        m_side = m_rng.chance(0.5f) ? 1 : -1;  // +1: wall on the right
        m_speed = m_rng.uniform(0.75f, 1.f);
    }

protected:
    Action decide(const Game& g) override {
        if (!m_init) {
            m_cx = int(std::floor(g.pose().x));
            m_cy = int(std::floor(g.pose().y));
            m_h = int(std::floor(double(g.pose().angle) / (kPi / 2) + 0.5)) & 3;
            m_init = true;
        }
        while (m_follow.remaining() < 4) extend(g);
        Action a = m_follow.step(g, m_rng, m_speed);
        m_fwd = approach(m_fwd, a.forward, 0.4f);
        a.forward = m_fwd;
        return a;
    }
    void on_stuck(const Game& g) override {
        m_follow.set({});
        m_cx = int(std::floor(g.pose().x));
        m_cy = int(std::floor(g.pose().y));
        m_h = (m_h + 2) & 3;
        m_attached = false;
    }

private:
    static constexpr int kDx[4] = {1, 0, -1, 0};  // headings: east, south, west, north
    static constexpr int kDy[4] = {0, 1, 0, -1};

    bool open(const Game& g, int h) const { return !is_wall_char(g.level().at(m_cx + kDx[h & 3], m_cy + kDy[h & 3])); }

    // Plans one more cell.
    void extend(const Game& g) {
        const int side = (m_h + m_side) & 3, away = (m_h - m_side) & 3, back = (m_h + 2) & 3;
        if (!m_attached) {
            if (!open(g, side)) m_attached = true;
            if (!open(g, m_h)) {
                m_attached = true;
                m_h = open(g, away) ? away : open(g, side) ? side : back;
            }
        } else {
            m_h = open(g, side) ? side : open(g, m_h) ? m_h : open(g, away) ? away : back;
        }
        if (!open(g, m_h)) m_h = back;  // a dead end
        m_cx += kDx[m_h];
        m_cy += kDy[m_h];
        m_follow.append(m_cx, m_cy);
        // Loop detection: the same cell and heading within 16 steps means circling a pillar.
        const int key = (m_cy * g.level().width + m_cx) * 4 + m_h;
        m_recent.push_back(key);
        if (m_recent.size() > 16) m_recent.pop_front();
        if (std::count(m_recent.begin(), m_recent.end(), key) > 1) {
            m_attached = false;
            m_h = (m_h - m_side) & 3;  // step away from the pillar
            m_recent.clear();
        }
    }

    int m_side = 1;
    float m_speed = 0.9f;
    float m_fwd = 0.f;
    bool m_init = false, m_attached = false;
    int m_cx = 0, m_cy = 0, m_h = 0;
    std::deque<int> m_recent;
    PathFollower m_follow;
};

// Goes to the nearest unvisited cell (explore) or the nearest closed door (door_use, falling back to exploring).
class ExploreAgent : public AgentBase {
public:
    ExploreAgent(const std::string& name, uint64_t seed, bool doors_first)
        : AgentBase(name, seed), m_doors(doors_first) {
        m_speed = m_rng.uniform(0.75f, 1.f);
    }

protected:
    Action decide(const Game& g) override {
        const Level& lv = g.level();
        if (int(m_visits.size()) != lv.width * lv.height) m_visits.assign(size_t(lv.width) * size_t(lv.height), 0);
        const int cx = int(std::floor(g.pose().x)), cy = int(std::floor(g.pose().y));
        mark(lv, cx, cy);
        if (m_follow.done() || --m_replan <= 0) plan(g, cx, cy);  // periodic replan only as a safety net
        Action a = m_follow.step(g, m_rng, m_speed);
        m_fwd = approach(m_fwd, a.forward, 0.4f);
        a.forward = m_fwd;
        return a;
    }
    void on_stuck(const Game&) override {
        m_replan = 0;
        m_through_dx = m_through_dy = 0;
    }

private:
    void mark(const Level& lv, int cx, int cy) {
        for (int dy = -1; dy <= 1; ++dy) {
            for (int dx = -1; dx <= 1; ++dx) {
                const int x = cx + dx, y = cy + dy;
                if (x < 0 || y < 0 || x >= lv.width || y >= lv.height || is_wall_char(lv.at(x, y))) continue;
                // diagonal neighbours only when the corner between is open
                if (dx && dy && (is_wall_char(lv.at(cx + dx, cy)) || is_wall_char(lv.at(cx, cy + dy)))) continue;
                auto& v = m_visits[size_t(y) * size_t(lv.width) + size_t(x)];
                if (v < 60000) ++v;
            }
        }
    }

    void plan(const Game& g, int cx, int cy) {
        m_replan = 450;
        const Level& lv = g.level();
        if (m_doors) {
            // Just went through a door: walk on into the room behind it before choosing the next door.
            if (m_through_dx || m_through_dy) {
                std::vector<std::pair<int, int>> beyond;
                int x = cx, y = cy;
                const int n = m_rng.uniform_int(2, 4);
                for (int k = 0; k < n && !is_wall_char(lv.at(x + m_through_dx, y + m_through_dy)); ++k) {
                    x += m_through_dx;
                    y += m_through_dy;
                    beyond.emplace_back(x, y);
                }
                m_through_dx = m_through_dy = 0;
                if (!beyond.empty()) {
                    m_follow.set(std::move(beyond));
                    return;
                }
            }
            auto path = bfs_path(g, cx, cy, m_rng, [&](int x, int y) {
                const int d = door_at(g, x, y);
                return d >= 0 && g.doors()[size_t(d)].open < 1.f;
            });
            if (!path.empty()) {
                // Remember the direction of travel into the door cell.
                const auto& last = path.back();
                const auto& prev = path.size() >= 2 ? path[path.size() - 2] : std::make_pair(cx, cy);
                m_through_dx = last.first - prev.first;
                m_through_dy = last.second - prev.second;
                m_follow.set(std::move(path));
                return;
            }
        }
        auto unvisited = [&](int x, int y) {
            return m_visits[size_t(y) * size_t(lv.width) + size_t(x)] == 0 && lv.at(x, y) != 'D';
        };
        auto path = bfs_path(g, cx, cy, m_rng, unvisited);
        if (path.empty()) {  // everything seen: start a new round
            std::fill(m_visits.begin(), m_visits.end(), uint16_t(0));
            mark(lv, cx, cy);
            path = bfs_path(g, cx, cy, m_rng, unvisited);
        }
        m_follow.set(std::move(path));
    }

    bool m_doors;
    int m_through_dx = 0, m_through_dy = 0;  // door_use: direction through the door being approached
    float m_speed = 0.9f;
    float m_fwd = 0.f;
    int m_replan = 0;
    std::vector<uint16_t> m_visits;  // [height, width]
    PathFollower m_follow;
};

class Turn360Agent : public AgentBase {
public:
    explicit Turn360Agent(uint64_t seed) : AgentBase("turn360", seed) { begin_turn(); }

protected:
    Action decide(const Game& g) override {
        const float a = g.pose().angle;
        if (m_turning) {
            if (m_have_prev) m_turned += std::fabs(wrap_angle(a - m_prev_angle));
            m_prev_angle = a;
            m_have_prev = true;
            if (m_turned >= float(kTwoPi)) {
                m_turning = false;
                m_walk_ticks = m_rng.uniform_int(40, 90);
            } else {
                Action out;
                m_rate = approach(m_rate, m_target_rate, 0.4f);
                out.turn = m_dir * m_rate;
                return out;
            }
        }
        if (--m_walk_ticks <= 0) begin_turn();
        return m_wander.step(g, m_rng);
    }

private:
    void begin_turn() {
        m_turning = true;
        m_turned = 0.f;
        m_have_prev = false;
        m_dir = m_rng.chance(0.5f) ? 1.f : -1.f;
        m_target_rate = m_rng.uniform(0.6f, 1.f);
        m_rate = 0.2f;
    }

    bool spinning() const override { return m_turning; }

    Wander m_wander;
    bool m_turning = true;
    bool m_have_prev = false;
    float m_prev_angle = 0.f, m_turned = 0.f, m_dir = 1.f, m_rate = 0.f, m_target_rate = 0.8f;
    int m_walk_ticks = 0;
};

class GoAndReturnAgent : public AgentBase {
public:
    explicit GoAndReturnAgent(uint64_t seed) : AgentBase("go_and_return", seed) {
        m_go_ticks = m_rng.uniform_int(60, 150);
    }

protected:
    Action decide(const Game& g) override {
        const Pose& p = g.pose();
        if (m_going) {
            if (m_trail.empty() || dist2(p.x, p.y, m_trail.back().first, m_trail.back().second) > 0.5f * 0.5f) {
                m_trail.emplace_back(p.x, p.y);
            }
            if (--m_go_ticks > 0) return m_wander.step(g, m_rng);
            m_going = false;  // turn back along the trail
        }
        // Returning: retrace the trail. Reaching any of the next few trail points drops it and everything after it
        // (loops of the outward walk are skipped); the farthest clear point among the next few is the target.
        const size_t window = 12;
        for (size_t k = 0; k < window && k < m_trail.size(); ++k) {
            const size_t j = m_trail.size() - 1 - k;
            if (dist2(p.x, p.y, m_trail[j].first, m_trail[j].second) < 0.45f * 0.45f) {
                m_trail.resize(j);
                break;
            }
        }
        if (m_trail.empty()) {
            m_going = true;
            m_go_ticks = m_rng.uniform_int(60, 150);
            return m_wander.step(g, m_rng);
        }
        size_t target = m_trail.size() - 1;
        for (size_t k = 1; k < window && k < m_trail.size(); ++k) {
            const size_t j = m_trail.size() - 1 - k;
            if (!segment_clear(g, p.x, p.y, m_trail[j].first, m_trail[j].second, 0.22f)) break;
            target = j;
        }
        Action a = steer_to(g, m_trail[target].first, m_trail[target].second, 0.9f);
        m_fwd = approach(m_fwd, a.forward, 0.4f);
        a.forward = m_fwd;
        return a;
    }
    void on_stuck(const Game&) override {
        if (!m_going && !m_trail.empty()) m_trail.pop_back();
    }

private:
    Wander m_wander;
    bool m_going = true;
    int m_go_ticks = 100;
    float m_fwd = 0.f;
    std::vector<std::pair<float, float>> m_trail;  // positions of the outward walk, oldest first
};

}  // namespace

const std::vector<std::string>& agent_names() {
    static const std::vector<std::string> names = {"random_walk", "wall_follow",   "explore",
                                                   "turn360",     "go_and_return", "door_use"};
    return names;
}

std::unique_ptr<Agent> make_agent(const std::string& name, uint64_t seed) {
    if (name == "random_walk") return std::make_unique<RandomWalkAgent>(seed);
    if (name == "wall_follow") return std::make_unique<WallFollowAgent>(seed);
    if (name == "explore") return std::make_unique<ExploreAgent>("explore", seed, false);
    if (name == "turn360") return std::make_unique<Turn360Agent>(seed);
    if (name == "go_and_return") return std::make_unique<GoAndReturnAgent>(seed);
    if (name == "door_use") return std::make_unique<ExploreAgent>("door_use", seed, true);
    std::string known;
    for (const auto& n : agent_names()) known += (known.empty() ? "" : ", ") + n;
    DC_FAIL("unknown agent '" << name << "'; expected one of: " << known);
}

}  // namespace dc::game
