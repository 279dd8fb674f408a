#pragma once
// Batched FFT convolution on cuFFT: one filter (linear-phase EQ FIR, 8k-64k taps; long reverb
// IRs later) applied to every lane of a batch by uniformly partitioned overlap-save with a
// frequency-domain delay line, batched across lanes x blocks. Index math and slicing:
// lathe_gpu/convolution_layout.hpp. Host-compilable (no CUDA types).
//
// Determinism: bitwise identical run to run on one GPU for the same batch, filter, block size
// and work budget: cuFFT plans are made for fixed (size, batch) shapes, each output bin sums its
// partitions in ascending order in one thread, no atomics. Results are NOT promised bitwise
// equal across GPU architectures, or across work budgets (a different budget gives different
// cuFFT batch sizes, which may select different cuFFT kernels); they agree within the
// precision bound below.
//
// Precision: float32 FFTs and accumulation; matches the CPU chain (linear_phase_eq_stage
// through lathe::run_aligned) within relative error 1e-5 (max |gpu - cpu| / rms(cpu)).
//
// TODO(measure on a GPU): block_frames is a parameter because the best partition size can only
// be found by measurement. Time gpu_convolver::convolve over a realistic batch (e.g. 64 lanes
// of 3 min at 48 kHz) for block_frames in {1024, 2048, ..., 32768} and taps in {8193, 16385,
// 32769, 65537, 240001}, on H100 and L4; record ms per batch and peak device memory, and replace
// conv_auto_block_frames()'s starting rule with the measured optimum per tap range.
#include <cstddef>
#include <memory>
#include <span>

#include "lathe_gpu/convolution_layout.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// cuFFT plans keyed by (FFT size, batch count, direction), created on first use and kept: a
/// plan costs milliseconds and device memory to make, so a caller keeps one cache per stream
/// for the life of a render. All plans share one work area owned here (device_vector); it only
/// grows, synchronizing the stream first so no queued transform still uses the old one.
/// Thread-safety: none. Use a cache from one host thread and for one stream at a time (plans
/// are re-bound to the caller's stream with cufftSetStream at each use, and the shared work
/// area must not be used by two streams at once): one cache per worker/stream.
class cufft_plan_cache {
 public:
  cufft_plan_cache();
  ~cufft_plan_cache();
  cufft_plan_cache(cufft_plan_cache&&) noexcept;
  cufft_plan_cache& operator=(cufft_plan_cache&&) noexcept;
  cufft_plan_cache(const cufft_plan_cache&) = delete;
  cufft_plan_cache& operator=(const cufft_plan_cache&) = delete;

  /// Number of plans held.
  std::size_t size() const noexcept;
  /// Bytes of the shared cuFFT work area (not counted in gpu_convolver's work budget).
  std::size_t work_area_bytes() const noexcept;

  enum class real_fft { forward_r2c, inverse_c2r };
  /// For other kernels/*.cu modules: the cufftHandle (an int) of a batched 1-D real transform of
  /// `fft_frames` frames per entry, entries contiguous (real side fft_frames floats apart, complex
  /// side fft_frames / 2 + 1 bins apart), made on first use on the shared work area and bound to
  /// `s`. Valid while the cache lives. Throws cufft_error.
  int real_plan_handle(std::size_t fft_frames, std::size_t batch, real_fft direction, const stream& s);

  struct impl;  // defined in kernels/dsp/convolution.cu

 private:
  friend class gpu_fir_filter;
  friend class gpu_convolver;
  std::unique_ptr<impl> impl_;
};

/// An impulse response cut into P partitions of B frames, each zero-padded to 2B and
/// transformed once on the device (R2C, 1/(2B) inverse-FFT scale folded in, exactly, since it is
/// a power of two); shared read-only by every lane, track and convolver that uses it (any
/// stream, once construction returned). Device memory: P (B + 1) complex floats.
class gpu_fir_filter {
 public:
  /// `impulse_response`: T >= 1 taps (host memory). `block_frames`: B, a power of two >= 64
  /// (conv_auto_block_frames(T) is the default rule). Uploads and transforms on `s`, then
  /// synchronizes `s` (construction returns a ready filter). Throws cuda_error / cufft_error.
  gpu_fir_filter(std::span<const float> impulse_response, std::size_t block_frames, const stream& s);

  std::size_t taps() const noexcept { return taps_; }
  std::size_t block_frames() const noexcept { return block_frames_; }
  std::size_t partitions() const noexcept { return partitions_; }
  /// P x (B + 1) interleaved (re, im) pairs, partition-major.
  const float* spectra_device() const noexcept { return spectra_.data(); }

 private:
  std::size_t taps_ = 0, block_frames_ = 0, partitions_ = 0;
  device_vector<float> spectra_;
};

/// Delay that makes a symmetric (type I) FIR of `taps` taps zero-phase: (taps - 1) / 2.
constexpr std::size_t linear_phase_delay_frames(std::size_t taps) noexcept {
  return taps > 0 ? (taps - 1) / 2 : 0;
}

/// Convolves every lane of a batch with one gpu_fir_filter. Offline semantics, per lane of N
/// frames: out[i] = sum_k h[k] in[i + delay_frames - k] for i in [0, N), in[] = 0 outside the
/// lane. With delay_frames = linear_phase_delay_frames(T) this equals the CPU chain's
/// run_aligned(linear_phase_eq_stage): linear-phase delay removed, tail past N dropped.
/// Owns its work buffers (spectra and time blocks, grown on demand, kept between calls) and
/// keeps them under `work_budget_bytes` by processing the batch in slices (lathe_gpu/
/// convolution_layout.hpp: make_conv_plan); the filter and cuFFT's work area are not counted.
/// Thread-safety: none; one convolver per stream (calls on one convolver must be stream-ordered).
class gpu_convolver {
 public:
  static constexpr std::size_t default_work_budget_bytes = std::size_t{256} << 20;

  explicit gpu_convolver(std::size_t work_budget_bytes = default_work_budget_bytes);

  /// Queues the convolution of the lanes of `layout` from `in` into `out` (both device arrays of
  /// at least layout.total_frames floats; they must not overlap) on `s` and returns without
  /// waiting. Frames of `out` outside every lane are left untouched. Host-side planning and
  /// table uploads happen here (uploads from pageable memory, staged before return, so
  /// `layout` may be destroyed afterwards). Throws logic_error on bad arguments (checked
  /// before any work is queued), cuda_error / cufft_error on CUDA failures.
  void convolve_async(const gpu_fir_filter& filter, const lane_layout& layout, const device_vector<float>& in,
                      device_vector<float>& out, std::size_t delay_frames, cufft_plan_cache& plans, const stream& s);

  /// convolve_async, then synchronizes `s`.
  void convolve(const gpu_fir_filter& filter, const lane_layout& layout, const device_vector<float>& in,
                device_vector<float>& out, std::size_t delay_frames, cufft_plan_cache& plans, const stream& s);

  std::size_t work_budget_bytes() const noexcept { return budget_bytes_; }
  /// The plan of the last call (slices, tables, capacities), for tests and diagnostics.
  const conv_plan& last_plan() const noexcept { return plan_; }

 private:
  std::size_t budget_bytes_;
  conv_plan plan_;
  device_vector<float> time_;    // time_capacity x 2B floats: R2C input, then C2R output
  device_vector<float> x_spec_;  // in_capacity x (B + 1) complex: input window spectra
  device_vector<float> y_spec_;  // out_capacity x (B + 1) complex: output block spectra
  device_vector<conv_in_block> in_table_;
  device_vector<conv_out_block> out_table_;
};

}  // namespace lathe::gpu
