// SPDX-License-Identifier: LGPL-2.1-or-later
// Format sniffing, dispatch to the per-format decoders, and the depth handling they share.
#include "cxr/io/decode.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/io/detail.hpp"

namespace cxr::io {

const char* format_name(Format format) {
  switch (format) {
    case Format::Png: return "png";
    case Format::Jpeg: return "jpeg";
    case Format::Dicom: return "dicom";
    default: return "unknown";
  }
}

namespace {

uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

// A dataset without preamble starts with a group 0002 or 0008 element in little endian, either
// explicit VR (two upper-case letters) or implicit VR (a 32-bit length that fits the data).
bool looks_like_bare_dataset(const uint8_t* data, size_t size) {
  if (size < 8) return false;
  const uint16_t group = le16(data);
  if (group != 0x0002 && group != 0x0008) return false;
  const bool explicit_vr = data[4] >= 'A' && data[4] <= 'Z' && data[5] >= 'A' && data[5] <= 'Z';
  if (explicit_vr) return true;
  const uint32_t len = uint32_t(data[4]) | (uint32_t(data[5]) << 8) | (uint32_t(data[6]) << 16) |
                       (uint32_t(data[7]) << 24);
  return len <= size - 8;
}

}  // namespace

Format sniff(const uint8_t* data, size_t size) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!data) return Format::Unknown;
  if (size >= 8 && std::memcmp(data, png_sig, 8) == 0) return Format::Png;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return Format::Jpeg;
  if (size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0) return Format::Dicom;
  if (looks_like_bare_dataset(data, size)) return Format::Dicom;
  return Format::Unknown;
}

namespace detail {

void check_size(uint64_t width, uint64_t height, const DecodeParams& params, const char* what) {
  if (width == 0 || height == 0)
    throw DecodeError(std::string(what) + ": invalid size " + std::to_string(width) + "x" + std::to_string(height));
  if (width * height > params.max_pixels)
    throw DecodeError(std::string(what) + ": " + std::to_string(width) + "x" + std::to_string(height) +
                      " pixels exceed max-pixels " + std::to_string(params.max_pixels));
}

void finish_depth(Image& image, const DecodeParams& params) {
  if (params.stored_values) return;
  const bool deep = image.pixels.depth() == CV_16U;
  const int out_bits = deep ? 16 : 8;
  if (params.full_range && image.bits != out_bits) {
    expand_bits(image.pixels, image.pixels, image.bits, out_bits);
    image.bits = out_bits;
  }
  if (params.force_8bit && deep) {
    cv::Mat eight(image.pixels.size(), CV_8UC1);
    const int shift = std::max(0, image.bits - 8);
    for (int y = 0; y < eight.rows; ++y) {
      const uint16_t* s = image.pixels.ptr<uint16_t>(y);
      uint8_t* d = eight.ptr<uint8_t>(y);
      for (int x = 0; x < eight.cols; ++x) d[x] = uint8_t(s[x] >> shift);
    }
    image.pixels = eight;
    image.bits = std::min(image.bits, 8);
  }
}

}  // namespace detail

void expand_bits(const cv::Mat& src, cv::Mat& dst, int bits, int out_bits) {
  if (out_bits != 8 && out_bits != 16)
    throw InvalidArgument("expand_bits: out_bits is " + std::to_string(out_bits) + ", expected 8 or 16");
  if (bits < 1 || bits > out_bits)
    throw InvalidArgument("expand_bits: bits is " + std::to_string(bits) + ", expected 1.." + std::to_string(out_bits));
  if (src.channels() != 1 || (src.depth() != CV_8U && src.depth() != CV_16U))
    throw InvalidArgument("expand_bits: expected a CV_8UC1 or CV_16UC1 Mat, got type " + std::to_string(src.type()));
  // Table over every input value: replicate the b-bit pattern until out_bits are filled.
  const int n = 1 << bits;
  std::vector<uint16_t> lut(static_cast<size_t>(n));
  for (int v = 0; v < n; ++v) {
    uint32_t acc = 0;
    int filled = 0;
    while (filled < out_bits) {
      acc = (acc << bits) | uint32_t(v);
      filled += bits;
    }
    lut[size_t(v)] = uint16_t(acc >> (filled - out_bits));
  }
  const uint32_t mask = uint32_t(n - 1);
  cv::Mat out(src.size(), out_bits == 8 ? CV_8UC1 : CV_16UC1);
  // One loop for the four pairs of 8- / 16-bit input and output.
  const auto map = [&](auto in_type, auto out_type) {
    using In = decltype(in_type);
    using Out = decltype(out_type);
    for (int y = 0; y < src.rows; ++y) {
      const In* s = src.ptr<In>(y);
      Out* d = out.ptr<Out>(y);
      for (int x = 0; x < src.cols; ++x) d[x] = Out(lut[s[x] & mask]);
    }
  };
  if (src.depth() == CV_8U) {
    out_bits == 8 ? map(uint8_t{}, uint8_t{}) : map(uint8_t{}, uint16_t{});
  } else {
    out_bits == 8 ? map(uint16_t{}, uint8_t{}) : map(uint16_t{}, uint16_t{});
  }
  dst = out;
}

Image decode(const uint8_t* data, size_t size, const DecodeParams& params) {
  if (!data || size == 0) throw DecodeError("empty input (0 bytes)");
  switch (sniff(data, size)) {
    case Format::Png: return detail::decode_png(data, size, params);
    case Format::Jpeg: return detail::decode_jpeg(data, size, params);
    case Format::Dicom: return detail::decode_dicom(data, size, params);
    default: break;
  }
  char head[64];
  int n = 0;
  for (size_t i = 0; i < size && i < 8; ++i) n += std::snprintf(head + n, sizeof head - size_t(n), "%02x", data[i]);
  throw DecodeError("not a PNG, JPEG or DICOM stream (" + std::to_string(size) + " bytes starting " + head + ")");
}

Image decode_file(const std::string& path, const DecodeParams& params) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("cannot open " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw IoError("cannot read " + path);
  try {
    return decode(bytes.data(), bytes.size(), params);
  } catch (const DecodeError& e) {
    throw DecodeError(path + ": " + e.what());
  }
}

}  // namespace cxr::io
