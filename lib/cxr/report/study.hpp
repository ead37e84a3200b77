// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Studies and sweeps: several runs of pipeline TOMLs, each with its own variables and its own
/// run directory. docs/study.md has the format.
///
/// ```toml
/// description = "three models on one dataset"
/// output = "out/study"                  # cxr study --output overrides
/// [variables]                           # every run; cxr study --set overrides
/// data = "/data/covid"
///
/// [[run]]
/// name = "covid-resnet34"               # run directory: OUTPUT/covid-resnet34
/// pipeline = "train-covid.toml"         # relative to this file
/// model = "ResNet-34"                   # study table column
/// dataset = "COVID"                     # study table row
/// variables = { architecture = "resnet34", size = 256 }
///
/// [[sweep]]                             # one run per value: OUTPUT/ablation-lr/learning-rate=0.01
/// name = "ablation-lr"
/// pipeline = "train-covid.toml"
/// param = "learning-rate"               # a variable of the pipeline, or an element property
/// values = [0.001, 0.01, 0.1]
/// ```
#include <map>
#include <string>
#include <vector>

#include "cxr/config/pipeline.hpp"
#include "cxr/report/runs.hpp"

namespace cxr::report {

/// One run of a study, ready to execute.
struct StudyRun {
  RunMeta meta;            ///< name, model, dataset, pipeline (absolute), param/value, variables
  std::string subdir;      ///< run directory relative to the study's output folder
};

struct Study {
  std::string path;
  std::string description;
  std::string output;                  ///< folder from the file ("" when not given)
  std::string output_variable = "output";  ///< the pipelines' variable that names the run directory
  std::vector<StudyRun> runs;          ///< [[run]] entries, then [[sweep]] expansions, in file order
};

/// Reads a study file; `set` overrides every run's variables. A run keeps its own variables and
/// those of the study's and `set` that its pipeline has (the rest only feed `${name}` in the
/// study's values). Throws cxr::IoError when unreadable and cxr::ConfigError "file:line: what" on
/// a wrong key, type, duplicate run name or missing pipeline, and on a `set` name that neither
/// the study nor any run's pipeline has.
Study load_study(const std::string& path, const config::Variables& set = {});

/// Run directory name of one sweep value: "<param>=<value>" (characters unsafe in a path
/// replaced by '_').
std::string sweep_dir_name(const std::string& param, const std::string& value);

/// Splits "--param NAME=V1,V2,..." into the name and its values. Throws cxr::InvalidArgument.
std::pair<std::string, std::vector<std::string>> parse_param(const std::string& text);

/// True when `name` is a variable of the pipeline file at `path` or of a file it includes (a
/// `${name}` it uses or a `[variables]` default), so a sweep sets it as a variable rather than
/// as an element property. Throws cxr::IoError when the file cannot be read.
bool pipeline_has_variable(const std::string& path, const std::string& name);

/// Sets an element property of a loaded pipeline: `name` is `property`, `factory.property` or
/// `element-name.property`. A bare property must exist in exactly one element; a qualified one
/// is added when the element does not set it yet. Throws cxr::ConfigError naming the candidates.
void set_element_property(config::Pipeline& pipeline, const std::string& name, const std::string& value);

}  // namespace cxr::report
