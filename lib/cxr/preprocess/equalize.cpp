// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/preprocess/equalize.hpp"

#include <algorithm>
#include <cstdint>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "cxr/error.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
#define CXR_HAVE_SIMD_LUT 1
#endif

namespace cxr::preprocess {

namespace {

// Counts per grey level. Four interleaved sub-histograms break the store-to-load dependency
// on runs of equal pixels (flat background is common in scans).
template <typename T>
std::vector<int64_t> histogram(const cv::Mat& src) {
  constexpr size_t kBins = size_t(1) << (8 * sizeof(T));
  std::vector<uint32_t> h(4 * kBins, 0);
  uint32_t* h0 = h.data();
  uint32_t* h1 = h0 + kBins;
  uint32_t* h2 = h1 + kBins;
  uint32_t* h3 = h2 + kBins;
  const int cols = src.cols;
  for (int y = 0; y < src.rows; ++y) {
    const T* p = src.ptr<T>(y);
    int x = 0;
    for (; x + 4 <= cols; x += 4) {
      ++h0[p[x]];
      ++h1[p[x + 1]];
      ++h2[p[x + 2]];
      ++h3[p[x + 3]];
    }
    for (; x < cols; ++x) ++h0[p[x]];
  }
  std::vector<int64_t> out(kBins);
  for (size_t i = 0; i < kBins; ++i) out[i] = int64_t(h0[i]) + h1[i] + h2[i] + h3[i];
  return out;
}

#if CXR_HAVE_SIMD_LUT
// A 256-entry byte table lookup, 64 pixels per step: two 128-byte vpermi2b lookups picked by
// the index's top bit (scalar byte lookups cost about 0.3 ns a pixel).
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void lut_row_vbmi(const uint8_t* s, uint8_t* d, int n,
                                                                            const uint8_t* table) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  int x = 0;
  for (; x + 64 <= n; x += 64) {
    const __m512i idx = _mm512_loadu_si512(s + x);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);
    _mm512_storeu_si512(d + x, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
  }
  for (; x < n; ++x) d[x] = table[s[x]];
}

bool have_vbmi() {
  static const bool yes = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
  return yes;
}

// The same lookup, 32 pixels per step, on AVX2 machines: the table as 16 rows of 16 bytes; each
// row is a pshufb by the low nibble, kept where the high nibble selects that row (about 4x
// faster than scalar byte lookups, which pay a load and a store per pixel).
__attribute__((target("avx2"))) void lut_row_avx2(const uint8_t* s, uint8_t* d, int n, const uint8_t* table) {
  __m256i rows[16];
  for (int h = 0; h < 16; ++h)
    rows[h] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * h)));
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  int x = 0;
  for (; x + 32 <= n; x += 32) {
    const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + x));
    const __m256i lo = _mm256_and_si256(idx, nibble);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(idx, 4), nibble);
    __m256i r = _mm256_setzero_si256();
    for (int h = 0; h < 16; ++h) {
      const __m256i pick = _mm256_cmpeq_epi8(hi, _mm256_set1_epi8(static_cast<char>(h)));
      r = _mm256_or_si256(r, _mm256_and_si256(pick, _mm256_shuffle_epi8(rows[h], lo)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + x), r);
  }
  for (; x < n; ++x) d[x] = table[s[x]];
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

template <typename T>
void apply_lut(const cv::Mat& src, cv::Mat& dst, const std::vector<T>& lut) {
  if constexpr (sizeof(T) == 1) {
#if CXR_HAVE_SIMD_LUT
    if (have_vbmi()) {
      dst.create(src.size(), src.type());
      for (int y = 0; y < src.rows; ++y) lut_row_vbmi(src.ptr<uint8_t>(y), dst.ptr<uint8_t>(y), src.cols, lut.data());
      return;
    }
    if (have_avx2()) {
      dst.create(src.size(), src.type());
      for (int y = 0; y < src.rows; ++y) lut_row_avx2(src.ptr<uint8_t>(y), dst.ptr<uint8_t>(y), src.cols, lut.data());
      return;
    }
#endif
    cv::LUT(src, cv::Mat(1, 256, CV_8U, const_cast<T*>(lut.data())), dst);
  } else {
    dst.create(src.size(), src.type());
    for (int y = 0; y < src.rows; ++y) {
      const T* s = src.ptr<T>(y);
      T* d = dst.ptr<T>(y);
      for (int x = 0; x < src.cols; ++x) d[x] = lut[s[x]];
    }
  }
}

// torchvision's _scale_channel: step = floor(sum of the histogram without its last non-empty
// bin / max); lut[i] = floor((cumsum[i - 1] + floor(step / 2)) / step), clamped; identity when
// step is 0. The 16-bit image gets the same rule with 65536 bins and max 65535.
template <typename T>
void equalize_torchvision(const cv::Mat& src, cv::Mat& dst) {
  constexpr int64_t kMax = (int64_t(1) << (8 * sizeof(T))) - 1;
  const std::vector<int64_t> hist = histogram<T>(src);
  int64_t total = 0, last = 0;
  for (const int64_t c : hist) {
    if (c) last = c;
    total += c;
  }
  const int64_t step = (total - last) / kMax;
  if (step == 0) {
    if (&src != &dst) src.copyTo(dst);
    return;
  }
  std::vector<T> lut(hist.size());
  int64_t cum = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    lut[i] = static_cast<T>(std::min<int64_t>((cum + step / 2) / step, kMax));
    cum += hist[i];
  }
  apply_lut(src, dst, lut);
}

// cv::equalizeHist's rule (first occupied level -> 0, cumulative count scaled to the full range,
// rounded to nearest) over 65536 bins; double, since the counts exceed float's exact range.
void equalize_opencv16(const cv::Mat& src, cv::Mat& dst) {
  const std::vector<int64_t> hist = histogram<uint16_t>(src);
  const int64_t total = static_cast<int64_t>(src.total());
  size_t i = 0;
  while (!hist[i]) ++i;
  if (hist[i] == total) {
    dst.create(src.size(), src.type());
    dst.setTo(cv::Scalar(static_cast<double>(i)));
    return;
  }
  const double scale = 65535.0 / static_cast<double>(total - hist[i]);
  std::vector<uint16_t> lut(hist.size(), 0);
  int64_t sum = 0;
  for (++i; i < hist.size(); ++i) {
    sum += hist[i];
    lut[i] = cv::saturate_cast<uint16_t>(static_cast<double>(sum) * scale);
  }
  apply_lut(src, dst, lut);
}

}  // namespace

EqualizeMode equalize_mode_from_string(const std::string& s) {
  if (s == "torchvision") return EqualizeMode::Torchvision;
  if (s == "opencv") return EqualizeMode::OpenCV;
  if (s == "clahe") return EqualizeMode::Clahe;
  throw InvalidArgument("equalize: mode must be torchvision, opencv or clahe, got '" + s + "'");
}

const char* to_string(EqualizeMode mode) {
  switch (mode) {
    case EqualizeMode::Torchvision: return "torchvision";
    case EqualizeMode::OpenCV: return "opencv";
    case EqualizeMode::Clahe: return "clahe";
  }
  return "?";
}

void equalize(const cv::Mat& src, cv::Mat& dst, const EqualizeParams& params) {
  if (src.empty()) throw InvalidArgument("equalize: empty image");
  if (src.channels() != 1 || (src.depth() != CV_8U && src.depth() != CV_16U))
    throw InvalidArgument("equalize: expected 8- or 16-bit grey, got type " + std::to_string(src.type()));
  const bool eight = src.depth() == CV_8U;
  switch (params.mode) {
    case EqualizeMode::Torchvision:
      if (eight)
        equalize_torchvision<uint8_t>(src, dst);
      else
        equalize_torchvision<uint16_t>(src, dst);
      return;
    case EqualizeMode::OpenCV:
      if (eight)
        cv::equalizeHist(src, dst);
      else
        equalize_opencv16(src, dst);
      return;
    case EqualizeMode::Clahe: {
      if (!(params.clip_limit > 0.0))
        throw InvalidArgument("equalize: clip-limit must be > 0, got " + std::to_string(params.clip_limit));
      if (params.tile_grid < 1 || params.tile_grid > 256)
        throw InvalidArgument("equalize: tile-grid must be in 1..256, got " + std::to_string(params.tile_grid));
      if (params.tile_grid > src.cols || params.tile_grid > src.rows)
        throw InvalidArgument("equalize: tile-grid " + std::to_string(params.tile_grid) + " exceeds the " +
                              std::to_string(src.cols) + "x" + std::to_string(src.rows) + " image");
      cv::Ptr<cv::CLAHE> clahe = cv::createCLAHE(params.clip_limit, cv::Size(params.tile_grid, params.tile_grid));
      // CLAHE pads a ROI from the parent image's pixels beyond it; give it its own copy.
      clahe->apply(src.isSubmatrix() ? src.clone() : src, dst);
      return;
    }
  }
  throw InvalidArgument("equalize: unknown mode " + std::to_string(static_cast<int>(params.mode)));
}

}  // namespace cxr::preprocess
