// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
// cxr run --nproc N: N local ranks of one data-parallel job, as torchrun --nproc-per-node starts
// them.

namespace cxrtool {

/// Runs `cxr ARGS...` (argv without --nproc) N times with RANK, WORLD_SIZE, LOCAL_RANK,
/// MASTER_ADDR and MASTER_PORT set (the caller's MASTER_* when set; else 127.0.0.1 and a free
/// port). Rank 0's output passes through; other ranks' stderr is prefixed "[rank R] " and their
/// stdout dropped. When a rank fails the others get the distributed timeout to end on their own,
/// then are stopped. Returns 0 when every rank succeeded, else the first failing rank's status
/// (a rank killed by a signal counts as a pipeline failure).
int run_ranks(int nproc, int argc, char** argv);

}  // namespace cxrtool
