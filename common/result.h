// Result<T> holds a T or an Error; Status is Result<void>. Errors are values:
// they cross callbacks and threads as data, never as exceptions.
//
// Shaped like std::expected so it can become an alias later: g++ 12 has
// <expected> only in C++23 mode, and Debian 12 packages no tl-expected.
// Thread: owner (a plain value type).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace dropq {

enum class Errc {
  kIo,        // a system call failed (errno text in `what`)
  kConfig,    // bad configuration (file:line: key: message)
  kRedis,     // Redis unreachable or returned an error
  kVanished,  // a file disappeared between being seen and being used
  kTimeout,   // a deadline passed
  kHandler,   // a handler could not be run
  kNotFound,  // a looked-up object does not exist
  kInvalid,   // bad input (a parse error, a wrong state)
};

struct Error {
  Errc code;
  std::string what;  // e.g. "rename a.png -> done/a.png: Invalid cross-device link"
};

// Builds an Error from errno-style `err` (a positive errno value): "<what>: <strerror>".
Error IoError(std::string what, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_{Errc::kIo, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status OkStatus() { return Status(); }

}  // namespace dropq
