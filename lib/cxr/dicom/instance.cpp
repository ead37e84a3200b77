// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/dicom/instance.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include "cxr/error.hpp"

namespace cxr::dicom {
namespace {

std::string get(DcmItem* item, const DcmTagKey& key) {
  OFString v;
  if (item && item->findAndGetOFStringArray(key, v).good()) return v.c_str();
  return {};
}

}  // namespace

InstanceInfo read_instance_info(const std::string& path) {
  DcmFileFormat ff;
  // Values longer than 4 KiB (pixel data) are read lazily, i.e. never here.
  const OFCondition cond = ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096);
  if (cond.bad()) throw DecodeError(path + ": not a readable DICOM file (" + cond.text() + ")");
  DcmDataset* ds = ff.getDataset();
  InstanceInfo info;
  info.path = path;
  info.sop_class_uid = get(ds, DCM_SOPClassUID);
  info.sop_instance_uid = get(ds, DCM_SOPInstanceUID);
  if (info.sop_class_uid.empty()) info.sop_class_uid = get(ff.getMetaInfo(), DCM_MediaStorageSOPClassUID);
  if (info.sop_instance_uid.empty()) info.sop_instance_uid = get(ff.getMetaInfo(), DCM_MediaStorageSOPInstanceUID);
  info.study_uid = get(ds, DCM_StudyInstanceUID);
  info.series_uid = get(ds, DCM_SeriesInstanceUID);
  info.patient_id = get(ds, DCM_PatientID);
  info.patient_name = get(ds, DCM_PatientName);
  info.patient_birth_date = get(ds, DCM_PatientBirthDate);
  info.modality = get(ds, DCM_Modality);
  info.transfer_syntax = DcmXfer(ds->getOriginalXfer()).getXferID();
  return info;
}

std::string describe_patient(const InstanceInfo& info, bool phi) {
  if (!phi) return "patient <hidden>";
  return "patient " + info.patient_id + " (" + info.patient_name + ", born " + info.patient_birth_date + ")";
}

}  // namespace cxr::dicom
