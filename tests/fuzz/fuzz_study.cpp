// SPDX-License-Identifier: LGPL-2.1-or-later
// Study and sweep TOML, as `cxr study` reads it, with one real pipeline file beside it.
#include <cstddef>
#include <cstdint>

#include "cxr/error.hpp"
#include "cxr/report/study.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = [] {
    cxr::fuzz::write_file("train.toml",
                          "[variables]\ndata = \"scans\"\noutput = \"out\"\nlearning-rate = 0.001\n\n"
                          "[[element]]\nfactory = \"cxrscansrc\"\nlocation = \"${data}\"\n\n"
                          "[[element]]\nfactory = \"cxrtrain\"\noutput-dir = \"${output}\"\n"
                          "learning-rate = \"${learning-rate}\"\n");
    return true;
  }();
  (void)once;
  const std::string path = cxr::fuzz::write_file("study.toml", data, size);
  cxr::config::Variables set;
  if (size & 1) set["data"] = "/data/${x}";
  try {
    cxr::report::load_study(path, set);
  } catch (const cxr::Error&) {
  }
  return 0;
}
