// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The BLAS library under LibTorch, and its choice of kernels.
///
/// Debian's LibTorch sends its small convolutions (the 1x1 convolutions that are most of
/// MobileNetV3's and EfficientNet's work) and its linear layers to whatever libblas.so.3 resolves
/// to; the set-up installs OpenBLAS (its OpenMP build, see threads.hpp). OpenBLAS picks its
/// kernels once, when it loads, from the CPU's model number. A CPU newer than the library (Debian
/// 12's 0.3.21 does not know Sapphire Rapids, for one) gets its generic SSE3 kernels
/// ("Prescott") even when it has AVX2 or AVX-512.
/// Measured on such a CPU (1 thread, 224 px, batch 1): MobileNetV3-Large 43 img/s with
/// Prescott kernels, 86 with SkylakeX; EfficientNet-B1 20 and 35.

#include <string>

namespace cxr::runtime {

/// Sets OpenBLAS's (process-wide) thread count; false when the process does not run OpenBLAS.
bool set_blas_threads(int n);

/// OpenBLAS's thread count, or -1 when the process does not run OpenBLAS.
int blas_threads();

struct BlasInfo {
  std::string library;  ///< "OpenBLAS 0.3.21 ..." (its build configuration), or "" when not OpenBLAS
  std::string core;     ///< the kernels OpenBLAS runs ("Haswell", "SkylakeX", ...), or ""
  /// How OpenBLAS runs its threads: "OpenMP" (LibTorch's own threads: what the set-up selects),
  /// "pthreads" (a pool of its own, beside LibTorch's: see threads.hpp), "sequential", or "".
  std::string threading;
};

/// What the process runs (looked up at run time: libblas.so.3 is the system's choice).
BlasInfo blas_info();

/// Why `threads` LibTorch threads on the CPU run slower here than they could, or "" when
/// nothing is known against it: several threads on OpenBLAS's pthreads build.
std::string blas_thread_note(int threads);

/// The OpenBLAS kernel set that suits this CPU better than `core`, or "" when `core` is fine
/// or nothing better fits: "SkylakeX" when the CPU has AVX-512 (F, BW, DQ, VL) and "Haswell"
/// when it has AVX2 and FMA, for cores without AVX2 kernels (Prescott, Nehalem, Sandybridge,
/// Barcelona, ...); "SkylakeX" for the AVX2 cores (Haswell, Zen) on a CPU with AVX-512 (about
/// 1.05x on LibTorch's MobileNetV3 and EfficientNet paths). `avx2` / `avx512` say what the CPU has.
std::string better_blas_core(const std::string& core, bool avx2, bool avx512);

/// Makes OpenBLAS (a DYNAMIC_ARCH build) run `core`'s kernels, through its own start-up path
/// (OPENBLAS_CORETYPE, which it checks against the CPU: a core the CPU cannot run falls back
/// to one it can). Returns the core now running, or "" when the process does not run such an
/// OpenBLAS. Only while no other thread is inside BLAS: the kernel table is swapped.
std::string set_blas_core(const std::string& core);

/// Once per process (later calls return the first call's answer): when OpenBLAS runs kernels
/// weaker than the CPU supports and the user has not chosen them (OPENBLAS_CORETYPE unset),
/// switches to better_blas_core(). Returns a line saying what it did ("" when nothing).
/// prepare_cpu_runtime() (cpu.hpp) calls it when the first element or tool that computes starts,
/// before any inference runs.
std::string tune_blas_core();

}  // namespace cxr::runtime
