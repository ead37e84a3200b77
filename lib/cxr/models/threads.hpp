// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Compute threads of the calling thread's LibTorch work, BLAS included.
///
/// LibTorch's intra-op pool is set per calling thread, but the BLAS library under it (OpenBLAS
/// through libblas.so.3 on Debian) keeps its own process-wide pool, sized to every core. At
/// batch 1 LibTorch sends small convolutions and the linear layers to BLAS, whose extra threads
/// then spin beside LibTorch's: with 1 LibTorch thread and OpenBLAS's 2, MobileNetV3 in a
/// pipeline spent twice the CPU time per scan and ran ~10 % slower. So both are set together.

namespace cxr::models {

/// Sets LibTorch's intra-op threads on this thread and, when the process runs OpenBLAS, its
/// thread count; n <= 0 leaves both as they are. Cheap when nothing changes.
void set_compute_threads(int n);

/// OpenBLAS's thread count, or -1 when the process does not run OpenBLAS.
int blas_threads();

}  // namespace cxr::models
