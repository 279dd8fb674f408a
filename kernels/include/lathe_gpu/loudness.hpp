#pragma once
// BS.1770 loudness of a batch of stereo tracks on the GPU: K-weighting and 100 ms sub-block sums
// of squares on the device, then on the host exactly the gating blocks and short-term blocks that
// lathe::loudness_meter holds, so its integrated_lufs() and loudness_range_lu() give the result.
// Host-compilable.
//
// Track t is lanes 2t (left) and 2t + 1 (right), equal lengths, channel weights 1.0 (BS.1770's
// for L and R; mono arrives as dual mono). Blocks: the CPU meter emits a 400 ms gating block and
// (from 3 s on) a 3 s short-term block at the end of every whole 100 ms sub-block; a partial
// final sub-block contributes to no block, so the device only runs whole sub-blocks.
// Sub-block = llround(fs / 10) frames, as the meter (and libebur128) rounds it.
//
// Determinism: each sub-block's sum of squares is summed by one thread in time order, the host
// sums in a fixed order, no atomics on values: bitwise identical run to run on one GPU. Against
// the CPU meter the energies differ by float64 rounding only (relative ~1e-12).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lathe/error.hpp"
#include "lathe/loudness.hpp"
#include "lathe_gpu/iir.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// 100 ms in frames, rounded as loudness_meter rounds it.
inline std::size_t loudness_sub_block_frames(double sample_rate_hz) {
  return static_cast<std::size_t>(std::llround(sample_rate_hz / 10.0));
}

/// The layout the device runs: same offsets, each lane cut down to whole sub-blocks.
inline lane_layout whole_sub_block_layout(const lane_layout& layout, std::size_t sub_block_frames) {
  LATHE_EXPECTS(sub_block_frames > 0, "sub-block must be at least one frame");
  lane_layout out;
  out.offset = layout.offset;
  out.total_frames = layout.total_frames;  // the array the offsets index is unchanged
  out.frames.reserve(layout.lanes());
  for (std::size_t f : layout.frames) out.frames.push_back(f / sub_block_frames * sub_block_frames);
  return out;
}

/// The loudness_meter's blocks from per-sub-block K-weighted sums of squares of the left and
/// right channel (`left[j]`, `right[j]`: sub-block j, equal counts), exactly as the meter forms
/// them: channel-weighted sub-block energy e[j] = 1.0 left[j] + 1.0 right[j]; after the k-th
/// whole sub-block (k >= 4) the gating block sum(e[k-4 .. k-1]) / (4 sub_block_frames), and
/// (k >= 30) the short-term block sum(e[k-30 .. k-1]) / (30 sub_block_frames), summed oldest first.
inline loudness_blocks loudness_blocks_from_sub_blocks(std::span<const double> left, std::span<const double> right,
                                                       std::size_t sub_block_frames) {
  LATHE_EXPECTS(left.size() == right.size(), "left and right need the same number of sub-blocks");
  constexpr std::size_t momentary = 4, short_term = 30;
  std::vector<double> e(left.size());
  for (std::size_t j = 0; j < e.size(); ++j) e[j] = 1.0 * left[j] + 1.0 * right[j];
  const auto window = [&](std::size_t end, std::size_t count) {
    double sum = 0.0;
    for (std::size_t j = end - count; j < end; ++j) sum += e[j];
    return sum / (static_cast<double>(sub_block_frames) * static_cast<double>(count));
  };
  loudness_blocks b;
  for (std::size_t k = 1; k <= e.size(); ++k) {
    if (k >= momentary) b.momentary_energy.push_back(window(k, momentary));
    if (k >= short_term) b.short_term_energy.push_back(window(k, short_term));
  }
  return b;
}

/// Loudness of every track of batches with one fixed layout (lanes 2t, 2t+1 = track t) at one
/// rate. Construction designs K-weighting and uploads tables on `s` (asynchronously; the plan
/// keeps its host copies alive). Not thread-safe; one plan per stream at a time.
class loudness_plan {
 public:
  loudness_plan(const lane_layout& layout, double sample_rate_hz, const stream& s);

  /// Enqueues K-weighting, sub-block sums and their download into the plan's pinned buffer on
  /// `s`; does not synchronize. Read the result with collect() after `s` is synchronized.
  void measure_async(const float* d_batch, const stream& s);
  /// The blocks of every track from the last measure_async(); call only after synchronizing its
  /// stream. Host work only.
  std::vector<loudness_blocks> collect() const;
  /// measure_async(), then synchronizes `s`, then collect().
  std::vector<loudness_blocks> measure(const float* d_batch, const stream& s);

  std::size_t tracks() const noexcept { return tracks_; }
  std::size_t sub_block_frames() const noexcept { return sub_block_frames_; }

 private:
  std::size_t tracks_ = 0;
  std::size_t sub_block_frames_ = 0;
  detail::chunked_cascade cascade_;  // one chunk per whole sub-block of each lane
  device_vector<double> d_sums_;
  // Download target: pageable (one double per sub-block, copied synchronously), as a page-locked
  // one's cudaFreeHost would synchronize the device.
  mutable std::vector<double> h_sums_;
};

/// One-shot form: builds a plan, measures, synchronizes `s`. Prefer a loudness_plan in loops.
std::vector<loudness_blocks> measure_loudness(const float* d_batch, const lane_layout& layout, double sample_rate_hz,
                                              const stream& s);

}  // namespace lathe::gpu
