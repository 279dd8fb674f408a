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

// True peak (never below the sample peak: the interpolator's first phase is the sample itself,
// and the max keeps that true for an empty track) and the PLR that follows from it.
void finish_peaks(track_analysis& r, float true_peak) {
  const double tp = std::max(static_cast<double>(true_peak), std::pow(10.0, r.sample_peak_dbfs / 20.0));
  r.true_peak_dbtp = amplitude_to_db(tp);
  r.plr_db =
      std::isfinite(r.integrated_lufs) && std::isfinite(r.true_peak_dbtp) ? r.true_peak_dbtp - r.integrated_lufs : 0.0;
}

// Runs `frames` samples through a channel's interpolator in chunks of `peaks` and raises `best`
// to the largest interpolated peak. The max runs element by element, so the chunking (and with it
// the block partition) cannot change the result, not even where a NaN is skipped.
void run_true_peak(true_peak_interpolator& tp, const float* x, std::size_t frames, std::vector<float>& peaks,
                   float& best) noexcept {
  for (std::size_t pos = 0; pos < frames; pos += peaks.size()) {
    const std::size_t m = std::min(peaks.size(), frames - pos);
    tp.process(x + pos, peaks.data(), m);
    float b = best;
    for (std::size_t i = 0; i < m; ++i) b = std::max(b, peaks[i]);
    best = b;
  }
}

constexpr std::size_t peak_chunk_frames = 1024;

}  // namespace

sample_scanner::sample_scanner(double sample_rate_hz, int channels)
    : sample_rate_hz_(sample_rate_hz), channels_(channels) {
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "analysis takes 1 to 8 channels");
}

void sample_scanner::close_run(int channel, channel_state& s) {
  if (s.run_length >= min_clip_run_frames) {
    s.runs.push_back({channel, s.run_start, s.run_length, static_cast<double>(s.run_start) / sample_rate_hz_});
    clipped_samples_ += s.run_length;
  }
  s.run_length = 0;
}

void sample_scanner::add(const_block_view block) {
  for (int c = 0; c < channels_; ++c) {
    channel_state& s = state_[static_cast<std::size_t>(c)];
    const float* x = block[c];
    double sum = s.sum;
    float peak = s.peak;
    for (std::size_t i = 0; i < block.frames; ++i) {
      const float a = std::abs(x[i]);
      sum += x[i];
      peak = std::max(peak, a);
      if (a >= clip_level) {
        if (s.run_length == 0) s.run_start = frames_ + i;
        ++s.run_length;
      } else if (s.run_length > 0) {
        close_run(c, s);
      }
    }
    s.sum = sum;
    s.peak = peak;
  }
  frames_ += block.frames;
}

track_analysis sample_scanner::finish() {
  track_analysis r;
  r.sample_rate_hz = sample_rate_hz_;
  r.channels = channels_;
  r.frames = frames_;
  r.duration_s = static_cast<double>(frames_) / sample_rate_hz_;
  float sample_peak = 0.0f;
  double max_abs_dc = 0.0;
  // Runs in channel order, each channel's in time order, as one pass per channel finds them.
  for (int c = 0; c < channels_; ++c) {
    channel_state& s = state_[static_cast<std::size_t>(c)];
    close_run(c, s);
    r.clip_runs.insert(r.clip_runs.end(), s.runs.begin(), s.runs.end());
    const double mean = frames_ > 0 ? s.sum / static_cast<double>(frames_) : 0.0;
    r.dc_offset[static_cast<std::size_t>(c)] = mean;
    max_abs_dc = std::max(max_abs_dc, std::abs(mean));
    sample_peak = std::max(sample_peak, s.peak);
  }
  r.clipped_samples = clipped_samples_;
  r.sample_peak_dbfs = amplitude_to_db(sample_peak);
  r.true_peak_dbtp = r.sample_peak_dbfs;  // a lower bound until complete_analysis()
  r.dc_offset_dbfs = amplitude_to_db(max_abs_dc);
  return r;
}

track_analysis scan_samples(const audio_buffer& audio, double sample_rate_hz) {
  sample_scanner s(sample_rate_hz, audio.channels());
  s.add(audio.view());
  return s.finish();
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

track_analyzer::track_analyzer(double sample_rate_hz, int channels)
    : scan_(sample_rate_hz, channels), true_peak_(static_cast<std::size_t>(channels)), peaks_(peak_chunk_frames) {
  meter_.prepare(sample_rate_hz, channels);
  for (true_peak_interpolator& tp : true_peak_) tp.prepare(sample_rate_hz);
}

void track_analyzer::add(const_block_view block) {
  scan_.add(block);
  meter_.process(block);
  for (std::size_t c = 0; c < true_peak_.size(); ++c) {
    run_true_peak(true_peak_[c], block[static_cast<int>(c)], block.frames, peaks_, true_peak_max_);
  }
}

track_analysis track_analyzer::finish() {
  track_analysis r = scan_.finish();
  r.integrated_lufs = meter_.integrated_lufs();
  r.loudness_range_lu = meter_.loudness_range_lu();
  r.max_momentary_lufs = meter_.max_momentary_lufs();
  r.max_short_term_lufs = meter_.max_short_term_lufs();
  // The interpolators' delay line still holds the last frames: zeros push them out, as
  // true_peak_of() does.
  for (true_peak_interpolator& tp : true_peak_) {
    const std::vector<float> tail(tp.latency_frames() + 1, 0.0f);
    run_true_peak(tp, tail.data(), tail.size(), peaks_, true_peak_max_);
  }
  finish_peaks(r, true_peak_max_);
  r.blocks = meter_.blocks();
  return r;
}

track_analysis analyze(const audio_buffer& audio, double sample_rate_hz) {
  track_analyzer a(sample_rate_hz, audio.channels());
  a.add(audio.view());
  return a.finish();
}

}  // namespace lathe
