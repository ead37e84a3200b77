// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// C-STORE SCP with a durable inbox: every received instance is on disk (synced, renamed into
/// place, folder synced) before the sender gets its success response, so an instance the PACS
/// believes delivered survives a crash. Instances still in the inbox at start are the ones a
/// previous run received but never finished; the caller re-emits them (leftovers()).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cxr/dicom/instance.hpp"

namespace cxr::dicom {

struct ScpParams {
  int port = 11112;                          ///< TCP port to listen on
  std::string ae_title = "GSTCXR";           ///< our AE title; other called AE titles are refused
  std::vector<std::string> allowed_callers;  ///< calling AE titles accepted; empty = any
  int max_associations = 4;                  ///< concurrent associations; more are rejected
  std::string inbox;                         ///< folder received instances are written to
  int dimse_timeout_s = 60;                  ///< a stalled sender is dropped after this
  /// Time a new connection has to send its association request. DCMTK's listener reads the
  /// requests one connection at a time, so a connection that never speaks holds back every
  /// sender behind it for this long: keep it short.
  int acse_timeout_s = 5;
  /// C-STOREs are answered 0xA700 (out of resources), their data read and dropped, while the
  /// inbox's file system has less free space than this; 0 disables the check.
  uint64_t min_free_bytes = 64ull << 20;
};

/// The storage SOP classes accepted: CR, DX (presentation and processing), Secondary Capture
/// and its multi-frame grayscale byte/word variants.
const std::vector<std::string>& accepted_sop_classes();

/// The transfer syntaxes accepted: those the decoder reads (implicit/explicit VR little endian,
/// JPEG baseline/extended/lossless, JPEG-LS, RLE, JPEG 2000).
const std::vector<std::string>& accepted_transfer_syntaxes();

/// Why DCMTK must not parse this A-ASSOCIATE-RQ (`body`: the PDU after its 6-byte header), or
/// empty. DCMTK 3.6.7 leaks what it parsed of a request whose presentation context item it fails
/// to parse (a length beyond the item or the PDU, a syntax UID over 64 characters) or that
/// offers no transfer syntax: about 2 MB per 64 kB request, for good, so a peer repeating it
/// exhausts memory; and a little for each request with an empty AE title, an extended
/// negotiation sub-item whose lengths do not fit, or a second user information item or user
/// identity. The listener reads each connection's request itself first and refuses the
/// connection on such an item.
std::string associate_rq_problem(const uint8_t* body, size_t size);

/// Listens on a background thread; each association is served by its own worker thread (at
/// most max_associations at once).
class StoreScp {
 public:
  /// Called once per instance, after it is durable and the response is sent, from a worker
  /// thread (several may call at once). Must not throw.
  using Handler = std::function<void(const InstanceInfo&)>;
  /// Called when listening fails (port in use, network error), from the listener thread.
  using ErrorHandler = std::function<void(const std::string&)>;

  /// Validates the parameters (throws cxr::InvalidArgument) and creates the inbox folder.
  StoreScp(ScpParams params, Handler on_instance, ErrorHandler on_error = nullptr);
  /// Stops listening (see stop()).
  ~StoreScp();
  StoreScp(const StoreScp&) = delete;
  StoreScp& operator=(const StoreScp&) = delete;

  /// Binds the port and starts listening. Throws cxr::IoError when the port cannot be bound.
  void start();
  /// Stops accepting, waits for running associations to end (bounded by the DIMSE timeout).
  void stop();

  const ScpParams& params() const;

  /// Instances a previous run left in `inbox` (oldest first); partial files a crash left behind
  /// are deleted.
  static std::vector<std::string> leftovers(const std::string& inbox);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxr::dicom
