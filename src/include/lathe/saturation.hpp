#pragma once
// Saturation: y = trim * tanh(drive * x), a smooth odd-symmetric shaper (only odd harmonics),
// run at `oversampling` times the sample rate between linear-phase polyphase FIR interpolation
// and decimation filters designed in float64 (lathe::polyphase_resampler's Kaiser design), so
// the harmonics above the original Nyquist are removed instead of folding back as aliases.
#include <cstddef>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

struct saturation_params {
  double drive_db = 0.0;   ///< gain into tanh (-24..+36 dB); small-signal gain is drive * trim
  double output_db = 0.0;  ///< trim after the shaper (-48..+24 dB)
  double mix = 1.0;        ///< 0 = dry (delay-matched), 1 = fully saturated
  /// Rate multiplier of the shaper: 1 (no oversampling, aliases) or 2..16. 8 keeps aliasing of a
  /// 10 kHz sine at 44.1 kHz >= 100 dB below the fundamental for drives to about +12 dB on a
  /// full-scale sine (tanh's harmonics fall ~0.38 * 8.7 dB per order there; the first ones to
  /// fold into the audio band at 8x are near order 33).
  int oversampling = 8;
  /// Stopband of the interpolation and decimation filters (dB); passband to 0.91 of the
  /// original Nyquist, stopband from it.
  double filter_attenuation_db = 120.0;
};

/// Latency: K_up + ceil(K_down / oversampling) frames (the half lengths of the interpolation
/// filter at the input rate and of the decimation filter at the high rate); 0 without
/// oversampling. process() may run in place; it never allocates. Not thread-safe.
class saturation_stage {
 public:
  explicit saturation_stage(saturation_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept { return latency_; }
  const saturation_params& params() const noexcept { return params_; }
  /// Taps per interpolation phase and of the decimation filter (for reports).
  std::size_t up_taps() const noexcept { return up_taps_; }
  std::size_t down_taps() const noexcept { return down_taps_; }

 private:
  saturation_params params_;
  int channels_ = 0;
  std::size_t factor_ = 1, max_block_ = 0;
  std::size_t up_taps_ = 1, down_taps_ = 1, up_half_ = 0, down_half_ = 0, down_delay_ = 0;
  std::size_t latency_ = 0, x_hist_ = 0, u_hist_ = 0;
  float drive_ = 1.0f, trim_ = 1.0f, wet_ = 1.0f, dry_ = 0.0f;
  std::vector<float> up_coeffs_;    // phase-major, up_taps_ per phase
  std::vector<float> down_coeffs_;  // down_taps_
  // Per channel: input with x_hist_ frames of history, and the shaped high-rate signal with
  // u_hist_ samples of history.
  std::vector<std::vector<float>> x_, u_;
};

}  // namespace lathe
