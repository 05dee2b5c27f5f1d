// world_model/distributed_impl.h — the c10d process group the trainer uses (private to world_model).
//
//   dc::wm::ProcessGroup pg(dc::dist_env_from_environment(), device);   // joins the group (blocks until all ranks do)
//   pg.allreduce_sum(grads);          // in place; every rank gets the same bytes
//   pg.broadcast(params, /*root=*/0);
//
// Errors (a rank died, a timeout, no backend for the device in this build) throw dc::Error naming the operation,
// the rank and what the backend said.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "world_model/distributed.h"

namespace dc::wm {

class ProcessGroup {
public:
    // device decides the backend: CUDA → NCCL, CPU → Gloo.
    ProcessGroup(const DistEnv& env, at::Device device);
    ~ProcessGroup();
    int rank() const { return m_env.rank; }
    int size() const { return m_env.world_size; }
    std::string backend() const;
    void allreduce_sum(at::Tensor& t, const char* what);   // what: names the operation in errors ("gradients")
    void broadcast(at::Tensor& t, int root, const char* what);

private:
    struct Impl;
    DistEnv m_env;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace dc::wm
