// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/dicom/store_scp.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scppool.h>
#include <dcmtk/dcmnet/scpthrd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "cxr/dicom/durable.hpp"
#include "cxr/error.hpp"

namespace cxr::dicom {

const std::vector<std::string>& accepted_sop_classes() {
  static const std::vector<std::string> classes = {
      UID_ComputedRadiographyImageStorage,
      UID_DigitalXRayImageStorageForPresentation,
      UID_DigitalXRayImageStorageForProcessing,
      UID_SecondaryCaptureImageStorage,
      UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage,
      UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage,
  };
  return classes;
}

const std::vector<std::string>& accepted_transfer_syntaxes() {
  // Uncompressed first: when a sender offers both, it need not compress for us.
  static const std::vector<std::string> xfers = {
      UID_LittleEndianExplicitTransferSyntax,
      UID_LittleEndianImplicitTransferSyntax,
      UID_JPEGProcess1TransferSyntax,
      UID_JPEGProcess2_4TransferSyntax,
      UID_JPEGProcess14TransferSyntax,
      UID_JPEGProcess14SV1TransferSyntax,
      UID_JPEGLSLosslessTransferSyntax,
      UID_JPEGLSLossyTransferSyntax,
      UID_RLELosslessTransferSyntax,
      UID_JPEG2000LosslessOnlyTransferSyntax,
      UID_JPEG2000TransferSyntax,
  };
  return xfers;
}

namespace {

struct Context {
  ScpParams params;
  StoreScp::Handler handler;
};

// One association: DcmThreadSCP does the negotiation and DIMSE loop; we check AE titles and
// store instances durably before answering.
class Worker : public DcmBaseSCPPool::DcmBaseSCPWorker, private DcmThreadSCP {
 public:
  Worker(DcmBaseSCPPool& pool, const Context& ctx) : DcmBaseSCPWorker(pool), DcmThreadSCP(), ctx_(ctx) {}

  OFCondition setSharedConfig(const DcmSharedSCPConfig& config) override { return DcmThreadSCP::setSharedConfig(config); }
  OFBool busy() override { return DcmThreadSCP::isConnected(); }
  OFCondition workerListen(T_ASC_Association* const assoc) override { return DcmThreadSCP::run(assoc); }

 protected:
  OFBool checkCalledAETitleAccepted(const OFString& called) override {
    return trim(called.c_str()) == ctx_.params.ae_title;
  }

  OFBool checkCallingAETitleAccepted(const OFString& calling) override {
    const auto& allowed = ctx_.params.allowed_callers;
    return allowed.empty() || std::find(allowed.begin(), allowed.end(), trim(calling.c_str())) != allowed.end();
  }

  OFCondition handleIncomingCommand(T_DIMSE_Message* msg, const DcmPresentationContextInfo& pres) override {
    if (msg->CommandField != DIMSE_C_STORE_RQ) return DcmThreadSCP::handleIncomingCommand(msg, pres);
    T_DIMSE_C_StoreRQ& req = msg->msg.CStoreRQ;
    const std::string& inbox = ctx_.params.inbox;
    const std::string name = safe_name(req.AffectedSOPInstanceUID) + ".dcm";
    static std::atomic<unsigned long> counter{0};
    const std::string tmp =
        inbox + "/." + name + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + kPartialSuffix;
    if (const uint64_t need = ctx_.params.min_free_bytes; need > 0) {
      // Too little room: refuse before anything is written. The dataset still arrives (DIMSE
      // sends it behind the request) and is read into /dev/null.
      struct statvfs fs {};
      if (::statvfs(inbox.c_str(), &fs) == 0 && uint64_t(fs.f_bavail) * fs.f_frsize < need) {
        OFCondition cond = receiveSTORERequest(req, pres.presentationContextID, OFString("/dev/null"));
        if (cond.bad()) return cond;
        DCMNET_WARN("inbox: " << uint64_t(fs.f_bavail) * fs.f_frsize << " bytes free, below min-free-space " << need
                              << "; C-STORE refused");
        return sendSTOREResponse(pres.presentationContextID, req, STATUS_STORE_Refused_OutOfResources);
      }
    }
    OFCondition cond = receiveSTORERequest(req, pres.presentationContextID, OFString(tmp.c_str()));
    if (cond.bad()) {
      // The association is broken; the sender gets no success and will resend.
      ::unlink(tmp.c_str());
      return cond;
    }
    Uint16 status = STATUS_Success;
    InstanceInfo info;
    try {
      sync_file(tmp);
      publish(tmp, inbox + "/" + name);
      info = read_instance_info(inbox + "/" + name);
    } catch (const std::exception& e) {
      ::unlink(tmp.c_str());
      DCMNET_ERROR("inbox: " << e.what());
      status = STATUS_STORE_Refused_OutOfResources;
    }
    cond = sendSTOREResponse(pres.presentationContextID, req, status);
    // Handed over even when the response was lost: the file is ours now, and a resend
    // overwrites it under the same name.
    if (status == STATUS_Success && ctx_.handler) {
      try {
        ctx_.handler(info);
      } catch (...) {
      }
    }
    return cond;
  }

 private:
  static std::string trim(std::string s) {
    while (!s.empty() && s.back() == ' ') s.pop_back();
    while (!s.empty() && s.front() == ' ') s.erase(s.begin());
    return s;
  }
  const Context& ctx_;
};

class Pool : public DcmBaseSCPPool {
 public:
  explicit Pool(const Context& ctx) : ctx_(ctx) {}

 protected:
  DcmBaseSCPWorker* createSCPWorker() override { return new Worker(*this, ctx_); }

 private:
  const Context& ctx_;
};

// DCMTK binds inside its listener thread and only reports failure there; probe first so a
// busy port is a start() error the caller can show.
void probe_port(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw IoError(std::string("cannot create a socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const std::string err = std::strerror(errno);
  ::close(fd);
  if (rc != 0) throw IoError("cannot listen on port " + std::to_string(port) + ": " + err);
}

}  // namespace

struct StoreScp::Impl {
  Context ctx;
  ErrorHandler on_error;
  std::unique_ptr<Pool> pool;
  std::thread listener;
  std::mutex mutex;
};

StoreScp::StoreScp(ScpParams params, Handler on_instance, ErrorHandler on_error) : impl_(new Impl) {
  if (params.port <= 0 || params.port > 65535)
    throw InvalidArgument("port " + std::to_string(params.port) + " is not in 1..65535");
  if (params.ae_title.empty() || params.ae_title.size() > 16)
    throw InvalidArgument("AE title '" + params.ae_title + "' must have 1 to 16 characters");
  if (params.max_associations < 1 || params.max_associations > 1000)
    throw InvalidArgument("max-associations " + std::to_string(params.max_associations) + " is not in 1..1000");
  if (params.inbox.empty()) throw InvalidArgument("no inbox folder set");
  make_dirs(params.inbox);
  impl_->ctx.params = std::move(params);
  impl_->ctx.handler = std::move(on_instance);
  impl_->on_error = std::move(on_error);
}

StoreScp::~StoreScp() { stop(); }

const ScpParams& StoreScp::params() const { return impl_->ctx.params; }

void StoreScp::start() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (impl_->pool) return;
  const ScpParams& p = impl_->ctx.params;
  probe_port(p.port);
  auto pool = std::make_unique<Pool>(impl_->ctx);
  DcmSCPConfig& cfg = pool->getConfig();
  cfg.setPort(static_cast<Uint16>(p.port));
  cfg.setAETitle(p.ae_title.c_str());
  cfg.setRespondWithCalledAETitle(OFFalse);
  cfg.setHostLookupEnabled(OFFalse);
  // Non-blocking accept with a 1 s timeout: the listener loop looks at the stop flag each second.
  cfg.setConnectionBlockingMode(DUL_NOBLOCK);
  cfg.setConnectionTimeout(1);
  cfg.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  cfg.setDIMSETimeout(static_cast<Uint32>(p.dimse_timeout_s));
  cfg.setACSETimeout(static_cast<Uint32>(p.acse_timeout_s));
  OFList<OFString> xfers;
  for (const auto& x : accepted_transfer_syntaxes()) xfers.push_back(x.c_str());
  for (const auto& c : accepted_sop_classes()) {
    const OFCondition cond = cfg.addPresentationContext(c.c_str(), xfers, ASC_SC_ROLE_DEFAULT);
    if (cond.bad()) throw Error(std::string("cannot configure the storage SCP: ") + cond.text());
  }
  OFList<OFString> echo_xfers;
  echo_xfers.push_back(UID_LittleEndianExplicitTransferSyntax);
  echo_xfers.push_back(UID_LittleEndianImplicitTransferSyntax);
  cfg.addPresentationContext(UID_VerificationSOPClass, echo_xfers, ASC_SC_ROLE_DEFAULT);
  pool->setMaxThreads(static_cast<Uint16>(p.max_associations));
  Pool* raw = pool.get();
  impl_->pool = std::move(pool);
  impl_->listener = std::thread([this, raw] {
    const OFCondition cond = raw->listen();
    if (cond.bad() && impl_->on_error)
      impl_->on_error("storage SCP on port " + std::to_string(impl_->ctx.params.port) + " stopped: " + cond.text());
  });
}

void StoreScp::stop() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (!impl_->pool) return;
  impl_->pool->stopAfterCurrentAssociations();
  if (impl_->listener.joinable()) impl_->listener.join();
  impl_->pool.reset();
}

std::vector<std::string> StoreScp::leftovers(const std::string& inbox) {
  remove_partials(inbox);
  return list_files(inbox, ".dcm");
}

}  // namespace cxr::dicom
