#pragma once
// ITU-R BS.1770-4 loudness (momentary, short-term, gated integrated) and EBU Tech 3342 loudness
// range, with mergeable state so album and segment results combine.
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/biquad.hpp"

namespace lathe {

/// Value reported for silence (no block above the absolute gate): -inf LUFS.
inline constexpr double silence_lufs = -std::numeric_limits<double>::infinity();

/// Mean-square block energies, K-weighted and channel-weighted; what integrated loudness and
/// loudness range are computed from. Merging two (concatenation) gives the loudness of both
/// programmes together, as libebur128's loudness_global_multiple does.
struct loudness_blocks {
  std::vector<double> momentary_energy;   ///< 400 ms blocks every 100 ms (gating blocks)
  std::vector<double> short_term_energy;  ///< 3 s blocks every 100 ms (for LRA)

  void merge(const loudness_blocks& other);
  /// Gated integrated loudness (BS.1770-4: -70 LUFS absolute, -10 LU relative gate), LUFS.
  double integrated_lufs() const;
  /// Loudness range (EBU Tech 3342: -70 LUFS absolute, -20 LU relative gate, 10th..95th
  /// percentile of short-term loudness), LU.
  double loudness_range_lu() const;
};

/// Converts a mean-square energy to LUFS (-0.691 + 10 log10 e); -inf for zero.
double energy_to_lufs(double energy) noexcept;

/// Streaming loudness meter. Not thread-safe; one per stream.
class loudness_meter {
 public:
  /// Designs the K-weighting filters for `sample_rate_hz` in float64 (from the analog prototype,
  /// so any rate is exact, not only 48 kHz). `channel_weights` defaults to BS.1770's: 1.0 for
  /// L, R, C and 1.41 for the surrounds of a 5-channel (L R C Ls Rs) layout; pass 0 to exclude
  /// a channel (LFE). Allocates.
  void prepare(double sample_rate_hz, int channels, std::span<const double> channel_weights = {});
  void reset();

  /// Feeds any number of frames; no allocation beyond the amortized growth of the block lists.
  void process(const_block_view in) noexcept;

  /// Loudness of the last 400 ms / 3 s fed (LUFS), or -inf before the first full block.
  double momentary_lufs() const noexcept;
  double short_term_lufs() const noexcept;
  double max_momentary_lufs() const noexcept;
  double max_short_term_lufs() const noexcept;
  double integrated_lufs() const { return blocks_.integrated_lufs(); }
  double loudness_range_lu() const { return blocks_.loudness_range_lu(); }

  const loudness_blocks& blocks() const noexcept { return blocks_; }

 private:
  // implementation-defined private state
  double sample_rate_hz_ = 0.0;
  int channels_ = 0;
  std::vector<double> weights_;
  std::vector<biquad> pre_, rlb_;             // per channel
  std::size_t sub_block_frames_ = 0;          // 100 ms
  std::size_t sub_block_fill_ = 0;
  double sub_block_acc_ = 0.0;                // weighted sum of squares in the current 100 ms
  std::vector<double> sub_blocks_;            // ring of the last 30 sub-block sums
  std::size_t sub_blocks_seen_ = 0;
  double max_momentary_energy_ = 0.0, max_short_term_energy_ = 0.0;
  std::vector<float> scratch_;
  loudness_blocks blocks_;
};

}  // namespace lathe
