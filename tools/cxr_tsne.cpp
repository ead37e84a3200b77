// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr tsne: 2-D t-SNE of a feature table (e.g. penultimate-layer embeddings of a test set).
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cxr/error.hpp"
#include "cxr/explain/feature_table.hpp"
#include "cxr/explain/tsne.hpp"
#include "cxr/util/csv.hpp"

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
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> const char* {
        if (i + 1 >= argc) throw InvalidArgument(a + ": missing value");
        return argv[++i];
      };
      if (a == "-o" || a == "--output") output = value();
      else if (a == "--perplexity") params.perplexity = parse_number("--perplexity", value());
      else if (a == "--iterations") params.iterations = static_cast<int>(parse_integer("--iterations", value()));
      else if (a == "--learning-rate") {
        const std::string v = value();
        params.learning_rate = v == "auto" ? 0.0 : parse_number("--learning-rate", v.c_str());
        if (v != "auto" && !(params.learning_rate > 0))
          throw InvalidArgument("--learning-rate: must be > 0 or 'auto', got '" + v + "'");
      } else if (a == "--method") params.method = parse_tsne_method(value());
      else if (a == "--theta") params.theta = parse_number("--theta", value());
      else if (a == "--init") {
        const std::string v = value();
        if (v == "pca") params.init = TsneInit::pca;
        else if (v == "random") params.init = TsneInit::random;
        else throw InvalidArgument("--init: expected pca or random, got '" + v + "'");
      } else if (a == "--seed") {
        const long long s = parse_integer("--seed", value());
        if (s < 0) throw InvalidArgument("--seed: must be >= 0, got " + std::to_string(s));
        params.seed = static_cast<std::uint64_t>(s);
      } else if (a == "--threads") params.threads = static_cast<int>(parse_integer("--threads", value()));
      else if (a == "--trustworthiness") trust_k = static_cast<int>(parse_integer("--trustworthiness", value()));
      else if (!a.empty() && a[0] == '-') throw InvalidArgument("unknown option '" + a + "'");
      else if (input.empty()) input = a;
      else throw InvalidArgument("unexpected argument '" + a + "'");
    }
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
