// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Derived DICOM objects sent back to the PACS: a Comprehensive SR with the model's findings
/// and a Secondary Capture image (Grad-CAM overlay or the grey frame). Both join the source's
/// study (patient and general study modules copied from the source, same Study Instance UID),
/// each in a new series, and point back at the source instance.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace cxr::dicom {

/// One class of the model's output.
struct Finding {
  std::string name;
  double probability = 0.0;
  bool positive = false;  ///< the model's decision (thresholded or argmax)
};

struct ReportSpec {
  std::string model;             ///< algorithm name (model card name)
  std::string model_version;     ///< algorithm version; empty: "unspecified"
  std::string software_version;  ///< version of gst-cxr, into Software Versions
  bool multilabel = false;
  std::vector<Finding> findings;
};

/// Identification of a written object.
struct DerivedInstance {
  std::string path;
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string series_uid;
  std::string study_uid;
};

/// The statement every report carries.
const char* not_for_diagnostic_use();

/// Writes a Comprehensive SR for the scan at `source_path` to `out_path` (explicit VR little
/// endian). Content: algorithm name and version, one container per class (probability as a
/// unitless NUM, decision as a Yes/No CODE), an IMAGE reference to the source, and the
/// not-for-diagnostic-use statement; the source is listed in the Current Requested Procedure
/// Evidence. Throws cxr::DecodeError (source unreadable) or cxr::IoError (cannot write).
DerivedInstance write_sr(const std::string& source_path, const ReportSpec& spec, const std::string& out_path);

/// Writes a Secondary Capture of `image` (CV_8UC1 / CV_16UC1 as MONOCHROME2, CV_8UC3 as RGB
/// in R, G, B order) for the scan at `source_path`, with a Source Image Sequence naming it.
DerivedInstance write_sc(const std::string& source_path, const cv::Mat& image, const std::string& description,
                         const std::string& out_path);

}  // namespace cxr::dicom
