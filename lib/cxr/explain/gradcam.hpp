// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) heatmaps of a
/// model card's network for one grey scan, at the frame's own resolution.
///
/// The class activation map is taken at the card's `[gradcam] target-layer` (default: the
/// architecture's last convolutional block, torchvision's `layer4` for ResNet-34 and
/// `features[-1]` for MobileNetV3-Large and EfficientNet-B1). The gradients of the target
/// class's logit with respect to that layer's output come from `torch::autograd::grad` in eval
/// mode (BatchNorm running statistics, no dropout); no hooks and no BatchNorm folding, so the
/// numbers are torchvision's. The map is upsampled bilinearly (half-pixel centres, as
/// `F.interpolate(..., mode="bilinear", align_corners=False)`) straight to the scan's size,
/// then scaled. No LibTorch types in this header: elements and tools compile without them
/// (gradcam_torch.hpp has the tensor-level function).
#include <opencv2/core.hpp>

#include <memory>
#include <string>
#include <vector>

#include "cxr/models/card.hpp"
#include "cxr/models/predictor.hpp"

namespace cxr::explain {

enum class CamMethod {
  gradcam,     ///< channel weights = spatial mean of the gradients
  gradcam_pp,  ///< channel weights = sum of alpha * relu(gradient), the closed-form alphas
};

/// Which class the map explains.
enum class CamTarget {
  predicted,  ///< the highest-probability class
  index,      ///< a fixed class index (CamParams::index)
  positives,  ///< every class whose decision is positive (multilabel thresholds; multiclass: argmax)
};

/// How raw map values become 0..1.
enum class CamScaling {
  minmax,  ///< per image: (v - min) / (max - min); a flat map becomes 0
  fixed,   ///< v / CamParams::fixed_max, clipped to 0..1: comparable across scans of one model
};

const char* to_string(CamMethod m);
const char* to_string(CamTarget t);
const char* to_string(CamScaling s);

struct CamParams {
  CamMethod method = CamMethod::gradcam;
  CamTarget target = CamTarget::predicted;
  int index = 0;             ///< class for CamTarget::index
  CamScaling scaling = CamScaling::minmax;
  float fixed_max = 1.0f;    ///< raw value shown as 1 with CamScaling::fixed; > 0
};

/// One explained class.
struct Cam {
  int target = -1;   ///< class index
  cv::Mat heatmap;   ///< CV_32FC1 of the scan's size, 0..1 after scaling
  float raw_min = 0, raw_max = 0;  ///< range of the unscaled (ReLU'd, upsampled) map
};

struct CamResult {
  cxr::models::Prediction prediction;  ///< from the same forward pass (no embedding)
  std::vector<Cam> cams;  ///< one per target; CamTarget::positives may give none
};

/// The target layer names a card may use for an architecture ("layer1".."layer4" for
/// resnet34; "features" and "features.N" (N from 0, or -1 for the last) for the others).
std::vector<std::string> cam_layers(const std::string& architecture);

struct GradCamOptions {
  std::string device = "cpu";  ///< auto, cpu, cuda, cuda:N
  /// LibTorch intra-op threads, set on the constructing thread and on the thread that calls
  /// explain() (a GStreamer streaming thread is not the one the application configured); 0
  /// leaves LibTorch's setting. Keep all calls on one thread (cxr::runtime::ComputeThread).
  int threads = 0;
  /// Layout of activations and weights: Contiguous (NCHW), ChannelsLast, or Auto (on the CPU:
  /// the faster for one scan's forward and backward, timed at load, which costs eight such
  /// passes; NCHW on CUDA). For Grad-CAM the two came within noise of each other on an AVX2
  /// machine (bench_gradcam), hence the default. OneDnn is an inference-only path and is refused.
  cxr::models::Layout layout = cxr::models::Layout::Contiguous;
};

/// A loaded network ready to explain scans.
class GradCam {
 public:
  /// Loads the card's weights (eval mode, unfolded) on options.device. Throws
  /// cxr::ConfigError for TorchScript cards and unknown target layers, cxr::InvalidArgument
  /// for devices, threads and layouts, IoError / WeightsError for weights, always naming the card.
  GradCam(cxr::models::ModelCard card, const GradCamOptions& options);
  /// The same with default options on `device`.
  explicit GradCam(cxr::models::ModelCard card, const std::string& device = "cpu");
  ~GradCam();
  GradCam(const GradCam&) = delete;
  GradCam& operator=(const GradCam&) = delete;

  const cxr::models::ModelCard& card() const;
  /// The device actually used.
  std::string device() const;
  /// The target layer in use.
  const std::string& layer() const;
  /// The layout in use: ChannelsLast or Contiguous.
  cxr::models::Layout layout() const;

  /// Explains one 8- or 16-bit grey scan of any size (a copy is scaled to the card's input
  /// with cxr::models::prepare_input, as the predictor does). Throws cxr::InvalidArgument for
  /// other images and for CamTarget::index out of range.
  CamResult explain(const cv::Mat& scan, const CamParams& params);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Scales a raw map to 0..1 in place as `params` asks.
void scale_cam(cv::Mat& map, const CamParams& params);

/// Sets params.target (and params.index) from its name as cxrgradcam's `target` takes it:
/// "predicted" (or ""), "positives", one of the card's class names, or a class index below the
/// number of classes. Throws cxr::ConfigError naming the card and its classes otherwise.
void resolve_target(const std::string& target, const cxr::models::ModelCard& card, CamParams& params);

/// The picture of a scan's maps, into `dst` (the scan's size, written in place): CV_8UC1 gets
/// the targets' per-pixel maximum as 0..255; CV_8UC3 gets the scan in RGB (16-bit shown as
/// value / 257) with that maximum through OpenCV's JET colour map (blue = low, red = high)
/// blended over it with weight `alpha` (no map: the grey scan alone). Throws
/// cxr::InvalidArgument for other scans, pictures, sizes or alphas.
void render_cams(const cv::Mat& scan, const std::vector<Cam>& cams, double alpha, cv::Mat& dst);

}  // namespace cxr::explain
