// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/dicom/instance.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cxr/error.hpp"
#include "cxr/io/decode.hpp"

namespace cxr::dicom {
namespace {

std::string get(DcmItem* item, const DcmTagKey& key) {
  OFString v;
  if (item && item->findAndGetOFStringArray(key, v).good()) return v.c_str();
  return {};
}

// DCMTK recurses once per nesting level: a received file of deeply nested sequences would
// overflow the listener thread's stack. Measured on the bytes before DCMTK parses them.
void check_nesting(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // loadFile reports it
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    return;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return;
  const int depth = io::dicom_nesting_depth(static_cast<const uint8_t*>(map), size, io::kMaxDicomNesting);
  ::munmap(map, size);
  if (depth > io::kMaxDicomNesting)
    throw DecodeError(path + ": sequences nested deeper than " + std::to_string(io::kMaxDicomNesting) + " levels");
}

}  // namespace

InstanceInfo read_instance_info(const std::string& path) {
  check_nesting(path);
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
