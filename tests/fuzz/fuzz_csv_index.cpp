// SPDX-License-Identifier: LGPL-2.1-or-later
// The CSV index of cxrscansrc (index_dataset with `labels`), in each of its column modes: the
// default column names, a class-name column ('|' for several labels), one 0/1 column per
// class, explicit path/patient/split columns, and a class subset.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "cxr/data/dataset.hpp"
#include "cxr/error.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string path = cxr::fuzz::write_file("index.csv", data + 1, size - 1);
  cxr::data::IndexParams params;
  params.labels = path;
  params.location = cxr::fuzz::scratch_dir();
  switch (data[0] % 5) {
    case 0: break;  // path / Image Index / ... and label, patient_id, split found by name
    case 1: params.label_column = "Finding Labels"; break;
    case 2: params.label_columns = {"Atelectasis", "Effusion", "No Finding"}; break;
    case 3:
      params.path_column = "file";
      params.label_column = "label";
      params.patient_column = "Patient ID";
      params.split_column = "fold";
      break;
    default:
      params.label_column = "label";
      params.classes = {"normal", "pneumonia", "covid"};
      break;
  }
  try {
    const cxr::data::Dataset ds = cxr::data::index_dataset(params);
    const auto counts = ds.class_counts();
    for (const auto& s : ds.samples) {
      const bool bad_label = s.label >= int(ds.classes.size()) || s.label < -1;
      const bool bad_labels = !s.labels.empty() && s.labels.size() != ds.classes.size();
      if (bad_label || bad_labels) {
        std::fprintf(stderr, "index_dataset: a sample's labels do not fit its %zu classes\n", ds.classes.size());
        std::abort();
      }
    }
    (void)counts;
  } catch (const cxr::Error&) {
  }
  return 0;
}
