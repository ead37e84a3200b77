// SPDX-License-Identifier: LGPL-2.1-or-later
// Catch2 main for element tests: initialises GStreamer once.
#define CATCH_CONFIG_RUNNER
#include "cxr_catch.hpp"
#include <gst/gst.h>

int main(int argc, char* argv[]) {
  gst_init(nullptr, nullptr);
  const int rc = Catch::Session().run(argc, argv);
  return rc;
}
