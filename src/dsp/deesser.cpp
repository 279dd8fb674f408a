#include "lathe/deesser.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/error.hpp"

namespace lathe {
namespace {

// One-pole coefficient for a time constant of tau_ms (the step reaches 1 - 1/e after tau).
double one_pole(double tau_ms, double fs_hz) {
  return std::exp(-1.0 / (tau_ms * 1e-3 * fs_hz));
}

// Reductions below this are inaudible; snapping them to zero ends a release exactly, so the
// band gain returns to exactly 1 and quiet passages pass bit-exact.
constexpr double reduction_floor_db = 1e-6;

}  // namespace

void deesser_stats::merge(const deesser_stats& o) noexcept {
  max_reduction_db = std::max(max_reduction_db, o.max_reduction_db);
  sum_reduction_db += o.sum_reduction_db;
  frames += o.frames;
  active_frames += o.active_frames;
}

biquad_coeffs deesser_stage::design_band(const deesser_params& p, double fs_hz) {
  // RBJ cookbook BPF, constant 0 dB peak gain: H(s) = (s/Q) / (s^2 + s/Q + 1), so
  // 1 - H(s) = (s^2 + 1) / (s^2 + s/Q + 1) is the cookbook notch: band + rest = x exactly.
  const double f0 = std::sqrt(p.low_hz * p.high_hz);
  const double q = f0 / (p.high_hz - p.low_hz);
  const double w0 = 2.0 * M_PI * f0 / fs_hz;
  const double alpha = std::sin(w0) / (2.0 * q);
  const double a0 = 1.0 + alpha;
  return biquad_coeffs{alpha / a0, 0.0, -alpha / a0, -2.0 * std::cos(w0) / a0, (1.0 - alpha) / a0};
}

double deesser_stage::static_reduction_db(const deesser_params& p, double level_db) noexcept {
  const double over = level_db - p.threshold_db;
  if (!(over > 0.0)) return 0.0;
  return std::min(p.max_reduction_db, over * (1.0 - 1.0 / p.ratio));
}

void deesser_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(spec.max_block_frames > 0, "max_block_frames must be positive");
  const deesser_params& p = params_;
  LATHE_EXPECTS(p.low_hz > 0.0 && p.low_hz < p.high_hz && p.high_hz < 0.5 * spec.sample_rate_hz,
                "de-esser band needs 0 < low_hz < high_hz < fs/2");
  LATHE_EXPECTS(std::isfinite(p.threshold_db) && p.threshold_db <= 0.0, "de-esser threshold_db must be <= 0 dBFS");
  LATHE_EXPECTS(p.ratio >= 1.0, "de-esser ratio must be >= 1");
  LATHE_EXPECTS(p.max_reduction_db >= 0.0 && p.max_reduction_db <= 48.0,
                "de-esser max_reduction_db must be in [0, 48]");
  LATHE_EXPECTS(p.attack_ms > 0.0 && p.release_ms > 0.0 && p.detector_rms_ms > 0.0,
                "de-esser attack_ms, release_ms and detector_rms_ms must be positive");
  channels_ = spec.channels;
  band_ = design_band(p, spec.sample_rate_hz);
  split_.assign(static_cast<std::size_t>(channels_), biquad{});
  detect_.assign(static_cast<std::size_t>(channels_), biquad{});
  for (auto& b : split_) b.set(band_);
  for (auto& b : detect_) b.set(band_);
  band_buf_.assign(static_cast<std::size_t>(channels_), std::vector<float>(spec.max_block_frames));
  detect_buf_.assign(spec.max_block_frames, 0.0f);
  gain_.assign(spec.max_block_frames, 1.0f);
  power_coef_ = one_pole(p.detector_rms_ms, spec.sample_rate_hz);
  attack_coef_ = one_pole(p.attack_ms, spec.sample_rate_hz);
  release_coef_ = one_pole(p.release_ms, spec.sample_rate_hz);
  reset();
}

void deesser_stage::reset() noexcept {
  for (auto& b : split_) b.reset();
  for (auto& b : detect_) b.reset();
  power_ = reduction_db_ = 0.0;
  stats_ = {};
}

void deesser_stage::process(const_block_view in, block_view out) noexcept {
  const std::size_t n = in.frames;
  float* det = detect_buf_.data();
  std::fill(det, det + n, 0.0f);
  for (int c = 0; c < in.channels; ++c) {
    const auto cu = static_cast<std::size_t>(c);
    float* band = band_buf_[cu].data();
    split_[cu].process(in[c], band, n);
    float* d = gain_.data();  // scratch for this channel's detector signal
    detect_[cu].process(band, d, n);
    // Linked detection: the loudest channel's band sets one gain, so the image does not shift.
    for (std::size_t i = 0; i < n; ++i) det[i] = std::max(det[i], d[i] * d[i]);
  }
  const deesser_params& p = params_;
  const double kp = power_coef_, ka = attack_coef_, kr = release_coef_;
  const double slope = 1.0 - 1.0 / p.ratio;
  double power = power_, red = reduction_db_;
  double red_max = stats_.max_reduction_db, red_sum = 0.0;
  std::size_t active = 0;
  for (std::size_t i = 0; i < n; ++i) {
    power = kp * power + (1.0 - kp) * static_cast<double>(det[i]);
    double target = 0.0;
    if (power > 0.0) {
      const double over = 10.0 * std::log10(power) - p.threshold_db;
      if (over > 0.0) target = std::min(p.max_reduction_db, over * slope);
    }
    red = target + (target > red ? ka : kr) * (red - target);
    if (target == 0.0 && red < reduction_floor_db) red = 0.0;
    gain_[i] = red == 0.0 ? 1.0f : static_cast<float>(std::pow(10.0, -red / 20.0));
    red_max = std::max(red_max, red);
    red_sum += red;
    active += red > 0.0 ? 1 : 0;
  }
  power_ = power < 1e-30 ? 0.0 : power;  // flush denormals
  reduction_db_ = red;
  stats_.max_reduction_db = red_max;
  stats_.sum_reduction_db += red_sum;
  stats_.frames += n;
  stats_.active_frames += active;
  const float* g = gain_.data();
  for (int c = 0; c < in.channels; ++c) {
    const float* x = in[c];
    const float* band = band_buf_[static_cast<std::size_t>(c)].data();
    float* y = out[c];
    // rest + band * g with rest = x - band; g == 1 leaves x exactly.
    for (std::size_t i = 0; i < n; ++i) y[i] = x[i] + band[i] * (g[i] - 1.0f);
  }
}

}  // namespace lathe
