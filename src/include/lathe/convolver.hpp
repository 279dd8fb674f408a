#pragma once
// Uniformly partitioned FFT convolution (overlap-save with a frequency-domain delay line) on FFTW.
#include <complex>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

struct fftwf_plan_s;  // FFTW's opaque plan (fftwf_plan is `fftwf_plan_s*`); keeps fftw3.h private

namespace lathe {

/// An impulse response cut into partitions of `partition_frames` and transformed once; shared
/// (read-only) by every convolver, channel and track that uses the same filter.
class partitioned_filter {
 public:
  /// partition_frames must be a power of two >= 64. Allocates; plans FFTW with FFTW_ESTIMATE
  /// (deterministic plans, so output is bit-identical run to run). Thread-safe to construct.
  partitioned_filter(std::span<const float> impulse_response, std::size_t partition_frames);
  ~partitioned_filter();
  partitioned_filter(const partitioned_filter&) = delete;
  partitioned_filter& operator=(const partitioned_filter&) = delete;

  std::size_t partition_frames() const noexcept { return partition_frames_; }
  std::size_t partitions() const noexcept { return partitions_; }
  std::size_t ir_frames() const noexcept { return ir_frames_; }

 private:
  friend class partitioned_convolver;
  std::size_t partition_frames_ = 0, partitions_ = 0, ir_frames_ = 0;
  std::size_t bins_ = 0;    // partition_frames + 1 (real-to-complex FFT of 2 * partition_frames)
  std::size_t stride_ = 0;  // floats per split array: bins_ rounded up to a SIMD multiple, zero-padded
  // [partition][re[stride_], im[stride_]], split real/imaginary so the multiply-accumulate is a
  // plain vector loop; the 1/(2 * partition_frames) inverse-FFT scale is folded in. fftwf_malloc.
  float* spectra_ = nullptr;
  // Plans for size 2 * partition_frames on fftwf_malloc-aligned arrays; every convolver executes
  // them on its own buffers (fftwf_execute_dft_* is thread-safe), so no per-convolver planning.
  fftwf_plan_s* r2c_plan_ = nullptr;
  fftwf_plan_s* c2r_plan_ = nullptr;
};

/// Streaming convolver of one input with K >= 1 filters into K outputs. Latency:
/// partition_frames() (input is gathered into whole partitions). Each input partition is
/// transformed once and multiplied with every filter, so K filters cost one forward FFT plus K
/// multiply-accumulates and inverse FFTs (a true-stereo reverb's two paths per input channel).
/// Output k is bit-identical to a single-filter convolver with filter k. process() never
/// allocates. Not thread-safe; one per input channel.
class partitioned_convolver {
 public:
  explicit partitioned_convolver(std::shared_ptr<const partitioned_filter> filter);
  /// K filters of one partition size (any partition counts). Throws logic_error otherwise.
  explicit partitioned_convolver(std::vector<std::shared_ptr<const partitioned_filter>> filters);
  ~partitioned_convolver();
  partitioned_convolver(partitioned_convolver&&) noexcept;
  partitioned_convolver& operator=(partitioned_convolver&&) noexcept;

  void reset() noexcept;
  /// Single-filter form (K == 1).
  void process(const float* in, float* out, std::size_t frames) noexcept;
  /// outs[k] receives filter k's output (K pointers). `in` may equal one of them.
  void process(const float* in, float* const* outs, std::size_t frames) noexcept;
  std::size_t filters() const noexcept;
  std::size_t latency_frames() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Serializes FFTW planner calls (the planner is not thread-safe); hold it around any
/// fftwf_plan_* / fftw_plan_* or fftwf_destroy_plan / fftw_destroy_plan call (float and double).
std::mutex& fftw_planner_mutex();

}  // namespace lathe
