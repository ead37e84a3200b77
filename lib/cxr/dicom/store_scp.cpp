// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/dicom/store_scp.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scppool.h>
#include <dcmtk/dcmnet/scpthrd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

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

std::string associate_rq_problem(const uint8_t* body, size_t size) {
  // parseAssociate's layout (PS3.8 9.3.2): protocol version, reserved, called and calling AE
  // titles, 32 reserved bytes, then items of type, reserved, 16-bit length. Shorter requests
  // are refused by DCMTK before it creates any list.
  constexpr size_t kFixed = 2 + 2 + 16 + 16 + 32;
  constexpr size_t kUidMax = 64;
  if (size < kFixed) return {};
  // DCMTK reads each AE title up to its first NUL and drops trailing spaces; with either one
  // empty it fails to build its answer and leaks the two lists it had made for it.
  for (const auto& [offset, which] : {std::pair<size_t, const char*>{4, "called"}, {20, "calling"}}) {
    size_t n = 0;
    while (n < 16 && body[offset + n] != 0) ++n;
    while (n > 0 && body[offset + n - 1] == ' ') --n;
    if (n == 0) return std::string("the ") + which + " AE title is empty";
  }
  auto u16 = [body](size_t at) { return size_t(body[at]) << 8 | body[at + 1]; };
  size_t at = kFixed;
  int user_info_items = 0, user_identities = 0;
  while (at < size) {
    const size_t avail = size - at;
    const uint8_t type = body[at];
    if (type != 0x20 && type != 0x21) {
      // Other items: where DCMTK's parser stops, it frees what it built. The walk goes on
      // (DCMTK refuses such a request anyway).
      if (avail < 4 || u16(at + 2) > avail - 4) return {};
      if (type == 0x50) {
        const std::string where = "the user information item at byte " + std::to_string(at + 6);
        // A second one (or a second user identity) replaces what DCMTK kept of the first.
        if (++user_info_items > 1) return "more than one user information item";
        size_t sub = at + 4, left = u16(at + 2);
        while (left > 0) {
          const uint8_t sub_type = body[sub];
          if ((sub_type == 0x58 || sub_type == 0x59) && ++user_identities > 1)
            return where + " has more than one user identity sub-item";
          // SOP class extended negotiation: DCMTK allocates the sub-item, then drops it when
          // its lengths do not fit.
          if (sub_type == 0x56 && (left < 6 || u16(sub + 2) > left - 4 || u16(sub + 2) < 2 ||
                                   u16(sub + 4) > u16(sub + 2) - 2))
            return where + " has an extended negotiation sub-item whose lengths do not fit";
          if (left < 4 || u16(sub + 2) > left - 4) break;  // DCMTK stops here and frees it all
          left -= 4 + u16(sub + 2);
          sub += 4 + u16(sub + 2);
        }
      }
      at += 4 + u16(at + 2);
      continue;
    }
    if (avail < 8) return {};  // refused before the item's list exists
    const size_t len = u16(at + 2);
    const std::string where = "the presentation context item at byte " + std::to_string(at + 6);
    if (len < 4 || len > avail - 4)
      return where + " declares " + std::to_string(len) + " bytes (" + std::to_string(avail - 4) + " follow)";
    // An accepting side's refused context has no sub-items to parse.
    size_t transfer_syntaxes = 0;
    if (type == 0x20 || body[at + 6] == 0) {
      size_t sub = at + 8, left = len - 4;
      while (left > 0) {
        if (left < 4) return where + " ends inside a sub-item header";
        const uint8_t sub_type = body[sub];
        const size_t sub_len = u16(sub + 2);
        if ((sub_type == 0x30 || sub_type == 0x40) && sub_len > kUidMax)
          return where + " names a syntax of " + std::to_string(sub_len) + " characters (at most 64)";
        if (sub_len > left - 4)
          return where + " has a sub-item of " + std::to_string(sub_len) + " bytes (" + std::to_string(left - 4) +
                 " follow)";
        transfer_syntaxes += sub_type == 0x40;
        sub += 4 + sub_len;
        left -= 4 + sub_len;
      }
    }
    // DCMTK parses such a context, then fails to translate it and drops every list it parsed.
    if (transfer_syntaxes == 0) return where + " offers no transfer syntax";
    at += 4 + len;
  }
  return {};
}

namespace {

// DCMTK keeps the SOP class extended negotiation sub-items it parsed in a list whose members it
// does not free when the rest of the request then fails to parse, so every such request lost
// them. The listener negotiates no extended negotiation (it would answer without any), so the
// request is handed to DCMTK without them: removed from the user information item, whose length
// and the PDU's shrink accordingly. `pdu` is a whole A-ASSOCIATE-RQ that associate_rq_problem
// accepted.
void strip_extended_negotiation(std::vector<uint8_t>& pdu) {
  auto u16 = [&pdu](size_t at) { return size_t(pdu[at]) << 8 | pdu[at + 1]; };
  auto put16 = [&pdu](size_t at, size_t v) { pdu[at] = uint8_t(v >> 8), pdu[at + 1] = uint8_t(v); };
  size_t at = 6 + 68;
  while (at + 4 <= pdu.size() && u16(at + 2) <= pdu.size() - at - 4) {
    if (pdu[at] != 0x50) {
      at += 4 + u16(at + 2);
      continue;
    }
    size_t sub = at + 4, end = at + 4 + u16(at + 2), removed = 0;
    while (sub + 4 <= end && u16(sub + 2) <= end - sub - 4) {
      const size_t n = 4 + u16(sub + 2);
      if (pdu[sub] == 0x56) {
        pdu.erase(pdu.begin() + long(sub), pdu.begin() + long(sub + n));
        end -= n;
        removed += n;
      } else {
        sub += n;
      }
    }
    if (removed == 0) return;
    put16(at + 2, u16(at + 2) - removed);
    const uint32_t length = uint32_t(pdu.size() - 6);
    pdu[2] = uint8_t(length >> 24), pdu[3] = uint8_t(length >> 16), pdu[4] = uint8_t(length >> 8), pdu[5] = uint8_t(length);
    return;  // associate_rq_problem allows one user information item
  }
}

// Follows the PDU stream after the association request. DCMTK parses a DIMSE command set as its
// fragments arrive and allocates each element's declared length before reading the value, so
// a command of a few bytes whose element declares 2 GB made it ask for 2 GB. Command sets are
// small (UIDs, AE titles, short integers): an element or a whole command set over kMaxCommand
// is refused before DCMTK reads the bytes that declare it.
class CommandScreen {
 public:
  static constexpr uint64_t kMaxCommand = 64 * 1024;

  // The next bytes DCMTK is about to read: a reason to refuse them, or empty.
  std::string feed(const uint8_t* p, size_t n) {
    while (n > 0 && !lost_) {
      if (pdu_hdr_n_ < 6) {  // PDU header
        pdu_hdr_[pdu_hdr_n_++] = *p++;
        --n;
        if (pdu_hdr_n_ == 6) {
          pdu_left_ = be32(pdu_hdr_ + 2);
          pdata_ = pdu_hdr_[0] == 0x04;
          if (pdu_left_ == 0) pdu_hdr_n_ = 0;
        }
        continue;
      }
      size_t k = 0;
      if (!pdata_) {
        k = size_t(std::min<uint64_t>(n, pdu_left_));
      } else if (pdv_hdr_n_ < 6) {  // PDV header: length, context, control
        pdv_hdr_[pdv_hdr_n_++] = *p;
        k = 1;
        if (pdv_hdr_n_ == 6) {
          const uint64_t length = be32(pdv_hdr_);
          // A PDV shorter than its header or longer than its PDU: DCMTK refuses the PDU.
          if (length < 2 || length - 2 > pdu_left_ - 1) lost_ = true;
          pdv_left_ = length - 2;
          control_ = pdv_hdr_[5];
          if (pdv_left_ == 0) end_pdv();
        }
      } else {  // PDV data
        k = size_t(std::min<uint64_t>(n, pdv_left_));
        if (control_ & 0x01) {
          std::string problem = command(p, k);
          if (!problem.empty()) return problem;
        }
        pdv_left_ -= k;
        if (pdv_left_ == 0) end_pdv();
      }
      p += k;
      n -= k;
      pdu_left_ -= k;
      if (pdu_left_ == 0) {
        pdu_hdr_n_ = 0;
        if (pdv_hdr_n_ != 0 && pdv_hdr_n_ < 6) lost_ = true;  // a PDV header split across PDUs
        pdv_hdr_n_ = 0;
      }
    }
    return {};
  }

 private:
  static uint64_t be32(const uint8_t* b) {
    return uint64_t(b[0]) << 24 | uint64_t(b[1]) << 16 | uint64_t(b[2]) << 8 | b[3];
  }

  void end_pdv() {
    pdv_hdr_n_ = 0;
    if ((control_ & 0x03) == 0x03) {  // the last fragment of a command: the next one starts afresh
      el_hdr_n_ = 0;
      el_skip_ = 0;
      command_bytes_ = 0;
    }
  }

  // Command bytes (implicit VR little endian): element headers are checked as they complete.
  std::string command(const uint8_t* p, size_t n) {
    command_bytes_ += n;
    if (command_bytes_ > kMaxCommand)
      return "a DIMSE command set of more than " + std::to_string(kMaxCommand) + " bytes";
    while (n > 0) {
      if (el_skip_ > 0) {
        const size_t k = size_t(std::min<uint64_t>(n, el_skip_));
        p += k;
        n -= k;
        el_skip_ -= k;
        continue;
      }
      el_hdr_[el_hdr_n_++] = *p++;
      --n;
      if (el_hdr_n_ == 8) {
        el_hdr_n_ = 0;
        el_skip_ = uint64_t(el_hdr_[4]) | uint64_t(el_hdr_[5]) << 8 | uint64_t(el_hdr_[6]) << 16 |
                   uint64_t(el_hdr_[7]) << 24;
        if (el_skip_ > kMaxCommand) {
          char tag[16];
          std::snprintf(tag, sizeof tag, "(%02X%02X,%02X%02X)", el_hdr_[1], el_hdr_[0], el_hdr_[3], el_hdr_[2]);
          return std::string("DIMSE command element ") + tag + " declares " + std::to_string(el_skip_) +
                 " bytes (a command set holds at most " + std::to_string(kMaxCommand) + ")";
        }
      }
    }
    return {};
  }

  uint8_t pdu_hdr_[6] = {};
  size_t pdu_hdr_n_ = 0;
  uint64_t pdu_left_ = 0;
  bool pdata_ = false;
  uint8_t pdv_hdr_[6] = {};
  size_t pdv_hdr_n_ = 0;
  uint64_t pdv_left_ = 0;
  uint8_t control_ = 0;
  uint8_t el_hdr_[8] = {};
  size_t el_hdr_n_ = 0;
  uint64_t el_skip_ = 0;
  uint64_t command_bytes_ = 0;
  bool lost_ = false;  // a stream DCMTK refuses by itself: no longer followed
};

// The transport connection of every association: it reads the peer's first PDU whole before
// DCMTK does, and when that is an A-ASSOCIATE-RQ DCMTK would leak on (associate_rq_problem),
// one larger than kMaxAssociateRq or one not complete within the ACSE timeout, hands DCMTK a
// PDU header of no known type instead, which its listener refuses by itself. (A read error
// would not do: DCMTK takes it for a peer that closed, accepts an empty association and gives
// it a worker, which then counts against max-associations.) After the first PDU, reads go to
// the socket through a CommandScreen; a command it refuses ends the association (a read error).
class ScreenedConnection : public DcmTCPConnection {
 public:
  ScreenedConnection(DcmNativeSocketType socket, int timeout_s) : DcmTCPConnection(socket), timeout_s_(timeout_s) {}

  ssize_t read(void* buf, size_t nbyte) override {
    if (state_ == State::Fresh && !prefetch()) {
      state_ = State::Refused;
      first_.assign(6, 0);  // PDU type 0: none
      served_ = 0;
    } else if (state_ == State::Fresh) {
      state_ = State::Serving;
      screen_.feed(first_.data(), first_.size());  // keeps the screen in step with the PDUs
    }
    if ((state_ == State::Refused || state_ == State::Closed) && served_ == first_.size()) {
      errno = ECONNRESET;
      return -1;
    }
    if (served_ < first_.size()) {
      const size_t n = std::min(nbyte, first_.size() - served_);
      std::memcpy(buf, first_.data() + served_, n);
      served_ += n;
      if (served_ == first_.size()) {
        std::vector<uint8_t>().swap(first_);
        served_ = 0;
      }
      return ssize_t(n);
    }
    const ssize_t got = DcmTCPConnection::read(buf, nbyte);
    if (got > 0) {
      const std::string problem = screen_.feed(static_cast<const uint8_t*>(buf), size_t(got));
      if (!problem.empty()) {
        DCMNET_WARN("association aborted: " << problem.c_str());
        state_ = State::Closed;
        errno = ECONNRESET;
        return -1;
      }
    }
    return got;
  }

  OFBool networkDataAvailable(int timeout) override {
    if (served_ < first_.size() || state_ == State::Refused) return OFTrue;
    return DcmTCPConnection::networkDataAvailable(timeout);
  }

 private:
  enum class State { Fresh, Serving, Refused, Closed };
  // Large enough for 128 presentation contexts of many transfer syntaxes each.
  static constexpr size_t kMaxAssociateRq = 1 << 20;

  // Appends up to `n` bytes to first_ within the time left; false on timeout or error. At the
  // end of the stream it returns true with fewer bytes (DCMTK then sees the stream end).
  bool fill(size_t n, std::chrono::steady_clock::time_point deadline) {
    const size_t want = first_.size() + n;
    while (first_.size() < want) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{getSocket(), POLLIN, 0};
      const int ready = ::poll(&pfd, 1, int(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
      uint8_t chunk[16384];
      const ssize_t got = ::recv(getSocket(), chunk, std::min(sizeof chunk, want - first_.size()), 0);
      if (got == 0) return true;
      if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return false;
      }
      first_.insert(first_.end(), chunk, chunk + got);
    }
    return true;
  }

  bool prefetch() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s_);
    if (!fill(6, deadline)) return incomplete();
    if (first_.size() < 6 || first_[0] != 0x01) return true;  // not a request: DCMTK answers it
    const uint32_t length = uint32_t(first_[2]) << 24 | uint32_t(first_[3]) << 16 | uint32_t(first_[4]) << 8 | first_[5];
    std::string problem;
    if (length > kMaxAssociateRq) {
      problem = "it declares " + std::to_string(length) + " bytes (at most " + std::to_string(kMaxAssociateRq) + ")";
    } else {
      if (!fill(length, deadline)) return incomplete();
      if (first_.size() < 6 + size_t(length)) return true;  // cut short: DCMTK refuses it
      problem = associate_rq_problem(first_.data() + 6, length);
    }
    if (problem.empty()) {
      strip_extended_negotiation(first_);
      return true;
    }
    DCMNET_WARN("association request refused unparsed: " << problem.c_str());
    return false;
  }

  bool incomplete() {
    DCMNET_WARN("association request refused: its first PDU incomplete (" << first_.size() << " bytes within "
                                                                         << timeout_s_ << " s)");
    return false;
  }

  int timeout_s_;
  State state_ = State::Fresh;
  std::vector<uint8_t> first_;
  size_t served_ = 0;
  CommandScreen screen_;
};

// Hands DCMTK a ScreenedConnection for every accepted socket.
class ScreenedLayer : public DcmTransportLayer {
 public:
  explicit ScreenedLayer(int timeout_s) : timeout_s_(timeout_s) {}
  DcmTransportConnection* createConnection(DcmNativeSocketType socket, OFBool) override {
    return new ScreenedConnection(socket, timeout_s_);
  }

 private:
  int timeout_s_;
};

// DCMTK 3.6.7's pool deletes a worker when its association ends but neither joins nor detaches
// its thread, so every association kept a thread's stack mapped (8 MB of address space and the
// pages it touched; fixed upstream after 3.6.7). A worker deleted by its own thread hands the
// thread over here; the pool joins those threads when it creates the next worker and when it
// stops. (Workers DCMTK deletes at shutdown it has joined itself.)
class ThreadReaper {
 public:
  void hand_over(pthread_t thread) {
    std::lock_guard<std::mutex> lock(mutex_);
    ended_.push_back(thread);
  }
  // Each thread handed over has finished its worker and is on its way out: the joins are short.
  void join_all() {
    std::vector<pthread_t> ended;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ended.swap(ended_);
    }
    for (const pthread_t t : ended) ::pthread_join(t, nullptr);
  }

 private:
  std::mutex mutex_;
  std::vector<pthread_t> ended_;
};

struct Context {
  ScpParams params;
  StoreScp::Handler handler;
  ThreadReaper reaper;
};

// One association: DcmThreadSCP does the negotiation and DIMSE loop; we check AE titles and
// store instances durably before answering.
class Worker : public DcmBaseSCPPool::DcmBaseSCPWorker, private DcmThreadSCP {
 public:
  Worker(DcmBaseSCPPool& pool, Context& ctx) : DcmBaseSCPWorker(pool), DcmThreadSCP(), ctx_(ctx) {}
  ~Worker() override {
    if (started_ && ::pthread_equal(::pthread_self(), thread_)) ctx_.reaper.hand_over(thread_);
  }

  OFCondition setSharedConfig(const DcmSharedSCPConfig& config) override { return DcmThreadSCP::setSharedConfig(config); }
  OFBool busy() override { return DcmThreadSCP::isConnected(); }
  OFCondition workerListen(T_ASC_Association* const assoc) override {
    thread_ = ::pthread_self();
    started_ = true;
    return DcmThreadSCP::run(assoc);
  }

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
  Context& ctx_;
  pthread_t thread_{};
  bool started_ = false;
};

class Pool : public DcmBaseSCPPool {
 public:
  explicit Pool(Context& ctx) : ctx_(ctx) {}

 protected:
  DcmBaseSCPWorker* createSCPWorker() override {
    ctx_.reaper.join_all();
    return new Worker(*this, ctx_);
  }

 private:
  Context& ctx_;
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
  std::unique_ptr<ScreenedLayer> layer;  // outlives the pool, which only points to it
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
  // Every connection through ScreenedConnection (DCMTK treats any layer as its TLS hook).
  if (!impl_->layer) impl_->layer = std::make_unique<ScreenedLayer>(p.acse_timeout_s);
  cfg.setTransportLayer(impl_->layer.get());
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
  impl_->ctx.reaper.join_all();
}

std::vector<std::string> StoreScp::leftovers(const std::string& inbox) {
  remove_partials(inbox);
  return list_files(inbox, ".dcm");
}

}  // namespace cxr::dicom
