// SPDX-License-Identifier: LGPL-2.1-or-later
// The C-STORE listener cxrdicomsrc runs (cxr::dicom::StoreScp) fed arbitrary upper-layer byte
// streams: each input is what one peer sends on one TCP connection over loopback (association
// request, P-DATA with commands and datasets, release, abort), after which the peer stops
// sending and reads until the listener closes. A received instance goes through the same
// durable write and header read as in the element; the handler deletes it again.
// An association the listener still holds open kDeadline after the peer's last byte is a
// finding (abort), as are crashes in the listener's threads: the input is the one whose
// connection is open.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "cxr/dicom/store_scp.hpp"
#include "fuzz_common.hpp"

namespace {

// The listener's ACSE and DIMSE timeouts; a peer that has gone quiet must be let go well
// within the deadline below.
constexpr int kListenerTimeoutS = 3;
constexpr auto kDeadline = std::chrono::seconds(8);

// A port the kernel just had free on loopback (several fuzzing processes may run at once).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("fuzz-listener: no free port");
    std::abort();
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int connect_to(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // DCMTK binds in its listener thread: the first connections may come before it listens.
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    if (fd >= 0) ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "fuzz-listener: cannot connect to the listener on port %d\n", port);
  std::abort();
}

int listener_port() {
  // Never destroyed: the listener's threads run until the process ends.
  static const int port = [] {
    cxr::dicom::ScpParams p;
    p.port = free_port();
    p.ae_title = "GSTCXR";
    p.inbox = cxr::fuzz::scratch_dir() + "/inbox";
    p.max_associations = 4;
    p.acse_timeout_s = kListenerTimeoutS;
    p.dimse_timeout_s = kListenerTimeoutS;
    auto* scp = new cxr::dicom::StoreScp(p, [](const cxr::dicom::InstanceInfo& info) { ::unlink(info.path.c_str()); });
    scp->start();
    return p.port;
  }();
  return port;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // DCMTK logs every refused association and malformed PDU, which would dominate the run.
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  listener_port();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = connect_to(listener_port());
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  // Send everything while reading whatever the listener answers (it may stop reading and
  // answer first), then half-close and read until it closes the connection.
  size_t sent = 0;
  bool shut = false, closed = false;
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  char sink[16384];
  while (!closed) {
    if (!shut && sent == size) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      std::fprintf(stderr, "fuzz-listener: the association is still open %lld s after the peer's last byte (%zu of %zu sent)\n",
                   static_cast<long long>(kDeadline.count()), sent, size);
      std::abort();
    }
    pollfd pfd{fd, short(POLLIN | (shut ? 0 : POLLOUT)), 0};
    if (::poll(&pfd, 1, int(left.count())) <= 0) continue;
    if (pfd.revents & POLLIN) {
      const ssize_t n = ::recv(fd, sink, sizeof sink, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) closed = true;
    } else if (pfd.revents & (POLLERR | POLLHUP)) {
      closed = true;
    }
    if (!closed && !shut && (pfd.revents & POLLOUT)) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0)
        sent += size_t(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR)
        shut = true;  // the listener closed its side: read what is left
    }
  }
  ::close(fd);
  return 0;
}
