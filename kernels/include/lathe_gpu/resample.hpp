#pragma once
// Rational polyphase sample-rate conversion of every lane of a batch on the GPU: the algorithm
// of lathe::polyphase_resampler (src/include/lathe/polyphase.hpp), whose float64-designed
// float32 table is uploaded once and shared by all lanes.
//
// One thread per output sample. Output j of a lane, with j M = q L + r, is
//   float( (s0 + s1) + (s2 + s3) ),  s_k = sum over taps t = k mod 4 of double(c[r T + t]) * double(x[q - K + t])
// with x = 0 outside the lane: the CPU reference's operations in its order. Products of two
// floats are exact in float64, so FMA contraction cannot change them; the result is expected to
// be bitwise equal to the CPU's (the tests demand relative error <= 1e-6).
// Accumulation: float64 (exact products, four fixed partial sums); no Kahan needed.
// Determinism: every output is one fixed-order dot product, no atomics, no reductions across
// threads: bitwise identical run to run and independent of the batch's other lanes.
// Host-compilable.
#include <cstdint>
#include <span>
#include <vector>

#include "lathe/polyphase.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// The layout of the resampled batch: lane l has design.output_frames(in.frames[l]) frames,
/// lanes in the same order, packed from offset 0.
lane_layout resampled_layout(const lane_layout& in, const polyphase_resampler& design);

/// Device copy of one design's coefficient table, shared by every batch at that rate pair.
class resample_filter {
 public:
  /// Uploads design.coefficients() on `s` and synchronizes `s` (so `design` may die after).
  /// Throws cuda_error.
  resample_filter(const polyphase_resampler& design, const stream& s);

  std::uint32_t up() const noexcept { return up_; }
  std::uint32_t down() const noexcept { return down_; }
  std::uint32_t half_taps() const noexcept { return half_taps_; }
  std::uint32_t taps_per_phase() const noexcept { return 2 * half_taps_ + 1; }
  /// Device, tap-major, each float tap widened to double: tap t of phase r at t * up() + r.
  const double* coefficients() const noexcept { return coeffs_.data(); }

 private:
  std::uint32_t up_ = 1, down_ = 1, half_taps_ = 0;
  device_vector<double> coeffs_;
};

/// Device tables of one batch: input lane offsets and lengths, output offsets, and the output
/// chunk table (one chunk per thread block).
class resample_batch {
 public:
  /// Uploads the tables on `s` and synchronizes `s`. Throws cuda_error; logic_error when the
  /// layout does not fit the kernel's 32-bit lane and chunk indices.
  resample_batch(const polyphase_resampler& design, const lane_layout& in, const stream& s);

  const lane_layout& input_layout() const noexcept { return in_; }
  const lane_layout& output_layout() const noexcept { return out_; }

  /// Launches the resampling of d_in (input_layout().total_frames floats, device) into d_out
  /// (output_layout().total_frames floats, device) on `s`. Asynchronous: returns before the
  /// kernel runs; `filter`, this batch and both arrays must stay alive until `s` passes it.
  /// Throws cuda_error for a launch failure, logic_error when `filter` is for another L/M.
  void run_async(const resample_filter& filter, const float* d_in, float* d_out, const stream& s) const;

 private:
  lane_layout in_, out_;
  std::size_t chunks_ = 0;
  std::uint32_t up_ = 1, down_ = 1;
  device_vector<std::uint64_t> lane_tables_;  // per lane: in offset, in frames, out offset
  device_vector<std::uint64_t> chunk_start_;  // output frame within the lane
  device_vector<std::uint32_t> chunk_lane_;
  device_vector<std::uint32_t> chunk_length_;
};

/// Convenience for tests and small jobs: uploads `host_in` (laid out as `in`), resamples,
/// downloads. Returns the output batch laid out as resampled_layout(in, design). Synchronizes `s`.
std::vector<float> resample(const polyphase_resampler& design, const lane_layout& in, std::span<const float> host_in,
                            const stream& s);

}  // namespace lathe::gpu
