// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Identification of a stored DICOM instance, read from its header without the pixel data.
#include <string>

namespace cxr::dicom {

/// What the pipeline needs to know of a received instance. Patient fields are PHI: never log
/// them unless the user asked for it.
struct InstanceInfo {
  std::string path;
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string study_uid;
  std::string series_uid;
  std::string patient_id;
  std::string patient_name;
  std::string patient_birth_date;
  std::string modality;
  std::string transfer_syntax;
};

/// Reads the header of a DICOM file (Part 10 or bare dataset); large values such as the pixel
/// data stay on disk. Throws cxr::DecodeError when the file is not DICOM.
InstanceInfo read_instance_info(const std::string& path);

/// "patient <id>" when `phi` is set, else a fixed placeholder: the one place that decides
/// whether patient identity may appear in logs and bus messages.
std::string describe_patient(const InstanceInfo& info, bool phi);

}  // namespace cxr::dicom
