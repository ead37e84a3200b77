// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_catch.hpp"

#include "cxr/error.hpp"
#include "cxr/report/result_row.hpp"
#include "cxr/util/csv.hpp"
#include "cxr/util/json.hpp"
#include "cxr/util/text.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

using cxr::util::JsonObject;

TEST_CASE("json strings are escaped", "[json]") {
  std::string out;
  cxr::util::json_escape(out, "a\"b\\c\nd\te\x01");
  CHECK(out == R"("a\"b\\c\nd\te\u0001")");
}

TEST_CASE("json numbers round-trip and non-finite become null", "[json]") {
  CHECK(cxr::util::json_number(0.1) == "0.1");
  CHECK(cxr::util::json_number(1e300) == "1e+300");
  CHECK(cxr::util::json_number(std::nan("")) == "null");
  JsonObject o;
  o.add("f", std::vector<float>{0.1f, 1.0f}).add("i", int64_t{-3}).add("b", true).add_null("n");
  CHECK(o.str() == R"({"f":[0.1,1],"i":-3,"b":true,"n":null})");
}

TEST_CASE("result rows carry ground truth, results and decisions", "[json][report]") {
  cxr::report::ScanRecord scan;
  scan.path = "a/b.png";
  scan.index = 7;
  scan.split = "test";
  scan.label = 1;
  scan.classes = {"normal", "covid"};
  scan.width = 385;
  scan.height = 289;
  scan.format = "GRAY8";
  cxr::report::ResultRecord r;
  r.model = "m";
  r.classes = {"normal", "covid"};
  r.probabilities = {0.25f, 0.75f};
  r.logits = {-1.f, 0.5f};
  r.decisions = {0, 1};
  cxr::report::RowOptions opts;
  SECTION("multiclass picks the most probable class") {
    const std::string row = cxr::report::result_row(scan, &r, opts);
    CHECK(row ==
          R"({"path":"a/b.png","index":7,"split":"test","epoch":0,"label":"covid","width":385,"height":289,"format":"GRAY8","model":"m","classes":["normal","covid"],"probabilities":[0.25,0.75],"predicted":"covid"})");
  }
  SECTION("multilabel lists every positive decision, logits on request") {
    r.multilabel = true;
    r.decisions = {1, 1};
    opts.logits = true;
    const std::string row = cxr::report::result_row(scan, &r, opts);
    CHECK(row.find(R"("predicted":["normal","covid"])") != std::string::npos);
    CHECK(row.find(R"("logits":[-1,0.5])") != std::string::npos);
  }
  SECTION("no result: no model fields") {
    const std::string row = cxr::report::result_row(scan, nullptr, opts);
    CHECK(row.find("model") == std::string::npos);
    CHECK(row.find("predicted") == std::string::npos);
  }
}

TEST_CASE("error rows name the file and the reason", "[json][report]") {
  CHECK(cxr::report::error_row("x.dcm", 3, "none", "truncated", "cxrdecode0") ==
        R"({"path":"x.dcm","index":3,"error":"truncated","element":"cxrdecode0"})");
}

TEST_CASE("csv parses quotes, CRLF and reports line numbers", "[csv]") {
  const auto t = cxr::util::parse_csv("\xEF\xBB\xBFpath,label\r\n\"a,b.png\",x\r\n\r\n\"c\"\"d\",\"multi\nline\"\n", "t.csv");
  REQUIRE(t.header == std::vector<std::string>{"path", "label"});
  REQUIRE(t.rows.size() == 2);
  CHECK(t.rows[0][0] == "a,b.png");
  CHECK(t.rows[1][0] == "c\"d");
  CHECK(t.rows[1][1] == "multi\nline");
  CHECK(t.lines == std::vector<int>{2, 4});
  CHECK(t.column("LABEL") == 1);
  CHECK(t.column_any({"nope", "label"}) == 1);
}

TEST_CASE("csv errors carry file:line", "[csv]") {
  CHECK_THROWS_WITH(cxr::util::parse_csv("a,b\n1,2\n3\n", "bad.csv"), Catch::Contains("bad.csv:3"));
  CHECK_THROWS_WITH(cxr::util::parse_csv("a,b\n\"1,2\n", "q.csv"), Catch::Contains("q.csv:2: unterminated"));
  CHECK_THROWS_AS(cxr::util::parse_csv("", "e.csv"), cxr::ConfigError);
  CHECK_THROWS_AS(cxr::util::read_csv("/nonexistent/x.csv"), cxr::IoError);
}

TEST_CASE("comma lists: items lose the blanks around them, empty items are left out", "[text]") {
  using cxr::util::split_commas;
  using List = std::vector<std::string>;
  CHECK(split_commas(nullptr).empty());
  CHECK(split_commas("").empty());
  CHECK(split_commas(" , ,\t").empty());
  CHECK(split_commas("a, b ,c") == List{"a", "b", "c"});
  // Every ASCII blank g_strstrip() removes; blanks inside an item stay.
  CHECK(split_commas("\tpng,\v.jpg\r\n,, dcm\f") == List{"png", ".jpg", "dcm"});
  CHECK(split_commas("No Finding, Lung Opacity,") == List{"No Finding", "Lung Opacity"});
}

TEST_CASE("json reader: values, helpers and errors with file and line", "[json]") {
  using cxr::util::parse_json;
  const nlohmann::json j = parse_json(R"({"a":[1,2.5,null],"b":{"c":"x\"y\u00e9"},"t":true,"n":-1e-3,"i":3})", "mem");
  const auto a = cxr::util::json_numbers(*cxr::util::json_get(j, "a"));
  REQUIRE(a.size() == 3);
  CHECK(a[1] == 2.5);
  CHECK(std::isnan(a[2]));
  CHECK(cxr::util::json_string_or(*cxr::util::json_get(j, "b"), "c", "") == "x\"y\xc3\xa9");
  CHECK(cxr::util::json_string_or(j, "t", "") == "true");
  CHECK(cxr::util::json_string_or(j, "i", "") == "3");
  CHECK(cxr::util::json_string_or(j, "missing", "fb") == "fb");
  CHECK(cxr::util::json_number_or(j, "n", 0) == Approx(-0.001));
  CHECK(cxr::util::json_number_or(j, "b", 7) == 7);  // not a number
  CHECK(cxr::util::json_number_or(j, "missing", 7) == 7);
  CHECK(cxr::util::json_get(j["a"], "x") == nullptr);  // not an object
  CHECK_THROWS_WITH(parse_json(R"({"e":-1e999})", "f.json"), Catch::Contains("f.json: invalid JSON: number overflow"));
  CHECK_THROWS_AS(parse_json("{\"a\":1,}", "f.json"), cxr::ConfigError);
  CHECK_THROWS_WITH(parse_json("{\n\"a\" 1}", "f.json"), Catch::Contains("f.json:2: invalid JSON"));
  CHECK_THROWS_AS(parse_json("[1] x", "f.json"), cxr::ConfigError);
  CHECK_THROWS_AS(parse_json(std::string(100, '['), "f.json"), cxr::ConfigError);
  CHECK_THROWS_WITH(parse_json(std::string(100, '[') + std::string(100, ']'), "f.json"), Catch::Contains("nested too deeply"));
  CHECK_THROWS_AS(parse_json("", "f.json"), cxr::ConfigError);
}

TEST_CASE("json writer output reads back through the reader", "[json]") {
  JsonObject o;
  o.add("path", "a\"b\n\x01").add("f1", 0.1).add("n", int64_t{-3}).add("ok", true).add("v", std::vector<float>{0.1f, 2.f});
  o.add_null("none");
  const nlohmann::json j = cxr::util::parse_json(o.str(), "mem");
  CHECK(j["path"] == "a\"b\n\x01");
  CHECK(j["f1"].get<double>() == 0.1);
  CHECK(j["n"] == -3);
  CHECK(j["ok"] == true);
  CHECK(j["v"][0].get<double>() == Approx(0.1));
  CHECK(j["none"].is_null());
}
