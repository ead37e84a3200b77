// SPDX-License-Identifier: LGPL-2.1-or-later
#include "cxr/dicom/durable.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "cxr/error.hpp"

namespace cxr::dicom {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Unique within the process; with the pid, unique among processes sharing the folder.
std::string temp_name(const std::string& name) {
  static std::atomic<unsigned long> counter{0};
  return "." + name + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + kPartialSuffix;
}

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot write " + path + ": " + errno_text());
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

void make_dirs(const std::string& dir) {
  if (dir.empty()) throw InvalidArgument("empty folder name");
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    cur = dir.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      throw IoError("cannot create folder " + cur + ": " + errno_text());
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw IoError(dir + " is not a folder");
}

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open " + path + " to sync it: " + errno_text());
  const int rc = ::fsync(fd);
  const std::string err = errno_text();
  ::close(fd);
  if (rc != 0) throw IoError("cannot sync " + path + ": " + err);
}

void sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open folder " + dir + " to sync it: " + errno_text());
  const int rc = ::fsync(fd);
  const std::string err = errno_text();
  ::close(fd);
  if (rc != 0) throw IoError("cannot sync folder " + dir + ": " + err);
}

void publish(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    const std::string err = errno_text();
    ::unlink(from.c_str());
    throw IoError("cannot rename " + from + " to " + to + ": " + err);
  }
  sync_dir(dir_of(to));
}

void write_durably(const std::string& dir, const std::string& name, const void* data, size_t size) {
  const std::string tmp = dir + "/" + temp_name(name);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError("cannot create " + tmp + ": " + errno_text());
  try {
    write_all(fd, data, size, tmp);
    if (::fsync(fd) != 0) throw IoError("cannot sync " + tmp + ": " + errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  publish(tmp, dir + "/" + name);
}

void copy_durably(const std::string& from, const std::string& dir, const std::string& name) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw IoError("cannot open " + from + ": " + errno_text());
  const std::string tmp = dir + "/" + temp_name(name);
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    const std::string err = errno_text();
    ::close(in);
    throw IoError("cannot create " + tmp + ": " + err);
  }
  try {
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(in, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw IoError("cannot read " + from + ": " + errno_text());
      if (n == 0) break;
      write_all(out, buf, static_cast<size_t>(n), tmp);
    }
    if (::fsync(out) != 0) throw IoError("cannot sync " + tmp + ": " + errno_text());
  } catch (...) {
    ::close(in);
    ::close(out);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(in);
  ::close(out);
  publish(tmp, dir + "/" + name);
}

std::vector<std::string> list_files(const std::string& dir, const std::string& suffix) {
  std::vector<std::pair<std::pair<long long, long long>, std::string>> found;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return {};
    throw IoError("cannot list " + dir + ": " + errno_text());
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.' || ends_with(name, kPartialSuffix) || !ends_with(name, suffix)) continue;
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    found.push_back({{static_cast<long long>(st.st_mtim.tv_sec), static_cast<long long>(st.st_mtim.tv_nsec)}, path});
  }
  ::closedir(d);
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

size_t remove_partials(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  std::vector<std::string> partial;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (ends_with(name, kPartialSuffix)) partial.push_back(dir + "/" + name);
  }
  ::closedir(d);
  for (const auto& p : partial) ::unlink(p.c_str());
  if (!partial.empty()) sync_dir(dir);
  return partial.size();
}

bool remove_durably(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;
    throw IoError("cannot remove " + path + ": " + errno_text());
  }
  sync_dir(dir_of(path));
  return true;
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s)
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '_')
      out += c;
  return out.empty() ? "unnamed" : out;
}

}  // namespace cxr::dicom
