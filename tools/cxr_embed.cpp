// SPDX-License-Identifier: LGPL-2.1-or-later
// cxr embed: the embeddings of a results file as the feature table `cxr tsne` reads.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cxr/error.hpp"
#include "cxr/util/csv.hpp"
#include "cxr/util/json.hpp"
#include "cxr_cli.hpp"

const char* cxr_help_embed =
    "collect the embeddings of a results file (JSON lines) into a CSV for cxr tsne\n"
    "usage: cxr embed RESULTS.jsonl --output OUT.csv [options]\n"
    "  RESULTS.jsonl comes from cxrresultsink embeddings=true behind cxrinfer embeddings=true, e.g.\n"
    "    gst-launch-1.0 cxrscansrc location=scans/ ! cxrdecode ! cxrinfer model=card.toml embeddings=true \\\n"
    "      ! cxrresultsink location=results.jsonl embeddings=true\n"
    "  OUT.csv: header 'label,f0,...,fN-1' (what cxr tsne reads), one row per scan in file order.\n"
    "  Error rows are skipped and counted; rows without an embedding are errors.\n"
    "options:\n"
    "  -o, --output FILE   output CSV (required)\n"
    "  --label L           truth (the scan's ground truth: 'label', or its 'labels' joined by '+';\n"
    "                      'none' when absent) | predicted (the model's decision) (default truth)\n"
    "  --split S           only rows of this split (train, val, test)\n"
    "  --path              add a 'path' column after 'label' (for joins; cxr tsne does not read it)\n"
    "Prints rows written, rows skipped and the dimension to stderr.";

namespace {

using cxr::ConfigError;
using cxr::InvalidArgument;
using cxr::IoError;
using cxr::util::csv_field;
using cxr::util::json_get;
using nlohmann::json;

/// A string, or the names of a list joined by '+'; empty when absent.
std::string names_of(const json* v) {
  if (!v) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number()) return std::to_string(static_cast<long long>(v->get<double>()));
  if (!v->is_array()) return "";
  std::string out;
  for (const json& item : *v) {
    if (item.is_string()) out += (out.empty() ? "" : "+") + item.get<std::string>();
  }
  return out;
}

}  // namespace

int cxr_cmd_embed(int argc, char** argv) {
  std::string input, output, split;
  bool predicted = false, with_path = false;
  CLI::App app;
  cxrtool::configure(app);
  app.add_option("input", input)->type_name("RESULTS.jsonl");
  app.add_option("-o,--output", output)->type_name("FILE");
  auto label = [&predicted](const std::string& v) {
    if (v != "truth" && v != "predicted")
      throw InvalidArgument("--label: expected truth or predicted, got '" + v + "'");
    predicted = v == "predicted";
  };
  app.add_option_function<std::string>("--label", label)->type_name("L");
  app.add_option("--split", split)->type_name("S");
  app.add_flag("--path", with_path);
  try {
    if (const auto status = cxrtool::parse(app, argc, argv, "embed", cxr_help_embed)) return *status;
    cxrtool::reject_unknown(app);
    if (input.empty() || output.empty()) {
      std::fprintf(stderr, "usage: cxr embed RESULTS.jsonl --output OUT.csv [options]   (cxr embed --help)\n");
      return 2;
    }
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "cxr embed: %s\n", e.what());
    return 2;
  }

  const std::string tmp = output + ".part";
  try {
    std::ifstream in(input);
    if (!in) throw IoError("cannot read " + input + ": " + std::strerror(errno));
    std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(tmp.c_str(), "w"), std::fclose);
    if (!out) throw IoError("cannot write " + tmp + ": " + std::strerror(errno));
    size_t dim = 0, rows = 0, errors = 0, other_split = 0;
    int line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = input + ":" + std::to_string(line_no) + ": ";
      const json row = cxr::util::parse_json(line, input + ":" + std::to_string(line_no));
      if (!row.is_object()) throw ConfigError(where + "not a JSON object");
      if (json_get(row, "error")) {
        ++errors;
        continue;
      }
      if (!split.empty() && names_of(json_get(row, "split")) != split) {
        ++other_split;
        continue;
      }
      const json* e = json_get(row, "embedding");
      if (!e || !e->is_array() || e->empty()) {
        throw ConfigError(where + "no \"embedding\" (run cxrinfer and cxrresultsink with embeddings=true)");
      }
      if (dim == 0) {
        dim = e->size();
        std::fprintf(out.get(), with_path ? "label,path" : "label");
        for (size_t k = 0; k < dim; ++k) std::fprintf(out.get(), ",f%zu", k);
        std::fputc('\n', out.get());
      } else if (e->size() != dim) {
        throw ConfigError(where + "embedding has " + std::to_string(e->size()) + " values, earlier rows " +
                          std::to_string(dim));
      }
      std::string label = predicted ? names_of(json_get(row, "predicted"))
                                    : names_of(json_get(row, "label")).empty() ? names_of(json_get(row, "labels"))
                                                                               : names_of(json_get(row, "label"));
      if (label.empty()) label = "none";
      std::fputs(csv_field(label).c_str(), out.get());
      if (with_path) std::fprintf(out.get(), ",%s", csv_field(names_of(json_get(row, "path"))).c_str());
      for (const json& v : *e) {
        if (!v.is_number() || !std::isfinite(v.get<double>())) throw ConfigError(where + "embedding holds a non-number");
        // 9 significant digits: every float32 value round-trips.
        std::fprintf(out.get(), ",%.9g", v.get<double>());
      }
      std::fputc('\n', out.get());
      ++rows;
    }
    if (rows == 0) throw ConfigError(input + ": no rows with an embedding" + (split.empty() ? "" : " in split " + split));
    if (std::fclose(out.release()) != 0) throw IoError("cannot write " + tmp + ": " + std::strerror(errno));
    if (std::rename(tmp.c_str(), output.c_str()) != 0) throw IoError("cannot write " + output + ": " + std::strerror(errno));
    std::fprintf(stderr, "cxr embed: %zu rows of %zu features to %s (%zu error rows skipped%s)\n", rows, dim,
                 output.c_str(), errors,
                 split.empty() ? "" : (", " + std::to_string(other_split) + " of other splits").c_str());
  } catch (const cxr::Error& e) {
    std::remove(tmp.c_str());  // no partial table left behind
    std::fprintf(stderr, "cxr embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
