#pragma once
// Turns cuFFT status codes into lathe exceptions carrying file, line, the call and the status
// name. CUDA-free: the macro compares the status as an int, so only the .cu that makes the
// call needs <cufft.h>; host code can catch cufft_error (or lathe::error) without it.
#include <string>

#include "lathe/error.hpp"

namespace lathe::gpu {

class cufft_error : public lathe::error {
 public:
  using lathe::error::error;
};

/// "CUFFT_INVALID_PLAN", ... for a cufftResult value; "CUFFT_<unknown status N>" otherwise.
std::string cufft_status_name(int status);

}  // namespace lathe::gpu

#define LATHE_CUFFT_TRY(call)                                                                                 \
  do {                                                                                                        \
    const int lathe_cufft_status_ = static_cast<int>(call);                                                   \
    if (lathe_cufft_status_ != 0) {                                                                           \
      throw ::lathe::gpu::cufft_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + #call + \
                                      " failed: " + ::lathe::gpu::cufft_status_name(lathe_cufft_status_));    \
    }                                                                                                         \
  } while (0)
