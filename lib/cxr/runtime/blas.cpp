// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/runtime/blas.hpp"

#include <dlfcn.h>
#include <strings.h>

#include <cstdlib>
#include <mutex>
#include <optional>

namespace cxr::runtime {
namespace {

using GetString = char* (*)();
using Hook = void (*)();
using SetThreads = void (*)(int);
using GetThreads = int (*)();

// OpenBLAS's entry points, looked up at run time (which BLAS libblas.so.3 resolves to is the
// system's choice). gotoblas_dynamic_quit() forgets the kernel table and
// gotoblas_dynamic_init() picks one again (OPENBLAS_CORETYPE first), as at load.
struct OpenBlas {
  SetThreads set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  GetThreads get_threads = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  GetThreads parallel = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  GetString config = reinterpret_cast<GetString>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  GetString corename = reinterpret_cast<GetString>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  Hook quit = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  Hook init = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  bool has_skylakex = dlsym(RTLD_DEFAULT, "gotoblas_SKYLAKEX") != nullptr;

  bool dynamic() const {
    return config && corename && quit && init && std::string(config()).find("DYNAMIC_ARCH") != std::string::npos;
  }
};

const OpenBlas& openblas() {
  static const OpenBlas o;
  return o;
}

// OpenBLAS 0.3's x86 kernel sets without AVX2 (its names, as openblas_get_corename() gives them).
constexpr const char* kPreAvx2[] = {"Unknown", "Katmai",     "Coppermine", "Northwood",     "Prescott",
                                    "Banias",  "Atom",       "Core2",      "Penryn",        "Dunnington",
                                    "Nehalem", "Athlon",     "Opteron",    "Opteron(SSE3)", "Opteron_SSE3",
                                    "Barcelona", "Nano",     "Sandybridge", "Bobcat",       "Bulldozer",
                                    "Piledriver", "Steamroller"};

struct CpuFeatures {
  bool avx2 = false, avx512 = false;
};

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__)
  __builtin_cpu_init();
  // libgcc also checks that the OS saves the AVX / AVX-512 registers.
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

}  // namespace

bool set_blas_threads(int n) {
  if (!openblas().set_threads) return false;
  openblas().set_threads(n);
  return true;
}

int blas_threads() { return openblas().get_threads ? openblas().get_threads() : -1; }

BlasInfo blas_info() {
  BlasInfo info;
  const auto& o = openblas();
  if (o.config) info.library = o.config();
  if (o.corename) info.core = o.corename();
  if (o.parallel) {
    const int p = o.parallel();
    info.threading = p == 2 ? "OpenMP" : p == 1 ? "pthreads" : "sequential";
  }
  return info;
}

std::string blas_thread_note(int threads) {
  if (threads <= 1 || blas_info().threading != "pthreads") return "";
  return std::to_string(threads) +
         " threads on OpenBLAS's pthreads build: its own threads spin beside LibTorch's; its OpenMP build "
         "(libopenblas0-openmp, selected by tools/setup.sh) runs on LibTorch's (MobileNetV3 at batch 1 on 2 vCPUs: "
         "twice as fast)";
}

std::string better_blas_core(const std::string& core, bool avx2, bool avx512) {
  bool weak = false;
  for (const char* name : kPreAvx2) weak = weak || strcasecmp(core.c_str(), name) == 0;
  if (weak && avx2) return avx512 ? "SkylakeX" : "Haswell";
  // AVX2 kernels on a CPU with AVX-512 (one OpenBLAS 0.3.21 files under an older model, or a VM
  // that hides the model): SkylakeX's are faster. Measured on Zen 4 (1 thread, batch 8, LibTorch
  // channels-last): MobileNetV3-Large 138 img/s on Haswell's, 145 on SkylakeX's; EfficientNet-B1
  // 49.6 and 52.0; products as right (lib test).
  const bool avx2_only = strcasecmp(core.c_str(), "Haswell") == 0 || strcasecmp(core.c_str(), "Zen") == 0;
  if (avx2_only && avx512) return "SkylakeX";
  return "";
}

std::string set_blas_core(const std::string& core) {
  const auto& o = openblas();
  if (!o.dynamic()) return "";
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::optional<std::string> saved = before ? std::optional<std::string>(before) : std::nullopt;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  o.quit();
  o.init();
  // Leave the environment as it was: the choice is made, and child processes choose their own.
  if (saved) {
    setenv("OPENBLAS_CORETYPE", saved->c_str(), 1);
  } else {
    unsetenv("OPENBLAS_CORETYPE");
  }
  return o.corename();
}

std::string tune_blas_core() {
  static std::once_flag once;
  static std::string said;
  std::call_once(once, [] {
    const auto& o = openblas();
    if (!o.dynamic() || std::getenv("OPENBLAS_CORETYPE")) return;
    const std::string was = o.corename();
    const auto cpu = cpu_features();
    std::string want = better_blas_core(was, cpu.avx2, cpu.avx512 && o.has_skylakex);
    if (want.empty()) return;
    const std::string now = set_blas_core(want);
    said = "OpenBLAS ran its " + was + " kernels on a CPU with " + (cpu.avx512 ? "AVX-512" : "AVX2") +
           " (it did not recognise the CPU); switched to " + now +
           " (set OPENBLAS_CORETYPE to choose, e.g. OPENBLAS_CORETYPE=" + was + " to keep " + was + ")";
  });
  return said;
}

}  // namespace cxr::runtime
