// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/data/dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <strings.h>

#include "cxr/error.hpp"
#include "cxr/util/csv.hpp"

namespace fs = std::filesystem;

namespace cxr::data {

const char* to_string(Split s) {
  switch (s) {
    case Split::Train: return "train";
    case Split::Val: return "val";
    case Split::Test: return "test";
    default: return "none";
  }
}

Split split_from_string(const std::string& s) {
  const char* c = s.c_str();
  if (!strcasecmp(c, "train")) return Split::Train;
  if (!strcasecmp(c, "val") || !strcasecmp(c, "valid") || !strcasecmp(c, "validation")) return Split::Val;
  if (!strcasecmp(c, "test")) return Split::Test;
  return Split::None;
}

std::vector<uint64_t> Dataset::class_counts() const {
  std::vector<uint64_t> n(classes.size(), 0);
  for (const auto& s : samples) {
    if (task == Task::Multiclass && s.label >= 0 && static_cast<size_t>(s.label) < n.size()) ++n[s.label];
    if (task == Task::Multilabel)
      for (size_t i = 0; i < s.labels.size() && i < n.size(); ++i) n[i] += s.labels[i];
  }
  return n;
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Files that sit beside scans but are never scans.
bool is_sidecar(const fs::path& p) {
  static const std::set<std::string> skip = {".csv", ".txt", ".md", ".json", ".jsonl", ".toml", ".gz",
                                             ".zip", ".html", ".pdf", ".py", ".sh", ".lst", ".tsv"};
  return skip.count(lower(p.extension().string())) > 0;
}

bool wanted(const fs::path& p, const IndexParams& params) {
  const std::string name = p.filename().string();
  if (name.empty() || name[0] == '.') return false;
  if (!params.extensions.empty()) {
    std::string ext = lower(p.extension().string());
    if (!ext.empty()) ext.erase(0, 1);
    return std::find(params.extensions.begin(), params.extensions.end(), ext) != params.extensions.end();
  }
  return !is_sidecar(p);
}

// Regular files under dir (recursively, following links as ImageFolder does), sorted.
std::vector<std::string> list_files(const fs::path& dir, const IndexParams& params, bool recursive) {
  std::vector<std::string> out;
  std::error_code ec;
  if (recursive) {
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end;
         !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().rfind('.', 0) == 0 && it->is_directory()) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && wanted(it->path(), params)) out.push_back(it->path().string());
    }
  } else {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_regular_file() && wanted(it->path(), params)) out.push_back(it->path().string());
  }
  if (ec) throw IoError(dir.string() + ": cannot list folder: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> subdirs(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] != '.' && it->is_directory()) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> class_order(const std::set<std::string>& found, const IndexParams& params) {
  if (params.classes.empty()) return {found.begin(), found.end()};
  return params.classes;
}

int class_index(const std::vector<std::string>& classes, const std::string& name) {
  const auto it = std::find(classes.begin(), classes.end(), name);
  return it == classes.end() ? -1 : static_cast<int>(it - classes.begin());
}

Dataset index_folder(const fs::path& root, const IndexParams& params) {
  Dataset ds;
  // A train/ val/ test/ level above the classes sets the split.
  std::vector<std::pair<Split, fs::path>> parts;
  for (const auto& d : subdirs(root)) {
    const Split s = split_from_string(d);
    if (s != Split::None) parts.emplace_back(s, root / d);
  }
  if (parts.empty()) parts.emplace_back(Split::None, root);
  // train, then val, then test, whatever the folders are called.
  std::stable_sort(parts.begin(), parts.end(),
                   [](const auto& a, const auto& b) { return static_cast<int>(a.first) < static_cast<int>(b.first); });

  std::set<std::string> names;
  for (const auto& [split, dir] : parts)
    for (const auto& c : subdirs(dir)) names.insert(c);
  ds.classes = class_order(names, params);
  ds.task = ds.classes.empty() ? Task::None : Task::Multiclass;

  for (const auto& [split, dir] : parts) {
    // Files directly inside are unlabelled scans.
    for (auto& f : list_files(dir, params, false)) ds.samples.push_back({f, -1, {}, split, {}});
    for (const auto& c : subdirs(dir)) {
      const int label = class_index(ds.classes, c);
      if (label < 0) continue;  // not among the requested classes
      for (auto& f : list_files(dir / c, params, true)) ds.samples.push_back({f, label, {}, split, {}});
    }
  }
  return ds;
}

Dataset index_list(const fs::path& list) {
  std::ifstream in(list);
  if (!in) throw IoError(list.string() + ": cannot open list file");
  Dataset ds;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    fs::path p(line);
    if (p.is_relative()) p = list.parent_path() / p;
    ds.samples.push_back({p.string(), -1, {}, Split::None, {}});
  }
  return ds;
}

std::vector<std::string> split_list(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    const std::string item = trim(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (!item.empty()) out.push_back(item);
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

Dataset index_csv(const IndexParams& params) {
  const util::CsvTable t = util::read_csv(params.labels);
  auto where = [&](size_t row) { return t.path + ":" + std::to_string(t.lines[row]); };
  auto need = [&](const std::string& name) {
    const int c = t.column(name);
    if (c < 0) {
      std::string cols;
      for (const auto& h : t.header) cols += (cols.empty() ? "" : ", ") + h;
      throw ConfigError(t.path + ":1: no column '" + name + "' (columns: " + cols + ")");
    }
    return c;
  };
  const int path_col = params.path_column.empty()
                           ? t.column_any({"path", "Image Index", "image", "filename", "file"})
                           : need(params.path_column);
  if (path_col < 0) throw ConfigError(t.path + ":1: no path column (expected one of path, Image Index, image, filename)");
  const int patient_col = params.patient_column.empty() ? t.column_any({"patient_id", "Patient ID", "patient"})
                                                        : need(params.patient_column);
  const int split_col = params.split_column.empty() ? t.column("split") : need(params.split_column);
  int label_col = params.label_column.empty() ? -1 : need(params.label_column);
  if (label_col < 0 && params.label_columns.empty()) label_col = t.column("label");

  fs::path root = params.location.empty() ? fs::path(params.labels).parent_path() : fs::path(params.location);
  if (fs::is_regular_file(root)) root = root.parent_path();

  Dataset ds;
  std::vector<int> hot_cols;
  if (!params.label_columns.empty()) {
    ds.task = Task::Multilabel;
    ds.classes = params.label_columns;
    for (const auto& c : params.label_columns) hot_cols.push_back(need(c));
  } else if (label_col >= 0) {
    // Class names are the column's values; a '|' in any value makes it multi-label
    // (ChestX-ray8's "Finding Labels").
    std::set<std::string> names;
    bool multi = false;
    for (const auto& r : t.rows) {
      const auto parts = split_list(r[label_col], '|');
      multi = multi || parts.size() > 1;
      names.insert(parts.begin(), parts.end());
    }
    ds.task = multi ? Task::Multilabel : Task::Multiclass;
    ds.classes = class_order(names, params);
  }

  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& r = t.rows[i];
    Sample s;
    fs::path p(trim(r[path_col]));
    if (p.empty()) throw ConfigError(where(i) + ": empty path");
    s.path = (p.is_relative() ? root / p : p).string();
    if (patient_col >= 0) s.patient_id = trim(r[patient_col]);
    if (split_col >= 0) s.split = split_from_string(trim(r[split_col]));
    if (!hot_cols.empty()) {
      for (const int c : hot_cols) {
        const std::string v = trim(r[c]);
        if (v != "0" && v != "1" && v != "0.0" && v != "1.0")
          throw ConfigError(where(i) + ": column '" + t.header[c] + "' must be 0 or 1, got '" + v + "'");
        s.labels.push_back(v[0] == '1' ? 1 : 0);
      }
    } else if (label_col >= 0) {
      const auto parts = split_list(r[label_col], '|');
      if (ds.task == Task::Multilabel) {
        s.labels.assign(ds.classes.size(), 0);
        bool other = false;
        for (const auto& name : parts) {
          const int k = class_index(ds.classes, name);
          if (k >= 0) s.labels[k] = 1; else other = true;
        }
        // With an explicit class list, rows carrying another finding are left out.
        if (other && !params.classes.empty()) continue;
      } else {
        s.label = parts.empty() ? -1 : class_index(ds.classes, parts[0]);
        if (s.label < 0 && !params.classes.empty()) continue;
      }
    }
    ds.samples.push_back(std::move(s));
  }
  return ds;
}

}  // namespace

Dataset index_dataset(const IndexParams& params) {
  if (!params.labels.empty()) {
    if (!fs::exists(params.labels)) throw IoError(params.labels + ": labels CSV does not exist");
    return index_csv(params);
  }
  if (params.location.empty()) throw InvalidArgument("no location given");
  const fs::path loc(params.location);
  std::error_code ec;
  if (fs::is_directory(loc, ec)) return index_folder(loc, params);
  if (!fs::exists(loc, ec)) throw IoError(params.location + ": no such file or folder");
  const std::string ext = lower(loc.extension().string());
  if (ext == ".csv") {
    IndexParams p = params;
    p.labels = params.location;
    p.location.clear();
    return index_csv(p);
  }
  if (ext == ".txt" || ext == ".lst" || ext == ".list") return index_list(loc);
  Dataset ds;  // a single scan
  ds.samples.push_back({params.location, -1, {}, Split::None, {}});
  return ds;
}

}  // namespace cxr::data
