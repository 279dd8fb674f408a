#pragma once
// The exception for CUDA failures. CUDA-free, so host code can catch it and ask whether the
// device is still usable; error.cuh makes it from a status code.
#include <string>

#include "lathe/error.hpp"

namespace lathe::gpu {

class cuda_error : public lathe::error {
 public:
  explicit cuda_error(const std::string& what, bool sticky = false) : error(what), sticky_(sticky) {}
  /// The failure left the device's context unusable (an illegal address, a failed launch, an
  /// uncorrectable ECC error...): every later call on that device fails the same way.
  bool sticky() const noexcept { return sticky_; }

 private:
  bool sticky_;
};

}  // namespace lathe::gpu
