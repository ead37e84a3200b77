// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/train/run_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cxr/error.hpp"

namespace cxr::train {

namespace {

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw IoError("cannot open " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some filesystems refuse fsync on directories; the rename is still atomic there.
  if (rc != 0 && !(directory && (err == EINVAL || err == EBADF)))
    throw IoError("cannot sync " + path + ": " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  const std::filesystem::path p = std::filesystem::absolute(path).parent_path();
  return p.empty() ? std::string(".") : p.string();
}

}  // namespace

void commit_file(const std::string& tmp, const std::string& path) {
  try {
    fsync_path(tmp, false);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    std::remove(tmp.c_str());
    throw IoError("cannot rename " + tmp + " to " + path + ": " + err);
  }
  fsync_path(parent_dir(path), true);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("cannot write " + tmp + ": " + std::strerror(errno));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw IoError("cannot write " + tmp + ": " + std::strerror(errno));
    }
  }
  commit_file(tmp, path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace cxr::train
