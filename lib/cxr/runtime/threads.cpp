// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/runtime/threads.hpp"

#include <ATen/Parallel.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>

namespace cxr::runtime {

void set_compute_threads(int n) {
  if (n <= 0) return;
  if (at::get_num_threads() != n) at::set_num_threads(n);
  static std::atomic<int> blas{-1};  // last count set here: the pool is process-wide
  if (blas.load(std::memory_order_relaxed) != n && set_blas_threads(n)) blas.store(n, std::memory_order_relaxed);
}

int compute_threads() { return at::get_num_threads(); }

int threads_per_stream(int threads, int streams) {
  if (threads > 0) return threads;
  if (streams <= 1) return 0;
  return std::max(1, at::get_num_threads() / streams);
}

ComputeThread::ComputeThread(std::string name) : thread_([this, name] { loop(name); }) {}

ComputeThread::~ComputeThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    quit_ = true;
  }
  cond_.notify_all();
  thread_.join();
}

void ComputeThread::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  cond_.notify_one();
}

void ComputeThread::loop(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cond_.wait(lock, [this] { return quit_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // quit, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();  // a packaged_task: what it throws goes to the caller's future
  }
}

}  // namespace cxr::runtime
