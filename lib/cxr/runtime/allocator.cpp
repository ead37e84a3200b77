// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/runtime/allocator.hpp"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include "cxr/models/torch_compat.hpp"
#include "cxr/runtime/cpu.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace cxr::runtime {
namespace {

// Sizes are rounded up (to pages below 1 MiB, to 64 KiB above), so that near sizes share blocks.
size_t rounded(size_t n) {
  const size_t granule = n < (size_t{1} << 20) ? size_t{4} << 10 : size_t{64} << 10;
  return (n + granule - 1) / granule * granule;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(c10::Allocator* fallback) : fallback_(fallback) {}

  c10::DataPtr allocate(size_t n) CXR_TORCH_ALLOCATE_CONST override {
    if (n < kCachedAllocationMin) return fallback_->allocate(n);
    const size_t size = rounded(n);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest free block that fits, if it wastes at most an eighth; of those of that
      // size, the one freed last (equal keys keep their order of insertion), still warm in the
      // CPU's caches. The one freed first would cycle a network's activations through every
      // block of their size in the cache (MobileNetV3 ~15 % slower after the layout timing).
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= size + size / 8) {
        it = std::prev(free_.upper_bound(it->first));
        p = it->second.block;
        live_[p] = it->first;
        cached_ -= it->first;
        free_.erase(it);
      }
    }
    if (!p) {
      p = c10::alloc_cpu(size);
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    }
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

#if CXR_TORCH_ALLOCATOR_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#endif

  size_t cached() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  static CachingCpuAllocator* instance;

 private:
  static void release(void* p) {
    CachingCpuAllocator& a = *instance;
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(a.mutex_);
      auto it = a.live_.find(p);
      if (it == a.live_.end()) {  // a small block (raw_deallocate after raw_allocate)
        c10::DeleterFnPtr d = a.fallback_->raw_deleter();
        d ? d(p) : c10::free_cpu(p);
        return;
      }
      const size_t size = it->second;
      a.live_.erase(it);
      if (size > kAllocationCacheMax) {
        evicted.push_back(p);
      } else {
        // Room for it by giving back the blocks freed longest ago: sizes the stream no longer
        // asks for (scans of another size, a smaller last batch) do not pin the cache.
        while (a.cached_ + size > kAllocationCacheMax) {
          auto oldest = a.free_.begin();
          for (auto f = a.free_.begin(); f != a.free_.end(); ++f) {
            if (f->second.when < oldest->second.when) oldest = f;
          }
          evicted.push_back(oldest->second.block);
          a.cached_ -= oldest->first;
          a.free_.erase(oldest);
        }
        a.free_.emplace(size, Free{p, ++a.clock_});
        a.cached_ += size;
      }
    }
    for (void* e : evicted) c10::free_cpu(e);
  }

  struct Free {
    void* block;
    uint64_t when;  // order of release
  };

  c10::Allocator* fallback_;
  mutable std::mutex mutex_;
  mutable std::multimap<size_t, Free> free_;        // size -> block
  mutable std::unordered_map<void*, size_t> live_;  // block -> size
  mutable size_t cached_ = 0;
  mutable uint64_t clock_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

}  // namespace

void use_caching_cpu_allocator() {
  if (!caching_allocator_wanted()) return;
  static std::once_flag once;
  std::call_once(once, [] {
    // Never destroyed: tensors may outlive any static destructor order.
    CachingCpuAllocator::instance = new CachingCpuAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
  });
}

size_t cached_cpu_bytes() { return CachingCpuAllocator::instance ? CachingCpuAllocator::instance->cached() : 0; }

}  // namespace cxr::runtime
