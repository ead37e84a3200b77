// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/dicom/store_scu.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scu.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cxr/dicom/durable.hpp"
#include "cxr/dicom/instance.hpp"
#include "cxr/error.hpp"

namespace cxr::dicom {

void parse_peer(const std::string& peer, std::string& host, int& port) {
  const auto colon = peer.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == peer.size())
    throw InvalidArgument("peer '" + peer + "' is not host:port");
  host = peer.substr(0, colon);
  const std::string p = peer.substr(colon + 1);
  char* end = nullptr;
  const long v = std::strtol(p.c_str(), &end, 10);
  if (*end != '\0' || v <= 0 || v > 65535) throw InvalidArgument("peer '" + peer + "': port is not in 1..65535");
  port = static_cast<int>(v);
}

namespace {

bool is_uncompressed(const std::string& ts) {
  return ts == UID_LittleEndianExplicitTransferSyntax || ts == UID_LittleEndianImplicitTransferSyntax ||
         ts == UID_BigEndianExplicitTransferSyntax;
}

bool stored(Uint16 status) {
  // Success and the warnings (coercion, elements discarded, SOP class mismatch) all mean the
  // peer keeps the instance.
  return status == STATUS_Success || (status & 0xf000) == 0xb000;
}

}  // namespace

std::vector<SendResult> send_files(const ScuParams& params, const std::vector<std::string>& files) {
  std::vector<SendResult> results(files.size());
  std::vector<InstanceInfo> infos(files.size());
  std::map<std::string, std::set<std::string>> contexts;  // SOP class -> transfer syntaxes
  for (size_t i = 0; i < files.size(); ++i) {
    results[i].path = files[i];
    try {
      infos[i] = read_instance_info(files[i]);
      auto& ts = contexts[infos[i].sop_class_uid];
      ts.insert(infos[i].transfer_syntax);
      if (is_uncompressed(infos[i].transfer_syntax)) {
        ts.insert(UID_LittleEndianExplicitTransferSyntax);
        ts.insert(UID_LittleEndianImplicitTransferSyntax);
      }
    } catch (const std::exception& e) {
      results[i].status = SendStatus::Rejected;
      results[i].message = e.what();
    }
  }
  if (contexts.empty()) return results;

  DcmSCU scu;
  scu.setAETitle(params.ae_title.c_str());
  scu.setPeerHostName(params.host.c_str());
  scu.setPeerPort(static_cast<Uint16>(params.port));
  scu.setPeerAETitle(params.peer_ae_title.c_str());
  scu.setACSETimeout(static_cast<Uint32>(params.timeout_s));
  scu.setDIMSETimeout(static_cast<Uint32>(params.timeout_s));
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setConnectionTimeout(params.timeout_s);
  for (const auto& c : contexts) {
    // One context per transfer syntax: the peer may accept some and not others.
    for (const auto& ts : c.second) {
      OFList<OFString> xfers;
      xfers.push_back(ts.c_str());
      scu.addPresentationContext(c.first.c_str(), xfers);
    }
  }
  auto fail_pending = [&](const std::string& why) {
    for (auto& r : results)
      if (r.message.empty() && r.status == SendStatus::Transient) r.message = why;
  };
  OFCondition cond = scu.initNetwork();
  if (cond.bad()) {
    fail_pending(std::string("cannot initialise the network: ") + cond.text());
    return results;
  }
  cond = scu.negotiateAssociation();
  if (cond.bad()) {
    fail_pending("no association with " + params.peer_ae_title + "@" + params.host + ":" +
                 std::to_string(params.port) + ": " + cond.text());
    return results;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    SendResult& r = results[i];
    if (r.status == SendStatus::Rejected) continue;
    T_ASC_PresentationContextID pid = scu.findPresentationContextID(infos[i].sop_class_uid.c_str(),
                                                                     infos[i].transfer_syntax.c_str());
    if (pid == 0 && is_uncompressed(infos[i].transfer_syntax))
      pid = scu.findAnyPresentationContextID(infos[i].sop_class_uid.c_str(), UID_LittleEndianExplicitTransferSyntax);
    if (pid == 0) {
      r.status = SendStatus::Rejected;
      r.message = "the peer accepts neither SOP class " + infos[i].sop_class_uid + " nor transfer syntax " +
                  infos[i].transfer_syntax;
      continue;
    }
    Uint16 status = 0;
    cond = scu.sendSTORERequest(pid, files[i].c_str(), nullptr, status);
    if (cond.bad()) {
      // Association gone: this file and the rest wait for the next attempt.
      fail_pending(std::string("C-STORE failed: ") + cond.text());
      scu.abortAssociation();
      return results;
    }
    r.dimse_status = status;
    r.status = stored(status) ? SendStatus::Stored : SendStatus::Rejected;
    char hex[8];
    std::snprintf(hex, sizeof hex, "%04x", status);
    r.message = std::string("status 0x") + hex;
  }
  scu.releaseAssociation();
  return results;
}

struct Outbox::Impl {
  OutboxParams params;
  Notify notify;
  mutable std::mutex mutex;
  std::condition_variable wake;   // new file or stop
  std::condition_variable drained;
  bool stop = false;
  bool kick = false;
  std::thread sender;

  void run() {
    std::chrono::milliseconds backoff{0};
    std::unique_lock<std::mutex> lock(mutex);
    while (!stop) {
      lock.unlock();
      std::vector<std::string> files;
      try {
        files = list_files(params.folder, ".dcm");
      } catch (const std::exception&) {
      }
      if (files.size() > params.batch) files.resize(params.batch);
      bool transient = false;
      if (!files.empty()) {
        for (const auto& r : send_files(params.scu, files)) {
          if (r.status == SendStatus::Transient) {
            transient = true;
            continue;
          }
          try {
            if (r.status == SendStatus::Stored) {
              remove_durably(r.path);
            } else {
              const std::string failed = params.folder + "/failed";
              make_dirs(failed);
              publish(r.path, failed + "/" + r.path.substr(r.path.find_last_of('/') + 1));
            }
          } catch (const std::exception&) {
          }
          if (notify) notify(r);
        }
      }
      lock.lock();
      drained.notify_all();
      if (stop) break;
      if (transient) {
        backoff = backoff.count() == 0 ? params.retry_initial : std::min(backoff * 2, params.retry_max);
        // Only stop ends a back-off: new files would meet the same unreachable peer.
        wake.wait_for(lock, backoff, [&] { return stop; });
        kick = false;
      } else {
        backoff = std::chrono::milliseconds{0};
        // After a send, look again at once (more may have come); idle only when empty.
        if (files.empty()) wake.wait(lock, [&] { return stop || kick; });
        kick = false;
      }
    }
  }
};

Outbox::Outbox(OutboxParams params, Notify notify) : impl_(new Impl) {
  if (params.folder.empty()) throw InvalidArgument("no outbox folder set");
  if (params.retry_initial.count() <= 0 || params.retry_max < params.retry_initial)
    throw InvalidArgument("retry back-off: initial must be > 0 and <= max");
  if (params.batch == 0) params.batch = 1;
  make_dirs(params.folder);
  remove_partials(params.folder);
  impl_->params = std::move(params);
  impl_->notify = std::move(notify);
  impl_->sender = std::thread([this] { impl_->run(); });
}

Outbox::~Outbox() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  if (impl_->sender.joinable()) impl_->sender.join();
}

const OutboxParams& Outbox::params() const { return impl_->params; }

void Outbox::enqueue_copy(const std::string& file, const std::string& name) {
  copy_durably(file, impl_->params.folder, name);
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->kick = true;
  }
  impl_->wake.notify_all();
}

void Outbox::enqueue_move(const std::string& file, const std::string& name) {
  sync_file(file);
  publish(file, impl_->params.folder + "/" + name);
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->kick = true;
  }
  impl_->wake.notify_all();
}

size_t Outbox::pending() const { return list_files(impl_->params.folder, ".dcm").size(); }

bool Outbox::wait_empty(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(impl_->mutex);
  for (;;) {
    lock.unlock();
    const bool empty = pending() == 0;
    lock.lock();
    if (empty) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    impl_->drained.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  }
}

}  // namespace cxr::dicom
