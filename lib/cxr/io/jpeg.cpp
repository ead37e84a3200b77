// SPDX-License-Identifier: LGPL-2.1-or-later
// JPEG decoding through libjpeg(-turbo) with grey output (JCS_GRAYSCALE) and the library's
// default settings (ISLOW DCT), as torchvision 0.14's decode_jpeg does in GRAY mode, so the
// pixels equal read_image(GRAY). Unlike torchvision, any libjpeg warning (premature end of
// data, corrupt entropy data) fails the scan instead of yielding a grey-filled image.
#include <cstddef>
#include <cstdio>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>

#include <csetjmp>
#include <cstring>
#include <string>

#include "cxr/error.hpp"
#include "cxr/io/detail.hpp"

namespace cxr::io::detail {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  // A warning means the data is damaged (truncated, corrupt entropy data): fail the scan.
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_output_message(j_common_ptr) {}

const char* color_space_name(J_COLOR_SPACE cs) {
  switch (cs) {
    case JCS_GRAYSCALE: return "GRAY";
    case JCS_YCbCr: return "YCbCr";
    case JCS_RGB: return "RGB";
    case JCS_CMYK: return "CMYK";
    case JCS_YCCK: return "YCCK";
    default: return "UNKNOWN";
  }
}

// Header pass: size and colour space, no pixel buffer yet. Holds no C++ object across setjmp.
bool read_header(jpeg_decompress_struct& cinfo, ErrorManager& err, const uint8_t* data, size_t size) {
  if (setjmp(err.jump)) return false;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_GRAYSCALE;
  return true;
}

bool read_pixels(jpeg_decompress_struct& cinfo, ErrorManager& err, uint8_t* out, size_t step, int rows) {
  if (setjmp(err.jump)) return false;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 1 || int(cinfo.output_height) != rows) {
    std::snprintf(err.message, sizeof err.message, "grey output not available (%d components)",
                  cinfo.output_components);
    return false;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out + size_t(cinfo.output_scanline) * step;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

}  // namespace

Image decode_jpeg(const uint8_t* data, size_t size, const DecodeParams& params) {
  if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) throw DecodeError("not a JPEG stream");
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  err.message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error_exit;
  err.pub.emit_message = on_emit_message;
  err.pub.output_message = on_output_message;
  jpeg_create_decompress(&cinfo);
  struct Destroy {
    jpeg_decompress_struct* c;
    ~Destroy() { jpeg_destroy_decompress(c); }
  } destroy{&cinfo};

  if (!read_header(cinfo, err, data, size)) throw DecodeError(std::string("corrupt JPEG: ") + err.message);
  check_size(cinfo.image_width, cinfo.image_height, params, "JPEG");

  Image img;
  img.format = Format::Jpeg;
  img.bits = 8;
  img.bits_stored = cinfo.data_precision;
  img.photometric = color_space_name(cinfo.jpeg_color_space);
  img.pixels.create(int(cinfo.image_height), int(cinfo.image_width), CV_8UC1);
  if (!read_pixels(cinfo, err, img.pixels.data, img.pixels.step[0], img.pixels.rows))
    throw DecodeError(std::string("corrupt JPEG: ") + err.message);
  finish_depth(img, params);
  return img;
}

}  // namespace cxr::io::detail
