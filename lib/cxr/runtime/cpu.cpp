// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/runtime/cpu.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cxr/runtime/allocator.hpp"
#include "cxr/runtime/blas.hpp"

namespace cxr::runtime {

bool caching_allocator_wanted() {
  const char* v = std::getenv("CXR_CPU_ALLOCATOR");
  return !(v && std::strcmp(v, "libtorch") == 0);
}

std::vector<std::string> prepare_cpu_runtime() {
  static std::once_flag once;
  std::vector<std::string> notes;
  std::call_once(once, [&] {
    const char* tune = std::getenv("CXR_TUNE_BLAS");
    if (!(tune && std::strcmp(tune, "off") == 0)) {
      const std::string blas = tune_blas_core();
      if (!blas.empty()) notes.push_back(blas + "; CXR_TUNE_BLAS=off leaves OpenBLAS's own choice");
    }
    if (caching_allocator_wanted()) {
      use_caching_cpu_allocator();
      notes.push_back("LibTorch's CPU allocator now caches blocks of 128 KiB and more for reuse (up to 1 GiB); "
                      "CXR_CPU_ALLOCATOR=libtorch keeps LibTorch's own");
    }
  });
  return notes;
}

}  // namespace cxr::runtime
