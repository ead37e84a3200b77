// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/engine/depthwise.hpp"

#include <algorithm>
#include <string>

#include "cxr/error.hpp"

#if defined(__x86_64__)
#include <immintrin.h>

#include "cxr/models/silu_avx512.hpp"
#endif

namespace cxr::engine {

bool depthwise_kernel_available() {
#if defined(__x86_64__)
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
#else
  return false;
#endif
}

// 3x3 stride 2 stays on XNNPACK's kernel: at batch 8 (a 112x112x96 input map from beyond the
// cache) this one ran it up to 1.8x slower, at batch 1 no faster.
bool DepthwiseConv::supports(uint32_t k, uint32_t stride) {
  return (k == 3 && stride == 1) || (k == 5 && stride <= 2 && stride >= 1);
}

DepthwiseConv::DepthwiseConv(size_t channels, uint32_t k, uint32_t stride, uint32_t pad, const float* weight,
                             const float* bias, float lo, float hi, DepthwisePost post)
    : c_(channels), k_(k), stride_(stride), pad_(pad), lo_(lo), hi_(hi), post_(post) {
  if (!depthwise_kernel_available()) throw InvalidArgument("depthwise kernel: this CPU lacks AVX-512F");
  if (!supports(k, stride) || pad >= k || channels == 0) {
    throw InvalidArgument("depthwise kernel: no kernel for " + std::to_string(k) + "x" + std::to_string(k) + "/" +
                          std::to_string(stride) + " padding " + std::to_string(pad));
  }
  const size_t blocks = (channels + 15) / 16, taps = size_t{k} * k, per_block = 16 * (1 + taps);
  packed_.assign(blocks * per_block, 0.f);
  for (size_t ch = 0; ch < channels; ++ch) {
    float* block = packed_.data() + ch / 16 * per_block;
    block[ch % 16] = bias[ch];
    for (size_t t = 0; t < taps; ++t) block[16 * (1 + t) + ch % 16] = weight[ch * taps + t];
  }
}

#if defined(__x86_64__)
namespace {

struct Row {
  const float* in;
  size_t ih, iw, c;
  float* out;  // the output row
  size_t ow;
  long iy0;  // input row of tap row 0 (may be outside the input)
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // gcc.gnu.org/bugzilla 105593
#pragma GCC diagnostic ignored "-Wpsabi"                // vectors between AVX-512 functions only

// The clamp, the activation, the masked store of one output vector.
__attribute__((target("avx512f"), always_inline)) inline void finish(__m512 acc, __m512 lo, __m512 hi,
                                                                     DepthwisePost post, __mmask16 m, float* out) {
  acc = _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
  if (post == DepthwisePost::SiLU) {
    acc = models::silu16(acc);
  } else if (post == DepthwisePost::Hardswish) {
    acc = models::hardswish16(acc);
  }
  _mm512_mask_storeu_ps(out, m, acc);
}

// A pixel some of whose taps fall outside the input: those taps skipped, the weights still the
// caller's registers.
template <int K, int S>
__attribute__((target("avx512f"), always_inline)) inline __m512 border_pixel(const Row& r, const float* in,
                                                                             const __m512 (&w)[K * K], __m512 bias,
                                                                             __mmask16 m, size_t pad, long ky_lo,
                                                                             long ky_hi, size_t ox) {
  __m512 acc = bias;
  const long ix0 = static_cast<long>(ox * S) - static_cast<long>(pad);
#pragma GCC unroll 5
  for (long ky = 0; ky < K; ++ky) {
    if (ky < ky_lo || ky >= ky_hi) continue;
    const float* line = in + static_cast<size_t>(r.iy0 + ky) * r.iw * r.c;
#pragma GCC unroll 5
    for (long kx = 0; kx < K; ++kx) {
      const long ix = ix0 + kx;
      if (ix < 0 || ix >= static_cast<long>(r.iw)) continue;
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, line + static_cast<size_t>(ix) * r.c), w[ky * K + kx], acc);
    }
  }
  return acc;
}

// One output row in tiles of T output pixels, each tile block by block: the block's k * k weight
// vectors stay in registers across the tile; pixels whose taps all fall inside the input take the
// unrolled path, P at a time, the border ones (most of a 7x7 map under a 5x5 kernel) skip the taps
// that fall outside, tap by tap. While a tile computes, the next tile's new input rows (every
// channel) are prefetched: with tiles and the prefetch, EfficientNet-B1's 3x3 144-channel layer at
// batch 8 went from 4.9 to 4.0 ms.
template <int K, int S>
__attribute__((target("avx512f"))) void row_kernel(const Row& r, const float* packed, size_t pad, float lo, float hi,
                                                   DepthwisePost post) {
  constexpr size_t taps = static_cast<size_t>(K) * K, per_block = 16 * (1 + taps), T = 16;
  // P neighbouring outputs at once: each input vector loaded once for all the taps that use it
  // (K + S (P - 1) loads a tap row instead of K P).
  constexpr int P = K == 3 ? 4 : 2;
  static_assert(K == 5 || S == 1, "3x3 stride 2: XNNPACK's kernel (supports())");
  const size_t blocks = (r.c + 15) / 16;
  const long ky_lo = std::max<long>(0, -r.iy0), ky_hi = std::min<long>(K, static_cast<long>(r.ih) - r.iy0);
  const bool rows_inside = ky_lo == 0 && ky_hi == K;
  // Interior pixels: ox * S - pad >= 0 and ox * S - pad + K <= iw.
  const size_t ox_lo = rows_inside ? std::min(r.ow, (pad + S - 1) / S) : r.ow;
  const size_t ox_hi =
      rows_inside && r.iw + pad >= static_cast<size_t>(K) ? std::min(r.ow, (r.iw + pad - K) / S + 1) : 0;
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  const size_t row_stride = r.iw * r.c;
  for (size_t x0 = 0; x0 < r.ow; x0 += T) {
    const size_t x1 = std::min(r.ow, x0 + T);
    // The tile's interior pixels, P at a time from the first; the rest through border_pixel.
    const size_t mid_begin = std::max(x0, ox_lo), mid_end = std::min(x1, ox_hi);
    // The input rows this output row reads first (the last S of its K; the others the rows above
    // read) come from beyond L2 on large maps: the next tile's span of them, every channel, is
    // asked for now.
    if (x1 < r.ow) {
      const long px0 = std::max<long>(0, static_cast<long>(x1 * S) - static_cast<long>(pad));
      const long px1 = std::min<long>(static_cast<long>(r.iw),
                                      static_cast<long>(std::min(r.ow, x1 + T) * S) - static_cast<long>(pad) + K);
      for (long ky = std::max<long>(ky_lo, K - S); ky < ky_hi; ++ky) {
        const char* a = reinterpret_cast<const char*>(r.in + (static_cast<size_t>(r.iy0 + ky) * r.iw + px0) * r.c);
        const char* e = reinterpret_cast<const char*>(r.in + (static_cast<size_t>(r.iy0 + ky) * r.iw + px1) * r.c);
        for (; a < e; a += 64) _mm_prefetch(a, _MM_HINT_T0);
      }
    }
    for (size_t b = 0; b < blocks; ++b) {
      const size_t left = r.c - 16 * b;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      const float* wb = packed + b * per_block;
      const __m512 bias = _mm512_loadu_ps(wb);
      __m512 w[taps];
      for (size_t t = 0; t < taps; ++t) w[t] = _mm512_loadu_ps(wb + 16 * (1 + t));
      const float* in = r.in + 16 * b;
      float* out = r.out + 16 * b;
      for (size_t ox = x0; ox < x1;) {
        if (ox < mid_begin || ox + P > mid_end) {  // a border pixel, or one of the last few interior ones
          finish(border_pixel<K, S>(r, in, w, bias, m, pad, ky_lo, ky_hi, ox), vlo, vhi, post, m, out + ox * r.c);
          ++ox;
          continue;
        }
        const float* p = in + static_cast<size_t>(r.iy0) * row_stride + (ox * S - pad) * r.c;
        // Unrolled whole, so that w[] and acc[] stay in registers (GCC left 3 x 9 x 4 rolled).
        __m512 acc[P];
        for (int j = 0; j < P; ++j) acc[j] = bias;
#pragma GCC unroll 5
        for (int ky = 0; ky < K; ++ky) {
#pragma GCC unroll 16
          for (int col = 0; col < K + S * (P - 1); ++col) {
            const __m512 x =
                _mm512_maskz_loadu_ps(m, p + static_cast<size_t>(ky) * row_stride + static_cast<size_t>(col) * r.c);
#pragma GCC unroll 4
            for (int j = 0; j < P; ++j) {
              const int kx = col - S * j;
              if (kx >= 0 && kx < K) acc[j] = _mm512_fmadd_ps(x, w[ky * K + kx], acc[j]);
            }
          }
        }
        for (int j = 0; j < P; ++j) finish(acc[j], vlo, vhi, post, m, out + (ox + static_cast<size_t>(j)) * r.c);
        ox += P;
      }
    }
  }
}
#pragma GCC diagnostic pop

}  // namespace
#endif

void DepthwiseConv::run_rows(const float* in, size_t ih, size_t iw, float* out, size_t first, size_t count) const {
#if defined(__x86_64__)
  const size_t oh = out_size(ih), ow = out_size(iw);
  for (size_t row = first; row < first + count; ++row) {
    const size_t sample = row / oh, oy = row % oh;
    const long iy0 = static_cast<long>(oy * stride_) - static_cast<long>(pad_);
    const Row r{in + sample * ih * iw * c_, ih, iw, c_, out + (sample * oh + oy) * ow * c_, ow, iy0};
    if (k_ == 3) {
      row_kernel<3, 1>(r, packed_.data(), pad_, lo_, hi_, post_);
    } else if (stride_ == 1) {
      row_kernel<5, 1>(r, packed_.data(), pad_, lo_, hi_, post_);
    } else {
      row_kernel<5, 2>(r, packed_.data(), pad_, lo_, hi_, post_);
    }
  }
#else
  (void)in, (void)ih, (void)iw, (void)out, (void)first, (void)count;
#endif
}

}  // namespace cxr::engine
