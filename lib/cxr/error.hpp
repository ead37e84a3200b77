// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once
/// Typed exceptions of the engine. Elements turn them into GStreamer errors or error rows.
#include <stdexcept>
#include <string>

namespace cxr {

/// Base of every error the engine throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An input scan cannot be read: corrupt, truncated, unsupported, too large. Per-scan: the
/// stream goes on with the next scan.
class DecodeError : public Error {
 public:
  using Error::Error;
};

/// A parameter is out of range or inconsistent (programming or configuration mistake).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A configuration file (TOML card, pipeline, index CSV) is wrong; the message carries file:line.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A filesystem operation failed.
class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace cxr
