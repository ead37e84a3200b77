// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Pipelines as TOML: a list of elements in stream order, each with its factory and its own
/// property names, plus variables, includes and tee branches. docs/pipelines.md has the full
/// format and examples.
///
/// ```toml
/// [variables]
/// input = "data/samples/covid"        # default; `cxr run --set input=...` overrides
///
/// [[element]]
/// factory = "cxrscansrc"
/// location = "${input}"
///
/// [[element]]
/// factory = "cxrdecode"
///
/// [[element]]
/// caps = "video/x-raw,format=GRAY8"    # a capsfilter
///
/// [[element]]
/// factory = "tee"
/// name = "t"
///
/// [[element]]
/// factory = "cxrresultsink"
/// location = "rows.jsonl"
///
/// [[element]]
/// from = "t"                           # a second branch of the tee
/// factory = "queue"
/// ```
///
/// Every pipeline has exactly one gst-launch-1.0 equivalent (to_launch_string). This layer knows
/// nothing of GStreamer: that a factory or property exists is checked by the tools against the
/// registry, using the file:line each element and property carries.
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cxr::config {

/// Where something was written: a file and a 1-based line (0 when unknown).
struct SourceLocation {
  std::string file;
  int line = 0;

  /// "file:line" (or just "file" when the line is unknown).
  std::string str() const;
};

/// One `key = value` of an element table, with variables substituted.
struct PropertyValue {
  enum class Kind { String, Integer, Float, Boolean };
  std::string name;
  std::string value;  ///< as GStreamer deserialises it: `5`, `1.1`, `true`, `my file.png`
  Kind kind = Kind::String;
  SourceLocation where;
};

/// One `[[element]]` table (after includes are spliced in).
struct PipelineElement {
  std::string factory;  ///< "capsfilter" for a `caps = ...` entry
  std::string name;     ///< `name = ...`; empty: GStreamer picks one
  std::string caps;     ///< non-empty for a `caps = ...` entry
  std::string from;     ///< starts a new branch from this named element (e.g. a tee)
  std::string to;       ///< ends the chain by linking into this named element
  std::vector<PropertyValue> properties;  ///< in file order
  SourceLocation where;                   ///< the `[[element]]` header

  /// The property's value, or nullptr.
  const PropertyValue* property(std::string_view name) const;
};

using Variables = std::map<std::string, std::string>;

struct Pipeline {
  std::string path;
  std::string description;  ///< top-level `description = "..."`
  std::vector<PipelineElement> elements;
  Variables variables;      ///< final values: the file's defaults with the command line's on top
};

/// Reads a pipeline and substitutes variables. `set` overrides `[variables]` defaults (and may
/// define variables the file uses without a default). Throws cxr::IoError when a file cannot be
/// read and cxr::ConfigError ("file:line: what", with the valid choices) when it is wrong:
/// TOML syntax, unknown key, unknown or unset variable, bad include, unknown branch name.
Pipeline load_pipeline(const std::string& path, const Variables& set = {});

/// Parses pipeline text; `path` names it in messages and anchors relative includes.
Pipeline parse_pipeline(std::string_view text, const std::string& path, const Variables& set = {});

/// Splits a command-line assignment "name=value". Throws cxr::InvalidArgument.
std::pair<std::string, std::string> parse_assignment(const std::string& text);

/// The pipeline as gst_parse_launch() tokens: `cxrblur`, `kernel-size=5`, `!`, `t.`, ...
/// Values that need it are quoted for the launch syntax (see quote_launch_value).
std::vector<std::string> launch_tokens(const Pipeline& pipeline);

/// The gst_parse_launch() description: launch_tokens joined by spaces.
std::string to_launch_string(const Pipeline& pipeline);

/// A shell command line running the pipeline: `gst-launch-1.0 TOKENS...`, each token quoted for
/// a POSIX shell where needed, so it can be pasted into a terminal as printed.
std::string to_shell_command(const Pipeline& pipeline);

/// A value as the launch syntax reads it back unchanged: bare when made only of safe characters
/// (letters, digits, `_-+./:@%`), else in double quotes with `"` and `\` backslash-escaped.
std::string quote_launch_value(const std::string& value);

/// A word as a POSIX shell reads it back unchanged (single quotes where needed).
std::string quote_shell_word(const std::string& word);

}  // namespace cxr::config
