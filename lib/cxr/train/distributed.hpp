// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The collectives data-parallel training needs, on PyTorch's own distributed engine (c10d): a
/// TCPStore on rank 0 for the rendezvous and a ProcessGroupGloo for the collectives, as
/// torch.distributed.init_process_group("gloo", "env://") sets them up. No c10d type in this
/// header; what differs between LibTorch 1.13 (ProcessGroup) and 2.x (Backend) stays in
/// distributed.cpp.
///
/// Faults: every rank beats a heartbeat into the store once a second. When a collective fails
/// (a peer closed its connection, or nothing came within the timeout) the error names the ranks
/// whose heartbeat stopped, or rank 0 when the store itself is gone.
#include <torch/types.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/train/rendezvous.hpp"

namespace cxr::train {

/// A collective or the rendezvous failed; the message names the rank or address at fault.
class DistributedError : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  /// Connects to (rank 0: hosts) the store at master_addr:master_port and forms the process
  /// group; waits up to the timeout for every rank. Throws DistributedError naming the address
  /// (or InvalidArgument for bad options, or when this build has no c10d).
  static std::unique_ptr<Communicator> connect(const DistOptions& options);
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  /// Copies rank `root`'s tensors into every rank's (same shapes and types on every rank).
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root = 0) = 0;
  /// Sums the tensors over the ranks, in place. Tensors are flattened into buckets of at most
  /// ~25 MB per call (as DistributedDataParallel's), one collective per bucket.
  virtual void allreduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  /// Every rank's bytes, in rank order (sizes may differ).
  virtual std::vector<std::string> allgather(const std::string& bytes) = 0;
  virtual void barrier() = 0;
};

}  // namespace cxr::train
