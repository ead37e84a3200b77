// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/rendezvous.hpp"

#include <cerrno>
#include <cstdlib>
#include <string>

#include "cxr/error.hpp"
#include "cxr_config.h"

namespace cxr::train {

namespace {

bool env_long(const char* name, long& out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  errno = 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (errno || *end) throw InvalidArgument(std::string(name) + "='" + v + "' is not an integer");
  out = n;
  return true;
}

}  // namespace

DistOptions dist_options_from_env() {
  DistOptions o;
  long n = 0;
  if (env_long("RANK", n)) o.rank = static_cast<int>(n);
  if (env_long("WORLD_SIZE", n)) o.world_size = static_cast<int>(n);
  if (env_long("LOCAL_RANK", n)) o.local_rank = static_cast<int>(n);
  if (env_long("MASTER_PORT", n)) o.master_port = static_cast<int>(n);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  if (const char* t = std::getenv("CXR_DIST_TIMEOUT"); t && *t) {
    char* end = nullptr;
    o.timeout_seconds = std::strtod(t, &end);
    if (*end || !(o.timeout_seconds > 0))
      throw InvalidArgument(std::string("CXR_DIST_TIMEOUT='") + t + "' is not a positive number of seconds");
  }
  validate(o);
  return o;
}

void validate(const DistOptions& o) {
  if (o.world_size < 1) throw InvalidArgument("world size must be >= 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw InvalidArgument("rank " + std::to_string(o.rank) + " is outside a world of " + std::to_string(o.world_size));
  if (o.master_port < 1 || o.master_port > 65535)
    throw InvalidArgument("master port " + std::to_string(o.master_port) + " is outside 1..65535");
  if (!(o.timeout_seconds > 0)) throw InvalidArgument("the distributed timeout must be > 0 seconds");
  if (o.distributed() && o.master_addr.empty()) throw InvalidArgument("no master address (MASTER_ADDR)");
}

bool distributed_available() { return CXR_HAVE_DISTRIBUTED; }

}  // namespace cxr::train
