// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// C-STORE SCU and the durable outbox in front of it. Files placed in the outbox stay there
/// until the peer confirmed each one with a success (or warning) status; a background thread
/// sends them, backing off exponentially while the peer is unreachable, and picks up whatever a
/// previous run left behind.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cxr::dicom {

struct ScuParams {
  std::string host = "127.0.0.1";
  int port = 104;
  std::string peer_ae_title = "ANY-SCP";
  std::string ae_title = "GSTCXR";
  int timeout_s = 30;  ///< connect, ACSE and DIMSE timeout
};

/// Parses "host:port" (port required). Throws cxr::InvalidArgument.
void parse_peer(const std::string& peer, std::string& host, int& port);

/// Outcome of sending one file.
enum class SendStatus {
  Stored,     ///< the peer answered success or a warning: it has the instance
  Transient,  ///< no connection, association refused, timeout: worth retrying
  Rejected,   ///< the peer refused this instance (failure status, SOP class not accepted)
};

struct SendResult {
  std::string path;
  SendStatus status = SendStatus::Transient;
  uint16_t dimse_status = 0;
  std::string message;
};

/// Sends the files over one association (presentation contexts proposed from their SOP
/// classes and transfer syntaxes). Never throws for network problems: each file gets a result.
std::vector<SendResult> send_files(const ScuParams& params, const std::vector<std::string>& files);

struct OutboxParams {
  std::string folder;  ///< where queued files wait; rejected ones move to folder/failed
  ScuParams scu;
  std::chrono::milliseconds retry_initial{1000};  ///< first back-off after a failed attempt
  std::chrono::milliseconds retry_max{60000};     ///< back-off never grows beyond this
  size_t batch = 64;                              ///< files per association
};

/// The durable send queue.
class Outbox {
 public:
  /// Called after a file was stored by the peer (removed from the outbox) or rejected (moved
  /// to folder/failed); from the sender thread. Must not throw.
  using Notify = std::function<void(const SendResult&)>;

  /// Creates the folder; the sender thread starts at once and sends what it finds there.
  Outbox(OutboxParams params, Notify notify = nullptr);
  /// Stops the sender thread; queued files stay in the folder for the next run.
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  /// Copies `file` durably into the outbox under `name` and wakes the sender.
  void enqueue_copy(const std::string& file, const std::string& name);
  /// Moves `file` (on the same filesystem, already synced) into the outbox under `name`.
  void enqueue_move(const std::string& file, const std::string& name);
  /// Files waiting (including ones being sent).
  size_t pending() const;
  /// Waits until nothing is pending or the timeout passed; true when empty.
  bool wait_empty(std::chrono::milliseconds timeout);

  const OutboxParams& params() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxr::dicom
