// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/dicom/derived.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <cstdio>
#include <ctime>

#include "cxr/error.hpp"

namespace cxr::dicom {
namespace {

constexpr const char* kScheme = "99GSTCXR";  // private coding scheme of our own concepts

// Patient and General Study modules (plus the character set their values are in).
const DcmTagKey kCopied[] = {
    DCM_SpecificCharacterSet, DCM_PatientName, DCM_PatientID, DCM_IssuerOfPatientID, DCM_PatientBirthDate,
    DCM_PatientSex, DCM_OtherPatientIDsSequence, DCM_PatientAge, DCM_StudyInstanceUID, DCM_StudyDate, DCM_StudyTime,
    DCM_ReferringPhysicianName, DCM_StudyID, DCM_AccessionNumber, DCM_StudyDescription,
    DCM_IssuerOfAccessionNumberSequence, DCM_ProcedureCodeSequence,
};

struct Source {
  DcmFileFormat file;
  DcmDataset* ds = nullptr;
  std::string sop_class, sop_instance, study, series;
};

std::string get(DcmItem* item, const DcmTagKey& key) {
  OFString v;
  return item->findAndGetOFStringArray(key, v).good() ? v.c_str() : std::string();
}

void load_source(const std::string& path, Source& src) {
  const OFCondition cond = src.file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096);
  if (cond.bad()) throw DecodeError(path + ": cannot read the source DICOM file (" + cond.text() + ")");
  src.ds = src.file.getDataset();
  src.sop_class = get(src.ds, DCM_SOPClassUID);
  src.sop_instance = get(src.ds, DCM_SOPInstanceUID);
  src.study = get(src.ds, DCM_StudyInstanceUID);
  src.series = get(src.ds, DCM_SeriesInstanceUID);
  if (src.sop_class.empty() || src.sop_instance.empty() || src.study.empty())
    throw DecodeError(path + ": the source lacks SOP Class, SOP Instance or Study Instance UID");
}

void copy_study(DcmDataset* from, DcmDataset* to) {
  for (const DcmTagKey& key : kCopied) {
    DcmElement* e = nullptr;
    if (from->findAndGetElement(key, e).good() && e) {
      to->insert(OFstatic_cast(DcmElement*, e->clone()), OFTrue /*replace*/);
    }
  }
}

std::string new_uid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

std::string now(const char* fmt) {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

void check(const OFCondition& cond, const std::string& what) {
  if (cond.bad()) throw Error(what + ": " + cond.text());
}

void save(DcmFileFormat& ff, const std::string& out_path) {
  const OFCondition cond = ff.saveFile(out_path.c_str(), EXS_LittleEndianExplicit);
  if (cond.bad()) throw IoError("cannot write " + out_path + ": " + cond.text());
}

// A code value (SH, at most 16 characters) for a class name; the meaning keeps the full name.
std::string code_value(const std::string& name) {
  std::string v;
  for (char c : name) {
    if (v.size() == 16) break;
    v += (c == '\\') ? '_' : c;
  }
  return v.empty() ? "UNNAMED" : v;
}

}  // namespace

const char* not_for_diagnostic_use() {
  return "Not for diagnostic use. Generated automatically by research software (gst-cxr); findings must be "
         "confirmed by a qualified reader.";
}

DerivedInstance write_sr(const std::string& source_path, const ReportSpec& spec, const std::string& out_path) {
  if (spec.findings.empty()) throw InvalidArgument("SR for " + source_path + ": no findings to report");
  Source src;
  load_source(source_path, src);

  DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
  // Patient and study from the source; a new series and instance in that study.
  check(doc.readStudyData(*src.ds), "SR: cannot take the study of " + source_path);
  doc.createNewSeries();
  doc.setSeriesDescription("AI findings (not for diagnostic use)");
  doc.setSeriesNumber("9901");
  doc.setInstanceNumber("1");
  doc.setManufacturer("gst-cxr");
  doc.setManufacturerModelName(spec.model.substr(0, 64).c_str());
  doc.setSoftwareVersions(spec.software_version.c_str());

  DSRDocumentTree& tree = doc.getTree();
  tree.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container);
  tree.getCurrentContentItem().setConceptName(DSRCodedEntryValue("18748-4", "LN", "Diagnostic imaging report"));
  check(tree.addChildContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text,
                                 DSRCodedEntryValue("111001", "DCM", "Algorithm Name")),
        "SR");
  tree.getCurrentContentItem().setStringValue(spec.model.empty() ? "unnamed model" : spec.model.c_str());
  check(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text,
                            DSRCodedEntryValue("111003", "DCM", "Algorithm Version")),
        "SR");
  tree.getCurrentContentItem().setStringValue(spec.model_version.empty() ? "unspecified" : spec.model_version.c_str());
  check(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text,
                            DSRCodedEntryValue("TASK", kScheme, "Classification task")),
        "SR");
  tree.getCurrentContentItem().setStringValue(spec.multilabel ? "multilabel" : "multiclass");

  for (const Finding& f : spec.findings) {
    check(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Container,
                              DSRCodedEntryValue(code_value(f.name).c_str(), kScheme, f.name.c_str())),
          "SR: class " + f.name);
    char prob[32];
    std::snprintf(prob, sizeof prob, "%.6f", f.probability);
    check(tree.addChildContentItem(DSRTypes::RT_contains, DSRTypes::VT_Num,
                                   DSRCodedEntryValue("PROB", kScheme, "Probability")),
          "SR");
    check(tree.getCurrentContentItem().setNumericValue(
              DSRNumericMeasurementValue(prob, DSRCodedEntryValue("1", "UCUM", "no units"))),
          "SR: probability of " + f.name);
    check(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Code,
                              DSRCodedEntryValue("DECISION", kScheme, "Decision")),
          "SR");
    tree.getCurrentContentItem().setCodeValue(f.positive ? DSRCodedEntryValue("373066001", "SCT", "Yes")
                                                         : DSRCodedEntryValue("373067005", "SCT", "No"));
    tree.goUp();
  }
  check(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Image,
                            DSRCodedEntryValue("121112", "DCM", "Source of Measurement")),
        "SR");
  check(tree.getCurrentContentItem().setImageReference(
            DSRImageReferenceValue(src.sop_class.c_str(), src.sop_instance.c_str())),
        "SR: reference to the source image");
  check(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text,
                            DSRCodedEntryValue("121106", "DCM", "Comment")),
        "SR");
  tree.getCurrentContentItem().setStringValue(not_for_diagnostic_use());
  check(doc.getCurrentRequestedProcedureEvidence().addItem(src.study.c_str(), src.series.c_str(),
                                                            src.sop_class.c_str(), src.sop_instance.c_str()),
        "SR: evidence");

  DcmFileFormat out;
  check(doc.write(*out.getDataset()), "SR: cannot encode the report");
  copy_study(src.ds, out.getDataset());
  save(out, out_path);

  DerivedInstance d;
  d.path = out_path;
  d.study_uid = src.study;
  d.sop_class_uid = get(out.getDataset(), DCM_SOPClassUID);
  d.sop_instance_uid = get(out.getDataset(), DCM_SOPInstanceUID);
  d.series_uid = get(out.getDataset(), DCM_SeriesInstanceUID);
  return d;
}

DerivedInstance write_sc(const std::string& source_path, const cv::Mat& image, const std::string& description,
                         const std::string& out_path) {
  if (image.empty() || (image.type() != CV_8UC1 && image.type() != CV_16UC1 && image.type() != CV_8UC3))
    throw InvalidArgument("Secondary Capture for " + source_path + ": image must be 8/16-bit grey or 8-bit RGB, got type " +
                          std::to_string(image.type()));
  if (image.rows > 65535 || image.cols > 65535)
    throw InvalidArgument("Secondary Capture for " + source_path + ": image larger than 65535 pixels on a side");
  Source src;
  load_source(source_path, src);

  DcmFileFormat out;
  DcmDataset* ds = out.getDataset();
  copy_study(src.ds, ds);
  DerivedInstance d;
  d.path = out_path;
  d.study_uid = src.study;
  d.sop_class_uid = UID_SecondaryCaptureImageStorage;
  d.sop_instance_uid = new_uid();
  d.series_uid = new_uid();
  const std::string date = now("%Y%m%d"), time = now("%H%M%S");
  check(ds->putAndInsertString(DCM_SOPClassUID, d.sop_class_uid.c_str()), "SC");
  ds->putAndInsertString(DCM_SOPInstanceUID, d.sop_instance_uid.c_str());
  ds->putAndInsertString(DCM_SeriesInstanceUID, d.series_uid.c_str());
  ds->putAndInsertString(DCM_Modality, "OT");
  ds->putAndInsertString(DCM_SeriesNumber, "9902");
  ds->putAndInsertString(DCM_InstanceNumber, "1");
  ds->putAndInsertString(DCM_SeriesDescription, description.substr(0, 64).c_str());
  ds->putAndInsertString(DCM_ImageType, "DERIVED\\SECONDARY");
  ds->putAndInsertString(DCM_ConversionType, "WSD");
  ds->putAndInsertString(DCM_Manufacturer, "gst-cxr");
  ds->putAndInsertString(DCM_BurnedInAnnotation, "NO");
  ds->putAndInsertString(DCM_DerivationDescription, not_for_diagnostic_use());
  ds->putAndInsertString(DCM_ImageComments, not_for_diagnostic_use());
  ds->putAndInsertString(DCM_ContentDate, date.c_str());
  ds->putAndInsertString(DCM_ContentTime, time.c_str());
  ds->putAndInsertString(DCM_InstanceCreationDate, date.c_str());
  ds->putAndInsertString(DCM_InstanceCreationTime, time.c_str());
  ds->putAndInsertString(DCM_PatientOrientation, "");
  DcmItem* ref = nullptr;
  check(ds->findOrCreateSequenceItem(DCM_SourceImageSequence, ref, -2), "SC: Source Image Sequence");
  ref->putAndInsertString(DCM_ReferencedSOPClassUID, src.sop_class.c_str());
  ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, src.sop_instance.c_str());

  const bool rgb = image.channels() == 3;
  const bool sixteen = image.depth() == CV_16U;
  ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(image.rows));
  ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(image.cols));
  ds->putAndInsertUint16(DCM_SamplesPerPixel, rgb ? 3 : 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, rgb ? "RGB" : "MONOCHROME2");
  if (rgb) ds->putAndInsertUint16(DCM_PlanarConfiguration, 0);
  ds->putAndInsertUint16(DCM_BitsAllocated, sixteen ? 16 : 8);
  ds->putAndInsertUint16(DCM_BitsStored, sixteen ? 16 : 8);
  ds->putAndInsertUint16(DCM_HighBit, sixteen ? 15 : 7);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  // Rows may be padded (ROI, strided frames): copy into one contiguous block.
  const cv::Mat pixels = image.isContinuous() ? image : image.clone();
  if (sixteen)
    check(ds->putAndInsertUint16Array(DCM_PixelData, pixels.ptr<Uint16>(), static_cast<unsigned long>(pixels.total())),
          "SC: pixel data");
  else
    check(ds->putAndInsertUint8Array(DCM_PixelData, pixels.ptr<Uint8>(),
                                     static_cast<unsigned long>(pixels.total() * pixels.channels())),
          "SC: pixel data");
  save(out, out_path);
  return d;
}

}  // namespace cxr::dicom
