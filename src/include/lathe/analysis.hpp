#pragma once
// Whole-track measurements for the QC report and the mastering decisions.
#include <array>
#include <cstddef>
#include <limits>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/loudness.hpp"

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

/// Measures a whole track. Allocates; runs on the calling thread.
track_analysis analyze(const audio_buffer& audio, double sample_rate_hz);

/// The one-pass part of analyze(): sample peak, DC offset and clipped runs. Loudness is left at
/// silence and the true peak at the sample peak until complete_analysis(). For engines that
/// meter elsewhere (the GPU).
track_analysis scan_samples(const audio_buffer& audio, double sample_rate_hz);

/// Completes a scan with loudness blocks and a true peak (linear) measured elsewhere. Momentary
/// and short-term maxima come from the blocks' 100 ms steps, so they can read up to ~0.6 LU
/// under analyze()'s 10 ms evaluation for isolated bursts.
void complete_analysis(track_analysis& a, loudness_blocks blocks, float true_peak);

}  // namespace lathe
