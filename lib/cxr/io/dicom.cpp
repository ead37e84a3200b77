// SPDX-License-Identifier: LGPL-2.1-or-later
// DICOM decoding through DCMTK, from memory. Native, JPEG (baseline, extended, lossless),
// JPEG-LS and RLE pixel data are decoded by DCMTK's codecs, one frame at a time; JPEG 2000
// (no codec in DCMTK 3.6.7) by OpenJPEG from the encapsulated fragments. Presentation
// (Modality LUT / rescale, VOI, MONOCHROME1 inversion, depth scaling) is one lookup table over
// every possible stored value, applied in a single pass.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dctag.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/io/detail.hpp"

namespace cxr::io::detail {
namespace {

void register_codecs() {
  static std::once_flag once;
  // Codec registration mutates DCMTK's global codec list: once per process.
  std::call_once(once, [] {
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
}

enum class Codec { Native, Dcmtk, J2k, Unsupported };

Codec codec_for(E_TransferSyntax xfer) {
  switch (xfer) {
    case EXS_LittleEndianImplicit:
    case EXS_LittleEndianExplicit:
    case EXS_BigEndianExplicit:
    case EXS_BigEndianImplicit:
    case EXS_DeflatedLittleEndianExplicit: return Codec::Native;
    case EXS_JPEGProcess1:
    case EXS_JPEGProcess2_4:
    case EXS_JPEGProcess6_8:
    case EXS_JPEGProcess10_12:
    case EXS_JPEGProcess14:
    case EXS_JPEGProcess14SV1:
    case EXS_JPEGLSLossless:
    case EXS_JPEGLSLossy:
    case EXS_RLELossless: return Codec::Dcmtk;
    case EXS_JPEG2000LosslessOnly:
    case EXS_JPEG2000:
    case EXS_JPEG2000MulticomponentLosslessOnly:
    case EXS_JPEG2000Multicomponent: return Codec::J2k;
    default: return Codec::Unsupported;
  }
}

// The transfer syntaxes DCMTK's IJG-based JPEG decoder (dcmjpeg) handles.
bool is_ijg_jpeg(E_TransferSyntax xfer) {
  return xfer == EXS_JPEGProcess1 || xfer == EXS_JPEGProcess2_4 || xfer == EXS_JPEGProcess6_8 ||
         xfer == EXS_JPEGProcess10_12 || xfer == EXS_JPEGProcess14 || xfer == EXS_JPEGProcess14SV1;
}

std::string get_string(DcmItem* item, const DcmTagKey& key) {
  OFString v;
  if (item->findAndGetOFString(key, v).bad()) return {};
  std::string s(v.c_str());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

bool get_double(DcmItem* item, const DcmTagKey& key, double& out) {
  Float64 v;
  if (item->findAndGetFloat64(key, v).bad()) return false;
  out = v;
  return true;
}

int get_us(DcmItem* item, const DcmTagKey& key, int fallback) {
  Uint16 v;
  return item->findAndGetUint16(key, v).good() ? int(v) : fallback;
}

// A LUT from a Modality or VOI LUT Sequence item: entries, first mapped value, bits per entry.
struct SequenceLut {
  bool present = false;
  int first = 0;
  int bits = 16;
  std::vector<uint16_t> data;
  double operator()(double x) const {
    const long i = std::lround(x) - first;
    if (i <= 0) return data.front();
    if (size_t(i) >= data.size()) return data.back();
    return data[size_t(i)];
  }
};

SequenceLut read_sequence_lut(DcmItem* dataset, const DcmTagKey& seq_key) {
  SequenceLut lut;
  DcmItem* item = nullptr;
  if (dataset->findAndGetSequenceItem(seq_key, item, 0).bad() || !item) return lut;
  Uint16 desc[3];
  for (unsigned long i = 0; i < 3; ++i) {
    if (item->findAndGetUint16(DCM_LUTDescriptor, desc[i], i).bad()) {
      Sint16 s;
      if (item->findAndGetSint16(DCM_LUTDescriptor, s, i).bad())
        throw DecodeError("DICOM: LUT Descriptor of " + std::string(DcmTag(seq_key).getTagName()) + " unreadable");
      desc[i] = Uint16(s);
    }
  }
  const size_t entries = desc[0] == 0 ? 65536 : desc[0];
  lut.first = (seq_key == DCM_ModalityLUTSequence || desc[1] < 0x8000) ? int(desc[1]) : int(Sint16(desc[1]));
  lut.bits = desc[2];
  const Uint16* words = nullptr;
  unsigned long count = 0;
  if (item->findAndGetUint16Array(DCM_LUTData, words, &count).bad() || !words || count == 0)
    throw DecodeError("DICOM: LUT Data of " + std::string(DcmTag(seq_key).getTagName()) + " missing");
  if (lut.bits <= 8 && count * 2 >= entries && count < entries) {
    // 8-bit entries packed two per 16-bit word.
    for (size_t i = 0; i < entries; ++i) lut.data.push_back(uint16_t((words[i / 2] >> (8 * (i % 2))) & 0xff));
  } else {
    if (count < entries)
      throw DecodeError("DICOM: LUT Data has " + std::to_string(count) + " entries, descriptor says " +
                        std::to_string(entries));
    lut.data.assign(words, words + entries);
  }
  lut.present = true;
  return lut;
}

// DCMTK's JPEG decoder (the IJG processes 1 to 14) reads a frame's precision before decoding it
// by walking the markers of the frame's first fragment (DJCodecDecoder::scanJpegDataForBitDepth).
// In DCMTK 3.6.7 that walk does not advance past a TEM marker (FF01): a fragment with one
// before its frame header spins for ever. The same walk runs here first and refuses any step
// that would not move forward (TEM, or an offset that wraps). Where DCMTK's walk stops (a frame
// header, an invalid marker, the end), this one stops too and leaves the verdict to DCMTK.
void check_jpeg_marker_walk(const uint8_t* data, uint32_t length) {
  if (!data) return;
  auto u16 = [data](uint32_t at) { return uint32_t(data[at]) << 8 | data[at + 1]; };
  uint32_t offset = 0;
  while (offset + 4 < length) {
    if (data[offset] != 0xFF) return;  // DCMTK: invalid marker, no precision
    const uint8_t m = data[offset + 1];
    uint32_t next = offset;
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      return;  // SOFn: DCMTK has the precision
    } else if (m == 0xC4 || m == 0xC8 || m == 0xCC || (m >= 0xDA && m <= 0xFE)) {
      next = offset + u16(offset + 2) + 2;  // a segment with a length
    } else if ((m >= 0xD0 && m <= 0xD9) || (m > 0x02 && m <= 0xBF)) {
      next = offset + 2;  // RSTn, SOI, EOI, reserved: no length
    } else if (m == 0xFF) {
      next = offset + 1;  // fill byte
    } else if (m != 0x01) {
      return;  // 00 or 02: DCMTK: invalid marker
    }
    if (next <= offset)
      throw DecodeError("DICOM: the first frame's JPEG data (" + std::to_string(length) + " bytes) has " +
                        (m == 0x01 ? std::string("a TEM marker (FF01)") : "a segment running past 4 GB") +
                        " at byte " + std::to_string(offset) +
                        " before its frame header (SOF), on which DCMTK's JPEG decoder would loop for ever");
    offset = next;
  }
}

// The fragment DCMTK's JPEG decoder scans for frame 0 (the item after the offset table) goes
// through check_jpeg_marker_walk; the other frames are never decoded.
void check_first_jpeg_fragment(DcmPixelData* pixel_data) {
  E_TransferSyntax xfer;
  const DcmRepresentationParameter* rep = nullptr;
  pixel_data->getOriginalRepresentationKey(xfer, rep);
  DcmPixelSequence* seq = nullptr;
  if (pixel_data->getEncapsulatedRepresentation(xfer, rep, seq).bad() || !seq || seq->card() < 2) return;
  DcmPixelItem* item = nullptr;
  Uint8* bytes = nullptr;
  if (seq->getItem(item, 1).bad() || !item || item->getUint8Array(bytes).bad()) return;
  check_jpeg_marker_walk(bytes, item->getLength());
}

// Concatenates the fragments of the first frame of encapsulated pixel data.
std::vector<uint8_t> first_frame_fragments(DcmPixelData* pixel_data, int frames) {
  E_TransferSyntax xfer;
  const DcmRepresentationParameter* rep = nullptr;
  pixel_data->getOriginalRepresentationKey(xfer, rep);
  DcmPixelSequence* seq = nullptr;
  if (pixel_data->getEncapsulatedRepresentation(xfer, rep, seq).bad() || !seq)
    throw DecodeError("DICOM: encapsulated pixel data expected, none found");
  const unsigned long n = seq->card();
  if (n < 2) throw DecodeError("DICOM: encapsulated pixel data holds no fragment");
  std::vector<uint8_t> out;
  for (unsigned long i = 1; i < n; ++i) {  // item 0 is the basic offset table
    DcmPixelItem* item = nullptr;
    Uint8* bytes = nullptr;
    if (seq->getItem(item, i).bad() || !item || item->getUint8Array(bytes).bad()) break;
    const Uint32 len = item->getLength();
    const bool starts_codestream = len >= 2 && bytes && bytes[0] == 0xFF && bytes[1] == 0x4F;
    // With several frames, the next frame begins with the next start-of-codestream marker.
    if (i > 1 && (frames > 1 || starts_codestream) && starts_codestream) break;
    if (bytes && len) out.insert(out.end(), bytes, bytes + len);
  }
  if (out.empty()) throw DecodeError("DICOM: first frame has no compressed data");
  return out;
}

// The stored-value domain: every value BitsStored bits can hold.
struct Domain {
  int bits;
  bool is_signed;
  long min() const { return is_signed ? -(1L << (bits - 1)) : 0; }
  long size() const { return 1L << bits; }
};

// Maps every stored value to its output value (see decode.hpp for the ranges).
std::vector<uint16_t> presentation_lut(const Domain& dom, DcmDataset* ds, const std::string& photometric,
                                       const DicomInfo& info, const DecodeParams& params, int out_bits,
                                       int& result_bits) {
  const long n = dom.size();
  std::vector<uint16_t> lut(static_cast<size_t>(n));

  // Modality transform.
  const SequenceLut mlut = read_sequence_lut(ds, DCM_ModalityLUTSequence);
  const bool identity =
      !mlut.present && info.rescale_slope == 1.0 && info.rescale_intercept == 0.0 && !dom.is_signed;
  std::vector<double> m(static_cast<size_t>(n));
  double mmin = 1e300, mmax = -1e300;
  for (long i = 0; i < n; ++i) {
    const double s = double(dom.min() + i);
    const double v = mlut.present ? mlut(s) : s * info.rescale_slope + info.rescale_intercept;
    m[size_t(i)] = v;
    mmin = std::min(mmin, v);
    mmax = std::max(mmax, v);
  }

  // VOI transform, only when asked and the file has one.
  SequenceLut vlut;
  bool use_window = false;
  std::string function;
  if (params.apply_voi) {
    vlut = read_sequence_lut(ds, DCM_VOILUTSequence);
    use_window = !vlut.present && info.has_window && info.window_width > 0;
    function = get_string(ds, DCM_VOILUTFunction);
  }
  const bool use_voi = vlut.present || use_window;
  const bool inverse = photometric == "MONOCHROME1";

  int bits = out_bits;  // bits of the values before full-range expansion
  if (identity && !use_voi) bits = dom.bits;
  const double ymax = double((1L << bits) - 1);
  const double vlut_max = vlut.present ? double((1L << std::min(vlut.bits, 16)) - 1) : 1.0;
  const double c = info.window_center, w = info.window_width;

  for (long i = 0; i < n; ++i) {
    const double x = m[size_t(i)];
    double y;
    if (identity && !use_voi) {
      y = double(i);
    } else if (vlut.present) {
      y = vlut(x) / vlut_max * ymax;
    } else if (use_window) {
      if (function == "SIGMOID") {
        y = ymax / (1.0 + std::exp(-4.0 * (x - c) / w));
      } else if (function == "LINEAR_EXACT") {
        y = x <= c - w / 2 ? 0.0 : x > c + w / 2 ? ymax : ((x - c) / w + 0.5) * ymax;
      } else if (w >= 1.0) {  // LINEAR, PS3.3 C.11.2.1.2.1
        y = x <= c - 0.5 - (w - 1) / 2 ? 0.0 : x > c - 0.5 + (w - 1) / 2 ? ymax : ((x - (c - 0.5)) / (w - 1) + 0.5) * ymax;
      } else {
        y = x < c ? 0.0 : ymax;
      }
    } else {
      y = mmax > mmin ? (x - mmin) / (mmax - mmin) * ymax : 0.0;
    }
    y = std::min(ymax, std::max(0.0, std::round(y)));
    if (inverse) y = ymax - y;
    lut[size_t(i)] = uint16_t(y);
  }
  result_bits = bits;
  return lut;
}

}  // namespace

Image decode_dicom(const uint8_t* data, size_t size, const DecodeParams& params) {
  register_codecs();
  size_t overrun = SIZE_MAX;
  if (dicom_nesting_depth(data, size, kMaxDicomNesting, &overrun) > kMaxDicomNesting)
    throw DecodeError("DICOM: sequences nested deeper than " + std::to_string(kMaxDicomNesting) + " levels");
  // DCMTK allocates an element's declared length before reading it: 14 bytes could ask for
  // 4 GB. The whole stream is here, so a length past its end is refused first.
  if (overrun != SIZE_MAX)
    throw DecodeError("truncated DICOM: the element at byte " + std::to_string(overrun) +
                      " declares more data than the " + std::to_string(size) + "-byte stream holds");

  DcmInputBufferStream stream;
  stream.setBuffer(data, offile_off_t(size));
  stream.setEos();
  DcmFileFormat file;
  file.transferInit();
  OFCondition cond = file.read(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
  file.transferEnd();
  if (cond.bad()) throw DecodeError(std::string("corrupt or truncated DICOM: ") + cond.text());
  DcmDataset* ds = file.getDataset();
  if (!ds) throw DecodeError("DICOM: no dataset");

  Image img;
  img.format = Format::Dicom;
  DicomInfo& info = img.dicom;
  info.patient_id = get_string(ds, DCM_PatientID);
  info.study_uid = get_string(ds, DCM_StudyInstanceUID);
  info.series_uid = get_string(ds, DCM_SeriesInstanceUID);
  info.sop_uid = get_string(ds, DCM_SOPInstanceUID);
  info.sop_class_uid = get_string(ds, DCM_SOPClassUID);
  info.modality = get_string(ds, DCM_Modality);
  const E_TransferSyntax xfer = ds->getOriginalXfer();
  const DcmXfer xfer_info(xfer);
  info.transfer_syntax = xfer_info.getXferID();

  DcmElement* element = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, element).bad() || !element)
    throw DecodeError("DICOM without pixel data (no (7FE0,0010) element)");
  auto* pixel_data = dynamic_cast<DcmPixelData*>(element);
  if (!pixel_data) throw DecodeError("DICOM: (7FE0,0010) is not pixel data");

  const Codec codec = codec_for(xfer);
  if (codec == Codec::Unsupported) {
    std::string uid = get_string(file.getMetaInfo(), DCM_TransferSyntaxUID);
    if (uid.empty()) uid = info.transfer_syntax;
    throw DecodeError("DICOM: unsupported transfer syntax " + uid + " (" + xfer_info.getXferName() + ")");
  }

  const int rows = get_us(ds, DCM_Rows, 0), cols = get_us(ds, DCM_Columns, 0);
  if (rows == 0 || cols == 0) throw DecodeError("DICOM: Rows/Columns missing or zero");
  check_size(uint64_t(cols), uint64_t(rows), params, "DICOM");
  const int spp = get_us(ds, DCM_SamplesPerPixel, 1);
  const int bits_allocated = get_us(ds, DCM_BitsAllocated, 0);
  int bits_stored = get_us(ds, DCM_BitsStored, bits_allocated);
  int high_bit = get_us(ds, DCM_HighBit, bits_stored - 1);
  const int pixel_rep = get_us(ds, DCM_PixelRepresentation, 0);
  const int planar = get_us(ds, DCM_PlanarConfiguration, 0);
  std::string photometric = get_string(ds, DCM_PhotometricInterpretation);
  if (photometric.empty()) photometric = "MONOCHROME2";
  {
    Sint32 frames = 1;
    info.number_of_frames = ds->findAndGetSint32(DCM_NumberOfFrames, frames).good() && frames > 0 ? int(frames) : 1;
  }
  info.bits_allocated = bits_allocated;
  info.pixel_representation = pixel_rep;
  get_double(ds, DCM_RescaleSlope, info.rescale_slope);
  get_double(ds, DCM_RescaleIntercept, info.rescale_intercept);
  if (info.rescale_slope == 0.0) info.rescale_slope = 1.0;
  info.has_window = get_double(ds, DCM_WindowCenter, info.window_center) &&
                    get_double(ds, DCM_WindowWidth, info.window_width);

  if (bits_allocated != 8 && bits_allocated != 16)
    throw DecodeError("DICOM: BitsAllocated " + std::to_string(bits_allocated) + ", expected 8 or 16");
  if (bits_stored < 1 || bits_stored > bits_allocated || high_bit < bits_stored - 1 || high_bit >= bits_allocated)
    throw DecodeError("DICOM: inconsistent BitsStored " + std::to_string(bits_stored) + " / HighBit " +
                      std::to_string(high_bit) + " for BitsAllocated " + std::to_string(bits_allocated));
  if (spp != 1 && spp != 3) throw DecodeError("DICOM: SamplesPerPixel " + std::to_string(spp) + ", expected 1 or 3");
  if (spp == 1 && photometric != "MONOCHROME1" && photometric != "MONOCHROME2")
    throw DecodeError("DICOM: unsupported photometric interpretation " + photometric + " for one sample per pixel");

  // Frame 0 as stored values: `stored` holds BitsAllocated-wide samples in host order.
  cv::Mat stored;
  std::string color_model = photometric;
  const size_t sample_bytes = size_t(bits_allocated / 8);
  const size_t frame_bytes = size_t(rows) * size_t(cols) * size_t(spp) * sample_bytes;
  if (codec == Codec::J2k) {
    const std::vector<uint8_t> bytes = first_frame_fragments(pixel_data, info.number_of_frames);
    J2kFrame f = decode_j2k(bytes.data(), bytes.size(), params);
    if (f.pixels.rows != rows || f.pixels.cols != cols)
      throw DecodeError("DICOM: JPEG 2000 frame is " + std::to_string(f.pixels.cols) + "x" +
                        std::to_string(f.pixels.rows) + ", header says " + std::to_string(cols) + "x" +
                        std::to_string(rows));
    if (spp != 1) throw DecodeError("DICOM: colour JPEG 2000 is not supported");
    // The codestream's own precision wins when it disagrees with the header.
    if (f.precision > bits_stored && f.precision <= bits_allocated) bits_stored = f.precision;
    // Its signedness does not: a signed codestream under PixelRepresentation 0 (or deeper than
    // BitsAllocated) is taken as the bit patterns it decodes to, which the masking below cuts
    // to BitsStored and sign-extends only when the header says so. Every later table is then
    // indexed by values of the header's own domain.
    if (f.pixels.type() == CV_16SC1)
      stored = cv::Mat(f.pixels.rows, f.pixels.cols, CV_16UC1, f.pixels.data, f.pixels.step[0]).clone();
    else
      stored = f.pixels;
    if (stored.type() == CV_8UC1 && bits_allocated == 16) stored.convertTo(stored, CV_16UC1);
    high_bit = bits_stored - 1;  // decoded values are right-aligned
  } else {
    if (codec == Codec::Native) {
      const Uint32 len = pixel_data->getLength();
      if (size_t(len) < frame_bytes)
        throw DecodeError("DICOM: pixel data holds " + std::to_string(len) + " bytes, one " + std::to_string(cols) +
                          "x" + std::to_string(rows) + " frame needs " + std::to_string(frame_bytes));
    }
    stored.create(rows, cols, bits_allocated == 16 ? CV_MAKETYPE(CV_16U, spp) : CV_MAKETYPE(CV_8U, spp));
    std::vector<uint8_t> buffer(frame_bytes + (frame_bytes & 1));
    if (is_ijg_jpeg(xfer)) check_first_jpeg_fragment(pixel_data);
    Uint32 start_fragment = 0;
    OFString model;
    cond = pixel_data->getUncompressedFrame(ds, 0, start_fragment, buffer.data(), Uint32(buffer.size()), model);
    if (cond.bad()) throw DecodeError(std::string("DICOM: cannot decode the first frame: ") + cond.text());
    if (!model.empty()) color_model = model.c_str();
    const bool by_plane = spp == 3 && (codec == Codec::Native ? planar == 1 : xfer == EXS_RLELossless);
    if (by_plane) {
      std::vector<cv::Mat> planes;
      for (int p = 0; p < 3; ++p)
        planes.emplace_back(rows, cols, bits_allocated == 16 ? CV_16UC1 : CV_8UC1,
                            buffer.data() + size_t(p) * rows * cols * sample_bytes);
      cv::merge(planes, stored);
    } else {
      std::memcpy(stored.data, buffer.data(), frame_bytes);
    }
  }

  // Colour to grey (Y of YBR, Rec. 601 luma of RGB); grey X-rays never take this path.
  if (spp == 3) {
    cv::Mat grey(rows, cols, stored.depth() == CV_16U ? CV_16UC1 : CV_8UC1);
    const bool ybr = color_model.rfind("YBR", 0) == 0;
    std::vector<cv::Mat> ch;
    cv::split(stored, ch);
    if (ybr) {
      grey = ch[0];
    } else {
      cv::Mat f;
      cv::addWeighted(ch[0], 0.299, ch[1], 0.587, 0.0, f, CV_32F);
      cv::addWeighted(f, 1.0, ch[2], 0.114, 0.0, f, CV_32F);
      f.convertTo(grey, grey.type());
    }
    stored = grey;
    photometric = ybr ? color_model : "RGB";
  }

  // Right-align, mask to BitsStored and sign-extend.
  const int shift = high_bit + 1 - bits_stored;
  const bool is_signed = pixel_rep == 1;
  if (stored.depth() == CV_16U && (shift != 0 || bits_stored < 16 || is_signed)) {
    const uint32_t mask = (1u << bits_stored) - 1;
    cv::Mat out(rows, cols, is_signed ? CV_16SC1 : CV_16UC1);
    for (int y = 0; y < rows; ++y) {
      const uint16_t* s = stored.ptr<uint16_t>(y);
      uint16_t* d = out.ptr<uint16_t>(y);
      for (int x = 0; x < cols; ++x) {
        uint32_t v = (uint32_t(s[x]) >> shift) & mask;
        if (is_signed && (v >> (bits_stored - 1))) v |= ~mask;
        d[x] = uint16_t(v);
      }
    }
    stored = out;
  } else if (stored.depth() == CV_8U && (shift != 0 || bits_stored < 8 || is_signed)) {
    const uint32_t mask = (1u << bits_stored) - 1;
    cv::Mat out(rows, cols, is_signed ? CV_16SC1 : CV_8UC1);
    for (int y = 0; y < rows; ++y) {
      const uint8_t* s = stored.ptr<uint8_t>(y);
      for (int x = 0; x < cols; ++x) {
        uint32_t v = (uint32_t(s[x]) >> shift) & mask;
        if (is_signed) {
          if (v >> (bits_stored - 1)) v |= ~mask;
          out.ptr<int16_t>(y)[x] = int16_t(int32_t(v));
        } else {
          out.ptr<uint8_t>(y)[x] = uint8_t(v);
        }
      }
    }
    stored = out;
  }

  img.bits_stored = bits_stored;
  img.photometric = photometric;
  if (params.stored_values) {
    img.pixels = stored;
    img.bits = bits_stored;
    return img;
  }

  // Presentation: one table over every stored value.
  const Domain dom{bits_stored, is_signed};
  const int out_bits = bits_stored <= 8 ? 8 : 16;
  int bits = out_bits;
  std::vector<uint16_t> lut = presentation_lut(dom, ds, photometric, info, params, out_bits, bits);
  if (params.full_range && bits != out_bits) {
    cv::Mat table(1, int(lut.size()), CV_16UC1, lut.data());
    for (uint16_t& v : lut) v &= uint16_t((1u << bits) - 1);
    cv::Mat expanded;
    expand_bits(table, expanded, bits, 16);
    for (size_t i = 0; i < lut.size(); ++i) {
      const uint16_t v16 = expanded.at<uint16_t>(0, int(i));
      lut[i] = out_bits == 16 ? v16 : uint16_t(v16 >> 8);
    }
    bits = out_bits;
  }
  int final_bits = bits;
  if (params.force_8bit && out_bits == 16) {
    const int down = std::max(0, bits - 8);
    for (uint16_t& v : lut) v = uint16_t(v >> down);
    final_bits = std::min(bits, 8);
  }
  const bool eight = out_bits == 8 || params.force_8bit;
  img.pixels.create(rows, cols, eight ? CV_8UC1 : CV_16UC1);
  const long base = dom.min();
  for (int y = 0; y < rows; ++y) {
    if (stored.depth() == CV_8U) {
      const uint8_t* s = stored.ptr<uint8_t>(y);
      uint8_t* d = img.pixels.ptr<uint8_t>(y);  // an 8-bit source always gives 8-bit output
      for (int x = 0; x < cols; ++x) d[x] = uint8_t(lut[s[x]]);
    } else if (stored.depth() == CV_16S) {
      const int16_t* s = stored.ptr<int16_t>(y);
      for (int x = 0; x < cols; ++x) {
        const uint16_t v = lut[size_t(long(s[x]) - base)];
        if (eight)
          img.pixels.ptr<uint8_t>(y)[x] = uint8_t(v);
        else
          img.pixels.ptr<uint16_t>(y)[x] = v;
      }
    } else {
      const uint16_t* s = stored.ptr<uint16_t>(y);
      if (eight) {
        uint8_t* d = img.pixels.ptr<uint8_t>(y);
        for (int x = 0; x < cols; ++x) d[x] = uint8_t(lut[s[x]]);
      } else {
        uint16_t* d = img.pixels.ptr<uint16_t>(y);
        for (int x = 0; x < cols; ++x) d[x] = lut[s[x]];
      }
    }
  }
  img.bits = final_bits;
  return img;
}

}  // namespace cxr::io::detail

namespace cxr::io {

namespace {

// Long (4-byte) length field in explicit VR: these VRs, and, as DCMTK reads them, any other two
// upper-case letters (a VR from a later edition); any other unknown code has a 2-byte length.
bool long_length_vr(uint8_t a, uint8_t b) {
  static const char* const kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
  static const char* const kShort[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO",
                                       "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"};
  for (const char* v : kLong)
    if (a == uint8_t(v[0]) && b == uint8_t(v[1])) return true;
  for (const char* v : kShort)
    if (a == uint8_t(v[0]) && b == uint8_t(v[1])) return false;
  return a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z';
}

struct Walk {
  const uint8_t* d;
  size_t n;
  bool big = false;
  uint16_t u16(size_t p) const { return big ? uint16_t(d[p] << 8 | d[p + 1]) : uint16_t(d[p] | d[p + 1] << 8); }
  uint32_t u32(size_t p) const {
    return big ? uint32_t(d[p]) << 24 | uint32_t(d[p + 1]) << 16 | uint32_t(d[p + 2]) << 8 | d[p + 3]
               : uint32_t(d[p]) | uint32_t(d[p + 1]) << 8 | uint32_t(d[p + 2]) << 16 | uint32_t(d[p + 3]) << 24;
  }
};

constexpr uint32_t kUndefined = 0xffffffffu;
constexpr size_t kOpen = SIZE_MAX;  // a container of undefined length: ends at its delimiter

// Walks a dataset from `pos`, keeping a stack of open sequences and items.
int walk_depth(const Walk& w, size_t pos, bool explicit_vr, int limit, size_t& overrun) {
  struct Level {
    size_t end;         // kOpen: undefined length
    bool fragments;     // encapsulated pixel data: its items are opaque fragments
    bool explicit_vr;   // encoding of the elements inside
  };
  std::vector<Level> open;
  int deepest = 0;
  auto push = [&](Level l) {
    open.push_back(l);
    deepest = std::max(deepest, int(open.size()));
  };
  while (deepest <= limit) {
    while (!open.empty() && open.back().end != kOpen && pos >= open.back().end) open.pop_back();
    if (pos > w.n || w.n - pos < 8) break;
    const uint16_t group = w.u16(pos), element = w.u16(pos + 2);
    if (group == 0xfffe) {  // item and delimiters: no VR in any encoding
      const uint32_t len = w.u32(pos + 4);
      pos += 8;
      if (element == 0xe000) {
        if (!open.empty() && open.back().fragments) {
          if (len == kUndefined) break;
          if (len > w.n - pos) {
            overrun = pos - 8;
            break;
          }
          pos += len;
        } else {
          const bool ex = open.empty() ? explicit_vr : open.back().explicit_vr;
          push({len == kUndefined ? kOpen : pos + std::min<size_t>(len, w.n - pos), false, ex});
        }
      } else if ((element == 0xe00d || element == 0xe0dd) && !open.empty() && open.back().end == kOpen) {
        open.pop_back();
      }
      continue;
    }
    const bool ex = open.empty() ? explicit_vr : open.back().explicit_vr;
    const size_t start = pos;
    uint32_t len;
    bool sq = false, un = false;
    if (ex) {
      const uint8_t a = w.d[pos + 4], b = w.d[pos + 5];
      sq = a == 'S' && b == 'Q';
      un = a == 'U' && b == 'N';
      if (long_length_vr(a, b)) {
        if (w.n - pos < 12) break;
        len = w.u32(pos + 8);
        pos += 12;
      } else {
        len = w.u16(pos + 6);
        pos += 8;
      }
    } else {
      len = w.u32(pos + 4);
      pos += 8;
      sq = DcmTag(group, element).getEVR() == EVR_SQ;
    }
    if (len == kUndefined) {
      // Pixel data of undefined length holds fragments; any other element of undefined
      // length is read as a sequence (UN ones in implicit VR, as DCMTK does).
      const bool pixels = group == 0x7fe0 && element == 0x0010;
      push({kOpen, pixels, ex && !un});
      continue;
    }
    if (len > w.n - pos) {  // truncated, or a forged length
      overrun = start;
      break;
    }
    if (sq) {
      push({pos + len, false, ex});
      continue;
    }
    pos += len;
  }
  return deepest;
}

// A dataset whose transfer syntax no meta header names: the encoding DCMTK 3.6.7 guesses from
// its first six bytes (DcmItem::checkTransferSyntax), so that the walk reads the lengths DCMTK
// will read. A tag is valid when the data dictionary knows it; the VR when it is a standard one.
void guess_syntax(Walk& w, size_t pos, bool& explicit_vr) {
  w.big = false;
  explicit_vr = true;
  if (w.n < pos || w.n - pos < 6) return;
  const uint8_t* b = w.d + pos;
  const uint16_t g = uint16_t(b[0] | b[1] << 8), e = uint16_t(b[2] | b[3] << 8);
  const uint16_t gs = uint16_t(g << 8 | g >> 8), es = uint16_t(e << 8 | e >> 8);
  const bool little_bad = DcmTag(g, e).error().bad(), big_bad = DcmTag(gs, es).error().bad();
  bool vr = false;
  if (std::isalpha(b[4]) && std::isalpha(b[5])) {
    const char name[3] = {char(b[4]), char(b[5]), 0};
    vr = DcmVR(name).isStandard();
  }
  explicit_vr = vr;
  if (little_bad && big_bad) return;
  if (little_bad) w.big = true;
  else if (!big_bad) w.big = g > 0xff && gs <= 0xff;
}

std::string trim_uid(const uint8_t* p, size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

int dicom_nesting_depth(const uint8_t* data, size_t size, int limit, size_t* overrun) {
  size_t unused = SIZE_MAX;
  size_t& over = overrun ? *overrun : unused;
  over = SIZE_MAX;
  if (!data) return 0;
  Walk w{data, size};
  size_t pos = 0;
  bool explicit_vr = true;
  const bool preamble = size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0;
  std::string uid;
  if (preamble || (size >= 8 && w.u16(0) == 0x0002)) {
    // File meta information (DCMTK reads it without the preamble too): explicit VR little
    // endian, group 0002; it names the dataset's transfer syntax.
    pos = preamble ? 132 : 0;
    while (size - pos >= 8 && w.u16(pos) == 0x0002) {
      const bool lng = long_length_vr(data[pos + 4], data[pos + 5]);
      if (lng && size - pos < 12) break;
      const uint32_t len = lng ? w.u32(pos + 8) : w.u16(pos + 6);
      const size_t hdr = lng ? 12 : 8;
      if (len == kUndefined) break;
      if (len > size - pos - hdr) {
        over = pos;
        return 0;
      }
      if (w.u16(pos + 2) == 0x0010) uid = trim_uid(data + pos + hdr, len);
      pos += hdr + len;
    }
    if (uid == UID_LittleEndianImplicitTransferSyntax) {
      explicit_vr = false;
    } else if (uid == UID_BigEndianExplicitTransferSyntax) {
      w.big = true;
    } else if (uid == UID_DeflatedExplicitVRLittleEndianTransferSyntax) {
      // The dataset is a raw deflate stream: walk what it inflates to (at most 256 MiB).
      std::vector<uint8_t> out;
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return limit + 1;
      z.next_in = const_cast<Bytef*>(data + pos);
      z.avail_in = uInt(std::min<size_t>(size - pos, UINT32_MAX));
      int rc = Z_OK;
      while (rc == Z_OK) {
        const size_t have = out.size();
        if (have >= (size_t(256) << 20)) {
          inflateEnd(&z);
          return limit + 1;
        }
        out.resize(have + (1 << 20));
        z.next_out = out.data() + have;
        z.avail_out = 1 << 20;
        rc = inflate(&z, Z_NO_FLUSH);
        out.resize(have + (1 << 20) - z.avail_out);
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
      }
      inflateEnd(&z);
      size_t inner = SIZE_MAX;  // offsets inside the inflated stream mean nothing to the caller
      const int depth = walk_depth(Walk{out.data(), out.size()}, 0, true, limit, inner);
      if (inner != SIZE_MAX) over = pos;
      return depth;
    }
  }
  if (uid.empty()) guess_syntax(w, pos, explicit_vr);
  return walk_depth(w, pos, explicit_vr, limit, over);
}

}  // namespace cxr::io
