#pragma once
// Turns CUDA status codes into lathe::error exceptions carrying file, line and the error name.
#include <cuda_runtime_api.h>

#include <string>

#include "lathe/error.hpp"

namespace lathe::gpu {
class cuda_error : public lathe::error {
 public:
  using lathe::error::error;
};
}  // namespace lathe::gpu

#define LATHE_CUDA_TRY(call)                                                                                 \
  do {                                                                                                       \
    const cudaError_t lathe_status_ = (call);                                                                \
    if (lathe_status_ != cudaSuccess) {                                                                      \
      throw ::lathe::gpu::cuda_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + #call + \
                                     " failed: " + cudaGetErrorName(lathe_status_) + " (" +                  \
                                     cudaGetErrorString(lathe_status_) + ")");                               \
    }                                                                                                        \
  } while (0)

/// Checks the last launch (configuration errors surface here, execution errors at the next sync).
#define LATHE_CUDA_CHECK_LAUNCH() LATHE_CUDA_TRY(cudaGetLastError())
