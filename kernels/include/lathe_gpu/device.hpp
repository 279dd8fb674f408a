#pragma once
// Host-side view of the CUDA devices. Compiled only when the CUDA engine is built
// (LATHE_HAVE_CUDA); callable without a GPU present.
#include <cstddef>
#include <string>
#include <vector>

namespace lathe::gpu {

struct device_info {
  int ordinal = 0;
  std::string name;
  int sm_major = 0, sm_minor = 0;
  std::size_t memory_bytes = 0;
};

/// The usable CUDA devices; empty when there is no driver or no device (never throws for that).
std::vector<device_info> devices();

/// Makes `ordinal` the calling host thread's current device. Throws cuda_error.
void set_current_device(int ordinal);

/// Device memory free on `ordinal` now (cudaMemGetInfo). Makes it the thread's current device.
/// Throws cuda_error.
std::size_t free_memory_bytes(int ordinal);

/// Why devices() is empty, in words ("no CUDA driver", "no CUDA-capable device"...), or "".
std::string no_device_reason();

}  // namespace lathe::gpu
