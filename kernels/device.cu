#include <cuda_runtime_api.h>

#include "lathe_gpu/device.hpp"
#include "lathe_gpu/error.cuh"

namespace lathe::gpu {

std::vector<device_info> devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" status
    return {};
  }
  std::vector<device_info> out;
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    LATHE_CUDA_TRY(cudaGetDeviceProperties(&prop, d));
    out.push_back({d, prop.name, prop.major, prop.minor, prop.totalGlobalMem});
  }
  return out;
}

void set_current_device(int ordinal) {
  LATHE_CUDA_TRY(cudaSetDevice(ordinal));
}

std::size_t free_memory_bytes(int ordinal) {
  set_current_device(ordinal);
  std::size_t free = 0, total = 0;
  LATHE_CUDA_TRY(cudaMemGetInfo(&free, &total));
  return free;
}

std::string no_device_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("CUDA reports ") + cudaGetErrorName(status) + ": " + cudaGetErrorString(status);
  }
  return count == 0 ? "no CUDA-capable device is present" : "";
}

}  // namespace lathe::gpu
