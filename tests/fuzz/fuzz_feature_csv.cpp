// SPDX-License-Identifier: LGPL-2.1-or-later
// The t-SNE / embedding CSVs: the feature table `cxr tsne` reads, and the tsne.csv of a run
// directory that `cxr report` turns into a gnuplot figure. The figure's data blocks must hold
// numbers only, whatever the file holds: a field that ends a block early would be run by
// gnuplot as a command.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "cxr/error.hpp"
#include "cxr/explain/feature_table.hpp"
#include "cxr/report/plot.hpp"
#include "fuzz_common.hpp"

namespace {

bool numeric_line(const std::string& line) {
  std::istringstream in(line);
  double x = 0, y = 0;
  std::string rest;
  return static_cast<bool>(in >> x >> y) && !(in >> rest);
}

void check_script(const std::string& script) {
  std::istringstream in(script);
  std::string line;
  bool in_block = false;
  while (std::getline(in, line)) {
    if (in_block) {
      if (line == "EOD") in_block = false;
      else if (!numeric_line(line)) {
        std::fprintf(stderr, "tsne_figure: a data block holds '%s', not two numbers\n", line.c_str());
        std::abort();
      }
    } else if (line.size() > 7 && line.compare(line.size() - 7, 7, " << EOD") == 0) {
      in_block = true;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = cxr::fuzz::write_file("tsne.csv", data, size);
  try {
    const cxr::explain::FeatureTable t = cxr::explain::read_feature_table(path);
    if (t.has_label && t.labels.size() != size_t(t.features.rows)) {
      std::fprintf(stderr, "read_feature_table: %zu labels for %d rows\n", t.labels.size(), t.features.rows);
      std::abort();
    }
  } catch (const cxr::Error&) {
  }
  try {
    check_script(cxr::report::tsne_figure(path, "t-SNE", "tsne.png").script);
  } catch (const cxr::Error&) {
  }
  return 0;
}
