// SPDX-License-Identifier: LGPL-2.1-or-later
#include <catch.hpp>
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
