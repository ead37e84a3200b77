// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_catch.hpp"

#include "cxr/error.hpp"
#include "cxr/report/result_row.hpp"
#include "cxr/util/csv.hpp"
#include "cxr/util/json.hpp"

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
