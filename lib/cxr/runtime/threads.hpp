// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Compute threads of LibTorch work: how many, and on which thread.
///
/// LibTorch's intra-op pool is set per calling thread, but the BLAS library under it (OpenBLAS
/// through libblas.so.3 on Debian) has its own thread count, process-wide, every core by
/// default. At batch 1 LibTorch sends small convolutions and the linear layers to BLAS: with 1
/// LibTorch thread and OpenBLAS's 2, MobileNetV3 in a pipeline spent twice the CPU time per scan
/// and ran ~10 % slower. So both are set together. The set-up selects OpenBLAS built with
/// OpenMP, which runs on LibTorch's own OpenMP threads; the pthread build keeps a second pool
/// that spins beside them (2 vCPUs, 2 threads, MobileNetV3-Large at batch 1: 96 img/s with it,
/// 198 with the OpenMP build).

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "cxr/runtime/blas.hpp"  // blas_threads()

namespace cxr::runtime {

/// Sets LibTorch's intra-op threads on this thread and, when the process runs OpenBLAS, its
/// thread count; n <= 0 leaves both as they are. Cheap when nothing changes.
void set_compute_threads(int n);

/// LibTorch's intra-op threads on this thread (what set_compute_threads() set, or LibTorch's
/// default).
int compute_threads();

/// The name of an owner's (an element's) compute thread: "<owner>:torch" for the first,
/// "<owner>:torch<index>" for more. Linux keeps 15 characters of a thread's name, so a long
/// owner is cut instead of the suffix: "cxrinfer12:torch1" becomes "cxrinfer:torch1".
inline std::string compute_thread_name(const std::string& owner, size_t index = 0) {
  const std::string suffix = ":torch" + (index > 0 ? std::to_string(index) : std::string());
  return owner.substr(0, suffix.size() < 15 ? 15 - suffix.size() : 0) + suffix;
}

/// Intra-op threads of each of `streams` streams (compute threads running batches side by
/// side): `threads` when set (> 0); else, with more than one stream, this thread's LibTorch
/// threads shared out (at least 1 each); else 0 (leave LibTorch's setting).
int threads_per_stream(int threads, int streams);

/// One thread that runs all the LibTorch work of its owner (load, layout timing, every batch),
/// one call after the other.
///
/// LibTorch's OpenMP runtime (libgomp) keeps a pool of workers for each thread that has run a
/// parallel region, and once the pools together hold more threads than there are CPUs, its
/// workers stop spinning between regions and sleep: every operator then pays a wake-up. An
/// element that loads and times its model in start() (the application's thread) and runs it in
/// the streaming thread, or in a batch-timeout thread, makes two or three pools. Measured on 2
/// CPUs, ResNet-34 at batch 1 with 2 threads in cxrinfer: 164 context switches per scan and
/// 15 % below the module's own forward; with every call on one thread, 4 per scan and within
/// 2 %. The thread ends (and its pool with it) when the object is destroyed.
class ComputeThread {
 public:
  /// `name` is the thread's name as tools show it (at most 15 characters are kept); the OpenMP
  /// workers it starts inherit it.
  explicit ComputeThread(std::string name);
  ~ComputeThread();  ///< Finishes the calls already queued, then joins.
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  /// Runs f() on the compute thread and returns its result, or rethrows what it threw. A call
  /// from the compute thread itself runs f() in place.
  template <class F>
  auto call(F&& f) -> std::invoke_result_t<F&> {
    return submit(std::ref(f)).get();
  }

  /// Queues f() to run on the compute thread after the calls before it and returns at once;
  /// the future gives its result or what it threw. From the compute thread itself, f() runs in
  /// place (waiting there for a queued call would never end).
  template <class F>
  auto submit(F f) -> std::future<std::invoke_result_t<F&>> {
    using R = std::invoke_result_t<F&>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    auto result = task->get_future();
    if (std::this_thread::get_id() == thread_.get_id()) {
      (*task)();
    } else {
      post([task] { (*task)(); });
    }
    return result;
  }

  std::thread::id id() const { return thread_.get_id(); }

 private:
  void post(std::function<void()> job);
  void loop(const std::string& name);

  std::mutex mutex_;
  std::condition_variable cond_;
  std::deque<std::function<void()>> jobs_;
  bool quit_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace cxr::runtime
