// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// SiLU of 16 floats in an AVX-512 register, for kernels that apply it to what they have just
/// computed (silu.cpp's pass, the engine's depthwise convolution). exp(-v) by range reduction by
/// ln 2 and a degree-6 polynomial, 2^k by scalef, 1 / (1 + e) by the 14-bit reciprocal estimate
/// and one Newton step: within ~2e-7 relative of x * sigmoid(x) in double.
/// Include only from x86-64 code; call only where the CPU has AVX-512F.
#if defined(__x86_64__)
#include <immintrin.h>

namespace cxr::models {

// GCC 12 warns about the undefined pass-through operand of its own AVX-512 intrinsics
// (gcc.gnu.org/bugzilla 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"), always_inline)) inline __m512 silu16(__m512 v) {
  const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-88.3762626647949f);
  const __m512 one = _mm512_set1_ps(1.f);
  __m512 z = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), v), lo), hi);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  z = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), z);
  z = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), z);  // r = z - k ln 2, |r| <= ln 2 / 2
  __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), z, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(z, z), _mm512_add_ps(z, one));  // e^r
  const __m512 d = _mm512_add_ps(one, _mm512_scalef_ps(y, k));         // 1 + e^-v
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f)));
  return _mm512_mul_ps(v, r);
}

/// Hardswish as XNNPACK computes it: x * min(max(x / 6 + 1/2, 0), 1).
__attribute__((target("avx512f"), always_inline)) inline __m512 hardswish16(__m512 v) {
  const __m512 g = _mm512_min_ps(
      _mm512_max_ps(_mm512_fmadd_ps(v, _mm512_set1_ps(1.f / 6.f), _mm512_set1_ps(0.5f)), _mm512_setzero_ps()),
      _mm512_set1_ps(1.f));
  return _mm512_mul_ps(v, g);
}
#pragma GCC diagnostic pop

}  // namespace cxr::models
#endif
