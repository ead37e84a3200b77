// SPDX-License-Identifier: LGPL-2.1-or-later
// lib/cxr/report: run directories, the study table, the ablation, gnuplot figures (real PNGs)
// and the HTML page (every link resolves), study files and sweep parameters.
#include "cxr_catch.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <stdlib.h>

#include "cxr/config/pipeline.hpp"
#include "cxr/error.hpp"
#include "cxr/report/html.hpp"
#include "cxr/report/plot.hpp"
#include "cxr/report/runs.hpp"
#include "cxr/report/study.hpp"

namespace fs = std::filesystem;
using namespace cxr::report;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/cxr-test-report-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A multiclass run as cxrtrain writes it: 4 epochs, best at 2.
void multiclass_run(const fs::path& dir, double lr, double f1, const std::string& meta = "") {
  std::string rows;
  for (int e = 0; e < 4; ++e)
    rows += "{\"epoch\":" + std::to_string(e) + ",\"train_loss\":" + std::to_string(1.0 - 0.2 * e) +
            ",\"train_f1\":" + std::to_string(0.4 + 0.1 * e) + ",\"train_accuracy\":0.5,\"val_loss\":" +
            std::to_string(e == 2 ? 0.5 : 0.7) + ",\"val_f1\":" + std::to_string(0.35 + 0.1 * e) +
            ",\"val_accuracy\":0.5,\"lr\":" + std::to_string(lr) + ",\"seconds\":2.5,\"best\":" +
            (e == 2 ? "true" : "false") + ",\"train_scans\":10,\"val_scans\":3}\n";
  write(dir / "metrics.jsonl", rows);
  write(dir / "summary.json",
        "{\"architecture\":\"resnet34\",\"task\":\"multiclass\",\"classes\":[\"bacterial\",\"normal\",\"viral\"],"
        "\"epochs_completed\":4,\"best_epoch\":2,\"best_val_loss\":0.5,\"has_val\":true,\"train_seconds\":10,"
        "\"scan_errors\":0,\"test\":{\"n\":12,\"loss\":0.6,\"accuracy\":0.75,\"f1\":" + std::to_string(f1) +
        ",\"class_f1\":[0.8,0.7,0.6],\"confusion\":[[4,0,1],[0,3,1],[1,0,2]]},\"input_size\":[64,64]}\n");
  if (!meta.empty()) write(dir / "run.json", meta);
}

void multilabel_run(const fs::path& dir) {
  write(dir / "metrics.jsonl",
        "{\"epoch\":0,\"train_loss\":0.9,\"train_f1\":0.2,\"train_accuracy\":0.1,\"val_loss\":0.8,\"val_f1\":0.25,"
        "\"val_accuracy\":0.1,\"lr\":0.01,\"seconds\":3,\"best\":true,\"val_class_f1\":[0.1,0.2],\"val_auroc\":[0.6,0.7]}\n"
        "{\"epoch\":1,\"train_loss\":0.7,\"train_f1\":0.3,\"train_accuracy\":0.2,\"val_loss\":null,\"val_f1\":null,"
        "\"val_accuracy\":null,\"lr\":0.001,\"seconds\":3,\"best\":false,\"val_class_f1\":[0.2,0.3],\"val_auroc\":[0.6,0.8]}\n");
  write(dir / "summary.json",
        "{\"architecture\":\"efficientnet_b1\",\"task\":\"multilabel\",\"classes\":[\"Effusion\",\"No Finding\"],"
        "\"epochs_completed\":2,\"best_epoch\":0,\"train_seconds\":6,\"test\":{\"n\":9,\"loss\":0.7,\"accuracy\":0.3,"
        "\"f1\":0.41,\"class_f1\":[0.3,0.52],\"auroc\":[0.71,0.66],\"macro_auroc\":0.685,"
        "\"class_confusion\":[[[5,1],[1,2]],[[3,2],[2,2]]]}}\n");
}

// Width and height from a PNG's IHDR, after checking the signature and chunk type.
bool png_size(const fs::path& p, uint32_t& w, uint32_t& h) {
  const std::string b = read(p);
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 33 || std::memcmp(b.data(), sig, 8) != 0 || b.compare(12, 4, "IHDR") != 0) return false;
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) | (uint32_t(uint8_t(b[at + 2])) << 8) |
           uint32_t(uint8_t(b[at + 3]));
  };
  w = be32(16);
  h = be32(20);
  return true;
}

}  // namespace

TEST_CASE("report: run directories load, tables and the ablation", "[report]") {
  TempDir t;
  multiclass_run(t.path / "mc", 0.01, 0.8);
  multilabel_run(t.path / "ml");
  const RunInfo mc = load_run((t.path / "mc").string());
  CHECK(mc.meta.model == "ResNet-34");
  CHECK(mc.epochs.size() == 4);
  CHECK(mc.best_epoch == 2);
  CHECK(mc.seconds_per_epoch() == Approx(2.5));
  CHECK(mc.confusion.size() == 3);
  CHECK(mc.confusion[2][0] == 1);
  CHECK(mc.learning_rate() == Approx(0.01));
  const RunInfo ml = load_run((t.path / "ml").string());
  CHECK(ml.multilabel());
  CHECK(ml.test_auroc.size() == 2);
  CHECK(ml.class_confusion.size() == 2);
  CHECK(std::isnan(ml.epochs[1].val_f1));
  CHECK_THROWS_AS(load_run((t.path / "nothing").string()), cxr::IoError);
  write(t.path / "bad" / "metrics.jsonl", "{\"epoch\":0}\n{\"epoch\":\n");
  CHECK_THROWS_WITH(load_run((t.path / "bad").string()), Catch::Contains("metrics.jsonl:2"));

  // Same model and dataset, only the learning rate differs: an ablation.
  std::vector<RunInfo> lr;
  for (double r : {0.001, 0.01, 0.1}) {
    const fs::path d = t.path / ("lr" + std::to_string(r));
    RunMeta m;
    m.name = "learning-rate=" + std::to_string(r);
    m.model = "EfficientNet-B1";
    m.dataset = "COVID";
    m.param = "learning-rate";
    m.value = std::to_string(r);
    m.variables = {{"output", d.string()}, {"size", "64"}};
    multiclass_run(d, r, 0.9 - r, run_json(m));
    lr.push_back(load_run(d.string()));
  }
  CHECK(lr[1].meta.name == "learning-rate=" + std::to_string(0.01));
  CHECK(is_lr_ablation(lr));
  CHECK_FALSE(is_lr_ablation({mc, ml}));
  lr[2].meta.variables["size"] = "128";
  CHECK_FALSE(is_lr_ablation(lr));

  const std::vector<RunInfo> both{mc, ml};  // the table points into it
  const StudyTable table = study_table(both);
  CHECK(table.models == std::vector<std::string>{"ResNet-34", "EfficientNet-B1"});
  const std::string csv = study_csv(table);
  CHECK(csv.find("ResNet-34 F1") != std::string::npos);
  CHECK(csv.find("0.800,2.5,2") != std::string::npos);
}

TEST_CASE("report: figures are PNGs and every link of the page resolves", "[report]") {
  if (!gnuplot_has_pngcairo()) {
    WARN("gnuplot with pngcairo not found (install gnuplot-nox): figures not checked");
    return;
  }
  TempDir t;
  multiclass_run(t.path / "mc", 0.01, 0.8);
  multilabel_run(t.path / "ml");
  write(t.path / "mc" / "tsne.csv", "x,y,label\n0,0,normal\n1,2,viral\n-1,0.5,bacterial\n2,1,normal\n");
  // A Grad-CAM image: any PNG will do, so take one figure of a first report.
  ReportOptions first;
  first.output = (t.path / "first").string();
  const ReportResult r0 = write_report({load_run((t.path / "mc").string())}, first);
  REQUIRE_FALSE(r0.figures.empty());
  fs::create_directories(t.path / "mc" / "gradcam");
  fs::copy_file(r0.figures.front(), t.path / "mc" / "gradcam" / "normal_0.png");

  std::vector<RunInfo> runs{load_run((t.path / "mc").string()), load_run((t.path / "ml").string())};
  ReportOptions o;
  o.output = (t.path / "out").string();
  const ReportResult r = write_report(runs, o);
  CHECK(r.warnings.empty());
  // mc: f1, loss, confusion, t-SNE; ml: f1, loss, AUROC.
  CHECK(r.figures.size() == 7);
  for (const auto& f : r.figures) {
    uint32_t w = 0, h = 0;
    INFO(f);
    REQUIRE(png_size(f, w, h));
    CHECK(w >= 300);
    CHECK(h >= 300);
    CHECK(fs::exists(fs::path(f).replace_extension(".gp")));
  }
  uint32_t w = 0, h = 0;
  REQUIRE(png_size(t.path / "out" / "figures" / "run0-mc-f1.png", w, h));
  CHECK(w == 720);
  CHECK(h == 450);

  const std::string html = read(t.path / "out" / "index.html");
  const std::regex link("(?:src|href)=\"([^\"]+)\"");
  int links = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), link); it != std::sregex_iterator(); ++it) {
    const std::string target = (*it)[1].str();
    INFO(target);
    if (target[0] == '#') continue;
    CHECK(target.find("://") == std::string::npos);  // no external assets
    CHECK(fs::path(target).is_relative());
    CHECK(fs::exists(t.path / "out" / target));
    ++links;
  }
  CHECK(links >= 7 + 1 + 3);  // figures, the Grad-CAM copy, style.css and the two CSVs
  CHECK(html.find("gradcam/") != std::string::npos);
  CHECK(html.find("ablation") == std::string::npos);

  // A failing figure is a warning on the page, not an exception.
  ReportOptions bad = o;
  bad.output = (t.path / "bad").string();
  bad.gnuplot = "/nonexistent/gnuplot";
  const ReportResult rb = write_report(runs, bad);
  CHECK(rb.figures.empty());
  CHECK_FALSE(rb.warnings.empty());
  CHECK(fs::exists(t.path / "bad" / "index.html"));
}

TEST_CASE("report: gnuplot scripts", "[report]") {
  CHECK(gnuplot_quote("it's") == "'it''s'");
  RunInfo r;
  r.meta.name = "x";
  CHECK_THROWS_AS(confusion_figure(r, "c.png"), cxr::InvalidArgument);
  CHECK_THROWS_AS(auroc_figure(r, "a.png"), cxr::InvalidArgument);
  CHECK_THROWS_AS(curves_figure(r, "accuracy", "c.png"), cxr::InvalidArgument);
  std::vector<RunInfo> runs(2);
  runs[0].meta.value = "0.1";
  runs[0].meta.param = "learning-rate";
  runs[0].test_f1 = 0.5;
  runs[1].meta.value = "0.001";
  runs[1].meta.param = "learning-rate";
  runs[1].test_f1 = 0.9;
  const Figure f = ablation_figure(runs, "lr.png");
  CHECK(f.script.find("set logscale x") != std::string::npos);
  // Sorted by learning rate.
  CHECK(f.script.find("0.001 0.9\n0.1 0.5\n") != std::string::npos);
}

TEST_CASE("report: study files and sweep parameters", "[report][study]") {
  TempDir t;
  write(t.path / "p.toml", "[variables]\nsize = 64\noutput = \"o\"\n[[element]]\nfactory = \"cxrscansrc\"\nlocation = \"x\"\n"
                           "[[element]]\nfactory = \"cxrresize\"\nsize = \"${size}\"\n[[element]]\nfactory = \"cxrresultsink\"\n"
                           "location = \"${output}/r.jsonl\"\n");
  write(t.path / "s.toml",
        "description = \"d\"\noutput = \"runs\"\n[variables]\nsize = 32\n"
        "[[run]]\nname = \"a\"\npipeline = \"p.toml\"\nmodel = \"M\"\ndataset = \"D\"\nvariables = { size = 48, in = \"${extra}/x\" }\n"
        "[[sweep]]\nname = \"sw\"\npipeline = \"p.toml\"\nparam = \"size\"\nvalues = [16, 24]\n");
  const Study s = load_study((t.path / "s.toml").string(), {{"extra", "1"}});
  REQUIRE(s.runs.size() == 3);
  CHECK(s.output == (t.path / "runs").string());
  CHECK(s.runs[0].meta.variables.at("size") == "48");
  CHECK(s.runs[0].meta.variables.count("extra") == 0);  // p.toml has no ${extra}: the study's own
  CHECK(s.runs[0].meta.variables.at("in") == "1/x");     // the run's own: p.toml will refuse it
  CHECK(s.runs[1].subdir == "sw/size=16");
  CHECK(s.runs[2].meta.value == "24");
  CHECK(s.runs[2].meta.variables.at("size") == "32");

  // The study's variables that a run's pipeline lacks stay the study's (pipelines/study/study.toml:
  // covid = "/data/covid" for data = "${covid}"); a --set nobody uses is a typo.
  write(t.path / "s2.toml",
        "[variables]\ncovid = \"/data/covid\"\nsize = 32\n"
        "[[run]]\nname = \"a\"\npipeline = \"p.toml\"\nvariables = { output = \"${covid}/o\" }\n");
  const Study s2 = load_study((t.path / "s2.toml").string(), {{"covid", "/c"}, {"size", "16"}});
  CHECK(s2.runs[0].meta.variables == cxr::config::Variables{{"output", "/c/o"}, {"size", "16"}});
  cxr::config::load_pipeline((t.path / "p.toml").string(), s2.runs[0].meta.variables);
  CHECK_THROWS_WITH(load_study((t.path / "s2.toml").string(), {{"sise", "16"}}),
                    Catch::Contains("--set sise") && Catch::Contains("s2.toml"));

  write(t.path / "bad1.toml", "[[run]]\nname = \"a\"\npipeline = \"p.toml\"\nmodle = \"x\"\n");
  CHECK_THROWS_WITH(load_study((t.path / "bad1.toml").string()), Catch::Contains("bad1.toml:4") && Catch::Contains("modle"));
  write(t.path / "bad2.toml", "[[run]]\nname = \"a\"\npipeline = \"nope.toml\"\n");
  CHECK_THROWS_WITH(load_study((t.path / "bad2.toml").string()), Catch::Contains("bad2.toml:3"));
  write(t.path / "bad3.toml", "[[run]]\nname = \"a\"\npipeline = \"p.toml\"\n[[run]]\nname = \"a\"\npipeline = \"p.toml\"\n");
  CHECK_THROWS_WITH(load_study((t.path / "bad3.toml").string()), Catch::Contains("two runs"));
  write(t.path / "bad4.toml", "[[sweep]]\nname = \"a\"\npipeline = \"p.toml\"\nparam = \"size\"\nvalues = []\n");
  CHECK_THROWS_AS(load_study((t.path / "bad4.toml").string()), cxr::ConfigError);
  write(t.path / "bad5.toml", "[[run]]\nname = \"a\"\npipeline = \"p.toml\"\nvariables = { x = \"${nope}\" }\n");
  CHECK_THROWS_WITH(load_study((t.path / "bad5.toml").string()), Catch::Contains("${nope}"));

  CHECK(pipeline_has_variable((t.path / "p.toml").string(), "size"));
  CHECK_FALSE(pipeline_has_variable((t.path / "p.toml").string(), "learning-rate"));
  CHECK(sweep_dir_name("learning-rate", "0.01") == "learning-rate=0.01");
  CHECK(sweep_dir_name("a/b", "x y") == "a_b=x_y");
  const auto [name, values] = parse_param("learning-rate=0.001,0.01");
  CHECK(name == "learning-rate");
  CHECK(values == std::vector<std::string>{"0.001", "0.01"});
  CHECK_THROWS_AS(parse_param("lr"), cxr::InvalidArgument);
  CHECK_THROWS_AS(parse_param("lr=0.1,,0.2"), cxr::InvalidArgument);

  cxr::config::Pipeline p = cxr::config::load_pipeline((t.path / "p.toml").string());
  CHECK_THROWS_WITH(set_element_property(p, "location", "/data"), Catch::Contains("several elements"));
  set_element_property(p, "cxrscansrc.location", "/data");
  CHECK(p.elements[0].property("location")->value == "/data");
  set_element_property(p, "cxrresize.mode", "stretch");
  CHECK(p.elements[1].property("mode")->value == "stretch");
  CHECK(cxr::config::to_launch_string(p).find("mode=stretch") != std::string::npos);
  CHECK_THROWS_WITH(set_element_property(p, "learning-rate", "0.1"), Catch::Contains("neither a variable"));
  CHECK_THROWS_WITH(set_element_property(p, "cxrtrain.learning-rate", "0.1"), Catch::Contains("no element 'cxrtrain'"));
}

TEST_CASE("report: numbers beyond the integer range in run files fall back", "[report]") {
  // Converting 1e300 to int is undefined behaviour; such fields read as absent.
  TempDir t;
  write(t.path / "r" / "metrics.jsonl", "{\"epoch\":1e300,\"train_loss\":0.5}\n{\"epoch\":-1e300}\n");
  write(t.path / "r" / "summary.json",
        "{\"best_epoch\":1e300,\"epochs_completed\":-3e10,\"test\":{\"confusion\":[[1e300,2],[-1e19,4]]}}");
  const RunInfo r = load_run((t.path / "r").string());
  REQUIRE(r.epochs.size() == 2);
  CHECK(r.epochs[0].epoch == 0);
  CHECK(r.epochs[1].epoch == 1);
  CHECK(r.best_epoch == -1);
  CHECK(r.epochs_completed == 2);
  REQUIRE(r.confusion.size() == 2);
  CHECK(r.confusion[0] == std::vector<int64_t>{0, 2});
  CHECK(r.confusion[1] == std::vector<int64_t>{0, 4});
}

TEST_CASE("report: a t-SNE CSV cannot put commands into the gnuplot script", "[report]") {
  TempDir t;
  const fs::path csv = t.path / "tsne.csv";
  // A quoted field may hold newlines: this one ends the data block and runs a shell command.
  write(csv, "x,y,label\n0.5,\"1\nEOD\nsystem 'touch " + (t.path / "ran").string() + "'\n$x << EOD\n2\",a\n");
  CHECK_THROWS_WITH(tsne_figure(csv.string(), "t", "t.png"), Catch::Contains("tsne.csv:2") && Catch::Contains("not a finite number"));
  write(csv, "x,y\n1,2-\n");  // a fuzzing finding: text after a number
  CHECK_THROWS_AS(tsne_figure(csv.string(), "t", "t.png"), cxr::ConfigError);
  write(csv, "x,y,label\n 0.25 ,1e3,a\n-2,3,\"b\nc\"\n");
  const Figure f = tsne_figure(csv.string(), "t", "t.png");
  CHECK(f.script.find("$g0 << EOD\n0.25 1000\nEOD\n") != std::string::npos);
  CHECK(f.script.find("$g1 << EOD\n-2 3\nEOD\n") != std::string::npos);
}

TEST_CASE("report: the pipeline variable scan copes with long lines and include cycles", "[report][study]") {
  TempDir t;
  // 100 kB on one line: a regex matcher that recurses per character overflowed the stack here.
  write(t.path / "long-include.toml", "include = \"" + std::string(100000, 'a') + "\"\n");
  CHECK_THROWS_AS(pipeline_has_variable((t.path / "long-include.toml").string(), "size"), cxr::IoError);
  write(t.path / "long-blank.toml", "[variables]\n" + std::string(100000, ' ') + "size = 3\n");
  CHECK(pipeline_has_variable((t.path / "long-blank.toml").string(), "size"));
  CHECK_FALSE(pipeline_has_variable((t.path / "long-blank.toml").string(), "width"));
  // Quoted keys, blanks around '=', and a default outside [variables] that does not count.
  write(t.path / "keys.toml", "[variables]\n\t\"size\"\t= 3\n[[element]]\nwidth = 4\n");
  CHECK(pipeline_has_variable((t.path / "keys.toml").string(), "size"));
  CHECK_FALSE(pipeline_has_variable((t.path / "keys.toml").string(), "width"));
  // Two files that include each other ten times each are read once each.
  std::string a, b;
  for (int i = 0; i < 10; ++i) a += "[[element]]\ninclude = \"b.toml\"\n", b += "[[element]]\ninclude = \"a.toml\"\n";
  write(t.path / "a.toml", a);
  write(t.path / "b.toml", b + "[[element]]\nfactory = \"x\"\nlocation = \"${input}\"\n");
  CHECK(pipeline_has_variable((t.path / "a.toml").string(), "input"));
  CHECK_FALSE(pipeline_has_variable((t.path / "a.toml").string(), "output"));
}
