// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr tsne: 2-D t-SNE of a feature table (e.g. penultimate-layer embeddings of a test set).
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/explain/feature_table.hpp"
#include "cxr/explain/tsne.hpp"
#include "cxr/util/csv.hpp"
#include "cxr_cli.hpp"

const char* cxr_help_tsne =
    "2-D t-SNE of a feature table (exact or Barnes-Hut)\n"
    "usage: cxr tsne IN.csv --output OUT.csv [options]\n"
    "  IN.csv has a header row; a column named 'label' (optional) is passed through, every other\n"
    "  column is a numeric feature. OUT.csv gets 'x,y' (and 'label'), one row per input row in order.\n"
    "options:\n"
    "  -o, --output FILE        output CSV (required)\n"
    "  --perplexity P           effective number of neighbours, 0 < P < rows (default 30)\n"
    "  --iterations N           gradient steps, 250 of them with early exaggeration (default 1000)\n"
    "  --learning-rate R        step size; 'auto' = max(rows / 48, 50) (default auto)\n"
    "  --method M               exact | barnes-hut | auto (default auto: exact up to 1000 rows)\n"
    "  --theta T                Barnes-Hut opening angle (default 0.5)\n"
    "  --init I                 pca | random (default pca)\n"
    "  --seed S                 seed of --init random; PCA initialisation does not depend on it (default 0)\n"
    "  --threads N              worker threads, 0 = all cores; the result does not depend on it (default 0)\n"
    "  --trustworthiness K      also report sklearn-style trustworthiness with K neighbours (O(rows^2) time)\n"
    "Prints rows, dimensions, method, seconds per phase and the final KL divergence to stderr.";

namespace {

using cxr::ConfigError;
using cxr::InvalidArgument;
using cxr::IoError;

using cxr::util::csv_field;

double parse_number(const char* opt, const char* s) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || !std::isfinite(v))
    throw InvalidArgument(std::string(opt) + ": expected a number, got '" + s + "'");
  return v;
}

long long parse_integer(const char* opt, const char* s) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE)
    throw InvalidArgument(std::string(opt) + ": expected an integer, got '" + s + "'");
  return v;
}

}  // namespace

int cxr_cmd_tsne(int argc, char** argv) {
  using namespace cxr::explain;
  std::string input, output;
  TsneParams params;
  int trust_k = 0;
  CLI::App app;
  cxrtool::configure(app);
  // Values are converted here rather than by CLI11, for messages that name the option and the
  // accepted range.
  auto option = [&app](const char* name, const char* type, std::function<void(const char*)> set) {
    app.add_option_function<std::string>(name, [set](const std::string& v) { set(v.c_str()); })->type_name(type);
  };
  app.add_option("input", input)->type_name("IN.csv");
  app.add_option("-o,--output", output)->type_name("FILE");
  option("--perplexity", "P", [&](const char* v) { params.perplexity = parse_number("--perplexity", v); });
  option("--iterations", "N",
         [&](const char* v) { params.iterations = static_cast<int>(parse_integer("--iterations", v)); });
  option("--learning-rate", "R", [&](const char* v) {
    const std::string s = v;
    params.learning_rate = s == "auto" ? 0.0 : parse_number("--learning-rate", v);
    if (s != "auto" && !(params.learning_rate > 0))
      throw InvalidArgument("--learning-rate: must be > 0 or 'auto', got '" + s + "'");
  });
  option("--method", "M", [&](const char* v) { params.method = parse_tsne_method(v); });
  option("--theta", "T", [&](const char* v) { params.theta = parse_number("--theta", v); });
  option("--init", "I", [&](const char* v) {
    const std::string s = v;
    if (s != "pca" && s != "random") throw InvalidArgument("--init: expected pca or random, got '" + s + "'");
    params.init = s == "pca" ? TsneInit::pca : TsneInit::random;
  });
  option("--seed", "S", [&](const char* v) {
    const long long s = parse_integer("--seed", v);
    if (s < 0) throw InvalidArgument("--seed: must be >= 0, got " + std::to_string(s));
    params.seed = static_cast<std::uint64_t>(s);
  });
  option("--threads", "N", [&](const char* v) { params.threads = static_cast<int>(parse_integer("--threads", v)); });
  option("--trustworthiness", "K",
         [&](const char* v) { trust_k = static_cast<int>(parse_integer("--trustworthiness", v)); });
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "tsne", cxr_help_tsne)) return *status;
    cxrtool::reject_unknown(app);
    if (input.empty() || output.empty()) {
      std::fprintf(stderr, "usage: cxr tsne IN.csv --output OUT.csv [options]   (cxr tsne --help)\n");
      return 2;
    }
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr tsne: %s\n", e.what());
    return 2;
  }

  try {
    const auto t0 = std::chrono::steady_clock::now();
    const FeatureTable table = read_feature_table(input);
    const double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "cxr tsne: %s: %d rows, %d dimensions%s (read in %.2f s)\n", input.c_str(), table.features.rows,
                 table.features.cols, table.has_label ? ", labelled" : "", read_s);
    const TsneResult r = tsne(table.features, params);
    std::fprintf(stderr,
                 "cxr tsne: method %s, perplexity %g, learning rate %g, %d iterations, init %s\n"
                 "cxr tsne: affinities %.2f s, optimisation %.2f s, total %.2f s, KL divergence %.6f\n",
                 to_string(r.method).c_str(), params.perplexity, r.learning_rate, r.iterations,
                 params.init == TsneInit::pca ? "pca" : "random", r.affinity_seconds, r.optimise_seconds,
                 r.affinity_seconds + r.optimise_seconds, r.kl_divergence);

    FILE* out = std::fopen(output.c_str(), "w");
    if (!out) throw IoError("cannot write " + output + ": " + std::strerror(errno));
    std::fprintf(out, table.has_label ? "x,y,label\n" : "x,y\n");
    for (int i = 0; i < r.embedding.rows; ++i) {
      // 17 significant digits: the file is the exact result, so equal runs give equal files.
      std::fprintf(out, "%.17g,%.17g", r.embedding.at<double>(i, 0), r.embedding.at<double>(i, 1));
      if (table.has_label) std::fprintf(out, ",%s", csv_field(table.labels[static_cast<size_t>(i)]).c_str());
      std::fputc('\n', out);
    }
    if (std::fclose(out) != 0) throw IoError("cannot write " + output + ": " + std::strerror(errno));

    if (trust_k > 0) {
      const auto t1 = std::chrono::steady_clock::now();
      const double t = trustworthiness(table.features, r.embedding, trust_k, params.threads);
      std::fprintf(stderr, "cxr tsne: trustworthiness (k = %d) %.6f (%.2f s)\n", trust_k, t,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
    }
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr tsne: %s\n", e.what());
    return 1;
  }
  return 0;
}
