#include "lathe/crossover.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/error.hpp"

namespace lathe {
namespace {

constexpr std::size_t min_auto_taps = 255;
constexpr std::size_t max_taps = 1'048'575;
// Blackman window: pass-to-stop transition 5.5 fs / (N - 1) (Oppenheim & Schafer, table 7.2);
// asking it to span at most f_lowest / 2 gives the factor 11 of crossover_auto_taps.
constexpr double transition_factor = 11.0;

void check_crossovers(const std::vector<double>& crossover_hz, double fs_hz) {
  LATHE_EXPECTS(fs_hz > 0.0, "sample rate must be positive");
  LATHE_EXPECTS(!crossover_hz.empty() && crossover_hz.size() <= max_crossover_bands - 1,
                "a crossover needs 1..5 crossover frequencies (2..6 bands)");
  for (std::size_t k = 0; k < crossover_hz.size(); ++k) {
    LATHE_EXPECTS(crossover_hz[k] > 0.0 && crossover_hz[k] < 0.5 * fs_hz,
                  "crossover frequencies must lie in (0, fs/2); lower the top crossover for this sample rate");
    LATHE_EXPECTS(k == 0 || crossover_hz[k] > crossover_hz[k - 1], "crossover frequencies must be strictly ascending");
  }
}

void check_taps(std::size_t taps) {
  LATHE_EXPECTS(taps >= 3 && taps % 2 == 1 && taps <= max_taps, "crossover FIR taps must be odd, 3..1048575");
}

}  // namespace

std::size_t crossover_auto_taps(const std::vector<double>& crossover_hz, double fs_hz) {
  check_crossovers(crossover_hz, fs_hz);
  const double needed = transition_factor * fs_hz / crossover_hz.front() + 1.0;
  auto taps = static_cast<std::size_t>(std::ceil(needed));
  taps |= 1;  // odd: the centre falls on a sample, so the delay is a whole number of frames
  return std::clamp(taps, min_auto_taps, max_taps);
}

std::vector<double> design_windowed_sinc_lowpass(double cutoff_hz, double fs_hz, std::size_t taps) {
  LATHE_EXPECTS(fs_hz > 0.0 && cutoff_hz > 0.0 && cutoff_hz < 0.5 * fs_hz, "low-pass cutoff must lie in (0, fs/2)");
  check_taps(taps);
  const std::size_t centre = (taps - 1) / 2;
  const double wc = 2.0 * M_PI * cutoff_hz / fs_hz;
  // Window over the full length with zeros just past either end (denominator centre + 1), so
  // every tap carries weight.
  const double span = static_cast<double>(centre + 1);
  std::vector<double> h(taps);
  double dc = 0.0;
  for (std::size_t j = 0; j <= centre; ++j) {
    const double t = static_cast<double>(j);
    const double ideal = j == 0 ? wc / M_PI : std::sin(wc * t) / (M_PI * t);
    const double x = M_PI * t / span;
    const double w = 0.42 + 0.5 * std::cos(x) + 0.08 * std::cos(2.0 * x);
    h[centre + j] = h[centre - j] = ideal * w;
    dc += j == 0 ? ideal * w : 2.0 * ideal * w;
  }
  // Exactly unit DC gain, so the bands above the lowest carry no DC at all.
  for (double& v : h) v /= dc;
  return h;
}

std::vector<std::vector<double>> design_crossover_bands(const std::vector<double>& crossover_hz, double fs_hz,
                                                        std::size_t taps) {
  check_crossovers(crossover_hz, fs_hz);
  check_taps(taps);
  const std::size_t n_bands = crossover_hz.size() + 1;
  std::vector<std::vector<double>> bands(n_bands);
  std::vector<double> below(taps, 0.0);  // LP_{k-1}; LP_0 = 0
  for (std::size_t k = 0; k < n_bands; ++k) {
    std::vector<double> lp;
    if (k + 1 < n_bands) {
      lp = design_windowed_sinc_lowpass(crossover_hz[k], fs_hz, taps);
    } else {
      lp.assign(taps, 0.0);  // LP_N = delta: everything up to Nyquist
      lp[(taps - 1) / 2] = 1.0;
    }
    bands[k].resize(taps);
    for (std::size_t i = 0; i < taps; ++i) bands[k][i] = lp[i] - below[i];
    below = std::move(lp);
  }
  return bands;
}

void linear_phase_crossover::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  const std::size_t b = params_.partition_frames;
  LATHE_EXPECTS(b >= 64 && (b & (b - 1)) == 0, "crossover partition_frames must be a power of two >= 64");
  taps_ = params_.fir_taps != 0 ? params_.fir_taps : crossover_auto_taps(params_.crossover_hz, spec.sample_rate_hz);
  const auto bands = design_crossover_bands(params_.crossover_hz, spec.sample_rate_hz, taps_);
  channels_ = spec.channels;
  filters_.clear();
  conv_.clear();
  conv_.reserve(bands.size() * static_cast<std::size_t>(channels_));
  for (const std::vector<double>& h : bands) {
    const std::vector<float> hf(h.begin(), h.end());
    filters_.push_back(std::make_shared<const partitioned_filter>(hf, b));
    for (int c = 0; c < channels_; ++c) conv_.emplace_back(filters_.back());
  }
  scratch_.resize(channels_, spec.max_block_frames);
  input_copy_.resize(channels_, spec.max_block_frames);
}

void linear_phase_crossover::reset() noexcept {
  for (partitioned_convolver& c : conv_) c.reset();
}

void linear_phase_crossover::split(const_block_view in, std::span<const block_view> bands) noexcept {
  for (std::size_t k = 0; k < bands.size(); ++k) {
    for (int c = 0; c < in.channels; ++c) {
      conv_[k * static_cast<std::size_t>(channels_) + static_cast<std::size_t>(c)].process(in[c], bands[k][c],
                                                                                           in.frames);
    }
  }
}

void linear_phase_crossover::process(const_block_view in, block_view out) noexcept {
  const_block_view src = in;
  if (in.channels > 0 && in[0] == out[0]) {
    for (int c = 0; c < in.channels; ++c) std::memcpy(input_copy_.channel(c), in[c], in.frames * sizeof(float));
    src = input_copy_.view(0, in.frames);
  }
  const std::size_t n_bands = filters_.size();
  for (int c = 0; c < in.channels; ++c) {
    const auto ch = static_cast<std::size_t>(c);
    conv_[ch].process(src[c], out[c], in.frames);
    float* tmp = scratch_.channel(c);
    for (std::size_t k = 1; k < n_bands; ++k) {
      conv_[k * static_cast<std::size_t>(channels_) + ch].process(src[c], tmp, in.frames);
      float* o = out[c];
      for (std::size_t i = 0; i < in.frames; ++i) o[i] += tmp[i];
    }
  }
}

std::size_t linear_phase_crossover::latency_frames() const noexcept {
  return conv_.empty() ? 0 : (taps_ - 1) / 2 + conv_.front().latency_frames();
}

}  // namespace lathe
