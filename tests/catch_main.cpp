// SPDX-License-Identifier: LGPL-2.1-or-later
// Catch2 main for the library tests (Catch2 v2 compiles its runner here; v3 has it in its library).
#define CATCH_CONFIG_RUNNER
#include "cxr_catch.hpp"

int main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
