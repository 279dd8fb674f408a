#pragma once
// Stereo image stage: mid/side width and mid gain, optional "bass mono" (the side channel
// high-passed by a linear-phase FIR so the image below a frequency is mono while everything
// above keeps its phase), and an L/R correlation meter for the report.
#include <cstddef>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/eq.hpp"

namespace lathe {

struct stereo_params {
  double width = 1.0;                    ///< side gain, linear: 1 unchanged, 0 mono, > 1 wider (0..4)
  double mid_gain_db = 0.0;              ///< mid gain (-24..+24 dB)
  double bass_mono_below_hz = 0.0;       ///< 0: off; else the side's -3 dB point of an 8th-order
                                         ///< Butterworth-magnitude high-pass, applied with linear phase
  std::size_t partition_frames = 2'048;  ///< FFT partition of the side FIR (power of two >= 64)
  double meter_window_ms = 400.0;        ///< correlation meter window
};

/// Pearson correlation of L and R over consecutive windows and overall, plus the side/mid
/// energy ratio. Keeps float64 sums only, so meters of segments merge (merge()) into the meter
/// of the whole. add() is noexcept and allocation-free.
class correlation_meter {
 public:
  /// window_frames > 0.
  explicit correlation_meter(std::size_t window_frames = 17'640);
  void reset() noexcept;
  void add(const float* left, const float* right, std::size_t frames) noexcept;
  /// Adds `frames` frames given by their float64 sums (sum L, sum R, sum L^2, sum R^2, sum LR),
  /// summed elsewhere (the GPU stage's window reductions). They must not cross a window
  /// boundary: frames <= window_frames() - frames already in the current window.
  void add_sums(std::size_t frames, double l, double r, double ll, double rr, double lr) noexcept;
  std::size_t window_frames() const noexcept { return window_frames_; }
  /// Appends `later` (a meter of the audio that follows this one's). The partial window of this
  /// meter is closed as a short window, so windowed figures can differ slightly from one pass.
  void merge(const correlation_meter& later) noexcept;

  /// Pearson correlation over everything added; 0 when either channel is constant (undefined).
  double correlation() const noexcept;
  /// Lowest and mean correlation of the complete windows whose channels both vary; 0 if none.
  double min_window_correlation() const noexcept;
  double mean_window_correlation() const noexcept;
  std::size_t windows() const noexcept { return windows_; }
  /// 10 log10(sum S^2 / sum M^2) with M = (L+R)/2, S = (L-R)/2; -inf for mono, +inf for
  /// pure side, NaN for silence.
  double side_to_mid_db() const noexcept;
  std::size_t frames() const noexcept { return frames_; }

 private:
  struct sums {
    double n = 0, x = 0, y = 0, xx = 0, yy = 0, xy = 0;
    void add(const sums& o) noexcept;
    double pearson() const noexcept;  // 0 when undefined
    bool varies() const noexcept;
  };
  void close_window() noexcept;
  std::size_t window_frames_;
  sums total_, window_;
  std::size_t frames_ = 0, in_window_ = 0, windows_ = 0;
  double min_corr_ = 0.0, sum_corr_ = 0.0;
};

struct stereo_stats {
  double correlation_before = 0.0, correlation_after = 0.0;
  double min_window_correlation_before = 0.0, min_window_correlation_after = 0.0;
  double side_to_mid_db_before = 0.0, side_to_mid_db_after = 0.0;
  /// side/mid ratio after minus before, dB (negative: narrower).
  double width_change_db() const noexcept { return side_to_mid_db_after - side_to_mid_db_before; }
};

/// The statistics of a stage from its two meters.
stereo_stats stereo_stats_of(const correlation_meter& before, const correlation_meter& after) noexcept;

/// Latency: 0 when bass mono is off, else (taps - 1) / 2 + partition_frames of the side FIR
/// (the mid is delayed by the same amount). Channels other than 2 pass through unchanged.
/// process() may run in place; it never allocates. Not thread-safe.
class stereo_stage {
 public:
  explicit stereo_stage(stereo_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept { return latency_; }
  /// Meters of the input and of the output (the output meter skips the first latency frames,
  /// which are the fill of the filter, not audio).
  stereo_stats stats() const noexcept;
  const correlation_meter& meter_before() const noexcept { return before_; }
  const correlation_meter& meter_after() const noexcept { return after_; }
  /// The side high-pass's FIR taps (empty when off).
  std::size_t side_fir_taps() const noexcept { return side_hp_.taps(); }

  /// The 8th-order Butterworth high-pass magnitude (four cookbook high-pass sections with the
  /// Butterworth Q values) that the side FIR approximates for a bass mono frequency.
  static std::vector<eq_band> bass_mono_bands(double below_hz);
  /// Frames per correlation-meter window at fs_hz: round(meter_window_ms * fs / 1000), >= 1.
  static std::size_t meter_window_frames(const stereo_params& p, double fs_hz);

 private:
  stereo_params params_;
  int channels_ = 0;
  bool bypass_ = true;
  float mid_gain_ = 1.0f, side_gain_ = 1.0f;
  std::size_t latency_ = 0, produced_ = 0;
  linear_phase_eq_stage side_hp_;
  std::vector<float> mid_, side_;
  std::vector<float> mid_delay_;  // ring of latency_ frames
  std::size_t delay_pos_ = 0;
  correlation_meter before_, after_;
};

}  // namespace lathe
