#pragma once
// De-esser: split-band dynamic cut of sibilance. band = bandpass(x) (RBJ constant-peak band-pass,
// 0 dB at its centre), rest = x - band (a notch: the split is complementary by construction and
// has no delay to match), out = rest + band * gain = x + band * (gain - 1). The gain follows the
// level of the band, detected through a second identical band-pass section (4th order, so low
// program material barely reaches the detector), linked across channels.
#include <cstddef>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/biquad.hpp"

namespace lathe {

struct deesser_params {
  double low_hz = 5'000.0;  ///< band edges; centre sqrt(low * high), Q = centre / (high - low)
  double high_hz = 9'000.0;
  double threshold_db = -30.0;     ///< detector RMS level (dBFS; a 0 dBFS-peak sine is -3.01 dB)
  double ratio = 4.0;              ///< above threshold the band's level rises 1/ratio dB per dB
  double max_reduction_db = 12.0;  ///< cap of the band's gain reduction
  double attack_ms = 1.0;          ///< time constant of the reduction rising
  double release_ms = 60.0;        ///< time constant of the reduction falling
  double detector_rms_ms = 5.0;    ///< time constant of the detector's power average
};

/// Gain reduction applied to the band (dB, >= 0). Mergeable across segments.
struct deesser_stats {
  double max_reduction_db = 0.0;
  double sum_reduction_db = 0.0;  ///< summed over frames
  std::size_t frames = 0;
  std::size_t active_frames = 0;  ///< frames with any reduction
  double mean_reduction_db() const noexcept { return frames ? sum_reduction_db / static_cast<double>(frames) : 0.0; }
  void merge(const deesser_stats& o) noexcept;
};

/// Latency 0. process() may run in place; it never allocates. Not thread-safe.
class deesser_stage {
 public:
  explicit deesser_stage(deesser_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept { return 0; }
  const deesser_stats& stats() const noexcept { return stats_; }
  const biquad_coeffs& band_coeffs() const noexcept { return band_; }

  /// RBJ constant-0-dB-peak band-pass for the params at fs_hz (float64 design).
  static biquad_coeffs design_band(const deesser_params& p, double fs_hz);
  /// Static curve: steady reduction (dB) for a detector RMS level (dB).
  static double static_reduction_db(const deesser_params& p, double level_db) noexcept;

 private:
  deesser_params params_;
  int channels_ = 0;
  biquad_coeffs band_;
  std::vector<biquad> split_, detect_;        // per channel
  std::vector<std::vector<float>> band_buf_;  // per channel, max_block frames
  std::vector<float> detect_buf_, gain_;      // max_block frames
  double power_coef_ = 0.0, attack_coef_ = 0.0, release_coef_ = 0.0;
  double power_ = 0.0, reduction_db_ = 0.0;
  deesser_stats stats_;
};

}  // namespace lathe
