#include "lathe/analysis.hpp"

#include <algorithm>
#include <cmath>

#include "lathe/error.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {
namespace {

double amplitude_to_db(double a) noexcept {
  return a > 0.0 ? 20.0 * std::log10(a) : -std::numeric_limits<double>::infinity();
}

struct channel_scan {
  float sample_peak = 0.0f;
  double mean = 0.0;
};

// One pass over a channel: sample peak, DC (float64 sum) and clipped runs.
channel_scan scan_channel(const float* x, std::size_t frames, int channel, double sample_rate_hz,
                          std::vector<clip_run>& runs, std::size_t& clipped_samples) {
  channel_scan s;
  double sum = 0.0;
  float peak = 0.0f;
  std::size_t run_start = 0, run_length = 0;
  auto close_run = [&] {
    if (run_length >= min_clip_run_frames) {
      runs.push_back({channel, run_start, run_length, static_cast<double>(run_start) / sample_rate_hz});
      clipped_samples += run_length;
    }
    run_length = 0;
  };
  for (std::size_t i = 0; i < frames; ++i) {
    const float a = std::abs(x[i]);
    sum += x[i];
    peak = std::max(peak, a);
    if (a >= clip_level) {
      if (run_length == 0) run_start = i;
      ++run_length;
    } else if (run_length > 0) {
      close_run();
    }
  }
  close_run();
  s.sample_peak = peak;
  s.mean = frames > 0 ? sum / static_cast<double>(frames) : 0.0;
  return s;
}

// True peak (never below the sample peak: the interpolator's first phase is the sample itself,
// and the max keeps that true for an empty track) and the PLR that follows from it.
void finish_peaks(track_analysis& r, float true_peak) {
  const double tp = std::max(static_cast<double>(true_peak), std::pow(10.0, r.sample_peak_dbfs / 20.0));
  r.true_peak_dbtp = amplitude_to_db(tp);
  r.plr_db =
      std::isfinite(r.integrated_lufs) && std::isfinite(r.true_peak_dbtp) ? r.true_peak_dbtp - r.integrated_lufs : 0.0;
}

}  // namespace

track_analysis scan_samples(const audio_buffer& audio, double sample_rate_hz) {
  LATHE_EXPECTS(audio.channels() >= 1 && audio.channels() <= max_channels, "analysis takes 1 to 8 channels");
  track_analysis r;
  r.sample_rate_hz = sample_rate_hz;
  r.channels = audio.channels();
  r.frames = audio.frames();
  r.duration_s = static_cast<double>(audio.frames()) / sample_rate_hz;
  float sample_peak = 0.0f;
  double max_abs_dc = 0.0;
  for (int c = 0; c < audio.channels(); ++c) {
    const channel_scan s =
        scan_channel(audio.channel(c), audio.frames(), c, sample_rate_hz, r.clip_runs, r.clipped_samples);
    r.dc_offset[static_cast<std::size_t>(c)] = s.mean;
    max_abs_dc = std::max(max_abs_dc, std::abs(s.mean));
    sample_peak = std::max(sample_peak, s.sample_peak);
  }
  r.sample_peak_dbfs = amplitude_to_db(sample_peak);
  r.true_peak_dbtp = r.sample_peak_dbfs;  // a lower bound until complete_analysis()
  r.dc_offset_dbfs = amplitude_to_db(max_abs_dc);
  return r;
}

void complete_analysis(track_analysis& r, loudness_blocks blocks, float true_peak) {
  r.blocks = std::move(blocks);
  r.integrated_lufs = r.blocks.integrated_lufs();
  r.loudness_range_lu = r.blocks.loudness_range_lu();
  double max_m = 0.0, max_s = 0.0;
  for (double e : r.blocks.momentary_energy) max_m = std::max(max_m, e);
  for (double e : r.blocks.short_term_energy) max_s = std::max(max_s, e);
  r.max_momentary_lufs = energy_to_lufs(max_m);
  r.max_short_term_lufs = energy_to_lufs(max_s);
  finish_peaks(r, true_peak);
}

track_analysis analyze(const audio_buffer& audio, double sample_rate_hz) {
  track_analysis r = scan_samples(audio, sample_rate_hz);
  loudness_meter meter;
  meter.prepare(sample_rate_hz, audio.channels());
  constexpr std::size_t meter_block_frames = 1 << 16;
  for (std::size_t pos = 0; pos < audio.frames(); pos += meter_block_frames) {
    meter.process(audio.view(pos, std::min(meter_block_frames, audio.frames() - pos)));
  }
  r.integrated_lufs = meter.integrated_lufs();
  r.loudness_range_lu = meter.loudness_range_lu();
  r.max_momentary_lufs = meter.max_momentary_lufs();
  r.max_short_term_lufs = meter.max_short_term_lufs();
  float true_peak = 0.0f;
  for (int c = 0; c < audio.channels(); ++c)
    true_peak = std::max(true_peak, true_peak_of(audio.channel(c), audio.frames(), sample_rate_hz));
  finish_peaks(r, true_peak);
  r.blocks = meter.blocks();
  return r;
}

}  // namespace lathe
