// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr: the gst-cxr command-line tool. Dispatches to one subcommand per file (cxr_<name>.cpp).
#include <cstdio>
#include <cstring>
#include <vector>
#include <string>

#include "cxr/runtime/blas.hpp"
#include "cxr/runtime/cpu.hpp"
#include "cxr_config.h"

#define CXR_COMMAND(name)                     \
  int cxr_cmd_##name(int argc, char** argv); \
  extern const char* cxr_help_##name;
#include "cxr-commands.h"
#undef CXR_COMMAND

namespace {
struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* help;
};

const Command kCommands[] = {
#define CXR_COMMAND(name) {#name, cxr_cmd_##name, cxr_help_##name},
#include "cxr-commands.h"
#undef CXR_COMMAND
    {nullptr, nullptr, nullptr}};

void usage(FILE* out) {
  std::fprintf(out, "usage: cxr <command> [options]   (cxr <command> --help for details)\n\ncommands:\n");
  for (const Command* c = kCommands; c->name; ++c) {
    // First line of each command's help is its one-line summary.
    std::string first(c->help);
    first = first.substr(0, first.find('\n'));
    std::fprintf(out, "  %-10s %s\n", c->name, first.c_str());
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // Before any command computes: OpenBLAS's kernels for this CPU, the CPU allocator
  // (cxr/runtime/cpu.hpp; the notes are what --version shows).
  const std::vector<std::string> runtime_notes = cxr::runtime::prepare_cpu_runtime();
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("cxr %s\n", CXR_VERSION);
    const auto blas = cxr::runtime::blas_info();
    if (!blas.library.empty()) {
      std::printf("BLAS: %s, kernels %s, threads: %s\n", blas.library.c_str(), blas.core.c_str(),
                  blas.threading.c_str());
    }
    for (const auto& note : runtime_notes) std::printf("  %s\n", note.c_str());
    return 0;
  }
  for (const Command* c = kCommands; c->name; ++c) {
    if (!std::strcmp(argv[1], c->name)) {
      if (argc > 2 && (!std::strcmp(argv[2], "--help") || !std::strcmp(argv[2], "-h"))) {
        std::printf("cxr %s: %s\n", c->name, c->help);
        return 0;
      }
      return c->fn(argc - 1, argv + 1);
    }
  }
  std::fprintf(stderr, "cxr: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
