// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/gstcxrbridge.hpp"

#include <cstring>
#include <string>

#include "cxr/error.hpp"

cv::Mat gst_cxr_frame_to_mat(GstVideoFrame* frame, int plane) {
  const GstVideoFormat fmt = GST_VIDEO_FRAME_FORMAT(frame);
  int type;
  switch (fmt) {
    case GST_VIDEO_FORMAT_GRAY8: type = CV_8UC1; break;
    case GST_VIDEO_FORMAT_GRAY16_LE: type = CV_16UC1; break;
    case GST_VIDEO_FORMAT_RGB:
    case GST_VIDEO_FORMAT_BGR: type = CV_8UC3; break;
    case GST_VIDEO_FORMAT_RGBA:
    case GST_VIDEO_FORMAT_RGBx:
    case GST_VIDEO_FORMAT_BGRA:
    case GST_VIDEO_FORMAT_BGRx: type = CV_8UC4; break;
    default:
      throw cxr::InvalidArgument(std::string("unsupported video format ") + gst_video_format_to_string(fmt));
  }
  return cv::Mat(GST_VIDEO_FRAME_COMP_HEIGHT(frame, plane), GST_VIDEO_FRAME_COMP_WIDTH(frame, plane), type,
                 GST_VIDEO_FRAME_PLANE_DATA(frame, plane),
                 static_cast<size_t>(GST_VIDEO_FRAME_PLANE_STRIDE(frame, plane)));
}

GstVideoFormat gst_cxr_format_for_mat(const cv::Mat& mat) {
  switch (mat.type()) {
    case CV_8UC1: return GST_VIDEO_FORMAT_GRAY8;
    case CV_16UC1: return GST_VIDEO_FORMAT_GRAY16_LE;
    case CV_8UC3: return GST_VIDEO_FORMAT_RGB;
    case CV_8UC4: return GST_VIDEO_FORMAT_RGBA;
    default: return GST_VIDEO_FORMAT_UNKNOWN;
  }
}

GstCaps* gst_cxr_caps_for_mat(const cv::Mat& mat) {
  GstVideoInfo info;
  gst_video_info_set_format(&info, gst_cxr_format_for_mat(mat), static_cast<guint>(mat.cols),
                            static_cast<guint>(mat.rows));
  info.fps_n = 0;
  info.fps_d = 1;
  return gst_video_info_to_caps(&info);
}

namespace {
struct MatHolder {
  cv::Mat mat;
};
void free_holder(gpointer p) { delete static_cast<MatHolder*>(p); }
}  // namespace

GstBuffer* gst_cxr_buffer_wrap_mat(const cv::Mat& mat) {
  const GstVideoFormat fmt = gst_cxr_format_for_mat(mat);
  if (fmt == GST_VIDEO_FORMAT_UNKNOWN || mat.empty())
    throw cxr::InvalidArgument("cannot make a video buffer from Mat type " + std::to_string(mat.type()));
  GstVideoInfo info;
  gst_video_info_set_format(&info, fmt, static_cast<guint>(mat.cols), static_cast<guint>(mat.rows));
  const gsize stride = static_cast<gsize>(GST_VIDEO_INFO_PLANE_STRIDE(&info, 0));
  GstBuffer* buf;
  if (mat.step[0] == stride && !mat.isSubmatrix()) {
    // Same layout as GStreamer's default: hand the pixels over without a copy.
    auto* holder = new MatHolder{mat};
    buf = gst_buffer_new_wrapped_full(static_cast<GstMemoryFlags>(0), holder->mat.data, GST_VIDEO_INFO_SIZE(&info), 0,
                                      GST_VIDEO_INFO_SIZE(&info), holder, free_holder);
  } else {
    buf = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
    GstMapInfo map;
    gst_buffer_map(buf, &map, GST_MAP_WRITE);
    const size_t row = mat.cols * mat.elemSize();
    for (int y = 0; y < mat.rows; ++y) std::memcpy(map.data + y * stride, mat.ptr(y), row);
    gst_buffer_unmap(buf, &map);
  }
  gst_buffer_add_video_meta_full(buf, GST_VIDEO_FRAME_FLAG_NONE, fmt, static_cast<guint>(mat.cols),
                                 static_cast<guint>(mat.rows), 1, info.offset, info.stride);
  return buf;
}

gboolean gst_cxr_video_info_gray(GstVideoInfo* info, int width, int height, gboolean sixteen) {
  if (!gst_video_info_set_format(info, sixteen ? GST_VIDEO_FORMAT_GRAY16_LE : GST_VIDEO_FORMAT_GRAY8,
                                 static_cast<guint>(width), static_cast<guint>(height)))
    return FALSE;
  info->fps_n = 0;
  info->fps_d = 1;
  return TRUE;
}
