// The one module that calls the CUDA allocator and owns stream creation.
#include <cuda_runtime_api.h>

#include <string>

#include "lathe_gpu/error.cuh"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

stream::stream() {
  cudaStream_t s = nullptr;
  LATHE_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
}

stream::~stream() {
  if (handle_ != nullptr) (void)cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
}

void stream::synchronize() const {
  LATHE_CUDA_TRY(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_)));
}

namespace detail {

void* device_allocate(std::size_t bytes) {
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw cuda_error("cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorName(status) + " (" +
                     cudaGetErrorString(status) + ")");
  }
  return p;
}

void device_free(void* p) noexcept {
  if (p != nullptr) (void)cudaFree(p);
}

void* pinned_allocate(std::size_t bytes) {
  void* p = nullptr;
  LATHE_CUDA_TRY(cudaMallocHost(&p, bytes));
  return p;
}

void pinned_free(void* p) noexcept {
  if (p != nullptr) (void)cudaFreeHost(p);
}

void copy_async(void* dst, const void* src, std::size_t bytes, stream_handle s) {
  if (bytes == 0) return;
  LATHE_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(s)));
}

void memset_async(void* dst, int value, std::size_t bytes, stream_handle s) {
  if (bytes == 0) return;
  LATHE_CUDA_TRY(cudaMemsetAsync(dst, value, bytes, static_cast<cudaStream_t>(s)));
}

}  // namespace detail
}  // namespace lathe::gpu
