// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// The one bridge between GStreamer video frames and cv::Mat.
#include <gst/video/video.h>

#include <opencv2/core.hpp>

/// A cv::Mat view of plane `plane` of a mapped frame, using the plane's stride (never
/// width * bpp). GRAY8 -> CV_8UC1, GRAY16_LE -> CV_16UC1, RGB -> CV_8UC3, RGBA/RGBx -> CV_8UC4.
/// Throws cxr::InvalidArgument for other formats.
cv::Mat gst_cxr_frame_to_mat(GstVideoFrame* frame, int plane = 0);

/// The raw format for a Mat's type (GST_VIDEO_FORMAT_UNKNOWN if none).
GstVideoFormat gst_cxr_format_for_mat(const cv::Mat& mat);

/// Caps for a Mat (video/x-raw, format, width, height, framerate 0/1).
GstCaps* gst_cxr_caps_for_mat(const cv::Mat& mat);

/// A buffer with mat's pixels in GStreamer's default layout (4-byte aligned rows): shares the
/// Mat's data when the layout already matches, copies otherwise. Carries a GstVideoMeta.
GstBuffer* gst_cxr_buffer_wrap_mat(const cv::Mat& mat);

/// Video info for a decoded single-channel frame of the given size (8 or 16 bit).
gboolean gst_cxr_video_info_gray(GstVideoInfo* info, int width, int height, gboolean sixteen);
