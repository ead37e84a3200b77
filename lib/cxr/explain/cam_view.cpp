// SPDX-License-Identifier: LGPL-2.1-or-later
// What a Grad-CAM element shows: the target it was asked for, and the picture of the maps.
#include <opencv2/imgproc.hpp>

#include <cstdlib>

#include "cxr/error.hpp"
#include "cxr/explain/gradcam.hpp"
#include "cxr/util/text.hpp"

namespace cxr::explain {

void resolve_target(const std::string& target, const cxr::models::ModelCard& card, CamParams& params) {
  if (target.empty() || target == "predicted") {
    params.target = CamTarget::predicted;
    return;
  }
  if (target == "positives") {
    params.target = CamTarget::positives;
    return;
  }
  for (size_t c = 0; c < card.classes.size(); ++c) {
    if (card.classes[c] == target) {
      params.target = CamTarget::index;
      params.index = static_cast<int>(c);
      return;
    }
  }
  char* end = nullptr;
  const long v = std::strtol(target.c_str(), &end, 10);
  if (end && *end == '\0' && v >= 0 && v < static_cast<long>(card.classes.size())) {
    params.target = CamTarget::index;
    params.index = static_cast<int>(v);
    return;
  }
  throw ConfigError("target '" + target + "' is not predicted, positives, a class index below " +
                    std::to_string(card.classes.size()) + " or a class of " + card.name + " (" +
                    util::join(card.classes) + ")");
}

void render_cams(const cv::Mat& scan, const std::vector<Cam>& cams, double alpha, cv::Mat& dst) {
  if (scan.type() != CV_8UC1 && scan.type() != CV_16UC1) {
    throw InvalidArgument("render_cams: expected an 8- or 16-bit grey scan, got type " + std::to_string(scan.type()));
  }
  if ((dst.type() != CV_8UC1 && dst.type() != CV_8UC3) || dst.size() != scan.size()) {
    throw InvalidArgument("render_cams: the picture must be GRAY8 or RGB of the scan's size");
  }
  if (!(alpha >= 0.0 && alpha <= 1.0))
    throw InvalidArgument("render_cams: alpha " + std::to_string(alpha) + " is not in 0..1");
  // One picture of all targets: their per-pixel maximum.
  cv::Mat heat(scan.size(), CV_32F, cv::Scalar(0));
  for (const auto& cam : cams) {
    if (cam.heatmap.type() != CV_32FC1 || cam.heatmap.size() != scan.size()) {
      throw InvalidArgument("render_cams: a map is not CV_32FC1 of the scan's size");
    }
    cv::max(heat, cam.heatmap, heat);
  }
  cv::Mat heat8;
  heat.convertTo(heat8, CV_8U, 255.0);  // rounds and saturates
  if (dst.type() == CV_8UC1) {
    heat8.copyTo(dst);
    return;
  }
  cv::Mat grey8;
  if (scan.depth() == CV_16U) {
    scan.convertTo(grey8, CV_8U, 1.0 / 257.0);
  } else {
    grey8 = scan;
  }
  cv::cvtColor(grey8, dst, cv::COLOR_GRAY2RGB);
  if (cams.empty()) return;
  cv::Mat color;
  cv::applyColorMap(heat8, color, cv::COLORMAP_JET);
  cv::cvtColor(color, color, cv::COLOR_BGR2RGB);
  cv::addWeighted(dst, 1.0 - alpha, color, alpha, 0.0, dst);
}

}  // namespace cxr::explain
