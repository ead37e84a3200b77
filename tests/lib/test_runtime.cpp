// SPDX-License-Identifier: LGPL-2.1-or-later
// What the networks run on: device names, the BLAS library's kernels, compute threads, the
// caching CPU allocator.
#include <torch/torch.h>

#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/runtime/allocator.hpp"
#include "cxr/runtime/blas.hpp"
#include "cxr/runtime/device.hpp"
#include "cxr/runtime/threads.hpp"
#include "cxr_catch.hpp"

using namespace cxr::runtime;

TEST_CASE("runtime: device names: auto, cpu, cuda, cuda:N, each refusal names the value and why", "[runtime]") {
  using Kind = DeviceName::Kind;
  CHECK(parse_device("").kind == Kind::Auto);
  CHECK(parse_device("auto").kind == Kind::Auto);
  CHECK(parse_device("cpu").kind == Kind::Cpu);
  CHECK(parse_device("cuda").kind == Kind::Cuda);
  CHECK(parse_device("cuda").index == -1);
  CHECK(parse_device("cuda:0").index == 0);
  CHECK(parse_device("cuda:12").index == 12);
  for (const char* bad : {"cuda:", "cuda:x", "cuda:-1", "cuda:1a", "cuda: 1", "cuda:99999"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_device(bad),
                      Catch::Contains(std::string("device '") + bad + "'") && Catch::Contains("expected cuda:N"));
  }
  for (const char* bad : {"gpu", "CPU", "cuda0", "mps"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_device(bad), Catch::Contains("is not one of: auto, cpu, cuda, cuda:N"));
  }

  CHECK(resolve_device("cpu") == torch::Device(torch::kCPU));
  // A malformed name is refused the same way on every machine, before CUDA is looked for.
  CHECK_THROWS_WITH(resolve_device("cuda:x"), Catch::Contains("expected cuda:N"));
  if (torch::cuda::is_available()) {
    const int count = static_cast<int>(torch::cuda::device_count());
    CHECK(resolve_device("auto") == torch::Device(torch::kCUDA, 0));
    CHECK(resolve_device("cuda") == torch::Device(torch::kCUDA, 0));
    CHECK(resolve_device("cuda:" + std::to_string(count - 1)) == torch::Device(torch::kCUDA, count - 1));
    CHECK_THROWS_WITH(resolve_device("cuda:" + std::to_string(count)),
                      Catch::Contains("only " + std::to_string(count) + " CUDA device(s)"));
  } else {
    CHECK(resolve_device("auto") == torch::Device(torch::kCPU));
    CHECK(resolve_device("") == torch::Device(torch::kCPU));
    for (const char* name : {"cuda", "cuda:0", "cuda:3"}) {
      INFO(name);
      CHECK_THROWS_WITH(resolve_device(name),
                        Catch::Contains("no CUDA device (this LibTorch is CPU-only or no GPU is present)"));
    }
  }
}

TEST_CASE(
    "runtime: BLAS kernels: a core without AVX2 kernels is replaced on a CPU with AVX2, AVX2 kernels on one with "
    "AVX-512",
    "[runtime]") {
  CHECK(better_blas_core("Prescott", true, false) == "Haswell");
  CHECK(better_blas_core("Prescott", true, true) == "SkylakeX");
  CHECK(better_blas_core("prescott", true, true) == "SkylakeX");  // OPENBLAS_CORETYPE's spelling
  CHECK(better_blas_core("Sandybridge", true, false) == "Haswell");
  CHECK(better_blas_core("Nehalem", false, false).empty());  // the CPU has no better kernels
  CHECK(better_blas_core("Haswell", true, false).empty());   // OpenBLAS knew the CPU
  CHECK(better_blas_core("Zen", true, false).empty());
  CHECK(better_blas_core("SkylakeX", true, true).empty());
  CHECK(better_blas_core("Cooperlake", true, true).empty());
  // AVX2 kernels on a CPU with AVX-512: SkylakeX's (faster, and as right: the test below).
  CHECK(better_blas_core("Haswell", true, true) == "SkylakeX");
  CHECK(better_blas_core("zen", true, true) == "SkylakeX");
}

TEST_CASE("runtime: BLAS kernels: switched in place, products still right", "[runtime]") {
  bool avx2 = false;
#if defined(__x86_64__)
  avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  tune_blas_core();
  const BlasInfo tuned = blas_info();
  const auto a = torch::randn({70, 90}), b = torch::randn({90, 110});
  const auto expected = torch::mm(a.to(torch::kDouble), b.to(torch::kDouble));
  const auto product_ok = [&] { return torch::allclose(torch::mm(a, b).to(torch::kDouble), expected, 1e-4, 1e-4); };
  if (tuned.library.find("DYNAMIC_ARCH") == std::string::npos) {
    // Not a run-time-dispatching OpenBLAS: nothing to switch.
    CHECK(set_blas_core("Prescott").empty());
    CHECK(product_ok());
    return;
  }
  INFO(tuned.library << " core " << tuned.core);
  const char* chosen = std::getenv("OPENBLAS_CORETYPE");
  const std::string user_choice = chosen ? chosen : "";
  if (!chosen) {
    // After tuning, the kernels are as good as the CPU allows (the user chose none).
    CHECK(better_blas_core(tuned.core, avx2, false).empty());
  }
  CHECK(set_blas_core("Prescott") == "Prescott");
  CHECK(blas_info().core == "Prescott");
  CHECK(product_ok());
  const std::string haswell = set_blas_core("Haswell");
  if (avx2) {
    CHECK(haswell == "Haswell");
  } else {
    CHECK(haswell != "Haswell");  // OpenBLAS refuses kernels the CPU cannot run
  }
  CHECK(product_ok());
  bool avx512 = false;
#if defined(__x86_64__)
  avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
  const std::string skylakex = set_blas_core("SkylakeX");
  if (avx512) {
    CHECK(skylakex == "SkylakeX");
  } else {
    CHECK(skylakex != "SkylakeX");
  }
  CHECK(product_ok());
  CHECK(set_blas_core(tuned.core) == tuned.core);
  CHECK(product_ok());
  chosen = std::getenv("OPENBLAS_CORETYPE");  // the environment is left as it was
  CHECK((chosen ? chosen : "") == user_choice);
}

TEST_CASE("runtime: threads per stream: as given, or this thread's shared out", "[runtime]") {
  CHECK(threads_per_stream(3, 1) == 3);
  CHECK(threads_per_stream(1, 4) == 1);
  CHECK(threads_per_stream(0, 1) == 0);    // one stream: LibTorch's own setting stays
  const int here = at::get_num_threads();  // LibTorch's threads on this thread
  CHECK(threads_per_stream(0, 2) == std::max(1, here / 2));
  CHECK(threads_per_stream(0, 2 * here + 1) == 1);  // at least one each
  CHECK(compute_thread_name("inf") == "inf:torch");
  CHECK(compute_thread_name("inf", 2) == "inf:torch2");
  // Linux keeps 15 characters: a long owner is cut so that the stream stays readable.
  CHECK(compute_thread_name("cxrinfer0") == "cxrinfer0:torch");
  CHECK(compute_thread_name("cxrinfer12") == "cxrinfer1:torch");
  CHECK(compute_thread_name("cxrinfer12", 1) == "cxrinfer:torch1");
  CHECK(compute_thread_name("cxrinfer12", 11) == "cxrinfe:torch11");
}

TEST_CASE("runtime: ComputeThread runs every call on its one named thread, in order", "[runtime]") {
  std::thread::id ran;
  {
    ComputeThread compute("cxr-test-compute-thread");  // longer than a thread name may be
    CHECK(compute.id() != std::this_thread::get_id());
    CHECK(compute.call([] { return std::this_thread::get_id(); }) == compute.id());
    const std::string name = compute.call([] {
      char buf[32] = {};
      pthread_getname_np(pthread_self(), buf, sizeof buf);
      return std::string(buf);
    });
    CHECK(name == "cxr-test-comput");

    // Results and exceptions come back to the caller; the thread goes on after a throw.
    CHECK(compute.call([] { return torch::ones({2, 3}).sum().item<float>(); }) == 6.0f);
    CHECK_THROWS_AS(compute.call([]() -> int { throw cxr::InvalidArgument("bad scan"); }), cxr::InvalidArgument);
    CHECK(compute.call([] { return 7; }) == 7);

    // A call from the compute thread itself runs in place instead of waiting for itself.
    CHECK(compute.call([&] { return compute.call([] { return std::this_thread::get_id(); }); }) == compute.id());

    // Callers on several threads: one call at a time, all on the compute thread.
    int total = 0;  // touched only on the compute thread
    int elsewhere = 0;
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t) {
      callers.emplace_back([&] {
        for (int i = 0; i < 100; ++i) {
          compute.call([&] {
            if (std::this_thread::get_id() != compute.id()) ++elsewhere;
            ++total;
          });
        }
      });
    }
    for (auto& c : callers) c.join();
    CHECK(total == 400);
    CHECK(elsewhere == 0);

    // submit() returns at once; queued calls run in order after the calls before them, and a
    // throw reaches the future.
    std::promise<void> gate;
    auto held = compute.submit([&] { gate.get_future().wait(); });  // keeps the thread busy
    std::vector<int> order;
    std::vector<std::future<int>> results;
    for (int i = 0; i < 5; ++i) {
      results.push_back(compute.submit([&order, i] {
        order.push_back(i);
        return i * i;
      }));
    }
    auto failed = compute.submit([]() -> int { throw cxr::InvalidArgument("bad batch"); });
    CHECK(results[4].wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout);
    gate.set_value();
    held.get();
    for (int i = 0; i < 5; ++i) CHECK(results[static_cast<size_t>(i)].get() == i * i);
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
    CHECK_THROWS_AS(failed.get(), cxr::InvalidArgument);
    // From the compute thread itself, submit() runs in place.
    CHECK(compute.call([&] { return compute.submit([] { return std::this_thread::get_id(); }).get(); }) ==
          compute.id());
    ran = compute.id();
  }
  CHECK(ran != std::thread::id());  // destroyed: joined without hanging
}

TEST_CASE("runtime: the caching CPU allocator hands out the block of a size freed last", "[runtime]") {
  // The one freed last is still in the CPU's caches. Handing out the one freed first instead
  // cycled a network's activations through every block of their size ever cached: after the
  // layout timing at start had left a second set, MobileNetV3 ran ~15 % slower on 2 vCPUs.
  use_caching_cpu_allocator();
  const int64_t n = (int64_t{3} << 20) + 4096;  // floats; a size no other test uses
  auto x = torch::empty({n});
  auto y = torch::empty({n});
  auto z = torch::empty({n});
  const void* second = y.data_ptr();
  const void* last = z.data_ptr();
  x.reset();
  y.reset();
  z.reset();
  auto a = torch::empty({n});
  CHECK(a.data_ptr() == last);
  a.reset();
  auto b = torch::empty({n});
  CHECK(b.data_ptr() == last);  // again: freed last
  auto c = torch::empty({n});
  CHECK(c.data_ptr() == second);
}

TEST_CASE("runtime: the caching CPU allocator hands large blocks out again instead of new pages", "[runtime]") {
  use_caching_cpu_allocator();
  use_caching_cpu_allocator();            // idempotent
  const int64_t big = int64_t{10} << 20;  // floats: 40 MiB, above glibc's largest mmap threshold
  auto a = torch::empty({big});
  a.fill_(1.0f);
  const void* block = a.data_ptr();
  const size_t before = cached_cpu_bytes();
  a.reset();
  CHECK(cached_cpu_bytes() >= before + static_cast<size_t>(big) * 4);

  // The same size, and one an eighth smaller, get the block back; half the size does not.
  auto b = torch::empty({big});
  CHECK(b.data_ptr() == block);
  b.reset();
  auto c = torch::empty({big - big / 9});
  CHECK(c.data_ptr() == block);
  auto d = torch::empty({big / 2});
  CHECK(d.data_ptr() != block);
  c.reset();
  d.reset();

  // Repeated large temporaries fault no new pages in (40 MiB of fresh pages would be ~10 000).
  rusage r0{}, r1{};
  getrusage(RUSAGE_THREAD, &r0);
  for (int i = 0; i < 5; ++i) {
    auto t = torch::full({big}, static_cast<float>(i));
    CHECK(t[big - 1].item<float>() == static_cast<float>(i));
  }
  getrusage(RUSAGE_THREAD, &r1);
  CHECK(r1.ru_minflt - r0.ru_minflt < 1000);

  // Small tensors go to LibTorch's allocator; the cache stays bounded.
  const size_t cached = cached_cpu_bytes();
  {
    auto small = torch::ones({1000});
    CHECK(small.sum().item<float>() == 1000.0f);
  }
  CHECK(cached_cpu_bytes() == cached);
  std::vector<const void*> released;
  {
    std::vector<torch::Tensor> many;
    for (int i = 0; i < 6; ++i) many.push_back(torch::empty({int64_t{64} << 20}));  // 256 MiB each, untouched
    for (auto& t : many) released.push_back(t.data_ptr());
  }  // released in order: the first ones leave the cache for the last
  CHECK(cached_cpu_bytes() <= kAllocationCacheMax);
  auto again = torch::empty({int64_t{64} << 20});
  CHECK(std::find(released.begin() + 2, released.end(), again.data_ptr()) != released.end());
}
