#pragma once
// Whole-track measurements for the QC report and the mastering decisions.
#include <array>
#include <cstddef>
#include <limits>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/loudness.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {

/// A run of consecutive samples at digital full scale on one channel.
struct clip_run {
  int channel = 0;
  std::size_t start_frame = 0;
  std::size_t length_frames = 0;
  double start_s = 0.0;
};

struct track_analysis {
  double sample_rate_hz = 0.0;
  int channels = 0;
  std::size_t frames = 0;
  double duration_s = 0.0;

  double integrated_lufs = silence_lufs;
  double loudness_range_lu = 0.0;
  double max_momentary_lufs = silence_lufs;
  double max_short_term_lufs = silence_lufs;
  double true_peak_dbtp = -std::numeric_limits<double>::infinity();    ///< max over channels
  double sample_peak_dbfs = -std::numeric_limits<double>::infinity();  ///< max over channels
  double plr_db = 0.0;  ///< peak-to-loudness ratio: true peak - integrated loudness (0 for silence)
  std::array<double, max_channels> dc_offset{};                      ///< per channel, mean sample value (linear)
  double dc_offset_dbfs = -std::numeric_limits<double>::infinity();  ///< largest |mean|, dBFS

  std::vector<clip_run> clip_runs;  ///< runs of >= min_clip_run_frames samples with |x| >= clip_level
  std::size_t clipped_samples = 0;  ///< total samples inside those runs

  loudness_blocks blocks;  ///< for album loudness (merge over tracks)
};

/// |x| at or above this counts as full scale (1 - 2^-15: a 16-bit file's largest code is full scale).
inline constexpr float clip_level = 1.0f - 1.0f / 32768.0f;
/// Fewer consecutive full-scale samples than this are peaks, not clipping.
inline constexpr std::size_t min_clip_run_frames = 3;

/// The one-pass sample scan (sample peak, DC offset, clipped runs) fed block by block: finish()
/// equals scan_samples() of the concatenated blocks, bit for bit, for any block partition (the
/// DC sums grow sample by sample in order; a clipped run may span blocks). Memory: the per-channel
/// state plus the clip runs found. Not thread-safe; one per stream.
class sample_scanner {
 public:
  /// Precondition: 1 <= channels <= max_channels (checked).
  sample_scanner(double sample_rate_hz, int channels);

  /// Feeds the next frames; `block` has the constructor's channel count (not checked). Allocates
  /// only to record a clipped run.
  void add(const_block_view block);

  /// The scan of everything fed. Call once, after the last add().
  track_analysis finish();

 private:
  struct channel_state {
    double sum = 0.0;  // float64, in sample order
    float peak = 0.0f;
    std::size_t run_start = 0, run_length = 0;
    std::vector<clip_run> runs;
  };
  void close_run(int channel, channel_state& s);

  double sample_rate_hz_;
  int channels_;
  std::size_t frames_ = 0;
  std::array<channel_state, max_channels> state_{};
  std::size_t clipped_samples_ = 0;
};

/// analyze() fed block by block: finish() equals analyze() of the concatenated blocks field for
/// field, bit for bit, for any block partition (loudness with its 10 ms maxima, LRA, true peak,
/// sample peak, DC offset, clip runs, blocks). Memory: O(meter and interpolator state) plus the
/// loudness block lists (10 per second) and the clip runs. Latency: none; finish() flushes the
/// true-peak interpolators. Not thread-safe; one per stream.
class track_analyzer {
 public:
  /// Designs the K-weighting and the true-peak interpolators for the rate. Preconditions
  /// (checked): 1 <= channels <= max_channels, sample_rate_hz > 3364 Hz. Allocates.
  track_analyzer(double sample_rate_hz, int channels);

  /// Feeds the next frames; `block` has the constructor's channel count (not checked).
  void add(const_block_view block);

  /// The analysis of everything fed. Call once, after the last add().
  track_analysis finish();

 private:
  sample_scanner scan_;
  loudness_meter meter_;
  std::vector<true_peak_interpolator> true_peak_;  // one per channel
  std::vector<float> peaks_;                       // interpolator output, one chunk
  float true_peak_max_ = 0.0f;
};

/// Measures a whole track (a track_analyzer fed the whole buffer). Allocates; runs on the calling
/// thread.
track_analysis analyze(const audio_buffer& audio, double sample_rate_hz);

/// The one-pass part of analyze(): sample peak, DC offset and clipped runs (a sample_scanner fed
/// the whole buffer). Loudness is left at silence and the true peak at the sample peak until
/// complete_analysis(). For engines that meter elsewhere (the GPU).
track_analysis scan_samples(const audio_buffer& audio, double sample_rate_hz);

/// Completes a scan with loudness blocks and a true peak (linear) measured elsewhere. Momentary
/// and short-term maxima come from the blocks' 100 ms steps, so they can read up to ~0.6 LU
/// under analyze()'s 10 ms evaluation for isolated bursts.
void complete_analysis(track_analysis& a, loudness_blocks blocks, float true_peak);

}  // namespace lathe
