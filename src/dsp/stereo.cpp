#include "lathe/stereo.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "lathe/error.hpp"

namespace lathe {

// ---- correlation_meter -------------------------------------------------------------------

void correlation_meter::sums::add(const sums& o) noexcept {
  n += o.n, x += o.x, y += o.y, xx += o.xx, yy += o.yy, xy += o.xy;
}

bool correlation_meter::sums::varies() const noexcept {
  return n > 0 && xx - x * x / n > 0.0 && yy - y * y / n > 0.0;
}

double correlation_meter::sums::pearson() const noexcept {
  if (!varies()) return 0.0;
  // Centred from raw sums: fine in float64 for audio (means near zero, so no cancellation).
  const double cxy = xy - x * y / n, cxx = xx - x * x / n, cyy = yy - y * y / n;
  return std::clamp(cxy / std::sqrt(cxx * cyy), -1.0, 1.0);
}

correlation_meter::correlation_meter(std::size_t window_frames) : window_frames_(window_frames) {
  LATHE_EXPECTS(window_frames > 0, "correlation meter window must be at least one frame");
}

void correlation_meter::reset() noexcept {
  total_ = window_ = sums{};
  frames_ = in_window_ = windows_ = 0;
  min_corr_ = sum_corr_ = 0.0;
}

void correlation_meter::close_window() noexcept {
  if (window_.varies()) {
    const double r = window_.pearson();
    min_corr_ = windows_ == 0 ? r : std::min(min_corr_, r);
    sum_corr_ += r;
    ++windows_;
  }
  total_.add(window_);
  window_ = sums{};
  in_window_ = 0;
}

void correlation_meter::add(const float* left, const float* right, std::size_t frames) noexcept {
  std::size_t i = 0;
  while (i < frames) {
    const std::size_t n = std::min(frames - i, window_frames_ - in_window_);
    double x = 0, y = 0, xx = 0, yy = 0, xy = 0;
    for (std::size_t k = i; k < i + n; ++k) {
      const double l = left[k], r = right[k];
      x += l, y += r, xx += l * l, yy += r * r, xy += l * r;
    }
    window_.add(sums{static_cast<double>(n), x, y, xx, yy, xy});
    in_window_ += n;
    frames_ += n;
    i += n;
    if (in_window_ == window_frames_) close_window();
  }
}

void correlation_meter::add_sums(std::size_t frames, double l, double r, double ll, double rr, double lr) noexcept {
  window_.add(sums{static_cast<double>(frames), l, r, ll, rr, lr});
  in_window_ += frames;
  frames_ += frames;
  if (in_window_ == window_frames_) close_window();
}

void correlation_meter::merge(const correlation_meter& later) noexcept {
  if (in_window_ > 0) close_window();
  total_.add(later.total_);
  total_.add(later.window_);
  if (later.windows_ > 0) {
    min_corr_ = windows_ == 0 ? later.min_corr_ : std::min(min_corr_, later.min_corr_);
    sum_corr_ += later.sum_corr_;
    windows_ += later.windows_;
  }
  frames_ += later.frames_;
}

double correlation_meter::correlation() const noexcept {
  sums all = total_;
  all.add(window_);
  return all.pearson();
}

double correlation_meter::min_window_correlation() const noexcept {
  return windows_ ? min_corr_ : 0.0;
}

double correlation_meter::mean_window_correlation() const noexcept {
  return windows_ ? sum_corr_ / static_cast<double>(windows_) : 0.0;
}

double correlation_meter::side_to_mid_db() const noexcept {
  sums all = total_;
  all.add(window_);
  // 4 S^2 = L^2 - 2LR + R^2 and 4 M^2 = L^2 + 2LR + R^2, summed.
  const double side = all.xx - 2.0 * all.xy + all.yy, mid = all.xx + 2.0 * all.xy + all.yy;
  if (side <= 0.0 && mid <= 0.0) return std::numeric_limits<double>::quiet_NaN();
  if (mid <= 0.0) return std::numeric_limits<double>::infinity();
  if (side <= 0.0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(side / mid);
}

// ---- stereo_stage ------------------------------------------------------------------------

std::vector<eq_band> stereo_stage::bass_mono_bands(double below_hz) {
  // An 8th-order Butterworth is four second-order sections with Q = 1 / (2 cos theta_k),
  // theta_k = (2k - 1) pi / 16: |H|^2 = 1 / (1 + (fc/f)^16) (in prewarped frequency), -76 dB at
  // fc/3 and within 0.001 dB from 2.5 fc. Lower orders leave too much side at a third of fc.
  std::vector<eq_band> bands;
  for (int k = 1; k <= 4; ++k) {
    const double theta = (2.0 * k - 1.0) * M_PI / 16.0;
    bands.push_back(eq_band{eq_band_type::high_pass, below_hz, 0.0, 1.0 / (2.0 * std::cos(theta))});
  }
  return bands;
}

std::size_t stereo_stage::meter_window_frames(const stereo_params& p, double fs_hz) {
  return static_cast<std::size_t>(std::max(1.0, std::round(p.meter_window_ms * 1e-3 * fs_hz)));
}

void stereo_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(spec.max_block_frames > 0, "max_block_frames must be positive");
  LATHE_EXPECTS(std::isfinite(params_.width) && params_.width >= 0.0 && params_.width <= 4.0,
                "stereo width must be in [0, 4] (linear side gain; 1 = unchanged)");
  LATHE_EXPECTS(std::isfinite(params_.mid_gain_db) && std::abs(params_.mid_gain_db) <= 24.0,
                "stereo mid_gain_db must be within +-24 dB");
  LATHE_EXPECTS(params_.bass_mono_below_hz == 0.0 ||
                    (params_.bass_mono_below_hz >= 20.0 && params_.bass_mono_below_hz < 0.25 * spec.sample_rate_hz),
                "stereo bass_mono_below_hz must be 0 (off) or in [20 Hz, fs/4)");
  LATHE_EXPECTS(params_.meter_window_ms > 0.0, "stereo meter_window_ms must be positive");
  channels_ = spec.channels;
  mid_gain_ = static_cast<float>(std::pow(10.0, params_.mid_gain_db / 20.0));
  side_gain_ = static_cast<float>(params_.width);
  const bool bass_mono = params_.bass_mono_below_hz > 0.0;
  bypass_ = channels_ != 2 || (params_.width == 1.0 && params_.mid_gain_db == 0.0 && !bass_mono);

  eq_params eqp;
  if (channels_ == 2 && bass_mono) eqp.bands = bass_mono_bands(params_.bass_mono_below_hz);
  eqp.partition_frames = params_.partition_frames;
  side_hp_ = linear_phase_eq_stage(eqp);
  side_hp_.prepare({spec.sample_rate_hz, 1, spec.max_block_frames});
  latency_ = side_hp_.latency_frames();
  mid_.assign(bypass_ ? 0 : spec.max_block_frames, 0.0f);
  side_.assign(bypass_ ? 0 : spec.max_block_frames, 0.0f);
  mid_delay_.assign(latency_, 0.0f);

  const std::size_t window = meter_window_frames(params_, spec.sample_rate_hz);
  before_ = correlation_meter(window);
  after_ = correlation_meter(window);
  reset();
}

void stereo_stage::reset() noexcept {
  side_hp_.reset();
  std::fill(mid_delay_.begin(), mid_delay_.end(), 0.0f);
  delay_pos_ = 0;
  produced_ = 0;
  before_.reset();
  after_.reset();
}

void stereo_stage::process(const_block_view in, block_view out) noexcept {
  const std::size_t n = in.frames;
  if (channels_ == 2) before_.add(in[0], in[1], n);
  if (bypass_) {
    for (int c = 0; c < in.channels; ++c) {
      if (in[c] != out[c]) std::memmove(out[c], in[c], n * sizeof(float));
    }
  } else {
    float* mid = mid_.data();
    float* side = side_.data();
    const float* l = in[0];
    const float* r = in[1];
    for (std::size_t i = 0; i < n; ++i) {
      mid[i] = 0.5f * (l[i] + r[i]);
      side[i] = 0.5f * (l[i] - r[i]);
    }
    if (latency_ > 0) {
      float* s = side;
      side_hp_.process(const_block_view::mono(s, n), block_view::mono(s, n));
      // Mid through a ring of latency_ frames, swapped in at most two contiguous pieces.
      for (std::size_t done = 0; done < n;) {
        const std::size_t k = std::min(n - done, latency_ - delay_pos_);
        std::swap_ranges(mid + done, mid + done + k, mid_delay_.data() + delay_pos_);
        done += k;
        delay_pos_ = (delay_pos_ + k) % latency_;
      }
    }
    // width 0: side * 0 = +-0, so L and R both equal mid * gain exactly.
    const float gm = mid_gain_, gs = side_gain_;
    float* ol = out[0];
    float* orr = out[1];
    for (std::size_t i = 0; i < n; ++i) {
      const float m = gm * mid[i], s = gs * side[i];
      ol[i] = m + s;
      orr[i] = m - s;
    }
  }
  if (channels_ == 2) {
    const std::size_t skip = produced_ < latency_ ? std::min(n, latency_ - produced_) : 0;
    after_.add(out[0] + skip, out[1] + skip, n - skip);
  }
  produced_ += n;
}

stereo_stats stereo_stats_of(const correlation_meter& before, const correlation_meter& after) noexcept {
  stereo_stats s;
  s.correlation_before = before.correlation();
  s.correlation_after = after.correlation();
  s.min_window_correlation_before = before.min_window_correlation();
  s.min_window_correlation_after = after.min_window_correlation();
  s.side_to_mid_db_before = before.side_to_mid_db();
  s.side_to_mid_db_after = after.side_to_mid_db();
  return s;
}

stereo_stats stereo_stage::stats() const noexcept {
  return stereo_stats_of(before_, after_);
}

}  // namespace lathe
