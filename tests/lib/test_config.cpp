// SPDX-License-Identifier: LGPL-2.1-or-later
// Pipeline TOML: good files, variables, includes, tee branches, the launch string's quoting, and
// bad files whose errors name file:line and the valid choices.
#include "cxr_catch.hpp"
#include <string>

#include "cxr/config/pipeline.hpp"
#include "cxr/error.hpp"
#include "testutil.hpp"

using namespace cxr::config;
using cxrtest::TempDir;

namespace {

const char* kPreprocess = R"(description = "folder -> decode -> equalize -> blur"

[variables]
input = "data/samples/covid"
output = "out"

[[element]]
factory = "cxrscansrc"
location = "${input}"

[[element]]
factory = "cxrdecode"

[[element]]
caps = "video/x-raw,format=GRAY8"

[[element]]
factory = "cxrblur"
kernel-size = 5
sigma = 1.1

[[element]]
factory = "cxrresultsink"
location = "${output}/rows.jsonl"
logits = true
)";

/// The message of the ConfigError that parsing `text` throws.
std::string error_of(const std::string& text, const Variables& set = {}, const std::string& path = "p.toml") {
  try {
    parse_pipeline(text, path, set);
  } catch (const cxr::ConfigError& e) {
    return e.what();
  }
  FAIL("no ConfigError for:\n" << text);
  return {};
}

}  // namespace

TEST_CASE("pipeline: elements in order, defaults and typed values", "[config]") {
  const Pipeline p = parse_pipeline(kPreprocess, "pre.toml");
  REQUIRE(p.elements.size() == 5);
  CHECK(p.description == "folder -> decode -> equalize -> blur");
  CHECK(p.elements[0].factory == "cxrscansrc");
  CHECK(p.elements[0].property("location")->value == "data/samples/covid");
  CHECK(p.elements[2].factory == "capsfilter");
  CHECK(p.elements[2].caps == "video/x-raw,format=GRAY8");
  const PropertyValue* k = p.elements[3].property("kernel-size");
  REQUIRE(k);
  CHECK(k->value == "5");
  CHECK(k->kind == PropertyValue::Kind::Integer);
  CHECK(k->where.str() == "pre.toml:19");
  CHECK(p.elements[3].property("sigma")->value == "1.1");
  CHECK(p.elements[3].property("sigma")->kind == PropertyValue::Kind::Float);
  CHECK(p.elements[4].property("logits")->value == "true");
  CHECK(p.elements[3].where.line == 17);
  CHECK(p.variables.at("output") == "out");
  CHECK(to_launch_string(p) ==
        "cxrscansrc location=data/samples/covid ! cxrdecode ! video/x-raw,format=GRAY8 ! "
        "cxrblur kernel-size=5 sigma=1.1 ! cxrresultsink location=out/rows.jsonl logits=true");
}

TEST_CASE("pipeline: --set overrides defaults and fills variables without one", "[config]") {
  const Pipeline p = parse_pipeline(kPreprocess, "pre.toml", {{"input", "/data/my scans"}, {"output", "/tmp/o"}});
  CHECK(p.elements[0].property("location")->value == "/data/my scans");
  CHECK(p.elements[4].property("location")->value == "/tmp/o/rows.jsonl");

  const char* text = R"(
[variables]
root = "/r"
out = "${root}/out"
[[element]]
factory = "cxrscansrc"
location = "${model}"
extensions = "$${x} costs $5"
)";
  const Pipeline q = parse_pipeline(text, "v.toml", {{"model", "m.toml"}});
  CHECK(q.elements[0].property("location")->value == "m.toml");
  CHECK(q.elements[0].property("extensions")->value == "${x} costs $5");
  CHECK(q.variables.at("out") == "/r/out");  // defaults may use other variables
}

TEST_CASE("pipeline: variable errors name file:line and the variables", "[config]") {
  const std::string text = "[variables]\ninput = \"a\"\n\n[[element]]\nfactory = \"cxrscansrc\"\nlocation = \"${inptu}\"\n";
  const std::string e = error_of(text);
  CHECK_THAT(e, Catch::Contains("p.toml:6:"));
  CHECK_THAT(e, Catch::Contains("unknown variable ${inptu}"));
  CHECK_THAT(e, Catch::Contains("variables: input"));

  // A --set name the file never uses is a typo, not a silent default.
  const std::string e2 = error_of(kPreprocess, {{"inpt", "x"}});
  CHECK_THAT(e2, Catch::Contains("--set inpt"));
  CHECK_THAT(e2, Catch::Contains("variables: input, output"));

  CHECK_THAT(error_of("[variables]\na = \"${b}\"\nb = \"${a}\"\n[[element]]\nfactory = \"x\"\np = \"${a}\"\n"),
             Catch::Contains("refers to itself"));
  CHECK_THAT(error_of("[[element]]\nfactory = \"x\"\np = \"${a\"\n"), Catch::Contains("p.toml:3: unterminated"));
}

TEST_CASE("pipeline: variables that multiply each other are bounded", "[config]") {
  // v0 names v1 eight times, v1 names v2 eight times, ...: 8^12 substitutions when each
  // reference is expanded anew, 2^36 bytes of result.
  std::string text = "[variables]\n";
  for (int k = 0; k < 12; ++k) {
    text += "v" + std::to_string(k) + " = \"";
    for (int r = 0; r < 8; ++r) text += "${v" + std::to_string(k + 1) + "}";
    text += "\"\n";
  }
  text += "v12 = \"abcdefgh\"\n[[element]]\nfactory = \"x\"\np = \"${v0}\"\n";
  CHECK_THAT(error_of(text), Catch::Contains("expands to more than 1048576 bytes"));

  // Shared references below the bound still expand in full.
  const Pipeline p = parse_pipeline(
      "[variables]\na = \"${b}-${b}\"\nb = \"x${c}\"\nc = \"y\"\n[[element]]\nfactory = \"x\"\np = \"${a}/${b}\"\n",
      "m.toml");
  CHECK(p.elements.at(0).property("p")->value == "xy-xy/xy");
  CHECK(p.variables.at("a") == "xy-xy");
}

TEST_CASE("pipeline: syntax and structure errors carry file:line and the valid keys", "[config]") {
  SECTION("TOML syntax") {
    const std::string e = error_of("[[element]]\nfactory = \"cxrblur\"\nkernel-size = = 5\n");
    CHECK_THAT(e, Catch::StartsWith("p.toml:3:"));
    CHECK_THAT(e, Catch::Contains("TOML syntax error"));
  }
  SECTION("unknown top-level key") {
    const std::string e = error_of("[[element]]\nfactory = \"cxrblur\"\n\n[[elements]]\nfactory = \"x\"\n");
    CHECK_THAT(e, Catch::StartsWith("p.toml:4:"));
    CHECK_THAT(e, Catch::Contains("unknown key 'elements' (valid: description, variables, element)"));
  }
  SECTION("element without factory") {
    const std::string e = error_of("[[element]]\nfactory = \"a\"\n\n[[element]]\nkernel-size = 5\n");
    CHECK_THAT(e, Catch::StartsWith("p.toml:4:"));
    CHECK_THAT(e, Catch::Contains("needs 'factory'"));
  }
  SECTION("caps entry with a property") {
    CHECK_THAT(error_of("[[element]]\ncaps = \"video/x-raw\"\nsize = 3\n"),
               Catch::Contains("p.toml:3: unknown key 'size' in a caps entry (valid: caps, name, from, to)"));
  }
  SECTION("table value") {
    CHECK_THAT(error_of("[[element]]\nfactory = \"a\"\nx = { y = 1 }\n"), Catch::Contains("p.toml:3:"));
  }
  SECTION("element must be an array of tables") {
    CHECK_THAT(error_of("element = 3\n"), Catch::Contains("[[element]]"));
  }
  SECTION("no elements") { CHECK_THAT(error_of("description = \"x\"\n"), Catch::Contains("no [[element]]")); }
  SECTION("duplicate name") {
    const std::string e = error_of("[[element]]\nfactory = \"tee\"\nname = \"t\"\n[[element]]\nfactory = \"tee\"\nname = \"t\"\n");
    CHECK_THAT(e, Catch::StartsWith("p.toml:4:"));
    CHECK_THAT(e, Catch::Contains("already used at p.toml:1"));
  }
  SECTION("branch from an unknown name") {
    const std::string e = error_of(
        "[[element]]\nfactory = \"tee\"\nname = \"t\"\n[[element]]\nfactory = \"fakesink\"\n"
        "[[element]]\nfrom = \"u\"\nfactory = \"fakesink\"\n");
    CHECK_THAT(e, Catch::StartsWith("p.toml:6:"));
    CHECK_THAT(e, Catch::Contains("named so far: t"));
  }
}

TEST_CASE("pipeline: tee branches and links into named elements", "[config]") {
  const char* text = R"(
[[element]]
factory = "cxrscansrc"
location = "in"
[[element]]
factory = "tee"
name = "t"
[[element]]
factory = "queue"
[[element]]
factory = "cxrresultsink"
location = "a.jsonl"
[[element]]
from = "t"
factory = "queue"
to = "m"
[[element]]
factory = "funnel"
name = "m"
[[element]]
factory = "fakesink"
)";
  const Pipeline p = parse_pipeline(text, "tee.toml");
  CHECK(to_launch_string(p) ==
        "cxrscansrc location=in ! tee name=t ! queue ! cxrresultsink location=a.jsonl "
        "t. ! queue ! m. funnel name=m ! fakesink");
}

TEST_CASE("pipeline: launch-string quoting", "[config]") {
  CHECK(quote_launch_value("data/samples/covid") == "data/samples/covid");
  CHECK(quote_launch_value("1.1") == "1.1");
  CHECK(quote_launch_value("my scans") == "\"my scans\"");
  CHECK(quote_launch_value("normal,covid") == "\"normal,covid\"");
  CHECK(quote_launch_value("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quote_launch_value("") == "\"\"");
  CHECK(quote_shell_word("location=\"my scans\"") == "'location=\"my scans\"'");
  CHECK(quote_shell_word("it's") == "'it'\\''s'");
  CHECK(quote_shell_word("!") == "!");

  const char* text = R"(
[[element]]
factory = "cxrscansrc"
location = "/data/chest x-rays"
classes = ["normal", "covid"]
[[element]]
caps = "video/x-raw, format=(string)GRAY8"
[[element]]
caps = "video/x-raw"
name = "c"
[[element]]
factory = "fakesink"
)";
  const Pipeline p = parse_pipeline(text, "q.toml");
  CHECK(to_launch_string(p) ==
        "cxrscansrc location=\"/data/chest x-rays\" classes=\"normal,covid\" ! "
        "capsfilter caps=\"video/x-raw, format=(string)GRAY8\" ! capsfilter name=c caps=video/x-raw ! fakesink");
  CHECK(to_shell_command(p) ==
        "gst-launch-1.0 cxrscansrc 'location=\"/data/chest x-rays\"' 'classes=\"normal,covid\"' ! "
        "capsfilter 'caps=\"video/x-raw, format=(string)GRAY8\"' ! capsfilter name=c caps=video/x-raw ! fakesink");
}

TEST_CASE("pipeline: includes splice elements and merge variable defaults", "[config]") {
  TempDir dir;
  dir.touch("inc/prep.toml", R"(
[variables]
kernel = 5
input = "from-include"
[[element]]
factory = "cxrdecode"
[[element]]
factory = "cxrblur"
kernel-size = "${kernel}"
)");
  dir.touch("main.toml", R"(
[variables]
input = "from-main"
[[element]]
factory = "cxrscansrc"
location = "${input}"
[[element]]
include = "inc/prep.toml"
[[element]]
factory = "fakesink"
)");
  const Pipeline p = load_pipeline(dir / "main.toml");
  CHECK(to_launch_string(p) == "cxrscansrc location=from-main ! cxrdecode ! cxrblur kernel-size=5 ! fakesink");
  CHECK(p.elements[2].where.file == dir / "inc/prep.toml");
  CHECK(p.elements[2].property("kernel-size")->where.line == 9);
  CHECK(load_pipeline(dir / "main.toml", {{"kernel", "7"}}).elements[2].property("kernel-size")->value == "7");

  SECTION("an error inside an include names the included file") {
    dir.touch("inc/bad.toml", "[[element]]\nfactory = \"cxrblur\"\nkernel-size = \"${nope}\"\n");
    dir.touch("b.toml", "[[element]]\nfactory = \"x\"\n[[element]]\ninclude = \"inc/bad.toml\"\n");
    try {
      load_pipeline(dir / "b.toml");
      FAIL("no error");
    } catch (const cxr::ConfigError& e) {
      CHECK_THAT(e.what(), Catch::StartsWith(dir / "inc/bad.toml" + ":3:"));
    }
  }
  SECTION("missing include and include cycles") {
    dir.touch("m.toml", "[[element]]\nfactory = \"x\"\n\n[[element]]\ninclude = \"nothere.toml\"\n");
    CHECK_THROWS_WITH(load_pipeline(dir / "m.toml"), Catch::Contains(dir / "m.toml" + ":5: cannot read include"));
    dir.touch("c1.toml", "[[element]]\ninclude = \"c2.toml\"\n");
    dir.touch("c2.toml", "[[element]]\ninclude = \"c1.toml\"\n");
    CHECK_THROWS_WITH(load_pipeline(dir / "c1.toml"), Catch::Contains("includes itself"));
    dir.touch("e.toml", "[[element]]\ninclude = \"inc/prep.toml\"\nfactory = \"x\"\n");
    CHECK_THROWS_WITH(load_pipeline(dir / "e.toml"), Catch::Contains("takes only 'include'"));
  }
}

TEST_CASE("pipeline: files and command-line assignments", "[config]") {
  CHECK_THROWS_AS(load_pipeline("/nonexistent/p.toml"), cxr::IoError);
  CHECK(parse_assignment("input=/a=b") == std::make_pair(std::string("input"), std::string("/a=b")));
  CHECK(parse_assignment("x=") == std::make_pair(std::string("x"), std::string()));
  CHECK_THROWS_AS(parse_assignment("novalue"), cxr::InvalidArgument);
  CHECK_THROWS_AS(parse_assignment("=v"), cxr::InvalidArgument);
  CHECK_THROWS_AS(parse_assignment("a b=v"), cxr::InvalidArgument);
}
