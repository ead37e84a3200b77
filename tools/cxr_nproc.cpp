// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr_nproc.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cxr/train/rendezvous.hpp"
#include "cxr_common.hpp"
#include "cxr_pipeline.hpp"

namespace cxrtool {

namespace {

std::vector<pid_t> g_children;

void forward_signal(int sig) {
  for (pid_t p : g_children)
    if (p > 0) kill(p, sig);
}

// A port nobody listens on now (the kernel's pick for port 0).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 29500;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 29500;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// Copies a rank's stderr to ours, one prefixed line at a time.
void relay(int fd, int rank) {
  FILE* in = fdopen(fd, "r");
  if (!in) return;
  char* line = nullptr;
  size_t cap = 0;
  const std::string prefix = "[rank " + std::to_string(rank) + "] ";
  while (getline(&line, &cap, in) > 0) {
    std::string out = line;
    // A progress bar's carriage returns: keep the last segment.
    const auto cr = out.find_last_of('\r', out.size() >= 2 ? out.size() - 2 : 0);
    if (cr != std::string::npos && cr + 1 < out.size()) out = out.substr(cr + 1);
    std::fputs((prefix + out).c_str(), stderr);
  }
  std::free(line);
  std::fclose(in);
}

}  // namespace

int run_ranks(int nproc, int argc, char** argv) {
  const char* addr_env = std::getenv("MASTER_ADDR");
  const std::string addr = addr_env && *addr_env ? addr_env : "127.0.0.1";
  const char* port_env = std::getenv("MASTER_PORT");
  const std::string port = port_env && *port_env ? port_env : std::to_string(free_port());
  double timeout = 300;
  try {
    timeout = cxr::train::dist_options_from_env().timeout_seconds;
  } catch (const std::exception&) {
  }

  std::vector<int> relays;
  g_children.assign(static_cast<size_t>(nproc), -1);
  std::vector<std::thread> readers;
  for (int r = 0; r < nproc; ++r) {
    int err[2] = {-1, -1};
    if (r > 0 && pipe(err) != 0) {
      std::perror("cxr run: pipe");
      forward_signal(SIGTERM);
      return kExitPipelineError;
    }
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("cxr run: fork");
      forward_signal(SIGTERM);
      return kExitPipelineError;
    }
    if (pid == 0) {
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", addr.c_str(), 1);
      setenv("MASTER_PORT", port.c_str(), 1);
      std::vector<char*> args;
      args.push_back(const_cast<char*>("cxr"));
      args.push_back(const_cast<char*>("run"));
      for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
      if (r > 0) {
        const int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(err[0]);
        close(err[1]);
        args.push_back(const_cast<char*>("--no-progress"));
      }
      args.push_back(nullptr);
      execv("/proc/self/exe", args.data());
      std::perror("cxr run: exec");
      _exit(kExitPipelineError);
    }
    g_children[static_cast<size_t>(r)] = pid;
    if (r > 0) {
      close(err[1]);
      readers.emplace_back(relay, err[0], r);
    }
  }
  struct sigaction sa{};
  sa.sa_handler = forward_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  int status_out = 0;
  int failed_rank = -1;
  std::chrono::steady_clock::time_point failed_at;
  int running = nproc;
  bool stopped = false;
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int rank = -1;
      for (int r = 0; r < nproc; ++r)
        if (g_children[static_cast<size_t>(r)] == pid) rank = r;
      if (rank < 0) continue;
      g_children[static_cast<size_t>(rank)] = -1;
      --running;
      int code = 0;
      std::string how;
      if (WIFEXITED(status)) {
        code = WEXITSTATUS(status);
        how = "exited with status " + std::to_string(code);
      } else if (WIFSIGNALED(status)) {
        code = kExitPipelineError;
        how = std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
      }
      if (code != 0 && failed_rank < 0) {
        failed_rank = rank;
        status_out = code;
        failed_at = std::chrono::steady_clock::now();
        std::fprintf(stderr, "cxr run: rank %d of %d %s\n", rank, nproc, how.c_str());
      } else if (code != 0) {
        std::fprintf(stderr, "cxr run: rank %d of %d %s\n", rank, nproc, how.c_str());
      }
      continue;
    }
    if (pid < 0) break;
    if (failed_rank >= 0 && !stopped &&
        std::chrono::steady_clock::now() - failed_at > std::chrono::duration<double>(timeout + 10)) {
      std::fprintf(stderr, "cxr run: stopping the ranks still running %.0f s after rank %d failed\n", timeout + 10,
                   failed_rank);
      forward_signal(SIGTERM);
      stopped = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& t : readers) t.join();
  g_children.clear();
  return status_out;
}

}  // namespace cxrtool
