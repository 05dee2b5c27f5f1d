// world_model/distributed.h — data-parallel training across processes (no torch types here).
//
//   dreamcaster train --nproc 4 --device cuda …        // this machine: 4 ranks, one GPU each (launch_local_ranks)
//   RANK=1 WORLD_SIZE=2 MASTER_ADDR=10.0.0.5 MASTER_PORT=29500 dreamcaster train …   // any launcher, any host
//
// Each rank is one process running the same trainer. The process group comes from LibTorch's c10d: NCCL for CUDA
// tensors, Gloo for CPU tensors; ranks meet through a c10d store: a FileStore (DC_DIST_STORE_FILE, what --nproc uses)
// or a TCPStore served by rank 0 at MASTER_ADDR:MASTER_PORT (the torchrun convention, so torchrun, SLURM scripts or
// a shell loop can start the ranks; another host's address works the same way).
//
// What a rank does (world_model/trainer.cpp): it renders its own clips (the data stream is seeded by rank), computes
// gradients on its share of the global batch, and every step all-reduces one flat gradient buffer (plus the step's
// loss and stop/checkpoint flags, so all ranks stop and checkpoint at the same step) before the identical optimiser
// step; so all ranks hold bit-identical parameters, which every checkpoint verifies. Rank 0 logs, evaluates and
// writes checkpoints; a checkpoint resumes on any number of ranks, including 1.
//
// Failure: a rank that dies makes the others fail their next collective (Gloo: the connection closes at once;
// NCCL: within the timeout) and stop with an error naming the step; --nproc also stops the other ranks as soon as
// one exits with an error. The last checkpoint stays valid (checkpoints are written to a new folder, then renamed).
#pragma once

#include <string>

namespace dc {

struct DistEnv {
    int rank = 0, world_size = 1;
    int local_rank = 0, local_world_size = 1;   // on this host (the CUDA device of a rank is cuda:local_rank)
    std::string store_file;                     // FileStore path (DC_DIST_STORE_FILE), or
    std::string master_addr;                    // TCPStore host (MASTER_ADDR) and port (MASTER_PORT)
    int master_port = 29500;
    double timeout_s = 120;                     // a collective that waits longer fails (train --dist-timeout)
    bool active() const { return world_size > 1; }
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and DC_DIST_STORE_FILE (the
// timeout is an option of the command, which every rank receives); throws dc::Error on inconsistent values (rank outside 0..world-1, no rendezvous for world > 1).
DistEnv dist_env_from_environment();

// True when this process was started as one rank of a group (WORLD_SIZE set, by --nproc or another launcher).
bool started_as_rank();

// Starts nproc copies of this executable with the same arguments as ranks 0..nproc-1 on this host (rendezvous:
// a FileStore under rendezvous_dir), each with CUDA_VISIBLE_DEVICES narrowed to its own GPU when `cuda`; waits for
// all. When a rank exits with an error or a signal, the others are stopped (SIGTERM, then SIGKILL after 10 s) and a
// message names the rank. Returns 0 when every rank succeeded, else the failing rank's exit code (or 128 + signal).
int launch_local_ranks(int nproc, const std::string& rendezvous_dir, bool cuda);

}  // namespace dc
