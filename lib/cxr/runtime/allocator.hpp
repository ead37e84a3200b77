// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// LibTorch's large CPU allocations served from a cache of freed blocks.
///
/// glibc serves allocations above its mmap threshold (which never grows past 32 MiB) with fresh
/// mmap()s and unmaps them on free, so each one is page-faulted and zeroed by the kernel again
/// on the next forward. At batch 8, the early activations of MobileNetV3 and EfficientNet-B1
/// are 25-60 MiB: MobileNetV3 at 255 px, batch 8, 1 thread took 60 000 page faults a second and
/// spent ~23 % of its time in the kernel. Large blocks freed here are kept, up to a bound, and
/// handed out again for requests of about their size; smaller requests go to LibTorch's own
/// allocator unchanged.

#include <cstddef>

namespace cxr::runtime {

/// Requests of at least this many bytes are cached: glibc's initial mmap threshold. (glibc raises
/// its threshold when it frees a large mmap()ed block; with those kept here it never does, and
/// would serve everything above 128 KiB with fresh pages.)
constexpr size_t kCachedAllocationMin = size_t{128} << 10;

/// At most this many bytes of freed blocks are kept; the blocks freed longest ago go first.
constexpr size_t kAllocationCacheMax = size_t{1} << 30;

/// Makes the caching allocator LibTorch's CPU allocator for the whole process (tensors made
/// before keep their own deleter), unless CXR_CPU_ALLOCATOR=libtorch. Idempotent and
/// thread-safe; Predictor, GradCam and the trainer call it (cxr/runtime/cpu.hpp).
void use_caching_cpu_allocator();

/// Bytes of freed blocks held for reuse now (0 before use_caching_cpu_allocator()).
size_t cached_cpu_bytes();

}  // namespace cxr::runtime
