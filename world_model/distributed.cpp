// world_model/distributed.cpp — c10d process groups and the local launcher (see distributed.h).
#include "world_model/distributed_impl.h"

// The c10d headers guard each backend with USE_C10D_<NAME>: enable those whose headers this build has. Debian's
// LibTorch (CPU) has Gloo once libgloo-dev is installed; a CUDA LibTorch has NCCL.
#if __has_include(<gloo/context.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#define DC_HAVE_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(DC_HAVE_CUDA) && __has_include(<nccl.h>) && \
    __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#define DC_HAVE_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "common/common.h"

extern char** environ;

namespace dc {

namespace {

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    DC_CHECK(end && *end == '\0', "environment variable " << name << " must be an integer, found '" << v << "'");
    return static_cast<int>(x);
}

std::string env_str(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

}  // namespace

bool started_as_rank() { return !env_str("WORLD_SIZE").empty(); }

DistEnv dist_env_from_environment() {
    DistEnv e;
    e.world_size = env_int("WORLD_SIZE", 1);
    e.rank = env_int("RANK", 0);
    e.local_rank = env_int("LOCAL_RANK", e.rank);
    e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size);
    e.store_file = env_str("DC_DIST_STORE_FILE");
    e.master_addr = env_str("MASTER_ADDR");
    e.master_port = env_int("MASTER_PORT", 29500);
    DC_CHECK(e.world_size >= 1, "WORLD_SIZE must be >= 1, found " << e.world_size);
    DC_CHECK(e.rank >= 0 && e.rank < e.world_size,
             "RANK must be in 0.." << e.world_size - 1 << " (WORLD_SIZE " << e.world_size << "), found " << e.rank);
    DC_CHECK(e.local_rank >= 0, "LOCAL_RANK must be >= 0, found " << e.local_rank);
    DC_CHECK(e.master_port > 0 && e.master_port < 65536, "MASTER_PORT must be 1..65535, found " << e.master_port);
    DC_CHECK(e.world_size == 1 || !e.store_file.empty() || !e.master_addr.empty(),
             "WORLD_SIZE is " << e.world_size << " but no rendezvous is set: set MASTER_ADDR (and MASTER_PORT) or "
                              << "DC_DIST_STORE_FILE, or start the ranks with 'dreamcaster train --nproc N'");
    return e;
}

namespace wm {

struct ProcessGroup::Impl {
    c10::intrusive_ptr<c10d::Store> store;
#ifdef DC_HAVE_GLOO
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef DC_HAVE_NCCL
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
};

ProcessGroup::ProcessGroup(const DistEnv& env, at::Device device) : m_env(env), m_impl(std::make_unique<Impl>()) {
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(env.timeout_s * 1000));
    try {
        if (!env.store_file.empty()) {
            m_impl->store = c10::make_intrusive<c10d::FileStore>(env.store_file, env.world_size);
        } else {
            c10d::TCPStoreOptions o;
            o.port = static_cast<uint16_t>(env.master_port);
            o.isServer = env.rank == 0;
            o.numWorkers = static_cast<size_t>(env.world_size);
            o.timeout = timeout;
            m_impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
        }
        m_impl->store->setTimeout(timeout);
    } catch (const std::exception& e) {
        DC_FAIL("rank " << env.rank << ": cannot reach the rendezvous store ("
                        << (env.store_file.empty() ? env.master_addr + ":" + std::to_string(env.master_port)
                                                   : "file " + env.store_file)
                        << "): " << e.what());
    }
    try {
        if (device.is_cuda()) {
#ifdef DC_HAVE_NCCL
            auto o = c10d::ProcessGroupNCCL::Options::create();
            o->timeout = timeout;
            m_impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(m_impl->store, env.rank, env.world_size, o);
#else
            DC_FAIL("this build has no NCCL process group (CUDA LibTorch with nccl.h needed) for training on "
                    << device.str() << " with " << env.world_size << " ranks");
#endif
        } else {
#ifdef DC_HAVE_GLOO
            auto o = c10d::ProcessGroupGloo::Options::create(timeout);
            const bool local = env.master_addr.empty() || env.master_addr == "127.0.0.1" ||
                               env.master_addr == "localhost";
            o->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
            m_impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(m_impl->store, env.rank, env.world_size, o);
#else
            DC_FAIL("this build has no Gloo process group (install libgloo-dev and rebuild) for CPU training with "
                    << env.world_size << " ranks");
#endif
        }
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        DC_FAIL("rank " << env.rank << " of " << env.world_size << ": could not join the process group: " << e.what());
    }
}

ProcessGroup::~ProcessGroup() = default;

std::string ProcessGroup::backend() const {
#ifdef DC_HAVE_NCCL
    if (m_impl->nccl) return "nccl";
#endif
    return "gloo";
}

namespace {
template <class F>
void run_collective(const DistEnv& env, const char* op, const char* what, F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        DC_FAIL("rank " << env.rank << " of " << env.world_size << ": " << op << " of " << what
                        << " failed: another rank stopped or cannot be reached (" << e.what()
                        << "); any checkpoint already written stays valid");
    }
}
}  // namespace

void ProcessGroup::allreduce_sum(at::Tensor& t, const char* what) {
    std::vector<at::Tensor> ts{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    run_collective(m_env, "all-reduce", what, [&] {
#ifdef DC_HAVE_NCCL
        if (m_impl->nccl) {
            m_impl->nccl->allreduce(ts, o)->wait();
            return;
        }
#endif
#ifdef DC_HAVE_GLOO
        m_impl->gloo->allreduce(ts, o)->wait();
#endif
    });
}

void ProcessGroup::broadcast(at::Tensor& t, int root, const char* what) {
    std::vector<at::Tensor> ts{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    run_collective(m_env, "broadcast", what, [&] {
#ifdef DC_HAVE_NCCL
        if (m_impl->nccl) {
            m_impl->nccl->broadcast(ts, o)->wait();
            return;
        }
#endif
#ifdef DC_HAVE_GLOO
        m_impl->gloo->broadcast(ts, o)->wait();
#endif
    });
}

}  // namespace wm

// ---- launcher ----

namespace {

std::vector<std::string> own_arguments() {
    std::ifstream f("/proc/self/cmdline", std::ios::binary);
    std::vector<std::string> args;
    std::string a;
    while (std::getline(f, a, '\0')) args.push_back(a);
    DC_CHECK(!args.empty(), "--nproc: cannot read this process's arguments from /proc/self/cmdline");
    return args;
}

std::vector<std::string> visible_gpus(int nproc) {
    std::vector<std::string> ids;
    const std::string v = env_str("CUDA_VISIBLE_DEVICES");
    if (!v.empty()) {
        std::istringstream in(v);
        std::string id;
        while (std::getline(in, id, ',')) ids.push_back(id);
    } else {
        for (int i = 0; i < nproc; ++i) ids.push_back(std::to_string(i));
    }
    return ids;
}

}  // namespace

int launch_local_ranks(int nproc, const std::string& rendezvous_dir, bool cuda) {
    DC_CHECK(nproc >= 1, "--nproc must be >= 1, found " << nproc);
    namespace fs = std::filesystem;
    fs::create_directories(rendezvous_dir);
    const std::string store = rendezvous_dir + "/rendezvous-" + std::to_string(getpid());
    ::unlink(store.c_str());
    std::vector<std::string> gpus;
    if (cuda) {
        gpus = visible_gpus(nproc);
        DC_CHECK(static_cast<int>(gpus.size()) >= nproc,
                 "--nproc " << nproc << " with CUDA needs one GPU per rank; CUDA_VISIBLE_DEVICES lists " << gpus.size());
    }
    const std::vector<std::string> args = own_arguments();
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<pid_t> pids(static_cast<size_t>(nproc), -1);
    for (int r = 0; r < nproc; ++r) {
        std::map<std::string, std::string> set = {
            {"RANK", std::to_string(r)},          {"WORLD_SIZE", std::to_string(nproc)},
            {"LOCAL_RANK", std::to_string(r)},    {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
            {"DC_DIST_STORE_FILE", store}};
        if (cuda) {
            set["CUDA_VISIBLE_DEVICES"] = gpus[static_cast<size_t>(r)];
            set["LOCAL_RANK"] = "0";   // each rank sees only its own GPU, as cuda:0
        }
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e) {
            const std::string kv = *e;
            if (!set.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
        }
        for (const auto& [k, v] : set) env.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& kv : env) envp.push_back(kv.data());
        envp.push_back(nullptr);
        pid_t pid = -1;
        const int rc = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data());
        if (rc != 0) {
            for (pid_t p : pids)
                if (p > 0) kill(p, SIGTERM);
            DC_FAIL("--nproc: could not start rank " << r << ": " << std::strerror(rc));
        }
        pids[static_cast<size_t>(r)] = pid;
    }
    int result = 0, running = nproc;
    bool stopping = false;
    auto stop_deadline = std::chrono::steady_clock::time_point::max();
    while (running > 0) {
        int status = 0;
        const pid_t pid = waitpid(-1, &status, stopping ? WNOHANG : 0);
        if (pid == 0) {   // stopping: poll until the others are gone, SIGKILL after the grace period
            if (std::chrono::steady_clock::now() > stop_deadline) {
                for (pid_t p : pids)
                    if (p > 0) kill(p, SIGKILL);
                stop_deadline = std::chrono::steady_clock::time_point::max();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        int rank = -1;
        for (int r = 0; r < nproc; ++r)
            if (pids[static_cast<size_t>(r)] == pid) rank = r;
        if (rank < 0) continue;
        pids[static_cast<size_t>(rank)] = -1;
        --running;
        const bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        if (failed && !stopping) {
            std::ostringstream msg;
            msg << "rank " << rank << " of " << nproc << " ";
            if (WIFSIGNALED(status))
                msg << "was killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")";
            else
                msg << "exited with code " << WEXITSTATUS(status);
            msg << "; stopping the other ranks (the last checkpoint stays valid)";
            dc::log(LogLevel::error, msg.str());
            result = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
            stopping = true;
            stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            for (pid_t p : pids)
                if (p > 0) kill(p, SIGTERM);
        }
    }
    ::unlink(store.c_str());
    return result;
}

}  // namespace dc
