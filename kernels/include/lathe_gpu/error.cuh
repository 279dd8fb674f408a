#pragma once
// Turns CUDA status codes into lathe::error exceptions carrying file, line and the error name.
#include <cuda_runtime_api.h>

#include <string>

#include "lathe_gpu/cuda_error.hpp"

namespace lathe::gpu {
/// The statuses after which the CUDA runtime fails every later call in the process's context on
/// that device (CUDA Runtime API, cudaError: "the process must be terminated and relaunched").
inline bool is_sticky(cudaError_t status) {
  switch (status) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}
}  // namespace lathe::gpu

#define LATHE_CUDA_TRY(call)                                                                                 \
  do {                                                                                                       \
    const cudaError_t lathe_status_ = (call);                                                                \
    if (lathe_status_ != cudaSuccess) {                                                                      \
      throw ::lathe::gpu::cuda_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + #call + \
                                         " failed: " + cudaGetErrorName(lathe_status_) + " (" +              \
                                         cudaGetErrorString(lathe_status_) + ")",                            \
                                     ::lathe::gpu::is_sticky(lathe_status_));                                \
    }                                                                                                        \
  } while (0)

/// Checks the last launch (configuration errors surface here, execution errors at the next sync).
#define LATHE_CUDA_CHECK_LAUNCH() LATHE_CUDA_TRY(cudaGetLastError())
