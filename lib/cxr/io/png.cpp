// SPDX-License-Identifier: LGPL-2.1-or-later
// PNG decoding. Grey (and grey + alpha) non-interlaced PNGs, nearly every X-ray PNG, take a fast
// path: chunks walked here with their CRCs checked, the IDAT stream inflated in one shot by
// libdeflate (which checks the zlib adler32), then unfiltered here. Everything else (colour,
// palette, interlaced, odd streams) goes through libpng with exactly the transforms torchvision
// 0.14's decode_png applies in GRAY mode, so both paths give read_image(GRAY)'s pixels.
#include <libdeflate.h>
#include <png.h>

#include <array>
#include <csetjmp>
#include <utility>
#include <cstring>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/io/detail.hpp"

namespace cxr::io::detail {
namespace {

const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

struct Header {
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
};

const char* color_type_name(int color_type) {
  switch (color_type) {
    case 0: return "GRAY";
    case 2: return "RGB";
    case 3: return "PALETTE";
    case 4: return "GRAY_ALPHA";
    case 6: return "RGBA";
    default: return "UNKNOWN";
  }
}

Header parse_ihdr(const uint8_t* data, size_t size) {
  // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
  if (size < 33) throw DecodeError("truncated PNG: " + std::to_string(size) + " bytes, a header needs 33");
  if (be32(data + 8) != 13 || std::memcmp(data + 12, "IHDR", 4) != 0)
    throw DecodeError("corrupt PNG: first chunk is not a 13-byte IHDR");
  if (libdeflate_crc32(0, data + 12, 17) != be32(data + 29)) throw DecodeError("corrupt PNG: IHDR CRC mismatch");
  const uint8_t* p = data + 16;
  Header h;
  h.width = be32(p);
  h.height = be32(p + 4);
  h.bit_depth = p[8];
  h.color_type = p[9];
  h.interlace = p[12];
  const int d = h.bit_depth;
  bool ok;
  switch (h.color_type) {
    case 0: ok = d == 1 || d == 2 || d == 4 || d == 8 || d == 16; break;
    case 3: ok = d == 1 || d == 2 || d == 4 || d == 8; break;
    case 2:
    case 4:
    case 6: ok = d == 8 || d == 16; break;
    default: ok = false;
  }
  if (!ok)
    throw DecodeError("corrupt PNG: invalid colour type " + std::to_string(h.color_type) + " with bit depth " +
                      std::to_string(d));
  if (p[10] != 0 || p[11] != 0 || h.interlace > 1)
    throw DecodeError("corrupt PNG: unknown compression, filter or interlace method in IHDR");
  if (h.width == 0 || h.height == 0 || h.width > 0x7fffffffu || h.height > 0x7fffffffu)
    throw DecodeError("corrupt PNG: invalid size " + std::to_string(h.width) + "x" + std::to_string(h.height));
  return h;
}

// ---- fast path ------------------------------------------------------------------------------

// Paeth predictor rewritten as a function of `a` for fixed b, c (exhaustively equal to the
// textbook form): `a` wins outside the open interval (lo, hi); inside, b wins when 2a lies on
// b's side of 2c - d. The serial chain through `a` is then a few compares instead of three
// absolute differences.
inline int paeth(int a, int b, int c) {
  const int d = b - c;
  const int t = c - 2 * d;
  const int lo = d > 0 ? t : b, hi = d > 0 ? b : t;
  const int sm = d >> 31;  // 0 when d >= 0, -1 when d < 0
  const bool outside = (a <= lo) | (a >= hi);
  const bool pick_b = ((((2 * a - (2 * c - d)) ^ sm) - sm) >= 0);
  const int mid = pick_b ? b : c;
  return outside ? a : mid;
}

// Predictor of one filter type for a 1-byte pixel: a = left, b = up, c = up-left.
template <int F>
inline int predict(int a, int b, int c) {
  if constexpr (F == 1) return a;
  if constexpr (F == 2) return b;
  if constexpr (F == 3) return (a + b) >> 1;
  if constexpr (F == 4) return paeth(a, b, c);
  return 0;
}

// One row of filtered bytes `src` (without the filter byte) into `dst`, given the previous
// unfiltered row `prev` (all zeros for the first row).
void unfilter_row(int filter, const uint8_t* src, uint8_t* dst, const uint8_t* prev, size_t n, size_t bpp) {
  switch (filter) {
    case 0: std::memcpy(dst, src, n); break;
    case 1:
      for (size_t i = 0; i < bpp && i < n; ++i) dst[i] = src[i];
      for (size_t i = bpp; i < n; ++i) dst[i] = uint8_t(src[i] + dst[i - bpp]);
      break;
    case 2:
      for (size_t i = 0; i < n; ++i) dst[i] = uint8_t(src[i] + prev[i]);
      break;
    case 3:
      for (size_t i = 0; i < bpp && i < n; ++i) dst[i] = uint8_t(src[i] + (prev[i] >> 1));
      for (size_t i = bpp; i < n; ++i) dst[i] = uint8_t(src[i] + ((dst[i - bpp] + prev[i]) >> 1));
      break;
    case 4:
      for (size_t i = 0; i < bpp && i < n; ++i) dst[i] = uint8_t(src[i] + prev[i]);
      for (size_t i = bpp; i < n; ++i) dst[i] = uint8_t(src[i] + paeth(dst[i - bpp], prev[i], prev[i - bpp]));
      break;
    default: throw DecodeError("corrupt PNG: unknown row filter type " + std::to_string(filter));
  }
}

// Two consecutive rows of 1-byte pixels at once. Sub, Average and Paeth are serial along a
// row; running the second row one pixel behind the first gives the CPU two independent
// dependency chains, nearly halving the time of the unfiltering that dominates decoding.
template <int F0, int F1>
void unfilter_pair(const uint8_t* s0, const uint8_t* s1, uint8_t* d0, uint8_t* d1, const uint8_t* prev, size_t n) {
  // Left and up-left neighbours stay in registers: a store/load round trip per pixel would
  // lengthen the chains.
  int a0 = 0, c0 = 0, a1 = 0, c1 = 0;
  for (size_t i = 0; i < n; ++i) {
    const int b0 = prev[i];
    a0 = uint8_t(s0[i] + predict<F0>(a0, b0, c0));
    d0[i] = uint8_t(a0);
    c0 = b0;
    a1 = uint8_t(s1[i] + predict<F1>(a1, a0, c1));
    d1[i] = uint8_t(a1);
    c1 = a0;
  }
}

using PairFn = void (*)(const uint8_t*, const uint8_t*, uint8_t*, uint8_t*, const uint8_t*, size_t);

template <int F0, int... F1>
constexpr std::array<PairFn, 5> pair_row(std::integer_sequence<int, F1...>) {
  return {unfilter_pair<F0, F1>...};
}

template <int... F0>
constexpr std::array<std::array<PairFn, 5>, 5> pair_table(std::integer_sequence<int, F0...>) {
  return {pair_row<F0>(std::make_integer_sequence<int, 5>{})...};
}

constexpr auto kPairs = pair_table(std::make_integer_sequence<int, 5>{});

struct Scratch {
  std::vector<uint8_t> idat, inflated, row_a, row_b;
  libdeflate_decompressor* inflater = nullptr;
  Scratch() : inflater(libdeflate_alloc_decompressor()) {}
  ~Scratch() { libdeflate_free_decompressor(inflater); }
};

// Buffers reused across the scans one thread decodes: a fresh 1 MB allocation per scan costs
// page faults comparable to the unfiltering itself.
Scratch& scratch() {
  thread_local Scratch s;
  if (!s.inflater) throw DecodeError("cannot allocate a deflate decompressor");
  return s;
}

// Returns false when the stream should go to libpng instead (variant not handled here, or a
// benign oddity libpng tolerates such as extra data after the image).
bool decode_fast(const uint8_t* data, size_t size, const Header& h, Image& out) {
  if (h.interlace != 0 || (h.color_type != 0 && h.color_type != 4)) return false;

  // Walk the chunks: collect IDAT spans, check critical CRCs.
  struct Span {
    const uint8_t* p;
    size_t n;
  };
  std::vector<Span> idats;
  size_t idat_total = 0;
  size_t pos = 8;
  bool seen_iend = false;
  while (pos < size) {
    if (size - pos < 12)
      throw DecodeError("truncated PNG: " + std::to_string(size - pos) + " stray bytes at offset " +
                        std::to_string(pos) + " where a chunk needs at least 12");
    const uint32_t len = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    if (len > 0x7fffffffu) throw DecodeError("corrupt PNG: chunk length " + std::to_string(len) + " too large");
    if (size - pos - 12 < len)
      throw DecodeError("truncated PNG: chunk '" + std::string(reinterpret_cast<const char*>(type), 4) +
                        "' at offset " + std::to_string(pos) + " declares " + std::to_string(len) + " bytes, " +
                        std::to_string(size - pos - 12) + " remain");
    const bool critical = (type[0] & 0x20) == 0;
    const bool is_idat = std::memcmp(type, "IDAT", 4) == 0;
    // Ancillary chunks are skipped unchecked, as libpng's default discards them on a bad CRC.
    if (critical && libdeflate_crc32(0, type, len + 4) != be32(data + pos + 8 + len))
      throw DecodeError("corrupt PNG: CRC mismatch in chunk '" + std::string(reinterpret_cast<const char*>(type), 4) +
                        "' at offset " + std::to_string(pos));
    if (is_idat) {
      idats.push_back({data + pos + 8, len});
      idat_total += len;
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      seen_iend = true;
      break;
    } else if (critical && std::memcmp(type, "IHDR", 4) != 0 && std::memcmp(type, "PLTE", 4) != 0) {
      return false;  // unknown critical chunk: let libpng give its verdict
    }
    pos += 12 + size_t(len);
  }
  if (idats.empty()) throw DecodeError("corrupt PNG: no IDAT chunk");
  (void)seen_iend;  // a missing IEND is tolerated, as torchvision (which never reads it) does

  Scratch& s = scratch();
  const uint8_t* zdata;
  if (idats.size() == 1) {
    zdata = idats[0].p;
  } else {
    s.idat.resize(idat_total);
    size_t off = 0;
    for (const Span& sp : idats) {
      std::memcpy(s.idat.data() + off, sp.p, sp.n);
      off += sp.n;
    }
    zdata = s.idat.data();
  }

  const int channels = h.color_type == 4 ? 2 : 1;
  const size_t bits_per_pixel = size_t(channels) * h.bit_depth;
  const size_t rowbytes = (size_t(h.width) * bits_per_pixel + 7) / 8;
  const size_t bpp = std::max<size_t>(1, bits_per_pixel / 8);
  const size_t expected = size_t(h.height) * (rowbytes + 1);
  s.inflated.resize(expected);
  size_t actual = 0;
  const libdeflate_result r =
      libdeflate_zlib_decompress(s.inflater, zdata, idat_total, s.inflated.data(), expected, &actual);
  if (r == LIBDEFLATE_INSUFFICIENT_SPACE) return false;  // more data than the image: libpng warns only
  if (r == LIBDEFLATE_BAD_DATA)
    throw DecodeError("corrupt PNG: image data fails to inflate (corrupt deflate stream or adler32 mismatch)");
  if (r != LIBDEFLATE_SUCCESS || actual != expected)
    throw DecodeError("truncated PNG: image data inflates to " + std::to_string(actual) + " bytes, " +
                      std::to_string(expected) + " expected");

  const bool sixteen = h.bit_depth == 16;
  out.pixels.create(int(h.height), int(h.width), sixteen ? CV_16UC1 : CV_8UC1);
  out.bits = sixteen ? 16 : 8;
  out.bits_stored = h.bit_depth;
  out.photometric = color_type_name(h.color_type);

  // Rows unfilter straight into the output when its layout equals the PNG row (8-bit grey);
  // otherwise into two alternating scratch rows followed by a conversion.
  const bool direct = h.color_type == 0 && h.bit_depth == 8;
  s.row_a.assign(rowbytes, 0);
  s.row_b.assign(rowbytes, 0);
  const uint8_t* prev = s.row_a.data();  // zeros
  const uint8_t* src = s.inflated.data();
  const int scale = h.bit_depth == 1 ? 255 : h.bit_depth == 2 ? 85 : h.bit_depth == 4 ? 17 : 1;
  uint32_t first = 0;
  if (direct) {
    // 8-bit grey: rows unfilter in pairs straight into the output.
    for (; first + 1 < h.height; first += 2, src += 2 * (rowbytes + 1)) {
      const uint8_t* s1 = src + rowbytes + 1;
      if (src[0] > 4 || s1[0] > 4)
        throw DecodeError("corrupt PNG: unknown row filter type " + std::to_string(std::max(src[0], s1[0])));
      uint8_t* d0 = out.pixels.ptr<uint8_t>(int(first));
      uint8_t* d1 = out.pixels.ptr<uint8_t>(int(first + 1));
      kPairs[src[0]][s1[0]](src + 1, s1 + 1, d0, d1, prev, rowbytes);
      prev = d1;
    }
  }
  for (uint32_t y = first; y < h.height; ++y, src += rowbytes + 1) {
    uint8_t* dst = direct ? out.pixels.ptr<uint8_t>(int(y)) : (y % 2 ? s.row_a.data() : s.row_b.data());
    unfilter_row(src[0], src + 1, dst, prev, rowbytes, bpp);
    prev = dst;
    if (direct) continue;
    if (sixteen) {
      uint16_t* o = out.pixels.ptr<uint16_t>(int(y));
      for (uint32_t x = 0; x < h.width; ++x) {
        const uint8_t* px = dst + size_t(x) * channels * 2;
        o[x] = uint16_t((px[0] << 8) | px[1]);  // big-endian samples; alpha (if any) dropped
      }
    } else if (h.bit_depth == 8) {  // grey + alpha
      uint8_t* o = out.pixels.ptr<uint8_t>(int(y));
      for (uint32_t x = 0; x < h.width; ++x) o[x] = dst[2 * x];
    } else {  // 1, 2, 4 bits, expanded to 8 as png_set_expand_gray_1_2_4_to_8 does
      uint8_t* o = out.pixels.ptr<uint8_t>(int(y));
      const int d = h.bit_depth, mask = (1 << d) - 1;
      for (uint32_t x = 0; x < h.width; ++x) {
        const size_t bit = size_t(x) * d;
        const int v = (dst[bit >> 3] >> (8 - d - int(bit & 7))) & mask;
        o[x] = uint8_t(v * scale);
      }
    }
  }
  return true;
}

// ---- libpng path ----------------------------------------------------------------------------

struct PngContext {
  const uint8_t* ptr;
  size_t left;
  char message[256];
};

void on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  if (ctx->left < n) png_error(png, "unexpected end of data (file truncated)");
  std::memcpy(out, ctx->ptr, n);
  ctx->ptr += n;
  ctx->left -= n;
}

// Holds no C++ object across setjmp/longjmp: the output Mat is created by the caller.
bool libpng_read(const uint8_t* data, size_t size, const DecodeParams& params, cv::Mat& pixels, PngContext& ctx) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  ctx.ptr = data + 8;
  ctx.left = size - 8;
  png_set_sig_bytes(png, 8);
  png_set_read_fn(png, &ctx, on_read);
  png_read_info(png, info);

  png_uint_32 width, height;
  int bit_depth, color_type, interlace;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
  if (uint64_t(width) * height > params.max_pixels) png_error(png, "image larger than max-pixels");

  // torchvision 0.14 decode_png, IMAGE_READ_MODE_GRAY.
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  const int passes = interlace == PNG_INTERLACE_ADAM7 ? png_set_interlace_handling(png) : 1;
  if (color_type != PNG_COLOR_TYPE_GRAY) {
    const bool is_palette = (color_type & PNG_COLOR_MASK_PALETTE) != 0;
    const bool has_color = (color_type & PNG_COLOR_MASK_COLOR) != 0;
    bool has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;
    if (is_palette) {
      png_set_palette_to_rgb(png);
      has_alpha = true;
    }
    if (has_alpha) png_set_strip_alpha(png);
    if (has_color) png_set_rgb_to_gray(png, 1, 0.2989, 0.587);
  }
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 1) png_error(png, "conversion to grey failed");
  if (bit_depth == 16) png_set_swap(png);  // host (little-endian) order

  const size_t row = size_t(width) * (bit_depth == 16 ? 2 : 1);
  if (size_t(pixels.cols) * pixels.elemSize() != row || pixels.rows != int(height))
    png_error(png, "unexpected row layout after conversion");
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < height; ++y) png_read_row(png, pixels.ptr(int(y)), nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

Image decode_png(const uint8_t* data, size_t size, const DecodeParams& params) {
  if (size < 8 || std::memcmp(data, kSignature, 8) != 0) throw DecodeError("not a PNG stream");
  const Header h = parse_ihdr(data, size);
  check_size(h.width, h.height, params, "PNG");
  // Deflate expands at most 1032:1, so the file bounds the image data it can hold. A forged
  // header on a small file fails here, before its pixel and inflate buffers are allocated.
  const int channels = h.color_type == 2 ? 3 : h.color_type == 4 ? 2 : h.color_type == 6 ? 4 : 1;
  const uint64_t raw = uint64_t(h.height) * ((uint64_t(h.width) * uint64_t(channels * h.bit_depth) + 7) / 8 + 1);
  if (raw > uint64_t(size) * 1032 + 1024)
    throw DecodeError("corrupt PNG: header declares " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                      " pixels (" + std::to_string(raw) + " bytes of image data), more than " + std::to_string(size) +
                      " bytes of file can hold");

  Image img;
  img.format = Format::Png;
  if (!decode_fast(data, size, h, img)) {
    const bool sixteen = h.bit_depth == 16;
    img.pixels.create(int(h.height), int(h.width), sixteen ? CV_16UC1 : CV_8UC1);
    img.bits = sixteen ? 16 : 8;
    img.bits_stored = h.bit_depth;
    img.photometric = color_type_name(h.color_type);
    PngContext ctx{};
    if (!libpng_read(data, size, params, img.pixels, ctx))
      throw DecodeError(std::string("corrupt PNG: ") + (ctx.message[0] ? ctx.message : "libpng failed"));
  }
  finish_depth(img, params);
  return img;
}

}  // namespace cxr::io::detail
