#pragma once
// Stage 3 of the chain: a lookahead true-peak limiter. Detection runs on the oversampled signal
// (true_peak_interpolator), linked across channels; the gain curve is a held minimum smoothed
// by a moving average over the lookahead, so gain reaches its target before the peak arrives,
// followed by an exponential release.
#include <cstddef>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {

struct limiter_params {
  double ceiling_dbtp = -1.0;
  double lookahead_ms = 2.0;   ///< also the attack: gain ramps down over this time
  double release_ms = 80.0;    ///< time constant of the exponential release
  /// The detector aims this far under the ceiling, leaving room for the interpolator's ripple
  /// and later dither; the chain verifies the result with an independent meter anyway.
  double margin_db = 0.05;
};

/// What the limiter did, in dB of gain reduction (>= 0).
struct limiter_stats {
  double max_gain_reduction_db = 0.0;
  double mean_gain_reduction_db = 0.0;  ///< over all frames, including those with none
  std::size_t frames_limited = 0;
};

/// Offline limiter for the normalization loop: detection of the input is done once by
/// analyze(); render() then limits `gain_db * input` for any gain without re-detecting
/// (the peak envelope scales with the gain). Output is sample-aligned with the input.
class offline_limiter {
 public:
  /// Measures the channel-linked oversampled peak envelope of `in`. Allocates.
  void analyze(const audio_buffer& in, double sample_rate_hz, const limiter_params& params);
  /// out = limit(in * 10^(gain_db/20)) with the ceiling of analyze()'s params. `in` must be the
  /// buffer analyze() saw. Allocates out if needed; thread-safe for concurrent calls with
  /// different `out`.
  limiter_stats render(const audio_buffer& in, double gain_db, audio_buffer& out) const;
  /// Largest true peak of `gain_db * in` before limiting, dBTP.
  double input_true_peak_dbtp(double gain_db) const noexcept;

 private:
  limiter_params params_;
  double sample_rate_hz_ = 0.0;
  std::vector<float> peak_;  // per frame, max over channels and the detector's window, linear
};

/// Streaming limiter stage (dsp_stage) with the same gain law as offline_limiter; for
/// block-size independence and for stream use. Latency: the lookahead plus the detector's delay.
class true_peak_limiter {
 public:
  explicit true_peak_limiter(limiter_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void set_input_gain_db(double gain_db) noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept;
  const limiter_stats& stats() const noexcept { return stats_; }

 private:
  limiter_params params_;
  limiter_stats stats_;
  // implementation-defined private state follows
  std::vector<true_peak_interpolator> detectors_;
  std::vector<std::vector<float>> delay_;  // per channel
  std::vector<float> scratch_;
  double input_gain_ = 1.0;
};

}  // namespace lathe
