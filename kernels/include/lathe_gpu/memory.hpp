#pragma once
// Ownership of device and pinned host memory, and of CUDA streams (RAII, move-only).
// Raw cudaMalloc/cudaFree/cudaMallocAsync/cudaFreeAsync/cudaMallocHost/cudaFreeHost appear only
// in kernels/memory.cu.
// Host-compilable: no CUDA headers needed to use these types from .cpp files.
#include <algorithm>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

namespace lathe::gpu {

/// Opaque stream handle (a cudaStream_t).
using stream_handle = void*;

/// Owns one non-blocking CUDA stream on the current device.
class stream {
 public:
  stream();
  ~stream();
  stream(stream&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  stream& operator=(stream&& o) noexcept {
    std::swap(handle_, o.handle_);
    return *this;
  }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  stream_handle get() const noexcept { return handle_; }
  /// Blocks the calling thread until all work queued on the stream is done; throws cuda_error.
  void synchronize() const;

 private:
  stream_handle handle_ = nullptr;
};

namespace detail {
// `s` null: cudaMalloc / cudaFree; else stream-ordered on `s` (cudaMallocAsync / cudaFreeAsync).
void* device_allocate(std::size_t bytes, stream_handle s);  // throws cuda_error (naming the size)
void device_free(void* p, stream_handle s) noexcept;
stream_handle allocation_stream() noexcept;  // this thread's (stream_ordered_allocation), or null
void* pinned_allocate(std::size_t bytes);
void pinned_free(void* p) noexcept;
void copy_async(void* dst, const void* src, std::size_t bytes, stream_handle s);  // any direction
void memset_async(void* dst, int value, std::size_t bytes, stream_handle s);
}  // namespace detail

/// While alive, the device buffers made on this thread are stream-ordered on `s`: taken from the
/// device's memory pool with cudaMallocAsync and given back with cudaFreeAsync on `s`, which
/// waits for the work queued on `s` before it and does not synchronize the device (cudaFree
/// does). For code whose every kernel and copy on those buffers runs on `s`, such as an engine
/// with its one stream. Scopes nest; the buffers may outlive the scope, not the stream.
class stream_ordered_allocation {
 public:
  explicit stream_ordered_allocation(const stream& s);
  ~stream_ordered_allocation();
  stream_ordered_allocation(const stream_ordered_allocation&) = delete;
  stream_ordered_allocation& operator=(const stream_ordered_allocation&) = delete;

 private:
  stream_handle previous_;
};

/// Whether `device` has stream-ordered memory pools; if so, its default pool keeps up to
/// `keep_bytes` of freed memory for the next cudaMallocAsync instead of returning it to the
/// driver at every synchronization (the pool's release threshold is raised, never lowered).
/// Throws cuda_error.
bool keep_pool_memory(int device, std::size_t keep_bytes);

/// Allocator calls since the process started (atomic counters), for tests that hold the
/// engine's allocations per call to a constant: device_sync counts cudaMalloc and cudaFree (each
/// cudaFree synchronizes the device), device_async cudaMallocAsync, pinned cudaMallocHost.
struct allocation_counts {
  std::size_t device_sync = 0, device_async = 0, pinned = 0;
};
allocation_counts allocations() noexcept;

/// Untyped device allocation of `bytes`: stream-ordered inside a stream_ordered_allocation scope,
/// else cudaMalloc. Its contents are undefined (with LATHE_GPU_POISON in the environment, as the
/// GPU tests run: every byte 0xFF, a NaN in every float). Move-only; copying needs a stream (copy_from()).
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t bytes)
      : stream_(detail::allocation_stream()),
        data_(bytes ? detail::device_allocate(bytes, stream_) : nullptr),
        bytes_(bytes) {}
  ~device_buffer() { detail::device_free(data_, stream_); }
  device_buffer(device_buffer&& o) noexcept
      : stream_(std::exchange(o.stream_, nullptr)),
        data_(std::exchange(o.data_, nullptr)),
        bytes_(std::exchange(o.bytes_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    std::swap(stream_, o.stream_);
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;

  void* data() noexcept { return data_; }
  const void* data() const noexcept { return data_; }
  std::size_t size_bytes() const noexcept { return bytes_; }

 private:
  stream_handle stream_ = nullptr;  // the allocation's stream; null: cudaMalloc
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

/// Typed device array of `size` elements (uninitialized). Move-only.
template <class T>
class device_vector {
 public:
  device_vector() = default;
  explicit device_vector(std::size_t size) : buf_(size * sizeof(T)), size_(size) {}
  T* data() noexcept { return static_cast<T*>(buf_.data()); }
  const T* data() const noexcept { return static_cast<const T*>(buf_.data()); }
  std::size_t size() const noexcept { return size_; }
  /// Asynchronous host->device copy of `host` (which must stay alive until the stream passes it).
  void upload_async(std::span<const T> host, const stream& s) {
    detail::copy_async(data(), host.data(), host.size_bytes(), s.get());
  }
  /// A temporary vector dies before the asynchronous copy reads it: refused at compile time.
  void upload_async(std::vector<T>&& host, const stream& s) = delete;
  /// Asynchronous device->host copy into `host`; synchronize the stream before reading it.
  void download_async(std::span<T> host, const stream& s) const {
    detail::copy_async(host.data(), data(), host.size_bytes(), s.get());
  }
  void zero_async(const stream& s) { detail::memset_async(data(), 0, size_ * sizeof(T), s.get()); }

 private:
  device_buffer buf_;
  std::size_t size_ = 0;
};

/// Page-locked host array for staging uploads and downloads at full PCIe/NVLink speed.
template <class T>
class pinned_vector {
 public:
  pinned_vector() = default;
  explicit pinned_vector(std::size_t size)
      : data_(static_cast<T*>(size ? detail::pinned_allocate(size * sizeof(T)) : nullptr)), size_(size) {}
  ~pinned_vector() { detail::pinned_free(data_); }
  pinned_vector(pinned_vector&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  pinned_vector& operator=(pinned_vector&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  pinned_vector(const pinned_vector&) = delete;
  pinned_vector& operator=(const pinned_vector&) = delete;
  T* data() noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::span<T> span() noexcept { return {data_, size_}; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// `v` grown to at least `n` elements (by half again at least), its contents not kept; returns
/// its data. cudaFreeHost synchronizes the device, so staging buffers are kept and reused.
template <class T>
T* reserve_pinned(pinned_vector<T>& v, std::size_t n) {
  if (v.size() < n) v = pinned_vector<T>(std::max(n, v.size() + v.size() / 2));
  return v.data();
}

}  // namespace lathe::gpu
