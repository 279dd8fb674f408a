#pragma once
// Feed-forward compressor / downward expander: a level detector, the static curve of Giannoulis,
// Massberg & Reiss, "Digital Dynamic Range Compressor Design - A Tutorial and Analysis" (JAES
// 2012) with its quadratic soft knee, and their log-domain attack/release smoothing of the gain.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

enum class level_detector { peak, rms };
enum class stereo_link { linked, independent };

struct compressor_params {
  double threshold_db = -20.0;  ///< dBFS of the detected level
  /// > 1 compresses above threshold (dB in : dB out); < 1 expands downward below threshold
  /// (0.5: each dB under threshold comes out 2 dB under); 1 is neutral.
  double ratio = 1.0;
  double knee_db = 0.0;       ///< total width of the quadratic knee, centred on the threshold
  double attack_ms = 10.0;    ///< time constant (63 %) of the gain as the level rises
  double release_ms = 100.0;  ///< time constant of the gain as the level falls
  double lookahead_ms = 0.0;  ///< the audio is delayed this much; it is also the stage latency
  double makeup_db = 0.0;
  level_detector detector = level_detector::peak;
  /// peak: the maximum |x| over this window (a steady tone down to 1000 / window_ms Hz reads its
  /// exact peak; it is also a hold before release starts). rms: the mean square over the window.
  double detector_window_ms = 20.0;
  stereo_link link = stereo_link::linked;
};

/// What the compressor did, in dB of gain reduction (>= 0, makeup excluded; an expander's
/// reduction counts the same way).
struct dynamics_stats {
  double max_gain_reduction_db = 0.0;
  double mean_gain_reduction_db = 0.0;  ///< over frames and gain paths (one path when linked)
  std::uint64_t frames = 0;
};

/// The static curve's gain (dB, <= 0, makeup excluded) for a detected level in dBFS. Levels
/// below -200 dBFS read as -200 and the gain is floored at -200 dB, so silence stays finite.
double compressor_static_gain_db(const compressor_params& p, double level_db) noexcept;

namespace detail {

/// Integer-frame delay line per channel (lookahead, band alignment, dry path). Allocation-free
/// after prepare(); process may run in place.
class frame_delay {
 public:
  void prepare(int channels, std::size_t delay_frames);  ///< allocates
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t delay_frames() const noexcept { return delay_; }

 private:
  std::size_t delay_ = 0;
  std::size_t pos_ = 0;
  int channels_ = 0;
  std::vector<float> ring_;  // [channel][delay_]
};

}  // namespace detail

/// Latency: round(lookahead_ms * fs / 1000) frames. Output is bit-identical for any block split.
class compressor_stage {
 public:
  explicit compressor_stage(compressor_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;  ///< clears state and stats
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept { return delay_.delay_frames(); }
  const compressor_params& params() const noexcept { return params_; }
  dynamics_stats stats() const noexcept;

 private:
  // Detector output of channel c after taking in sample x: peak |x| or mean x^2 (linear).
  double detect(int c, float x) noexcept;
  double to_db(double detected) const noexcept;
  // Returns the smoothed gain (dB) of one gain path fed with detected level `level_db`.
  double smooth(double& state_db, double level_db) const noexcept;

  compressor_params params_;
  int channels_ = 0;
  bool linked_ = true;
  bool rms_ = false;
  std::size_t window_ = 1;     // detector window, frames
  double attack_coeff_ = 0.0;  // exp(-1 / (attack seconds * fs))
  double release_coeff_ = 0.0;
  double attack_sign_ = -1.0;  // compressor: attack while the gain falls; expander: while it rises
  double makeup_db_ = 0.0;
  // Detector state per channel: a ring of the last window_ values (|x| or x^2); the peak uses a
  // monotonic deque of ring positions (sliding maximum), the rms a running sum in float64.
  std::vector<float> det_ring_;       // [channel][window_]
  std::vector<std::uint32_t> deque_;  // [channel][window_] ring positions, values decreasing
  std::vector<std::size_t> deque_head_, deque_size_;
  std::vector<double> rms_sum_;
  std::size_t det_pos_ = 0;
  std::vector<double> gain_state_db_;  // per gain path
  std::vector<float> gain_;            // [channel][max_block_]: this block's linear gains
  std::size_t max_block_ = 0;
  detail::frame_delay delay_;
  double sum_reduction_db_ = 0.0, max_reduction_db_ = 0.0;
  std::uint64_t frames_ = 0;
};

}  // namespace lathe
