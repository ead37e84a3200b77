// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Process-wide CPU choices (OpenBLAS's kernels, LibTorch's CPU allocator), made once, when the
/// first element or tool that computes on the CPU starts: never as a side effect of loading the
/// plugin, so that an application that loads gst-cxr without running its networks keeps its
/// process as it was.
///
/// | choice | what | opt out |
/// |---|---|---|
/// | OpenBLAS kernels | the AVX2 / AVX-512 kernels when Debian's OpenBLAS does not recognise the CPU (blas.hpp) | `OPENBLAS_CORETYPE=...` (yours wins) or `CXR_TUNE_BLAS=off` |
/// | CPU allocator | large blocks cached for reuse (allocator.hpp) | `CXR_CPU_ALLOCATOR=libtorch` |
#include <string>
#include <vector>

namespace cxr::runtime {

/// Makes the choices, once per process (thread-safe). Returns, on the first call only, one line
/// per choice made, for the caller to log; later calls return nothing. Call before any network
/// runs: the OpenBLAS switch is safe only while no other thread is inside BLAS.
std::vector<std::string> prepare_cpu_runtime();

/// Whether the caching CPU allocator may be installed (CXR_CPU_ALLOCATOR is not "libtorch").
bool caching_allocator_wanted();

}  // namespace cxr::runtime
