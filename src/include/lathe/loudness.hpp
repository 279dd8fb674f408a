#pragma once
// ITU-R BS.1770-4 loudness (momentary, short-term, gated integrated) and EBU Tech 3342 loudness
// range, with mergeable state so album and segment results combine.
#include <array>
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

/// BS.1770 K-weighting for `sample_rate_hz`: the high-shelf pre-filter and the RLB high-pass,
/// designed in float64 from the analog prototype by the prewarped bilinear transform, exactly
/// as libebur128 does (the RLB numerator is 1, -2, 1 as in BS.1770's 48 kHz table). Exposed so
/// tests and the GPU path use the same coefficients. Precondition: 3364 Hz < rate (shelf f0 <
/// Nyquist).
struct k_weighting_coeffs {
  biquad_coeffs shelf;
  biquad_coeffs highpass;
};
k_weighting_coeffs design_k_weighting(double sample_rate_hz);

/// One channel's K-weighting filters in direct form I: the coefficients and the last two inputs
/// and outputs of each section (x[0..1] the shelf's inputs, x[2..3] its outputs, which are the
/// high-pass's inputs, x[4..5] the high-pass's outputs), newest first, in float64.
struct k_weighting_state {
  biquad_coeffs shelf, highpass;
  std::array<double, 6> x{};
};

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
  /// process(), also writing to `frame_energy` (in.frames values) each frame's channel-weighted
  /// sum of K-weighted squares: the quantity the meter integrates. The meter's state and results
  /// are those of process() bit for bit.
  void process(const_block_view in, float* frame_energy) noexcept;
  /// Feeds frames given as that per-frame energy instead of audio: the meter must be prepared
  /// for one channel of weight 1. For predicting the loudness of a gain-modulated signal from a
  /// stored energy signal (sum of e[i] g[i]^2) without filtering the audio again.
  void add_energy(const double* energy, std::size_t frames) noexcept;

  /// Loudness of the last 400 ms / 3 s fed (LUFS), as of the last 10 ms step, or -inf before
  /// the first full window. The maxima are taken over those 10 ms steps.
  double momentary_lufs() const noexcept;
  double short_term_lufs() const noexcept;
  double max_momentary_lufs() const noexcept;
  double max_short_term_lufs() const noexcept;
  double integrated_lufs() const { return blocks_.integrated_lufs(); }
  double loudness_range_lu() const { return blocks_.loudness_range_lu(); }

  const loudness_blocks& blocks() const noexcept { return blocks_; }

 private:
  void run_filters(const_block_view in, std::size_t offset, std::size_t frames, float* frame_energy) noexcept;
  void finish_tick() noexcept;
  double window_energy(std::size_t ticks) const noexcept;

  // The meter works on 10 ms "ticks" (ten per 100 ms sub-block, boundaries at
  // floor(k * sub_block / 10) so any rate works): gating and short-term blocks are emitted every
  // 100 ms as BS.1770 / Tech 3342 define them, while momentary and short-term loudness (and their
  // maxima) are evaluated every tick, which Tech 3341's file-based cases 10 and 13 need (a 100 ms
  // grid misses a 400 ms burst by up to 0.6 LU).
  static constexpr std::size_t ticks_per_sub_block = 10;
  static constexpr std::size_t momentary_ticks = 4 * ticks_per_sub_block;
  static constexpr std::size_t short_term_ticks = 30 * ticks_per_sub_block;

  double sample_rate_hz_ = 0.0;
  int channels_ = 0;
  std::array<double, max_channels> weights_{};
  std::array<k_weighting_state, max_channels> k_{};          // per channel
  std::array<double, max_channels> tick_sum_{};              // per channel sum of squares, current tick
  std::size_t sub_block_frames_ = 0;                         // 100 ms
  std::array<std::size_t, ticks_per_sub_block> tick_end_{};  // tick ends within a sub-block
  std::size_t tick_index_ = 0;                               // current tick within the sub-block
  std::size_t sub_block_fill_ = 0;                           // frames into the current sub-block
  std::vector<double> ticks_;                                // ring of the last 300 weighted tick sums
  std::size_t ticks_seen_ = 0;
  double momentary_energy_ = 0.0, short_term_energy_ = 0.0;
  double max_momentary_energy_ = 0.0, max_short_term_energy_ = 0.0;
  loudness_blocks blocks_;
};

}  // namespace lathe
