// SPDX-License-Identifier: LGPL-2.1-or-later
// State-change sweep over every element of the plugin (as gst-plugins-good's generic/states).
#include "cxr_catch.hpp"
#include <gst/gst.h>

#include <set>

#include "cxr_config.h"
#include <string>

TEST_CASE("every cxr element survives a state-change sweep", "[states]") {
  GstPlugin* plugin = gst_registry_find_plugin(gst_registry_get(), "cxr");
  REQUIRE(plugin);
  GList* features = gst_registry_get_feature_list_by_plugin(gst_registry_get(), "cxr");
  // These need a configuration (a location, a model, a port) before they can pause; without one
  // they must refuse cleanly with an error message.
  const std::set<std::string> need_config = {"cxrscansrc", "cxrinfer", "cxrgradcam", "cxrtrain", "cxrdicomsrc",
                                             "cxrdicomsink"};
  std::set<std::string> swept;
  for (GList* l = features; l; l = l->next) {
    if (!GST_IS_ELEMENT_FACTORY(l->data)) continue;
    const std::string name = gst_plugin_feature_get_name(GST_PLUGIN_FEATURE(l->data));
    INFO("element " << name);
    GstElement* e = gst_element_factory_create(GST_ELEMENT_FACTORY(l->data), nullptr);
    REQUIRE(e);
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(e, bus);
    if (name == "cxrresultsink") g_object_set(e, "location", "/dev/null", NULL);
    const GstState states[] = {GST_STATE_READY, GST_STATE_PAUSED, GST_STATE_PLAYING, GST_STATE_PAUSED,
                               GST_STATE_READY, GST_STATE_NULL, GST_STATE_PAUSED, GST_STATE_NULL};
    for (GstState s : states) {
      const GstStateChangeReturn r = gst_element_set_state(e, s);
      if (r == GST_STATE_CHANGE_FAILURE) {
        CHECK(need_config.count(name) == 1);
        GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
        CHECK(m != nullptr);  // a refusal always says why
        if (m) gst_message_unref(m);
        gst_element_set_state(e, GST_STATE_NULL);
        break;
      }
      if (r == GST_STATE_CHANGE_ASYNC) gst_element_get_state(e, nullptr, nullptr, 0);
    }
    gst_element_set_state(e, GST_STATE_NULL);
    gst_element_set_bus(e, nullptr);
    gst_object_unref(bus);
    gst_object_unref(e);
    swept.insert(name);
  }
  gst_plugin_feature_list_free(features);
  gst_object_unref(plugin);
  // Every element the plugin is built with, by name: one that fails to register is missed here.
  std::set<std::string> expected = {"cxrscansrc", "cxrdecode",    "cxrequalize",  "cxrblur",     "cxrresize",
                                    "cxraugment", "cxrresultsink", "cxrdicomsrc", "cxrdicomsink"};
#if CXR_HAVE_TORCH
  expected.insert({"cxrinfer", "cxrgradcam", "cxrtrain"});
#endif
  CHECK(swept == expected);
}
