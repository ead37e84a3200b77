// SPDX-License-Identifier: LGPL-2.1-or-later
// JPEG 2000 decoding with OpenJPEG from memory. DCMTK has no JPEG 2000 codec, so dicom.cpp hands
// the encapsulated fragments of the first frame here.
#include <openjpeg.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "cxr/error.hpp"
#include "cxr/io/detail.hpp"

namespace cxr::io::detail {
namespace {

struct MemStream {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

OPJ_SIZE_T mem_read(void* buf, OPJ_SIZE_T n, void* user) {
  auto* m = static_cast<MemStream*>(user);
  if (m->pos >= m->size) return static_cast<OPJ_SIZE_T>(-1);
  const size_t k = std::min<size_t>(n, m->size - m->pos);
  std::memcpy(buf, m->data + m->pos, k);
  m->pos += k;
  return k;
}

OPJ_OFF_T mem_skip(OPJ_OFF_T n, void* user) {
  auto* m = static_cast<MemStream*>(user);
  if (n < 0) {
    const size_t back = std::min<size_t>(size_t(-n), m->pos);
    m->pos -= back;
    return -OPJ_OFF_T(back);
  }
  const size_t k = std::min<size_t>(size_t(n), m->size - m->pos);
  m->pos += k;
  return OPJ_OFF_T(k);
}

OPJ_BOOL mem_seek(OPJ_OFF_T n, void* user) {
  auto* m = static_cast<MemStream*>(user);
  if (n < 0 || size_t(n) > m->size) return OPJ_FALSE;
  m->pos = size_t(n);
  return OPJ_TRUE;
}

void on_message(const char* msg, void* user) {
  auto* last = static_cast<std::string*>(user);
  *last = msg;
  while (!last->empty() && (last->back() == '\n' || last->back() == ' ')) last->pop_back();
}

void on_quiet(const char*, void*) {}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// The codestream's SIZ marker, checked before OpenJPEG sees it: opj_read_header allocates the
// state of every tile, so 169 bytes declaring 30000 tiles of 6x95 pixels cost 600 MB and
// seconds before its own size could be checked (found by fuzzing).
void check_siz(const uint8_t* data, size_t size, const DecodeParams& params) {
  static const uint8_t soc_siz[4] = {0xFF, 0x4F, 0xFF, 0x51};
  const size_t scan = std::min<size_t>(size, 4096);  // a JP2 file's header boxes come first
  const uint8_t* p = nullptr;
  for (size_t i = 0; i + 4 <= scan; ++i)
    if (std::memcmp(data + i, soc_siz, 4) == 0) {
      p = data + i + 4;
      break;
    }
  if (!p || size_t(data + size - p) < 38) return;  // OpenJPEG reports what is missing
  const uint32_t x = be32(p + 4), y = be32(p + 8), x0 = be32(p + 12), y0 = be32(p + 16);
  const uint32_t tw = be32(p + 20), th = be32(p + 24), tx0 = be32(p + 28), ty0 = be32(p + 32);
  if (x <= x0 || y <= y0 || tw == 0 || th == 0 || tx0 > x0 || ty0 > y0) return;
  check_size(x - x0, y - y0, params, "JPEG 2000");
  const uint64_t tiles = (uint64_t(x - tx0) + tw - 1) / tw * ((uint64_t(y - ty0) + th - 1) / th);
  if (tiles > 1 && uint64_t(tw) * th < 4096)
    throw DecodeError("JPEG 2000: " + std::to_string(tiles) + " tiles of " + std::to_string(tw) + "x" +
                      std::to_string(th) + " pixels; tiles of fewer than 4096 pixels are not supported");
}

}  // namespace

J2kFrame decode_j2k(const uint8_t* data, size_t size, const DecodeParams& params) {
  static const uint8_t jp2_sig[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0d, 0x0a, 0x87, 0x0a};
  OPJ_CODEC_FORMAT fmt;
  if (size >= 4 && data[0] == 0xFF && data[1] == 0x4F && data[2] == 0xFF && data[3] == 0x51)
    fmt = OPJ_CODEC_J2K;
  else if (size >= 12 && std::memcmp(data, jp2_sig, 12) == 0)
    fmt = OPJ_CODEC_JP2;
  else
    throw DecodeError("JPEG 2000: fragment holds neither a codestream (FF4F) nor a JP2 file");

  std::unique_ptr<opj_codec_t, decltype(&opj_destroy_codec)> codec(opj_create_decompress(fmt), opj_destroy_codec);
  if (!codec) throw DecodeError("JPEG 2000: cannot create an OpenJPEG decoder");
  std::string last_error = "OpenJPEG failed";
  opj_set_error_handler(codec.get(), on_message, &last_error);
  opj_set_warning_handler(codec.get(), on_quiet, nullptr);
  opj_set_info_handler(codec.get(), on_quiet, nullptr);
  opj_dparameters_t dp;
  opj_set_default_decoder_parameters(&dp);
  if (!opj_setup_decoder(codec.get(), &dp)) throw DecodeError("JPEG 2000: decoder setup failed");

  check_siz(data, size, params);
  MemStream mem{data, size, 0};
  std::unique_ptr<opj_stream_t, decltype(&opj_stream_destroy)> stream(opj_stream_create(1 << 16, OPJ_TRUE),
                                                                      opj_stream_destroy);
  if (!stream) throw DecodeError("JPEG 2000: cannot create a stream");
  opj_stream_set_user_data(stream.get(), &mem, nullptr);
  opj_stream_set_user_data_length(stream.get(), size);
  opj_stream_set_read_function(stream.get(), mem_read);
  opj_stream_set_skip_function(stream.get(), mem_skip);
  opj_stream_set_seek_function(stream.get(), mem_seek);

  opj_image_t* raw = nullptr;
  if (!opj_read_header(stream.get(), codec.get(), &raw) || !raw)
    throw DecodeError("JPEG 2000: cannot read the header: " + last_error);
  std::unique_ptr<opj_image_t, decltype(&opj_image_destroy)> image(raw, opj_image_destroy);
  if (image->numcomps < 1) throw DecodeError("JPEG 2000: no image component");
  check_size(uint64_t(image->x1 - image->x0), uint64_t(image->y1 - image->y0), params, "JPEG 2000");
  if (!opj_decode(codec.get(), stream.get(), image.get()) || !opj_end_decompress(codec.get(), stream.get()))
    throw DecodeError("JPEG 2000: decoding failed: " + last_error);

  const opj_image_comp_t& c = image->comps[0];
  if (!c.data || c.w == 0 || c.h == 0) throw DecodeError("JPEG 2000: empty first component");
  if (c.prec < 1 || c.prec > 16)
    throw DecodeError("JPEG 2000: precision " + std::to_string(c.prec) + " bits, expected 1..16");
  J2kFrame f;
  f.precision = int(c.prec);
  f.is_signed = c.sgnd != 0;
  f.components = int(image->numcomps);
  const int type = f.is_signed ? CV_16SC1 : (c.prec <= 8 ? CV_8UC1 : CV_16UC1);
  f.pixels.create(int(c.h), int(c.w), type);
  const int lo = f.is_signed ? -(1 << (c.prec - 1)) : 0;
  const int hi = f.is_signed ? (1 << (c.prec - 1)) - 1 : (1 << c.prec) - 1;
  for (int y = 0; y < f.pixels.rows; ++y) {
    const OPJ_INT32* s = c.data + size_t(y) * c.w;
    for (int x = 0; x < f.pixels.cols; ++x) {
      const int v = std::min(hi, std::max(lo, int(s[x])));
      if (type == CV_8UC1)
        f.pixels.ptr<uint8_t>(y)[x] = uint8_t(v);
      else if (type == CV_16UC1)
        f.pixels.ptr<uint16_t>(y)[x] = uint16_t(v);
      else
        f.pixels.ptr<int16_t>(y)[x] = int16_t(v);
    }
  }
  return f;
}

}  // namespace cxr::io::detail
