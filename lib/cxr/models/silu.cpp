// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/models/silu.hpp"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <cmath>
#if defined(__x86_64__)
#include <immintrin.h>

#include "cxr/models/silu_avx512.hpp"
#endif

namespace cxr::models {
namespace {

float silu_scalar(float v) { return v / (1.f + std::exp(-v)); }

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void silu_avx2(float* x, int64_t n) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), half = _mm256_set1_ps(0.5f);
  const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
  const __m256 p0 = _mm256_set1_ps(1.9875691500e-4f), p1 = _mm256_set1_ps(1.3981999507e-3f),
               p2 = _mm256_set1_ps(8.3334519073e-3f), p3 = _mm256_set1_ps(4.1665795894e-2f),
               p4 = _mm256_set1_ps(1.6666665459e-1f), p5 = _mm256_set1_ps(5.0000001201e-1f);
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256i bias = _mm256_set1_epi32(127);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    // e = exp(-v), with -v clamped to expf's finite range.
    __m256 z = _mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), v), lo), hi);
    const __m256 k = _mm256_floor_ps(_mm256_fmadd_ps(z, log2e, half));  // round(z / ln 2)
    z = _mm256_fnmadd_ps(k, c1, z);
    z = _mm256_fnmadd_ps(k, c2, z);  // r = z - k ln 2, |r| <= ln 2 / 2
    __m256 y = _mm256_fmadd_ps(p0, z, p1);
    y = _mm256_fmadd_ps(y, z, p2);
    y = _mm256_fmadd_ps(y, z, p3);
    y = _mm256_fmadd_ps(y, z, p4);
    y = _mm256_fmadd_ps(y, z, p5);
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(z, z), _mm256_add_ps(z, one));  // e^r
    const __m256i e2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), bias), 23);  // 2^k
    const __m256 e = _mm256_mul_ps(y, _mm256_castsi256_ps(e2));
    _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
  }
  for (; i < n; ++i) x[i] = silu_scalar(x[i]);
}

// 16 floats at a time (silu_avx512.hpp): no division for the loop to wait on.
__attribute__((target("avx512f"))) void silu_avx512(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, silu16(_mm512_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = silu_scalar(x[i]);
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
bool have_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}
#else
bool have_avx2() { return false; }
bool have_avx512() { return false; }
void silu_avx2(float*, int64_t) {}
void silu_avx512(float*, int64_t) {}
#endif

}  // namespace

void silu_inplace(float* x, int64_t n) {
  if (have_avx512()) {
    silu_avx512(x, n);
    return;
  }
  if (have_avx2()) {
    silu_avx2(x, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = silu_scalar(x[i]);
}

torch::Tensor silu_(torch::Tensor x) {
  const bool dense = x.is_contiguous() || x.is_contiguous(torch::MemoryFormat::ChannelsLast);
  if (!c10::InferenceMode::is_enabled() || !x.device().is_cpu() || x.scalar_type() != torch::kFloat || !dense) {
    return torch::silu_(x);
  }
  float* p = x.data_ptr<float>();
  at::parallel_for(0, x.numel(), 1 << 15, [p](int64_t b, int64_t e) { silu_inplace(p + b, e - b); });
  return x;
}

}  // namespace cxr::models
