// SPDX-License-Identifier: LGPL-2.1-or-later
// Pipeline TOML, as `cxr run`, `cxr launch` and `cxr explain` read it: includes (a real file
// beside it, and itself), variables with --set, the launch string, and the variable scan that
// `cxr study` runs over a run's pipeline.
#include <cstddef>
#include <cstdint>

#include "cxr/config/pipeline.hpp"
#include "cxr/error.hpp"
#include "cxr/report/study.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = [] {
    cxr::fuzz::write_file("inc.toml",
                          "[variables]\nsize = 256\n\n[[element]]\nfactory = \"cxrresize\"\nwidth = \"${size}\"\n");
    return true;
  }();
  (void)once;
  const std::string path = cxr::fuzz::write_file("pipeline.toml", data, size);
  cxr::config::Variables set;
  if (size & 1) set["input"] = "scans/${x}$$";
  try {
    const cxr::config::Pipeline p = cxr::config::load_pipeline(path, set);
    cxr::config::to_shell_command(p);
  } catch (const cxr::Error&) {
  }
  try {
    cxr::report::pipeline_has_variable(path, "input");
  } catch (const cxr::Error&) {
  }
  return 0;
}
