// SPDX-License-Identifier: LGPL-2.1-or-later
// Run directories as `cxr report` reads them: the JSON reader over summary.json, each row of
// metrics.jsonl and run.json. The first byte picks which file(s) the rest of the input becomes.
#include <cstddef>
#include <cstdint>

#include "cxr/error.hpp"
#include "cxr/report/runs.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* const kFiles[] = {"summary.json", "metrics.jsonl", "run.json"};
  const unsigned mode = data[0] % 4;  // 0..2: that file alone; 3: all three
  for (unsigned k = 0; k < 3; ++k) {
    if (mode == 3 || mode == k)
      cxr::fuzz::write_file(kFiles[k], data + 1, size - 1);
    else
      cxr::fuzz::remove_file(kFiles[k]);
  }
  try {
    const cxr::report::RunInfo run = cxr::report::load_run(cxr::fuzz::scratch_dir());
    cxr::report::runs_csv({run});
    cxr::report::is_lr_ablation({run, run});
  } catch (const cxr::Error&) {
  }
  return 0;
}
