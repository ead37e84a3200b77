// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_pipeline.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>

#include "cxr/error.hpp"
#include "cxr/util/text.hpp"
#include "cxr_common.hpp"

namespace cxrtool {
namespace {

using cxr::ConfigError;
using cxr::config::Pipeline;
using cxr::config::PipelineElement;
using cxr::config::PropertyValue;

[[noreturn]] void fail(const cxr::config::SourceLocation& where, const std::string& what) {
  throw ConfigError(where.str() + ": " + what);
}

using cxr::util::join;

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// "did you mean" candidates, and every gst-cxr element when the name looks like one.
std::string factory_suggestions(const std::string& name) {
  GList* list = gst_registry_get_feature_list(gst_registry_get(), GST_TYPE_ELEMENT_FACTORY);
  std::vector<std::pair<size_t, std::string>> near;
  std::vector<std::string> ours;
  for (GList* l = list; l; l = l->next) {
    const std::string f = gst_plugin_feature_get_name(GST_PLUGIN_FEATURE(l->data));
    const size_t d = edit_distance(name, f);
    if (d <= std::max<size_t>(2, name.size() / 4)) near.emplace_back(d, f);
    if (f.rfind("cxr", 0) == 0) ours.push_back(f);
  }
  gst_plugin_feature_list_free(list);
  std::sort(near.begin(), near.end());
  std::sort(ours.begin(), ours.end());
  std::vector<std::string> similar;
  for (size_t i = 0; i < near.size() && i < 8; ++i) similar.push_back(near[i].second);
  std::string s;
  if (!similar.empty()) s += " (similar: " + join(similar) + ")";
  if (name.rfind("cxr", 0) == 0 || similar.empty())
    s += "; gst-cxr elements: " + (ours.empty() ? std::string("none found: is the plugin built?") : join(ours));
  return s;
}

std::string writable_properties(GObjectClass* klass) {
  guint n = 0;
  GParamSpec** specs = g_object_class_list_properties(klass, &n);
  std::vector<std::string> names;
  for (guint i = 0; i < n; ++i) {
    const std::string p = specs[i]->name;
    if ((specs[i]->flags & G_PARAM_WRITABLE) && p != "name" && p != "parent") names.push_back(p);
  }
  g_free(specs);
  return names.empty() ? "none" : join(names);
}

std::string expected_type(GParamSpec* ps) {
  const std::string type = g_type_name(ps->value_type);
  auto range = [&](auto lo, auto hi) { return type + " in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"; };
  if (G_IS_PARAM_SPEC_ENUM(ps)) {
    GEnumClass* e = G_PARAM_SPEC_ENUM(ps)->enum_class;
    std::vector<std::string> nicks;
    for (guint i = 0; i < e->n_values; ++i) nicks.push_back(e->values[i].value_nick);
    return "one of " + join(nicks) + " (" + type + ")";
  }
  if (G_IS_PARAM_SPEC_FLAGS(ps)) {
    GFlagsClass* f = G_PARAM_SPEC_FLAGS(ps)->flags_class;
    std::vector<std::string> nicks;
    for (guint i = 0; i < f->n_values; ++i) nicks.push_back(f->values[i].value_nick);
    return "flags joined by '+' from " + join(nicks) + " (" + type + ")";
  }
  if (G_IS_PARAM_SPEC_BOOLEAN(ps)) return "true or false (gboolean)";
  if (G_IS_PARAM_SPEC_INT(ps)) return range(G_PARAM_SPEC_INT(ps)->minimum, G_PARAM_SPEC_INT(ps)->maximum);
  if (G_IS_PARAM_SPEC_UINT(ps)) return range(G_PARAM_SPEC_UINT(ps)->minimum, G_PARAM_SPEC_UINT(ps)->maximum);
  if (G_IS_PARAM_SPEC_INT64(ps)) return range(G_PARAM_SPEC_INT64(ps)->minimum, G_PARAM_SPEC_INT64(ps)->maximum);
  if (G_IS_PARAM_SPEC_UINT64(ps)) return range(G_PARAM_SPEC_UINT64(ps)->minimum, G_PARAM_SPEC_UINT64(ps)->maximum);
  if (G_IS_PARAM_SPEC_DOUBLE(ps)) return range(G_PARAM_SPEC_DOUBLE(ps)->minimum, G_PARAM_SPEC_DOUBLE(ps)->maximum);
  if (G_IS_PARAM_SPEC_FLOAT(ps)) return range(G_PARAM_SPEC_FLOAT(ps)->minimum, G_PARAM_SPEC_FLOAT(ps)->maximum);
  return type;
}

void check_property(GstElement* el, const PipelineElement& e, const PropertyValue& p) {
  GParamSpec* ps = g_object_class_find_property(G_OBJECT_GET_CLASS(el), p.name.c_str());
  if (!ps || !(ps->flags & G_PARAM_WRITABLE) || p.name == "parent")
    fail(p.where, "element '" + e.factory + "' has no property '" + p.name + "' (properties: " +
                      writable_properties(G_OBJECT_GET_CLASS(el)) + ")");
  if (p.name == "name") fail(p.where, "write the element's name as name = \"...\"");
  GValue v = G_VALUE_INIT;
  g_value_init(&v, ps->value_type);
  // The same deserialisation gst_parse_launch applies to the launch string's value.
  const bool parsed = gst_value_deserialize_with_pspec(&v, p.value.c_str(), ps);
  const bool clamped = parsed && g_param_value_validate(ps, &v);
  g_value_unset(&v);
  if (!parsed || clamped)
    fail(p.where, e.factory + " " + p.name + " = \"" + p.value + "\"" + (clamped ? " is out of range" : "") +
                      ": expected " + expected_type(ps));
}

}  // namespace

void check_pipeline(const Pipeline& pipeline) {
  for (const PipelineElement& e : pipeline.elements) {
    if (!e.caps.empty()) {
      GstCaps* caps = gst_caps_from_string(e.caps.c_str());
      if (!caps) fail(e.where, "caps \"" + e.caps + "\" do not parse (e.g. video/x-raw,format=GRAY8)");
      gst_caps_unref(caps);
    }
    GstElementFactory* f = gst_element_factory_find(e.factory.c_str());
    if (!f) fail(e.where, "unknown element '" + e.factory + "'" + factory_suggestions(e.factory));
    GstElement* el = gst_element_factory_create(f, nullptr);
    gst_object_unref(f);
    if (!el) fail(e.where, "element '" + e.factory + "' could not be created");
    gst_object_ref_sink(el);
    try {
      for (const PropertyValue& p : e.properties) check_property(el, e, p);
    } catch (...) {
      gst_object_unref(el);
      throw;
    }
    gst_object_unref(el);
  }
}

GstElement* parse_launch(const std::string& description) {
  GError* err = nullptr;
  GstElement* e = gst_parse_launch_full(description.c_str(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (err) {
    const std::string msg = err->message;
    g_error_free(err);
    if (e) gst_object_unref(e);
    throw ConfigError("cannot build the pipeline: " + msg);
  }
  if (!e) throw ConfigError("cannot build the pipeline");
  if (!GST_IS_PIPELINE(e)) {
    // One element on its own comes back bare.
    GstElement* p = gst_pipeline_new(nullptr);
    gst_bin_add(GST_BIN(p), e);
    e = p;
  }
  return e;
}

GstElement* build_pipeline(const Pipeline& pipeline) {
  check_pipeline(pipeline);
  try {
    return parse_launch(cxr::config::to_launch_string(pipeline));
  } catch (const ConfigError& e) {
    throw ConfigError(pipeline.path + ": " + e.what());
  }
}

std::vector<std::string> pipeline_outputs(GstElement* pipeline) {
  std::vector<GObject*> sinks;
  GstIterator* it = gst_bin_iterate_sinks(GST_BIN(pipeline));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
    sinks.push_back(G_OBJECT(g_value_dup_object(&v)));
    g_value_reset(&v);
  }
  g_value_unset(&v);
  gst_iterator_free(it);
  std::reverse(sinks.begin(), sinks.end());  // the iterator walks sinks last-added first
  std::vector<std::string> out;
  for (GObject* o : sinks) {
    for (const char* prop : {"location", "image-dir"}) {
      GParamSpec* ps = g_object_class_find_property(G_OBJECT_GET_CLASS(o), prop);
      if (!ps || ps->value_type != G_TYPE_STRING) continue;
      gchar* s = nullptr;
      g_object_get(o, prop, &s, nullptr);
      if (s && *s) out.emplace_back(s);
      g_free(s);
    }
    g_object_unref(o);
  }
  return out;
}

int run_with_summary(GstElement* pipeline, const std::string& command, bool progress) {
  const std::vector<std::string> outputs = pipeline_outputs(pipeline);
  const RunStats st = run_pipeline(pipeline, progress);
  gst_object_unref(pipeline);
  // cxrresultsink's own count when there is one: a tee to two sinks would count scans twice.
  const uint64_t scans = st.rows ? st.rows : st.buffers;
  char line[256];
  std::snprintf(line, sizeof line, "%llu scans, %llu errors, %.2f s, %.1f scans/s", (unsigned long long)scans,
                (unsigned long long)st.errors, st.seconds, st.seconds > 0 ? scans / st.seconds : 0.0);
  std::string summary = command + (st.ok ? ": ok: " : ": failed: ") + line;
  if (!outputs.empty()) summary += "; output: " + join(outputs);
  std::fflush(stderr);
  std::printf("%s\n", summary.c_str());
  std::fflush(stdout);
  if (!st.ok) {
    std::fprintf(stderr, "%s: error: %s\n", command.c_str(), st.error.empty() ? "pipeline stopped" : st.error.c_str());
    return kExitPipelineError;
  }
  return kExitOk;
}

}  // namespace cxrtool
