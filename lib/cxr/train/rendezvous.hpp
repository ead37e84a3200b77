// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Where a process sits in a data-parallel job, as torchrun tells it: RANK, WORLD_SIZE,
/// LOCAL_RANK, MASTER_ADDR and MASTER_PORT in the environment (element properties override
/// them). No LibTorch here: the scan source shards with it, the trainer connects with it
/// (cxr/train/distributed.hpp).
#include <string>

namespace cxr::train {

struct DistOptions {
  int rank = 0;                          ///< 0 .. world_size-1; rank 0 hosts the store and writes the run directory
  int world_size = 1;                    ///< processes in the job; 1: not distributed
  int local_rank = 0;                    ///< rank on this host (picks cuda:LOCAL_RANK for device=auto)
  std::string master_addr = "127.0.0.1"; ///< rank 0's host, where the TCPStore listens
  int master_port = 29500;
  double timeout_seconds = 300;          ///< store connection and every collective; a dead or hung rank ends the job within it
  bool distributed() const { return world_size > 1; }
};

/// The environment's values over the defaults: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
/// MASTER_PORT and CXR_DIST_TIMEOUT (seconds). Throws cxr::InvalidArgument naming the variable
/// for a value that is not a number or out of range.
DistOptions dist_options_from_env();

/// Checks rank < world_size, a port in 1..65535, a positive timeout; throws cxr::InvalidArgument.
void validate(const DistOptions& o);

/// True when this build has PyTorch's distributed engine (c10d with Gloo).
bool distributed_available();

}  // namespace cxr::train
