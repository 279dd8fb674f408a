#pragma once
// Typed errors for lathe. The checks stay on in release builds; they run at prepare() and dispatch,
// never inside process() loops or kernels.
#include <stdexcept>
#include <string>

namespace lathe {

/// Base of every lathe error.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A violated precondition inside lathe: a bug, not bad user input.
class logic_error : public error {
 public:
  using error::error;
};

/// A bad profile, manifest or command line: the run cannot start. Exit status 1.
class config_error : public error {
 public:
  using error::error;
};

/// A bad input track (unreadable, corrupt, unsupported): that track fails, the catalog goes on.
class input_error : public error {
 public:
  input_error(std::string path, std::string reason)
      : error(path + ": " + reason), path_(std::move(path)), reason_(std::move(reason)) {}
  const std::string& path() const noexcept { return path_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

/// Writing an output failed (disk full, permissions): that track fails.
class output_error : public error {
 public:
  using error::error;
};

namespace detail {
[[noreturn]] void throw_logic_error(const char* file, int line, const std::string& what);
}  // namespace detail
}  // namespace lathe

#define LATHE_STRINGIFY_DETAIL(x) #x
#define LATHE_STRINGIFY(x) LATHE_STRINGIFY_DETAIL(x)

/// Throws lathe::logic_error naming the file, line and the failed condition when `cond` is false.
#define LATHE_EXPECTS(cond, what)                                                                           \
  do {                                                                                                      \
    if (!(cond)) {                                                                                          \
      ::lathe::detail::throw_logic_error(__FILE__, __LINE__, std::string("expected " #cond ": ") + (what)); \
    }                                                                                                       \
  } while (0)

/// Throws lathe::logic_error naming the file and line.
#define LATHE_FAIL(what) ::lathe::detail::throw_logic_error(__FILE__, __LINE__, (what))
