// SPDX-License-Identifier: LGPL-2.1-or-later
// cxrdicomsrc with GstHarness: instances DCMTK's storescu sends over loopback become buffers of
// the file's bytes with their UIDs; inbox leftovers come first; cxr-inbox-done deletes the inbox
// copy; callers outside allowed-callers are refused.
#include "cxr_catch.hpp"
#include <gst/check/gstharness.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cxr/dicom/instance.hpp"
#include "frameutil.hpp"
#include "gst/gstcxrmeta.h"
#include "testutil.hpp"

namespace fs = std::filesystem;

namespace {

/// A TCP port nobody listens on now (the kernel's pick).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// storescu's exit status for sending `file` to 127.0.0.1:port as `caller`.
int storescu(int port, const std::string& file, const std::string& caller = "SENDER") {
  const std::string cmd = "storescu -q -aet " + caller + " -aec GSTCXR 127.0.0.1 " + std::to_string(port) + " '" +
                          file + "' > /dev/null 2>&1";
  return std::system(cmd.c_str());
}

GstHarness* dicomsrc(int port, const std::string& inbox, const std::string& extra = "") {
  GstHarness* h = gst_harness_new_parse(
      ("cxrdicomsrc port=" + std::to_string(port) + " ae-title=GSTCXR inbox=" + inbox + " " + extra).c_str());
  gst_harness_play(h);
  return h;
}

bool wait_gone(const std::string& path) {
  for (int i = 0; i < 500 && fs::exists(path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !fs::exists(path);
}

GstEvent* inbox_done(const std::string& path) {
  return gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM,
                              gst_structure_new("cxr-inbox-done", "path", G_TYPE_STRING, path.c_str(), nullptr));
}

}  // namespace

TEST_CASE("cxrdicomsrc: a C-STORE becomes a buffer of the file's bytes and UIDs; inbox-done deletes it",
          "[dicomsrc]") {
  cxrtest::TempDir t;
  const std::string sample = cxrtest::samples("dicom/CR-MONO1-10-chest.dcm");
  const cxr::dicom::InstanceInfo sent = cxr::dicom::read_instance_info(sample);
  const int port = free_port();
  GstHarness* h = dicomsrc(port, t / "inbox");
  // The SCP answers success only once the instance is durable in the inbox.
  REQUIRE(storescu(port, sample) == 0);

  GstBuffer* buf = gst_harness_pull(h);
  REQUIRE(buf != nullptr);
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  CHECK(std::string(gst_structure_get_name(gst_caps_get_structure(caps, 0))) == "application/x-cxr-scan");
  gst_caps_unref(caps);
  const GstCxrScanMeta* m = gst_buffer_get_cxr_scan_meta(buf);
  REQUIRE(m != nullptr);
  REQUIRE(m->path != nullptr);
  const std::string path = m->path;
  CHECK(fs::path(path).parent_path() == fs::path(t / "inbox"));
  CHECK(std::string(m->sop_uid) == sent.sop_instance_uid);
  CHECK(std::string(m->study_uid) == sent.study_uid);
  CHECK(std::string(m->series_uid) == sent.series_uid);
  // The bytes of the inbox file, which holds the instance sent.
  const auto bytes = cxrtest::read_file(path);
  CHECK(gst_buffer_get_size(buf) == bytes.size());
  CHECK(gst_buffer_memcmp(buf, 0, bytes.data(), bytes.size()) == 0);
  CHECK(cxr::dicom::read_instance_info(path).sop_instance_uid == sent.sop_instance_uid);
  CHECK(cxrtest::harness_counter(h, "cxrdicomsrc", "received") == 1);

  // Only files of its own inbox are deleted.
  cxrtest::TempDir other;
  other.touch("x.dcm");
  CHECK_FALSE(gst_harness_push_upstream_event(h, inbox_done(other / "x.dcm")));
  CHECK(fs::exists(other / "x.dcm"));
  CHECK(gst_harness_push_upstream_event(h, inbox_done(path)));
  CHECK(wait_gone(path));
  gst_buffer_unref(buf);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdicomsrc: inbox leftovers are emitted first; unknown callers are refused", "[dicomsrc]") {
  cxrtest::TempDir t;
  fs::create_directories(t / "inbox");
  const std::string leftover = t / "inbox/left.dcm";
  fs::copy_file(cxrtest::samples("dicom/NIH_DX_nccid_testdata.dcm"), leftover);
  const int port = free_port();
  GstHarness* h = dicomsrc(port, t / "inbox", "allowed-callers=\"MODALITY1, SENDER\"");

  GstBuffer* first = gst_harness_pull(h);
  REQUIRE(first != nullptr);
  const GstCxrScanMeta* m = gst_buffer_get_cxr_scan_meta(first);
  REQUIRE(m != nullptr);
  CHECK(std::string(m->path) == leftover);
  CHECK(std::string(m->sop_uid) == cxr::dicom::read_instance_info(leftover).sop_instance_uid);
  gst_buffer_unref(first);

  // A caller not in allowed-callers is refused at association time: nothing is received.
  const auto before = std::distance(fs::directory_iterator(t / "inbox"), fs::directory_iterator());
  CHECK(storescu(port, cxrtest::samples("dicom/CR-MONO1-10-chest.dcm"), "STRANGER") != 0);
  CHECK(std::distance(fs::directory_iterator(t / "inbox"), fs::directory_iterator()) == before);
  CHECK(gst_harness_try_pull(h) == nullptr);
  // One in the list (blanks around the names are ignored) is taken.
  REQUIRE(storescu(port, cxrtest::samples("dicom/CR-MONO1-10-chest.dcm"), "SENDER") == 0);
  GstBuffer* second = gst_harness_pull(h);
  REQUIRE(second != nullptr);
  m = gst_buffer_get_cxr_scan_meta(second);
  REQUIRE(m != nullptr);
  CHECK(std::string(m->path) != leftover);
  gst_buffer_unref(second);
  gst_harness_teardown(h);
}

TEST_CASE("cxrdicomsrc: no inbox is an error at start", "[dicomsrc]") {
  GstElement* e = gst_element_factory_make("cxrdicomsrc", nullptr);
  REQUIRE(e != nullptr);
  g_object_set(e, "port", static_cast<guint>(free_port()), nullptr);
  CHECK(gst_element_set_state(e, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE);
  gst_element_set_state(e, GST_STATE_NULL);
  gst_object_unref(e);
}
