// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr::io decoding of PNG and JPEG: sniffing, every bundled sample, PNG variants written here
// with libpng, depth handling, and every kind of bad input.
#include "cxr_catch.hpp"
#include <png.h>
#include <zlib.h>

#include <cstring>
#include <dirent.h>
#include <random>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/io/decode.hpp"
#include "testutil.hpp"

using cxr::io::DecodeParams;
using cxr::io::Format;
using Bytes = std::vector<unsigned char>;

namespace {

std::vector<std::string> list_dir(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
        out.push_back(dir + "/" + n);
    }
    closedir(d);
  }
  return out;
}

void on_write(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<Bytes*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}

// Writes a PNG with libpng: rows hold packed samples as the PNG stores them (16-bit in host
// order; libpng swaps them).
Bytes write_png(int w, int h, int bit_depth, int color_type, const std::vector<Bytes>& rows,
                const std::vector<png_color>& palette = {}, bool interlace = false) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("libpng write failed");
  }
  png_set_write_fn(png, &out, on_write, nullptr);
  png_set_IHDR(png, info, w, h, bit_depth, color_type, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), int(palette.size()));
  png_set_filter(png, 0, PNG_ALL_FILTERS);
  png_write_info(png, info);
  if (bit_depth == 16) png_set_swap(png);
  std::vector<png_bytep> ptrs;
  for (const Bytes& r : rows) ptrs.push_back(const_cast<png_bytep>(r.data()));
  png_write_image(png, ptrs.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}

// A smooth image with noise, so every PNG filter type gets chosen somewhere.
cv::Mat test_pattern(int w, int h, int depth, unsigned seed) {
  cv::Mat m(h, w, depth == 16 ? CV_16UC1 : CV_8UC1);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int v = (x * 3 + y * 2 + int(rng() % 9)) % 256;
      if (depth == 16)
        m.at<uint16_t>(y, x) = uint16_t(v * 257 + int(rng() % 200));
      else
        m.at<uint8_t>(y, x) = uint8_t(v);
    }
  return m;
}

std::vector<Bytes> rows_of(const cv::Mat& m) {
  std::vector<Bytes> rows;
  for (int y = 0; y < m.rows; ++y) rows.emplace_back(m.ptr(y), m.ptr(y) + m.cols * m.elemSize());
  return rows;
}

bool equal(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

std::string decode_error(const Bytes& b, const DecodeParams& p = {}) {
  try {
    cxr::io::decode(b.data(), b.size(), p);
  } catch (const cxr::DecodeError& e) {
    return e.what();
  }
  return "";
}

void put_be32(unsigned char* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

}  // namespace

TEST_CASE("sniff recognises content, not names", "[decode]") {
  const Bytes png = cxrtest::read_file(cxrtest::samples("nih/00000773_001.png"));
  const Bytes jpg = cxrtest::read_file(cxrtest::samples("pneumonia/normal/IM-0001-0001.jpeg"));
  const Bytes dcm = cxrtest::read_file(cxrtest::samples("dicom/NIH_DX_nccid_testdata.dcm"));
  const Bytes bare = cxrtest::read_file(cxrtest::samples("dicom/CR-MONO1-10-chest.dcm"));
  CHECK(cxr::io::sniff(png.data(), png.size()) == Format::Png);
  CHECK(cxr::io::sniff(jpg.data(), jpg.size()) == Format::Jpeg);
  CHECK(cxr::io::sniff(dcm.data(), dcm.size()) == Format::Dicom);
  CHECK(cxr::io::sniff(bare.data(), bare.size()) == Format::Dicom);
  const std::string text = "this is a text file named scan.png\n";
  CHECK(cxr::io::sniff(reinterpret_cast<const uint8_t*>(text.data()), text.size()) == Format::Unknown);
  CHECK(cxr::io::sniff(png.data(), 4) == Format::Unknown);
  CHECK(cxr::io::sniff(nullptr, 0) == Format::Unknown);
  CHECK(std::string(cxr::io::format_name(Format::Dicom)) == "dicom");
}

TEST_CASE("every bundled PNG and JPEG sample decodes to 8-bit grey", "[decode]") {
  std::vector<std::string> files = list_dir(cxrtest::samples("covid"), ".png");
  for (const auto& f : list_dir(cxrtest::samples("nih"), ".png")) files.push_back(f);
  for (const char* c : {"normal", "bacterial", "viral"})
    for (const auto& f : list_dir(cxrtest::samples(std::string("pneumonia/") + c), ".jpeg")) files.push_back(f);
  REQUIRE(files.size() == 6 + 3 + 60);
  int rgba = 0;
  for (const auto& f : files) {
    INFO(f);
    const cxr::io::Image img = cxr::io::decode_file(f);
    CHECK(img.pixels.type() == CV_8UC1);
    CHECK(img.bits == 8);
    CHECK(img.pixels.isContinuous());
    const bool is_png = f.size() > 4 && f.compare(f.size() - 4, 4, ".png") == 0;
    CHECK(img.format == (is_png ? Format::Png : Format::Jpeg));
    if (f.find("/nih/") != std::string::npos) CHECK(img.pixels.size() == cv::Size(1024, 1024));
    if (f.find("/pneumonia/") != std::string::npos) CHECK(img.pixels.size() == cv::Size(224, 224));
    if (f.find("/covid/") != std::string::npos) CHECK(img.pixels.cols == 640);
    rgba += img.photometric == "RGBA";
    double lo, hi;
    cv::minMaxLoc(img.pixels, &lo, &hi);
    CHECK(hi > lo);  // a real radiograph, not a flat fill
  }
  CHECK(rgba == 1);  // the README's RGBA NIH image
}

TEST_CASE("PNG fast path equals libpng on every filter and odd sizes", "[decode]") {
  const int w = GENERATE(385, 1, 2, 7);
  const int h = GENERATE(289, 1, 2);
  const cv::Mat m = test_pattern(w, h, 8, unsigned(w * 1000 + h));
  const Bytes png = write_png(w, h, 8, PNG_COLOR_TYPE_GRAY, rows_of(m));
  const cxr::io::Image img = cxr::io::decode(png.data(), png.size());
  CHECK(equal(img.pixels, m));
  CHECK(img.photometric == "GRAY");
  CHECK(img.bits_stored == 8);
}

TEST_CASE("PNG variants: 1/2/4-bit, 16-bit, grey+alpha, palette, RGB, RGBA, interlaced", "[decode]") {
  const int w = 37, h = 23;
  SECTION("1, 2 and 4-bit grey expand like png_set_expand_gray_1_2_4_to_8") {
    const int depth = GENERATE(1, 2, 4);
    const int per_byte = 8 / depth, max = (1 << depth) - 1;
    cv::Mat expect(h, w, CV_8UC1);
    std::vector<Bytes> rows;
    for (int y = 0; y < h; ++y) {
      Bytes r((w + per_byte - 1) / per_byte, 0);
      for (int x = 0; x < w; ++x) {
        const int v = (x + 3 * y) % (max + 1);
        r[x / per_byte] |= uint8_t(v << (8 - depth * (x % per_byte + 1)));
        expect.at<uint8_t>(y, x) = uint8_t(v * 255 / max);
      }
      rows.push_back(r);
    }
    const Bytes png = write_png(w, h, depth, PNG_COLOR_TYPE_GRAY, rows);
    const cxr::io::Image img = cxr::io::decode(png.data(), png.size());
    CHECK(equal(img.pixels, expect));
    CHECK(img.bits_stored == depth);
    CHECK(img.bits == 8);
  }
  SECTION("16-bit grey stays 16-bit; force_8bit keeps the top byte") {
    const cv::Mat m = test_pattern(w, h, 16, 5);
    const Bytes png = write_png(w, h, 16, PNG_COLOR_TYPE_GRAY, rows_of(m));
    const cxr::io::Image img = cxr::io::decode(png.data(), png.size());
    CHECK(img.pixels.type() == CV_16UC1);
    CHECK(img.bits == 16);
    CHECK(equal(img.pixels, m));
    DecodeParams p;
    p.force_8bit = true;
    const cxr::io::Image eight = cxr::io::decode(png.data(), png.size(), p);
    cv::Mat top;
    m.convertTo(top, CV_8U, 1.0 / 256.0, -0.5);  // floor(v / 256)
    REQUIRE(eight.pixels.type() == CV_8UC1);
    CHECK(cv::norm(eight.pixels, top, cv::NORM_INF) == 0);
  }
  SECTION("grey + alpha drops the alpha") {
    const cv::Mat m = test_pattern(w, h, 8, 6);
    std::vector<Bytes> rows;
    for (int y = 0; y < h; ++y) {
      Bytes r;
      for (int x = 0; x < w; ++x) r.insert(r.end(), {m.at<uint8_t>(y, x), uint8_t(x * 7)});
      rows.push_back(r);
    }
    const Bytes png = write_png(w, h, 8, PNG_COLOR_TYPE_GRAY_ALPHA, rows);
    const cxr::io::Image img = cxr::io::decode(png.data(), png.size());
    CHECK(equal(img.pixels, m));
    CHECK(img.photometric == "GRAY_ALPHA");
  }
  SECTION("palette of grey entries gives the entries") {
    std::vector<png_color> pal;
    for (int i = 0; i < 16; ++i) pal.push_back({uint8_t(i * 16), uint8_t(i * 16), uint8_t(i * 16)});
    cv::Mat expect(h, w, CV_8UC1);
    std::vector<Bytes> rows;
    for (int y = 0; y < h; ++y) {
      Bytes r;
      for (int x = 0; x < w; ++x) {
        const int i = (x + y) % 16;
        r.push_back(uint8_t(i));
        expect.at<uint8_t>(y, x) = uint8_t(i * 16);
      }
      rows.push_back(r);
    }
    const Bytes png = write_png(w, h, 8, PNG_COLOR_TYPE_PALETTE, rows, pal);
    const cxr::io::Image img = cxr::io::decode(png.data(), png.size());
    CHECK(equal(img.pixels, expect));
    CHECK(img.photometric == "PALETTE");
  }
  SECTION("RGB and RGBA: equal channels stay exact, colours follow 0.2989/0.587/0.114") {
    const bool alpha = GENERATE(false, true);
    const cv::Mat m = test_pattern(w, h, 8, 7);
    std::vector<Bytes> grey_rows, colour_rows;
    cv::Mat expect(h, w, CV_64FC1);
    for (int y = 0; y < h; ++y) {
      Bytes g, c;
      for (int x = 0; x < w; ++x) {
        const uint8_t v = m.at<uint8_t>(y, x);
        const uint8_t r = v, gg = uint8_t(255 - v), b = uint8_t(x * 5);
        g.insert(g.end(), {v, v, v});
        c.insert(c.end(), {r, gg, b});
        if (alpha) {
          g.push_back(uint8_t(y * 9));
          c.push_back(uint8_t(y * 9));
        }
        expect.at<double>(y, x) = 0.2989 * r + 0.587 * gg + 0.1141 * b;
      }
      grey_rows.push_back(g);
      colour_rows.push_back(c);
    }
    const int type = alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB;
    const Bytes grey_png = write_png(w, h, 8, type, grey_rows);
    const cxr::io::Image grey = cxr::io::decode(grey_png.data(), grey_png.size());
    CHECK(equal(grey.pixels, m));
    CHECK(grey.photometric == (alpha ? "RGBA" : "RGB"));
    const Bytes colour_png = write_png(w, h, 8, type, colour_rows);
    const cxr::io::Image colour = cxr::io::decode(colour_png.data(), colour_png.size());
    cv::Mat got;
    colour.pixels.convertTo(got, CV_64F);
    CHECK(cv::norm(got, expect, cv::NORM_INF) < 1.01);  // libpng truncates
  }
  SECTION("interlaced grey equals the same image non-interlaced") {
    const cv::Mat m = test_pattern(w, h, 8, 8);
    const Bytes png = write_png(w, h, 8, PNG_COLOR_TYPE_GRAY, rows_of(m), {}, true);
    const cxr::io::Image img = cxr::io::decode(png.data(), png.size());
    CHECK(equal(img.pixels, m));
  }
}

TEST_CASE("bad input is a DecodeError with a reason", "[decode]") {
  const Bytes png = cxrtest::read_file(cxrtest::samples("covid/006f3a8a.png"));
  const Bytes jpg = cxrtest::read_file(cxrtest::samples("pneumonia/normal/IM-0001-0001.jpeg"));

  SECTION("zero bytes") {
    CHECK_THROWS_AS(cxr::io::decode(png.data(), 0), cxr::DecodeError);
    CHECK(decode_error(Bytes{}).find("empty") != std::string::npos);
  }
  SECTION("random bytes") {
    std::mt19937 rng(1);
    Bytes b(4096);
    for (auto& v : b) v = uint8_t(rng());
    b[0] = 0x42;  // keep it from looking like any signature
    CHECK(decode_error(b).find("not a PNG, JPEG or DICOM") != std::string::npos);
  }
  SECTION("text named .png") {
    const std::string t = "not an image at all, only text in a file named scan.png\n";
    CHECK(decode_error(Bytes(t.begin(), t.end())).find("not a PNG, JPEG or DICOM") != std::string::npos);
  }
  SECTION("truncated PNG") {
    const size_t cut = GENERATE(20, 40, 1000);
    const Bytes b(png.begin(), png.begin() + long(std::min(cut, png.size() / 2)));
    CHECK(decode_error(b).find("PNG") != std::string::npos);
  }
  SECTION("truncated PNG at half") {
    const Bytes b(png.begin(), png.begin() + long(png.size() / 2));
    CHECK(decode_error(b).find("truncated PNG") != std::string::npos);
  }
  SECTION("truncated JPEG is an error, not a grey fill") {
    const Bytes b(jpg.begin(), jpg.begin() + long(jpg.size() / 2));
    const std::string e = decode_error(b);
    CHECK(e.find("JPEG") != std::string::npos);
    CHECK(e.find("Premature end") != std::string::npos);
  }
  SECTION("corrupt IDAT CRC") {
    Bytes b = png;
    // First IDAT: find it and flip a byte of its data.
    size_t pos = 8;
    while (std::memcmp(&b[pos + 4], "IDAT", 4) != 0)
      pos += 12 + ((size_t(b[pos]) << 24) | (size_t(b[pos + 1]) << 16) | (size_t(b[pos + 2]) << 8) | b[pos + 3]);
    b[pos + 8 + 10] ^= 0xff;
    CHECK(decode_error(b).find("CRC") != std::string::npos);
  }
  SECTION("forged PNG header of 100000x100000 fails before allocating") {
    Bytes b = png;
    put_be32(&b[16], 100000);
    put_be32(&b[20], 100000);
    put_be32(&b[29], uint32_t(crc32(0, &b[12], 17)));
    CHECK(decode_error(b).find("max-pixels") != std::string::npos);
  }
  SECTION("forged JPEG header of 60000x60000") {
    Bytes b = jpg;
    size_t pos = 2;
    while (pos + 9 < b.size() && !(b[pos] == 0xFF && b[pos + 1] >= 0xC0 && b[pos + 1] <= 0xC2))
      pos += 2 + ((size_t(b[pos + 2]) << 8) | b[pos + 3]);
    REQUIRE(pos + 9 < b.size());
    b[pos + 5] = b[pos + 7] = 0xEA;  // 60000 = 0xEA60
    b[pos + 6] = b[pos + 8] = 0x60;
    const std::string e = decode_error(b);
    INFO(e);
    CHECK(e.find("max-pixels") != std::string::npos);
  }
  SECTION("forged PNG header within max-pixels on a small file fails before allocating") {
    // 8000x8000 is within the default max-pixels; 64 MB of image data cannot come from a few kB.
    Bytes b = png;
    b.resize(std::min<size_t>(b.size(), 4096));
    put_be32(&b[16], 8000);
    put_be32(&b[20], 8000);
    put_be32(&b[29], uint32_t(crc32(0, &b[12], 17)));
    const std::string e = decode_error(b);
    INFO(e);
    CHECK(e.find("more than 4096 bytes of file can hold") != std::string::npos);
  }
  SECTION("max_pixels below a real scan") {
    DecodeParams p;
    p.max_pixels = 1000;
    CHECK(decode_error(png, p).find("max-pixels") != std::string::npos);
    CHECK(decode_error(jpg, p).find("max-pixels") != std::string::npos);
  }
  SECTION("decode_file names the file") {
    CHECK_THROWS_AS(cxr::io::decode_file("/nonexistent/scan.png"), cxr::IoError);
  }
}

TEST_CASE("expand_bits replicates bits to the full range", "[decode]") {
  cv::Mat ten = (cv::Mat_<uint16_t>(1, 4) << 0, 1, 512, 1023);
  cv::Mat out;
  cxr::io::expand_bits(ten, out, 10, 16);
  REQUIRE(out.type() == CV_16UC1);
  CHECK(out.at<uint16_t>(0, 0) == 0);
  CHECK(out.at<uint16_t>(0, 1) == (1 << 6));
  CHECK(out.at<uint16_t>(0, 2) == ((512 << 6) | (512 >> 4)));
  CHECK(out.at<uint16_t>(0, 3) == 65535);
  cv::Mat one = (cv::Mat_<uint8_t>(1, 2) << 0, 1);
  cxr::io::expand_bits(one, out, 1, 8);
  CHECK(out.at<uint8_t>(0, 1) == 255);
  cv::Mat fifteen = (cv::Mat_<uint16_t>(1, 1) << 32767);
  cxr::io::expand_bits(fifteen, out, 15, 16);
  CHECK(out.at<uint16_t>(0, 0) == 65535);
  CHECK_THROWS_AS(cxr::io::expand_bits(ten, out, 10, 12), cxr::InvalidArgument);
  CHECK_THROWS_AS(cxr::io::expand_bits(ten, out, 17, 16), cxr::InvalidArgument);
}

TEST_CASE("expand_bits: 8- or 16-bit in, 8- or 16-bit out, on a non-continuous ROI", "[decode]") {
  const int in_depth = GENERATE(CV_8U, CV_16U);
  const int out_bits = GENERATE(8, 16);
  CAPTURE(in_depth, out_bits);
  cv::Mat whole(7, 9, in_depth, cv::Scalar(0));
  cv::Mat roi = whole(cv::Rect(2, 1, 5, 4));
  REQUIRE_FALSE(roi.isContinuous());
  const auto value = [](int y, int x) { return (y * 5 + x) % 32; };  // every 5-bit value
  for (int y = 0; y < roi.rows; ++y)
    for (int x = 0; x < roi.cols; ++x) {
      if (in_depth == CV_8U)
        roi.at<uint8_t>(y, x) = static_cast<uint8_t>(value(y, x));
      else
        roi.at<uint16_t>(y, x) = static_cast<uint16_t>(value(y, x));
    }
  cv::Mat out;
  cxr::io::expand_bits(roi, out, 5, out_bits);
  REQUIRE(out.size() == roi.size());
  REQUIRE(out.type() == (out_bits == 8 ? CV_8UC1 : CV_16UC1));
  for (int y = 0; y < roi.rows; ++y)
    for (int x = 0; x < roi.cols; ++x) {
      const int v = value(y, x);
      if (out_bits == 8)
        CHECK(out.at<uint8_t>(y, x) == ((v << 3) | (v >> 2)));
      else
        CHECK(out.at<uint16_t>(y, x) == ((v << 11) | (v << 6) | (v << 1) | (v >> 4)));
    }
}
