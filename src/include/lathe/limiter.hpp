#pragma once
// Stage 3 of the chain: a lookahead true-peak limiter. Detection runs on the oversampled signal
// (the larger of true_peak_interpolator and libebur128's interpolator), linked across channels; the gain curve is a
// held minimum smoothed by a moving average over the lookahead, so gain reaches its target before the peak arrives,
// followed by an exponential release.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/spill.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {

struct limiter_params {
  double ceiling_dbtp = -1.0;
  double lookahead_ms = 2.0;  ///< also the attack: gain ramps down over this time
  double release_ms = 80.0;   ///< time constant of the exponential release
  /// The detector aims this far under the ceiling, leaving room for the interpolator's ripple
  /// and later dither; the chain verifies the result with an independent meter anyway.
  double margin_db = 0.05;
  /// Limit-mode normalization stops raising the gain where the limiter would cut the loudest
  /// peak by more than this (dB): past it a master stops short of its target and fails its
  /// check, saying so, instead of trading more of the track's dynamics for loudness. With
  /// content whose loudness the limiter cannot raise (heavy sub-bass) the search would otherwise
  /// run away. Not a property of the limiter's sound: render() applies any gain it is given.
  double max_reduction_db = 18.0;
};

/// What the limiter did, in dB of gain reduction (>= 0).
struct limiter_stats {
  double max_gain_reduction_db = 0.0;
  double mean_gain_reduction_db = 0.0;  ///< over all frames, including those with none
  std::size_t frames_limited = 0;
};

namespace detail {

/// Per-frame peaks through the interpolator common meters use (libebur128 and the tools built
/// on it: a 49-tap Hann-windowed sinc at 4x below 96 kHz, 2x below 192 kHz, none above), aligned
/// with true_peak_interpolator's output for the same `latency_frames`. Meters disagree by a few
/// tenths of a dB on content near Nyquist, so the limiter detects with the max of both.
class meter_peak_interpolator {
 public:
  void prepare(double sample_rate_hz, std::size_t latency_frames);  ///< allocates
  void reset() noexcept;
  /// peak_out[i] = max |y(t)| over this filter's points t in [i - latency, i - latency + 1).
  void process(const float* in, float* peak_out, std::size_t frames) noexcept;
  /// Designed filter (after prepare()), for the GPU path: output i's phase p is
  /// sum_k coefficients()[p * taps_per_phase() + k] x[i - history_frames() + k].
  const std::vector<float>& coefficients() const noexcept { return coeffs_; }
  std::size_t taps_per_phase() const noexcept { return taps_; }
  int factor() const noexcept { return factor_; }
  std::size_t history_frames() const noexcept { return history_; }

 private:
  static constexpr std::size_t chunk_frames = 1024;
  int factor_ = 1;
  std::size_t taps_ = 1;       // per phase: input offsets -reach .. reach (reversed)
  std::size_t history_ = 0;    // frames kept from the previous chunk
  std::vector<float> coeffs_;  // [phase][tap]
  std::vector<float> work_;
  std::vector<float> acc_;  // one phase's outputs for a chunk
};

/// The gain law both limiter classes share, so their outputs are bit-identical: it consumes one
/// detection value per frame (linear, input gain applied) and returns the smoothed gain for the
/// frame `lookahead_frames()` earlier. Implementation detail; see limiter.cpp for the proof that
/// the returned gain never exceeds the required gain of its own frame.
class limiter_gain_law {
 public:
  void prepare(const limiter_params& params, double sample_rate_hz);  ///< allocates
  void reset() noexcept;
  std::size_t lookahead_frames() const noexcept { return window_ - 1; }
  double step(double detection) noexcept;
  /// The law's constants after prepare(), for the GPU path (kernels/dsp/limiter.cu), which must use
  /// the identical values: c (linear, margin included) and a (1 - exp(-1 / release frames)).
  double ceiling_linear() const noexcept { return ceiling_; }
  double release_coeff() const noexcept { return release_coeff_; }

 private:
  double ceiling_ = 1.0;        // linear, margin included
  double release_coeff_ = 0.0;  // 1 - exp(-1 / release frames)
  std::size_t window_ = 1;      // L + 1
  double envelope_ = 1.0;       // e[n-1]
  std::uint64_t frame_ = 0;     // index of the next detection value
  // Monotonic deque (ring) of (frame, e) for the sliding minimum over the last window_ frames.
  std::vector<double> min_value_;
  std::vector<std::uint64_t> min_frame_;
  std::size_t min_head_ = 0, min_count_ = 0;
  // Moving sum of the held minimum, quantized to 2^-32 so the running sum is exact integer math.
  std::vector<std::int64_t> held_;
  std::size_t held_pos_ = 0;
  std::int64_t held_sum_ = 0;
};

}  // namespace detail

/// Offline limiter for the normalization loop: the input's detection is measured once, in one
/// streaming pass (begin_analysis, analyze_more, finish_analysis); render() then limits
/// `gain_db * input` for any gain and any ceiling without re-detecting (the peak envelope scales
/// with the gain), in another streaming pass over the same input. The envelope (one float per
/// frame) lives in the spill given to begin_analysis: in memory, or in a file so that memory
/// does not grow with the track. Output is sample-aligned with the input and identical bit for
/// bit whatever the blocks and wherever the envelope and the input are kept.
class offline_limiter {
 public:
  offline_limiter();
  offline_limiter(offline_limiter&&) noexcept;
  offline_limiter& operator=(offline_limiter&&) noexcept;
  ~offline_limiter();

  /// Starts measuring a new input of `channels` channels; `envelope` is an empty one-channel
  /// spill that receives the envelope. Checks `params` (logic_error). Allocates.
  void begin_analysis(double sample_rate_hz, const limiter_params& params, int channels,
                      audio_spill envelope = audio_spill(1));
  /// Feeds the next frames of the input (the channels given to begin_analysis, not checked).
  /// Throws output_error when a file envelope cannot be written.
  void analyze_more(const_block_view in);
  /// Ends the input: flushes the detectors' delay.
  void finish_analysis();
  /// The three over a whole buffer, the envelope in memory.
  void analyze(const audio_buffer& in, double sample_rate_hz, const limiter_params& params);

  /// Aims later renders at another ceiling (the same detection applies to any ceiling).
  void set_ceiling_dbtp(double ceiling_dbtp);

  /// out = limit(in * 10^(gain_db/20)), passed to `out` in order in views of at most
  /// spill_block_frames frames. `in` must hold the frames analysis saw (its length is checked).
  limiter_stats render(const audio_spill& in, double gain_db, frame_sink out) const;
  /// The gain render() applies to each frame (10^(gain_db/20) times the limiter's), passed to
  /// `out` in order, at most spill_block_frames values at a time, without reading the input: for
  /// predicting what a render would measure. The values are render()'s bit for bit. Without
  /// `with_stats` the returned stats are empty (their log per limited frame is skipped).
  limiter_stats gains(double gain_db, const std::function<void(std::span<const double>)>& out,
                      bool with_stats = true) const;
  /// render() of a whole buffer into `out` (allocated if needed); thread-safe for concurrent
  /// calls with different `out` on a limiter whose envelope is in memory.
  limiter_stats render(const audio_buffer& in, double gain_db, audio_buffer& out) const;
  /// Largest true peak of `gain_db * in` before limiting, dBTP, as the detector reads it (the
  /// larger of true_peak_of's and libebur128's interpolation).
  double input_true_peak_dbtp(double gain_db) const noexcept;
  /// Frames of the input analysed.
  std::size_t frames() const noexcept { return frames_; }

 private:
  struct detection;  // the detectors while analysing
  limiter_params params_;
  double sample_rate_hz_ = 0.0;
  std::size_t frames_ = 0;   // length of the analyzed input
  std::size_t latency_ = 0;  // detector delay + 1 (window) + lookahead, hidden by render()
  float max_peak_ = 0.0f;
  // Per stream frame t in [0, frames_ + latency_): max over channels and the detector's 3-frame
  // window, linear, before the input gain (exactly what true_peak_limiter sees at time t).
  audio_spill peak_{1};
  std::unique_ptr<detection> det_;
};

/// Streaming limiter stage (dsp_stage) with the same gain law as offline_limiter; for
/// block-size independence and for stream use. Latency: the lookahead plus the detector's delay.
class true_peak_limiter {
 public:
  explicit true_peak_limiter(limiter_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  /// Set before processing: the detector and the output use the gain current at their own
  /// frame, so a change mid-stream is not sample-accurate for `latency_frames()` frames.
  void set_input_gain_db(double gain_db) noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept;
  /// Over the output frames after the initial latency (those that carry input), since reset().
  const limiter_stats& stats() const noexcept { return stats_; }

 private:
  limiter_params params_;
  limiter_stats stats_;
  // implementation-defined private state follows
  std::vector<true_peak_interpolator> detectors_;
  std::vector<detail::meter_peak_interpolator> meter_detectors_;
  detail::limiter_gain_law law_;
  std::vector<std::vector<float>> delay_;  // per channel, latency_frames() long
  std::vector<float> scratch_;             // per channel peaks of one block
  std::vector<float> meter_scratch_;       // one channel's meter-filter peaks of one block
  std::size_t max_block_frames_ = 0;
  std::size_t latency_ = 0;
  std::size_t delay_pos_ = 0;
  float peak_prev1_ = 0.0f, peak_prev2_ = 0.0f;  // linked peaks of the two previous frames
  double input_gain_ = 1.0;
  std::uint64_t frames_seen_ = 0;
  double stats_ln_sum_ = 0.0;  // the statistics' sum of ln g, as ln_sum + ln(product) (limiter.cpp)
  double stats_product_ = 1.0;
  double min_gain_ = 1.0;
  std::uint64_t frames_counted_ = 0;
};

}  // namespace lathe
