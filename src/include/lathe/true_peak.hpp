#pragma once
// Polyphase interpolator for true-peak measurement (ITU-R BS.1770-4 Annex 2), shared by the
// meter and the limiter's detector.
#include <cstddef>
#include <vector>

namespace lathe {

class true_peak_interpolator {
 public:
  /// Designs a Kaiser-windowed sinc interpolator, cut off at the input Nyquist, in float64 for
  /// `sample_rate_hz`. Oversampling: 8x below 88.2 kHz (BS.1770's 4x under-reads by up to
  /// ~0.7 dB near fs/4), 4x at and above. Allocates.
  void prepare(double sample_rate_hz);
  void reset() noexcept;

  int factor() const noexcept { return factor_; }
  /// Delay of process()'s output behind its input, in input frames.
  std::size_t latency_frames() const noexcept { return taps_per_phase_ / 2; }
  /// Designed coefficients (after prepare()), [phase][phase_length()], time-reversed: output i's
  /// phase p is sum_k c[p][k] x[i - phase_length() + 1 + k]. For the GPU path.
  const std::vector<float>& coefficients() const noexcept { return coeffs_; }
  std::size_t phase_length() const noexcept { return taps_per_phase_ + 1; }

  /// Mono. peak_out[i] = max |x(t)| over the `factor()` interpolated points t in
  /// [i - latency, i - latency + 1) input frames (the first point is the input sample itself).
  /// Any block size; no allocation.
  void process(const float* in, float* peak_out, std::size_t frames) noexcept;

 private:
  static constexpr std::size_t chunk_frames = 1024;
  int factor_ = 0;
  std::size_t taps_per_phase_ = 0;  // even; each phase stores taps_per_phase_ + 1 coefficients
  std::vector<float> coeffs_;       // [phase][tap], time-reversed for a forward dot product
  std::vector<float> work_;         // history (taps_per_phase_) followed by up to chunk_frames inputs
};

namespace detail {
/// The interpolator's inner kernel through one instruction-set path, for the tests that hold
/// the paths to each other: peak[i] = max(peak[i], |sum_k c[k] x[i + k]|) for i < n. `isa` is
/// "baseline", "avx" or "avx512f"; returns false (and does nothing) when this CPU or build lacks
/// it. true_peak_interpolator uses the widest path the CPU runs.
bool phase_peaks_with(const char* isa, const float* c, std::size_t taps, const float* x, float* peak,
                      std::size_t n) noexcept;
}  // namespace detail

/// Largest true peak over all channels of a stream fed block by block: finish() equals the
/// largest true_peak_of() of the concatenated channels bit for bit, for any block partition.
/// Memory: one interpolator per channel. Not thread-safe; one per stream.
class true_peak_meter {
 public:
  /// 1 <= channels <= 8 (checked). Allocates.
  true_peak_meter(double sample_rate_hz, int channels);
  /// Feeds the next frames (the constructor's channels, not checked). No allocation.
  void add(const float* const* channels, std::size_t frames) noexcept;
  /// Flushes the interpolators' delay and returns the largest peak (linear). Call once.
  float finish();

 private:
  void run(true_peak_interpolator& t, const float* x, std::size_t n) noexcept;
  std::vector<true_peak_interpolator> tp_;
  std::vector<float> peaks_;
  float best_ = 0.0f;
};

/// Largest true peak over all samples of `channel` (linear, not dB). Allocates.
float true_peak_of(const float* channel, std::size_t frames, double sample_rate_hz);

}  // namespace lathe
