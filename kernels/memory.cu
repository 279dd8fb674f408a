// The one module that calls the CUDA allocator and owns stream creation.
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

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

namespace {
thread_local stream_handle allocation_stream_ = nullptr;
// LATHE_GPU_POISON set: every new allocation is filled with 0xFF bytes (a NaN in every float
// and double), so a kernel that leaves part of its output unwritten fails its test.
const bool poison = std::getenv("LATHE_GPU_POISON") != nullptr;
std::atomic<std::size_t> sync_calls{0}, async_calls{0}, pinned_calls{0};
}  // namespace

stream_handle allocation_stream() noexcept {
  return allocation_stream_;
}

void* device_allocate(std::size_t bytes, stream_handle s) {
  void* p = nullptr;
  ++(s != nullptr ? async_calls : sync_calls);
  const cudaError_t status =
      s != nullptr ? cudaMallocAsync(&p, bytes, static_cast<cudaStream_t>(s)) : cudaMalloc(&p, bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw cuda_error(std::string(s != nullptr ? "cudaMallocAsync" : "cudaMalloc") + " of " + std::to_string(bytes) +
                         " bytes failed: " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")",
                     is_sticky(status));
  }
  if (poison) {
    if (s != nullptr)
      LATHE_CUDA_TRY(cudaMemsetAsync(p, 0xFF, bytes, static_cast<cudaStream_t>(s)));
    else
      LATHE_CUDA_TRY(cudaMemset(p, 0xFF, bytes));
  }
  return p;
}

void device_free(void* p, stream_handle s) noexcept {
  if (p == nullptr) return;
  if (s != nullptr)
    (void)cudaFreeAsync(p, static_cast<cudaStream_t>(s));
  else {
    ++sync_calls;
    (void)cudaFree(p);
  }
}

void* pinned_allocate(std::size_t bytes) {
  ++pinned_calls;
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

allocation_counts allocations() noexcept {
  return {detail::sync_calls.load(), detail::async_calls.load(), detail::pinned_calls.load()};
}

stream_ordered_allocation::stream_ordered_allocation(const stream& s)
    : previous_(std::exchange(detail::allocation_stream_, s.get())) {}

stream_ordered_allocation::~stream_ordered_allocation() {
  detail::allocation_stream_ = previous_;
}

bool keep_pool_memory(int device, std::size_t keep_bytes) {
  int supported = 0;
  LATHE_CUDA_TRY(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device));
  if (supported == 0) return false;
  cudaMemPool_t pool = nullptr;
  LATHE_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t threshold = 0;
  LATHE_CUDA_TRY(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  if (keep_bytes > threshold) {
    threshold = keep_bytes;
    LATHE_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  }
  return true;
}

}  // namespace lathe::gpu
