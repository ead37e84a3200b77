// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/preprocess/resize.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "cxr/error.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// The hot loops are plain C++ that the compiler vectorizes; on x86-64 GCC also builds an AVX2
// clone picked at load time, since the baseline (SSE2) lacks a 32-bit multiply.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CXR_HOT __attribute__((target_clones("avx2", "default")))
#else
#define CXR_HOT
#endif

namespace cxr::preprocess {

namespace {

// Pillow's Resample.c: fixed point with 22 fraction bits for 8-bit images.
constexpr int kPrecisionBits = 32 - 8 - 2;

// Pillow's precompute_coeffs with the BILINEAR (triangle, support 1) filter: for each output
// pixel, the first input pixel (bounds[2i]), the tap count (bounds[2i + 1]) and ksize normalised
// weights (double).
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;
  std::vector<double> kk;
};

double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

Coeffs precompute_coeffs(int in_size, float in0, float in1, int out_size) {
  Coeffs c;
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // Truncating casts round here because both values are >= -0.5 in practice, as in Pillow.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = triangle((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    c.bounds[static_cast<size_t>(xx) * 2] = xmin;
    c.bounds[static_cast<size_t>(xx) * 2 + 1] = xmax;
  }
  return c;
}

// Pillow's normalize_coeffs_8bpc: round half away from zero to 22 fraction bits.
std::vector<int32_t> fixed_coeffs(const Coeffs& c) {
  std::vector<int32_t> k(c.kk.size());
  for (size_t i = 0; i < k.size(); ++i) {
    const double v = c.kk[i] * (1 << kPrecisionBits);
    k[i] = static_cast<int32_t>(c.kk[i] < 0 ? -0.5 + v : 0.5 + v);
  }
  return k;
}

// One output row of a vertical pass: out[x] = clip8((2^21 + sum_t rows[t][x] * k[t]) >> 22).
// Integer sums are order-free, so the vectorized loop is bit-exact with Pillow's scalar one.
CXR_HOT void vrow_8u(const uint8_t* const* rows, const int32_t* k, int taps, int n, int32_t* acc, uint8_t* out) {
  for (int x = 0; x < n; ++x) acc[x] = 1 << (kPrecisionBits - 1);
  for (int t = 0; t < taps; ++t) {
    const uint8_t* r = rows[t];
    const int32_t kt = k[t];
    for (int x = 0; x < n; ++x) acc[x] += static_cast<int32_t>(r[x]) * kt;
  }
  for (int x = 0; x < n; ++x) {
    const int32_t v = acc[x] >> kPrecisionBits;
    out[x] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

CXR_HOT void vrow_32f(const float* const* rows, const float* k, int taps, int n, float* out) {
  for (int x = 0; x < n; ++x) out[x] = 0.f;
  for (int t = 0; t < taps; ++t) {
    const float* r = rows[t];
    const float kt = k[t];
    for (int x = 0; x < n; ++x) out[x] += r[x] * kt;
  }
}

// The vertical pass of Pillow's ImagingResampleVertical_8bpc over in's rows; row_offset shifts
// the bounds (Pillow's ybox_first).
void vertical_8u(const cv::Mat& in, cv::Mat& out, const Coeffs& c, const std::vector<int32_t>& k, int row_offset) {
  const int out_rows = static_cast<int>(c.bounds.size() / 2);
  out.create(out_rows, in.cols, CV_8U);
  std::vector<int32_t> acc(static_cast<size_t>(in.cols));
  std::vector<const uint8_t*> rows(static_cast<size_t>(c.ksize));
  for (int yy = 0; yy < out_rows; ++yy) {
    const int ymin = c.bounds[static_cast<size_t>(yy) * 2] - row_offset;
    const int taps = c.bounds[static_cast<size_t>(yy) * 2 + 1];
    for (int t = 0; t < taps; ++t) rows[static_cast<size_t>(t)] = in.ptr<uint8_t>(ymin + t);
    vrow_8u(rows.data(), &k[static_cast<size_t>(yy) * c.ksize], taps, in.cols, acc.data(), out.ptr<uint8_t>(yy));
  }
}

void vertical_32f(const cv::Mat& in, cv::Mat& out, const Coeffs& c, int row_offset) {
  const int out_rows = static_cast<int>(c.bounds.size() / 2);
  out.create(out_rows, in.cols, CV_32F);
  std::vector<float> k(c.kk.begin(), c.kk.end());
  std::vector<const float*> rows(static_cast<size_t>(c.ksize));
  for (int yy = 0; yy < out_rows; ++yy) {
    const int ymin = c.bounds[static_cast<size_t>(yy) * 2] - row_offset;
    const int taps = c.bounds[static_cast<size_t>(yy) * 2 + 1];
    for (int t = 0; t < taps; ++t) rows[static_cast<size_t>(t)] = in.ptr<float>(ymin + t);
    vrow_32f(rows.data(), &k[static_cast<size_t>(yy) * c.ksize], taps, in.cols, out.ptr<float>(yy));
  }
}

// dst = src^T for 8-bit images. cv::transpose is scalar for bytes; 16x16 blocks transposed in
// SSE2 registers (four interleave stages) make the horizontal pass's transposes cheap.
void transpose_8u(const cv::Mat& src, cv::Mat& dst) {
  dst.create(src.cols, src.rows, CV_8U);
  const int rows = src.rows, cols = src.cols;
  int y0 = 0;
#if defined(__SSE2__)
  for (; y0 + 16 <= rows; y0 += 16) {
    int x0 = 0;
    for (; x0 + 16 <= cols; x0 += 16) {
      __m128i r[16], a[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src.ptr<uint8_t>(y0 + i) + x0));
      // Bytes of row pairs, then 16-bit pairs of row quads, 32-bit of octets, 64-bit halves.
      for (int i = 0; i < 8; ++i) {
        a[2 * i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
      }
      for (int q = 0; q < 4; ++q) {
        const int b = 4 * q;
        r[b + 0] = _mm_unpacklo_epi16(a[b + 0], a[b + 2]);
        r[b + 1] = _mm_unpackhi_epi16(a[b + 0], a[b + 2]);
        r[b + 2] = _mm_unpacklo_epi16(a[b + 1], a[b + 3]);
        r[b + 3] = _mm_unpackhi_epi16(a[b + 1], a[b + 3]);
      }
      for (int h = 0; h < 2; ++h) {
        const int b = 8 * h;
        for (int k = 0; k < 4; ++k) {
          a[b + 2 * k] = _mm_unpacklo_epi32(r[b + k], r[b + 4 + k]);
          a[b + 2 * k + 1] = _mm_unpackhi_epi32(r[b + k], r[b + 4 + k]);
        }
      }
      for (int k = 0; k < 8; ++k) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst.ptr<uint8_t>(x0 + 2 * k) + y0),
                         _mm_unpacklo_epi64(a[k], a[8 + k]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst.ptr<uint8_t>(x0 + 2 * k + 1) + y0),
                         _mm_unpackhi_epi64(a[k], a[8 + k]));
      }
    }
    for (; x0 < cols; ++x0)
      for (int i = 0; i < 16; ++i) dst.ptr<uint8_t>(x0)[y0 + i] = src.ptr<uint8_t>(y0 + i)[x0];
  }
#endif
  for (; y0 < rows; ++y0) {
    const uint8_t* s = src.ptr<uint8_t>(y0);
    for (int x = 0; x < cols; ++x) dst.ptr<uint8_t>(x)[y0] = s[x];
  }
}

void transpose_any(const cv::Mat& src, cv::Mat& dst) {
  if (src.depth() == CV_8U)
    transpose_8u(src, dst);
  else
    cv::transpose(src, dst);
}

// A per-thread scratch image that only grows: a stream of scans reuses one allocation instead
// of mapping fresh pages (and taking their page faults) for every scan's intermediates.
cv::Mat scratch(int slot, int rows, int cols, int type) {
  thread_local std::vector<uint8_t> buffers[2];
  std::vector<uint8_t>& b = buffers[slot];
  const size_t bytes = size_t(rows) * size_t(cols) * CV_ELEM_SIZE(type);
  if (b.size() < bytes) b.resize(bytes);
  return cv::Mat(rows, cols, type, b.data());
}

void check_grey(const cv::Mat& src, const char* fn) {
  if (src.empty()) throw InvalidArgument(std::string(fn) + ": empty image");
  if (src.channels() != 1 || (src.depth() != CV_8U && src.depth() != CV_16U))
    throw InvalidArgument(std::string(fn) + ": expected 8- or 16-bit grey, got type " + std::to_string(src.type()));
}

std::string size_str(cv::Size s) { return std::to_string(s.width) + "x" + std::to_string(s.height); }

// Python's round() for the centre-crop offsets (half to even), as torchvision's center_crop.
int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

// The size of `in` scaled by one factor so that it fits inside `box` (cover = false) or covers
// it (cover = true). The side that meets the box gets the box's length, the other
// int(length * other / side) as torchvision's shorter-side rule, so that a square center-crop
// equals torchvision's Resize(s) + CenterCrop(s).
cv::Size fitted_size(cv::Size in, cv::Size box, bool cover) {
  const bool width_limits = (double(box.width) / in.width <= double(box.height) / in.height) != cover;
  if (width_limits) {
    const int h = static_cast<int>(static_cast<double>(int64_t(box.width) * in.height) / in.width);
    return {box.width, cover ? std::max(box.height, h) : std::min(box.height, std::max(1, h))};
  }
  const int w = static_cast<int>(static_cast<double>(int64_t(box.height) * in.width) / in.height);
  return {cover ? std::max(box.width, w) : std::min(box.width, std::max(1, w)), box.height};
}

void resample(const cv::Mat& src, cv::Mat& dst, cv::Size out, ResizeMethod method) {
  switch (method) {
    case ResizeMethod::Antialias: resample_antialias(src, dst, out); return;
    case ResizeMethod::Bilinear: cv::resize(src, dst, out, 0, 0, cv::INTER_LINEAR); return;
    case ResizeMethod::Area: cv::resize(src, dst, out, 0, 0, cv::INTER_AREA); return;
    case ResizeMethod::Nearest: cv::resize(src, dst, out, 0, 0, cv::INTER_NEAREST); return;
  }
  throw InvalidArgument("resize: unknown method " + std::to_string(static_cast<int>(method)));
}

}  // namespace

ResizeMode resize_mode_from_string(const std::string& s) {
  if (s == "stretch") return ResizeMode::Stretch;
  if (s == "shorter-side") return ResizeMode::ShorterSide;
  if (s == "letterbox") return ResizeMode::Letterbox;
  if (s == "center-crop") return ResizeMode::CenterCrop;
  throw InvalidArgument("resize: mode must be stretch, shorter-side, letterbox or center-crop, got '" + s + "'");
}

const char* to_string(ResizeMode mode) {
  switch (mode) {
    case ResizeMode::Stretch: return "stretch";
    case ResizeMode::ShorterSide: return "shorter-side";
    case ResizeMode::Letterbox: return "letterbox";
    case ResizeMode::CenterCrop: return "center-crop";
  }
  return "?";
}

ResizeMethod resize_method_from_string(const std::string& s) {
  if (s == "antialias") return ResizeMethod::Antialias;
  if (s == "bilinear") return ResizeMethod::Bilinear;
  if (s == "area") return ResizeMethod::Area;
  if (s == "nearest") return ResizeMethod::Nearest;
  throw InvalidArgument("resize: method must be antialias, bilinear, area or nearest, got '" + s + "'");
}

const char* to_string(ResizeMethod method) {
  switch (method) {
    case ResizeMethod::Antialias: return "antialias";
    case ResizeMethod::Bilinear: return "bilinear";
    case ResizeMethod::Area: return "area";
    case ResizeMethod::Nearest: return "nearest";
  }
  return "?";
}

cv::Size shorter_side_size(cv::Size in, int size) {
  if (in.width < 1 || in.height < 1) throw InvalidArgument("resize: input size " + size_str(in) + " is empty");
  if (size < 1) throw InvalidArgument("resize: size must be >= 1, got " + std::to_string(size));
  const bool portrait = in.width <= in.height;
  const int64_t shorter = portrait ? in.width : in.height;
  const int64_t longer = portrait ? in.height : in.width;
  // int(size * long / short) in Python: true division in double, then truncation.
  const int new_long = static_cast<int>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return portrait ? cv::Size(size, new_long) : cv::Size(new_long, size);
}

cv::Size resized_size(cv::Size in, const ResizeParams& p) {
  if (in.width < 1 || in.height < 1) throw InvalidArgument("resize: input size " + size_str(in) + " is empty");
  if (p.mode == ResizeMode::ShorterSide) return shorter_side_size(in, p.size);
  if (p.width < 1 || p.height < 1)
    throw InvalidArgument(std::string("resize: width and height must be >= 1 in mode ") + to_string(p.mode) +
                          ", got " + size_str(cv::Size(p.width, p.height)));
  return cv::Size(p.width, p.height);
}

void resample_antialias(const cv::Mat& src, cv::Mat& dst, cv::Size out, cv::Rect2f box) {
  check_grey(src, "resample_antialias");
  if (out.width < 1 || out.height < 1)
    throw InvalidArgument("resample_antialias: output size " + size_str(out) + " is empty");
  if (box.width <= 0 || box.height <= 0) box = cv::Rect2f(0.f, 0.f, float(src.cols), float(src.rows));
  if (box.x < 0 || box.y < 0 || box.x + box.width > src.cols || box.y + box.height > src.rows)
    throw InvalidArgument("resample_antialias: box outside the " + size_str(src.size()) + " image");
  const float x0 = box.x, y0 = box.y, x1 = box.x + box.width, y1 = box.y + box.height;

  // Step 1: coefficients and which passes Pillow runs (ImagingResampleInner).
  const bool need_h = out.width != src.cols || x0 != 0.f || x1 != float(out.width);
  const bool need_v = out.height != src.rows || y0 != 0.f || y1 != float(out.height);
  const Coeffs ch = precompute_coeffs(src.cols, x0, x1, out.width);
  const Coeffs cv_ = precompute_coeffs(src.rows, y0, y1, out.height);
  const int ybox_first = cv_.bounds[0];
  const int ybox_last = cv_.bounds[cv_.bounds.size() - 2] + cv_.bounds[cv_.bounds.size() - 1];
  const bool eight = src.depth() == CV_8U;

  // Step 2: horizontal pass over the rows the vertical pass will read, run as a vertical pass
  // over the transposed image so the taps are contiguous rows.
  cv::Mat tmp;  // 8-bit or float
  int row_offset = 0;
  if (need_h) {
    cv::Mat band_t, tmp_t;
    if (eight) {
      band_t = scratch(0, src.cols, ybox_last - ybox_first, CV_8U);
      tmp_t = scratch(1, out.width, ybox_last - ybox_first, CV_8U);
      transpose_8u(src.rowRange(ybox_first, ybox_last), band_t);
      vertical_8u(band_t, tmp_t, ch, fixed_coeffs(ch), 0);
      // band_t is spent once the horizontal pass has run: its slot holds tmp.
      tmp = scratch(0, ybox_last - ybox_first, out.width, CV_8U);
      transpose_8u(tmp_t, tmp);
    } else {
      transpose_any(src.rowRange(ybox_first, ybox_last), band_t);
      band_t.convertTo(band_t, CV_32F);
      vertical_32f(band_t, tmp_t, ch, 0);
      transpose_any(tmp_t, tmp);
    }
    row_offset = ybox_first;
  } else {
    tmp = src;
    if (!eight) src.convertTo(tmp, CV_32F);
  }

  // Step 3: vertical pass, written straight into dst (which may be a view of a caller's buffer).
  if (eight) {
    if (need_v) {
      vertical_8u(tmp, dst, cv_, fixed_coeffs(cv_), row_offset);
    } else {
      dst.create(out, CV_8U);
      tmp.copyTo(dst);
    }
    return;
  }
  cv::Mat res;
  if (need_v)
    vertical_32f(tmp, res, cv_, row_offset);
  else
    res = tmp;
  // Round to nearest and saturate to 16 bits.
  res.convertTo(dst, CV_16U);
}

void resize(const cv::Mat& src, cv::Mat& dst, const ResizeParams& p) {
  check_grey(src, "resize");
  const cv::Size out = resized_size(src.size(), p);
  const int maxval = src.depth() == CV_8U ? 255 : 65535;
  if (p.fill < 0 || p.fill > maxval)
    throw InvalidArgument("resize: fill must be in 0.." + std::to_string(maxval) + ", got " + std::to_string(p.fill));
  switch (p.mode) {
    case ResizeMode::Stretch:
    case ResizeMode::ShorterSide: resample(src, dst, out, p.method); return;
    case ResizeMode::Letterbox: {
      const cv::Size inner = fitted_size(src.size(), out, false);
      cv::Mat scaled_img;
      resample(src, scaled_img, inner, p.method);
      dst.create(out, src.type());
      dst.setTo(cv::Scalar(p.fill));
      scaled_img.copyTo(dst(cv::Rect((out.width - inner.width) / 2, (out.height - inner.height) / 2, inner.width,
                                     inner.height)));
      return;
    }
    case ResizeMode::CenterCrop: {
      const cv::Size cover = fitted_size(src.size(), out, true);
      cv::Mat scaled_img;
      resample(src, scaled_img, cover, p.method);
      const int top = round_half_even((cover.height - out.height) / 2.0);
      const int left = round_half_even((cover.width - out.width) / 2.0);
      scaled_img(cv::Rect(left, top, out.width, out.height)).copyTo(dst);
      return;
    }
  }
  throw InvalidArgument("resize: unknown mode " + std::to_string(static_cast<int>(p.mode)));
}

}  // namespace cxr::preprocess
