// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_catch.hpp"
#include <filesystem>
#include <fstream>

#include "cxr/data/dataset.hpp"
#include "cxr/error.hpp"
#include "testutil.hpp"

namespace fs = std::filesystem;
using namespace cxr::data;

using cxrtest::TempDir;

TEST_CASE("class-per-subfolder folders index like ImageFolder", "[dataset]") {
  IndexParams p;
  p.location = cxrtest::samples("pneumonia");
  const Dataset ds = index_dataset(p);
  CHECK(ds.task == Task::Multiclass);
  CHECK(ds.classes == std::vector<std::string>{"bacterial", "normal", "viral"});
  REQUIRE(ds.samples.size() == 60);
  CHECK(ds.class_counts() == std::vector<uint64_t>{20, 20, 20});
  // Sorted by class, then by file name, labels matching the folder.
  for (size_t i = 1; i < ds.samples.size(); ++i) {
    const auto& a = ds.samples[i - 1];
    const auto& b = ds.samples[i];
    CHECK((a.label < b.label || (a.label == b.label && a.path < b.path)));
  }
  for (const auto& s : ds.samples) CHECK(s.path.find("/" + ds.classes[s.label] + "/") != std::string::npos);
}

TEST_CASE("split folders, loose files, hidden files and sidecars", "[dataset]") {
  TempDir t;
  t.touch("train/b/2.png");
  t.touch("train/a/1.png");
  t.touch("train/a/.hidden.png");
  t.touch("val/a/3.dcm");
  t.touch("test/c/4");  // no extension: content decides later
  t.touch("test/c/notes.txt");
  IndexParams p;
  p.location = t.path.string();
  const Dataset ds = index_dataset(p);
  CHECK(ds.classes == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(ds.samples.size() == 4);
  CHECK(ds.samples[0].split == Split::Train);
  CHECK(ds.samples[2].split == Split::Val);
  CHECK(ds.samples[3].split == Split::Test);
  CHECK(fs::path(ds.samples[3].path).filename() == "4");

  SECTION("extensions filter") {
    p.extensions = {"png"};
    CHECK(index_dataset(p).samples.size() == 2);
  }
  SECTION("explicit classes order and subset") {
    p.classes = {"c", "a"};
    const Dataset d2 = index_dataset(p);
    CHECK(d2.classes == std::vector<std::string>{"c", "a"});
    CHECK(d2.samples.size() == 3);
  }
}

TEST_CASE("a flat folder gives unlabelled scans", "[dataset]") {
  IndexParams p;
  p.location = cxrtest::samples("covid");
  const Dataset ds = index_dataset(p);
  CHECK(ds.task == Task::None);
  CHECK(ds.samples.size() == 6);
  for (const auto& s : ds.samples) CHECK(s.label == -1);
}

TEST_CASE("CSV index with 0/1 columns (ChestX-ray8 style)", "[dataset][csv]") {
  IndexParams p;
  p.labels = cxrtest::samples("nih/labels.csv");
  p.label_columns = {"Atelectasis", "Pneumonia", "Effusion"};
  const Dataset ds = index_dataset(p);
  CHECK(ds.task == Task::Multilabel);
  REQUIRE(ds.samples.size() == 3);
  CHECK(ds.samples[2].labels == std::vector<uint8_t>{1, 1, 0});
  CHECK(ds.samples[0].labels == std::vector<uint8_t>{0, 0, 0});
  CHECK(fs::exists(ds.samples[0].path));
  CHECK(ds.class_counts() == std::vector<uint64_t>{1, 1, 0});
}

TEST_CASE("CSV index with a '|' label column and a patient column", "[dataset][csv]") {
  TempDir t;
  t.touch("idx.csv",
          "Image Index,Finding Labels,Patient ID\n"
          "1.png,No Finding,7\n"
          "2.png,Mass|Nodule,7\n"
          "3.png,Hernia,8\n");
  IndexParams p;
  p.labels = (t.path / "idx.csv").string();
  p.label_column = "Finding Labels";
  Dataset ds = index_dataset(p);
  CHECK(ds.task == Task::Multilabel);
  CHECK(ds.classes == std::vector<std::string>{"Hernia", "Mass", "No Finding", "Nodule"});
  CHECK(ds.samples[1].labels == std::vector<uint8_t>{0, 1, 0, 1});
  CHECK(ds.samples[1].patient_id == "7");
  CHECK(ds.samples[0].path == (t.path / "1.png").string());

  SECTION("an explicit class list drops rows with other findings") {
    p.classes = {"Mass", "Nodule", "No Finding"};
    ds = index_dataset(p);
    CHECK(ds.samples.size() == 2);
  }
}

TEST_CASE("CSV single-label column and list files", "[dataset][csv]") {
  TempDir t;
  t.touch("l.csv", "path,label,split\nx/1.png,covid,train\nx/2.png,normal,test\n");
  t.touch("list.txt", "# scans\nx/1.png\n\n/abs/2.dcm\n");
  IndexParams p;
  p.location = (t.path / "l.csv").string();
  const Dataset ds = index_dataset(p);
  CHECK(ds.task == Task::Multiclass);
  CHECK(ds.samples[1].label == 1);
  CHECK(ds.samples[1].split == Split::Test);
  p.location = (t.path / "list.txt").string();
  const Dataset lst = index_dataset(p);
  REQUIRE(lst.samples.size() == 2);
  CHECK(lst.samples[0].path == (t.path / "x/1.png").string());
  CHECK(lst.samples[1].path == "/abs/2.dcm");
}

TEST_CASE("bad indexes name the file and line", "[dataset][csv]") {
  TempDir t;
  t.touch("bad.csv", "path,A\n1.png,1\n2.png,yes\n");
  IndexParams p;
  p.labels = (t.path / "bad.csv").string();
  p.label_columns = {"A"};
  CHECK_THROWS_WITH(index_dataset(p), Catch::Contains("bad.csv:3") && Catch::Contains("'yes'"));
  p.label_columns = {"B"};
  CHECK_THROWS_WITH(index_dataset(p), Catch::Contains("no column 'B'") && Catch::Contains("path, A"));
  IndexParams q;
  q.location = (t.path / "missing").string();
  CHECK_THROWS_AS(index_dataset(q), cxr::IoError);
  CHECK_THROWS_AS(index_dataset(IndexParams{}), cxr::InvalidArgument);
}

// ---- sampling --------------------------------------------------------------------------------
#include <map>
#include <set>

#include "cxr/data/sampling.hpp"

namespace {
Dataset synthetic(int per_class_a, int per_class_b, bool patients = false) {
  Dataset ds;
  ds.task = Task::Multiclass;
  ds.classes = {"a", "b"};
  for (int i = 0; i < per_class_a + per_class_b; ++i) {
    Sample s;
    s.path = "s" + std::to_string(i);
    s.label = i < per_class_a ? 0 : 1;
    if (patients) s.patient_id = "p" + std::to_string(i / 3);  // 3 scans per patient
    ds.samples.push_back(s);
  }
  return ds;
}
std::map<Split, int> split_counts(const Dataset& ds, int label = -2) {
  std::map<Split, int> n;
  for (const auto& s : ds.samples)
    if (label == -2 || s.label == label) n[s.split]++;
  return n;
}
}  // namespace

TEST_CASE("stratified split keeps class proportions and is seeded", "[sampling]") {
  Dataset ds = synthetic(100, 40);
  SplitParams p;
  p.fractions = parse_fractions("0.7,0.15,0.15");
  p.seed = 30;
  assign_splits(ds, p);
  auto a = split_counts(ds, 0), b = split_counts(ds, 1);
  CHECK(a[Split::Train] == 70);
  CHECK(a[Split::Val] == 15);
  CHECK(a[Split::Test] == 15);
  CHECK(b[Split::Train] == 28);
  CHECK(b[Split::Val] == 6);
  CHECK(b[Split::Test] == 6);
  Dataset again = synthetic(100, 40);
  assign_splits(again, p);
  for (size_t i = 0; i < ds.samples.size(); ++i) CHECK(ds.samples[i].split == again.samples[i].split);
  Dataset other = synthetic(100, 40);
  p.seed = 31;
  assign_splits(other, p);
  int differ = 0;
  for (size_t i = 0; i < ds.samples.size(); ++i) differ += ds.samples[i].split != other.samples[i].split;
  CHECK(differ > 10);
}

TEST_CASE("patient-grouped split puts no patient in two splits", "[sampling]") {
  Dataset ds = synthetic(150, 150, true);
  SplitParams p;
  p.fractions = {0.7, 0.15, 0.15};
  assign_splits(ds, p);
  std::map<std::string, std::set<Split>> seen;
  for (const auto& s : ds.samples) seen[s.patient_id].insert(s.split);
  for (const auto& [pid, splits] : seen) CHECK(splits.size() == 1);
  auto n = split_counts(ds);
  CHECK(std::abs(n[Split::Train] - 210) <= 3);
  CHECK(std::abs(n[Split::Val] - 45) <= 3);
  CHECK(std::abs(n[Split::Test] - 45) <= 3);
}

TEST_CASE("patient-grouped split is stratified by each patient's class", "[sampling]") {
  // 300 scans of class a, 60 of class b, 3 scans per patient: without stratification the val and
  // test shares of class b wander with the shuffle; with it each class is split 70/15/15.
  for (uint64_t seed : {1u, 2u, 3u, 30u}) {
    Dataset ds = synthetic(300, 60, true);
    SplitParams p;
    p.fractions = {0.7, 0.15, 0.15};
    p.seed = seed;
    assign_splits(ds, p);
    std::map<std::string, std::set<Split>> seen;
    for (const auto& s : ds.samples) seen[s.patient_id].insert(s.split);
    for (const auto& [pid, splits] : seen) CHECK(splits.size() == 1);
    auto b = split_counts(ds, 1);
    CHECK(std::abs(b[Split::Train] - 42) <= 3);
    CHECK(std::abs(b[Split::Val] - 9) <= 3);
    CHECK(std::abs(b[Split::Test] - 9) <= 3);
  }
}

TEST_CASE("a split the index gives to val or test stays; the fractions divide the rest", "[sampling]") {
  Dataset ds = synthetic(100, 40, true);
  for (size_t i = 0; i < ds.samples.size(); i += 4) ds.samples[i].split = Split::Test;  // an official test set
  for (size_t i = 1; i < ds.samples.size(); i += 4) ds.samples[i].split = Split::Train;
  const Dataset before = ds;
  SplitParams p;
  p.fractions = parse_fractions("0.8,0.2");
  assign_splits(ds, p);
  int val = 0, test = 0;
  for (size_t i = 0; i < ds.samples.size(); ++i) {
    if (before.samples[i].split == Split::Test) CHECK(ds.samples[i].split == Split::Test);
    if (before.samples[i].split != Split::Test) CHECK(ds.samples[i].split != Split::Test);
    val += ds.samples[i].split == Split::Val;
    test += ds.samples[i].split == Split::Test;
  }
  CHECK(test == 35);
  CHECK(std::abs(val - 21) <= 3);  // 20 % of the 105 others, whole patients
}

TEST_CASE("fractions are validated", "[sampling]") {
  CHECK(parse_fractions("0.8,0.2") == std::vector<double>{0.8, 0.2, 0.0});
  CHECK_THROWS_WITH(parse_fractions("0.7,0.2,0.2"), Catch::Contains("sum to"));
  CHECK_THROWS_WITH(parse_fractions("0.7,x,0.3"), Catch::Contains("'x'"));
  CHECK_THROWS_AS(parse_fractions("1"), cxr::InvalidArgument);
}

TEST_CASE("undersampling cuts classes to a count or to balance", "[sampling]") {
  Dataset ds = synthetic(100, 40);
  undersample(ds, "a:40", 1);
  CHECK(ds.class_counts() == std::vector<uint64_t>{40, 40});
  // Survivors keep their original order.
  for (size_t i = 1; i < ds.samples.size(); ++i)
    CHECK(std::stoi(ds.samples[i - 1].path.substr(1)) < std::stoi(ds.samples[i].path.substr(1)));
  Dataset bal = synthetic(100, 40);
  undersample(bal, "balance", 1);
  CHECK(bal.class_counts() == std::vector<uint64_t>{40, 40});
  Dataset bad = synthetic(3, 3);
  CHECK_THROWS_WITH(undersample(bad, "c:1", 1), Catch::Contains("unknown class 'c'") && Catch::Contains("a, b"));
  CHECK_THROWS_WITH(undersample(bad, "a", 1), Catch::Contains("class:count"));
}

TEST_CASE("epoch schedule: train reshuffled per epoch, then val; test once", "[sampling]") {
  Dataset ds = synthetic(20, 20);
  SplitParams p;
  p.fractions = {0.5, 0.25, 0.25};
  assign_splits(ds, p);
  const auto phases = epoch_schedule(ds, 3, true, 42);
  REQUIRE(phases.size() == 7);
  for (unsigned e = 0; e < 3; ++e) {
    CHECK(phases[2 * e].split == Split::Train);
    CHECK(phases[2 * e].epoch == e);
    CHECK(phases[2 * e + 1].split == Split::Val);
    CHECK(phases[2 * e].order.size() == 20);
  }
  CHECK(phases[6].split == Split::Test);
  CHECK(phases[6].epoch == 2);
  CHECK(phases[0].order != phases[2].order);      // reshuffled
  CHECK(phases[1].order == phases[3].order);      // val in a fixed order
  auto sorted0 = phases[0].order, sorted2 = phases[2].order;
  std::sort(sorted0.begin(), sorted0.end());
  std::sort(sorted2.begin(), sorted2.end());
  CHECK(sorted0 == sorted2);                      // same scans
  CHECK(epoch_schedule(ds, 3, true, 42)[2].order == phases[2].order);  // seeded
  // Without splits: everything, every epoch.
  const auto plain = epoch_schedule(synthetic(2, 2), 2, false, 0);
  REQUIRE(plain.size() == 2);
  CHECK(plain[1].order == std::vector<size_t>{0, 1, 2, 3});
}
