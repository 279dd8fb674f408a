#include "lathe/dynamics.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/error.hpp"

namespace lathe {
namespace {

constexpr double level_floor_db = -200.0;
constexpr double gain_floor_db = -200.0;
constexpr double level_floor_amp = 1e-10;  // 10^(-200 / 20)
constexpr double ln10_over_20 = 2.302585092994045684 / 20.0;

std::size_t ms_to_frames(double ms, double fs_hz) {
  return static_cast<std::size_t>(std::llround(ms * 1e-3 * fs_hz));
}

// One-pole coefficient whose step response reaches 1 - 1/e after tau seconds.
double one_pole_coeff(double tau_ms, double fs_hz) {
  return tau_ms <= 0.0 ? 0.0 : std::exp(-1.0 / (tau_ms * 1e-3 * fs_hz));
}

}  // namespace

double compressor_static_gain_db(const compressor_params& p, double level_db) noexcept {
  const double x = std::max(level_db, level_floor_db);
  const double d = x - p.threshold_db;
  const double w = p.knee_db;
  const double slope = 1.0 / p.ratio - 1.0;  // < 0 compressing, > 0 expanding, 0 neutral
  double g = 0.0;
  if (w > 0.0 && std::abs(2.0 * d) <= w) {
    // GMR 2012 eq. 4: the quadratic meets both straight segments with equal value and slope.
    // The expander mirrors it about the threshold.
    g = p.ratio >= 1.0 ? slope * (d + 0.5 * w) * (d + 0.5 * w) / (2.0 * w)
                       : -slope * (d - 0.5 * w) * (d - 0.5 * w) / (2.0 * w);
  } else if (p.ratio >= 1.0 ? d > 0.0 : d < 0.0) {
    g = slope * d;
  }
  return std::max(g, gain_floor_db);
}

namespace detail {

void frame_delay::prepare(int channels, std::size_t delay_frames) {
  LATHE_EXPECTS(channels >= 0 && channels <= max_channels, "channel count out of range");
  channels_ = channels;
  delay_ = delay_frames;
  ring_.assign(static_cast<std::size_t>(channels) * delay_frames, 0.0f);
  pos_ = 0;
}

void frame_delay::reset() noexcept {
  std::fill(ring_.begin(), ring_.end(), 0.0f);
  pos_ = 0;
}

void frame_delay::process(const_block_view in, block_view out) noexcept {
  if (delay_ == 0) {
    for (int c = 0; c < in.channels; ++c) {
      if (in[c] != out[c]) std::memmove(out[c], in[c], in.frames * sizeof(float));
    }
    return;
  }
  for (int c = 0; c < in.channels; ++c) {
    float* ring = ring_.data() + static_cast<std::size_t>(c) * delay_;
    const float* x = in[c];
    float* y = out[c];
    std::size_t p = pos_;
    for (std::size_t i = 0; i < in.frames; ++i) {
      const float v = x[i];  // read before the write: in place is fine
      y[i] = ring[p];
      ring[p] = v;
      if (++p == delay_) p = 0;
    }
  }
  pos_ = (pos_ + in.frames) % delay_;
}

}  // namespace detail

void compressor_stage::prepare(const stream_spec& spec) {
  const compressor_params& p = params_;
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(spec.sample_rate_hz > 0.0, "sample rate must be positive");
  LATHE_EXPECTS(std::isfinite(p.threshold_db) && p.threshold_db <= 0.0 && p.threshold_db > level_floor_db,
                "compressor threshold_db must lie in (-200, 0] dBFS");
  LATHE_EXPECTS(std::isfinite(p.ratio) && p.ratio > 0.0 && p.ratio <= 1000.0,
                "compressor ratio must lie in (0, 1000]: > 1 compresses, < 1 expands, 1 is neutral");
  LATHE_EXPECTS(p.knee_db >= 0.0 && p.knee_db <= 60.0, "compressor knee_db must lie in [0, 60]");
  LATHE_EXPECTS(p.attack_ms >= 0.0 && p.attack_ms <= 10'000.0, "compressor attack_ms must lie in [0, 10000]");
  LATHE_EXPECTS(p.release_ms >= 0.0 && p.release_ms <= 10'000.0, "compressor release_ms must lie in [0, 10000]");
  LATHE_EXPECTS(p.lookahead_ms >= 0.0 && p.lookahead_ms <= 1'000.0, "compressor lookahead_ms must lie in [0, 1000]");
  LATHE_EXPECTS(std::abs(p.makeup_db) <= 60.0, "compressor makeup_db must lie within +-60 dB");
  LATHE_EXPECTS(p.detector_window_ms > 0.0 && p.detector_window_ms <= 1'000.0,
                "compressor detector_window_ms must lie in (0, 1000]");
  const double fs = spec.sample_rate_hz;
  channels_ = spec.channels;
  linked_ = p.link == stereo_link::linked;
  rms_ = p.detector == level_detector::rms;
  window_ = std::max<std::size_t>(1, ms_to_frames(p.detector_window_ms, fs));
  attack_coeff_ = one_pole_coeff(p.attack_ms, fs);
  release_coeff_ = one_pole_coeff(p.release_ms, fs);
  attack_sign_ = p.ratio >= 1.0 ? -1.0 : 1.0;
  makeup_db_ = p.makeup_db;
  const auto ch = static_cast<std::size_t>(channels_);
  det_ring_.assign(ch * window_, 0.0f);
  deque_.assign(ch * window_, 0);
  deque_head_.assign(ch, 0);
  deque_size_.assign(ch, 0);
  rms_sum_.assign(ch, 0.0);
  gain_state_db_.assign(ch, 0.0);
  gain_.assign(ch * spec.max_block_frames, 0.0f);
  max_block_ = spec.max_block_frames;
  delay_.prepare(channels_, ms_to_frames(p.lookahead_ms, fs));
  reset();
}

void compressor_stage::reset() noexcept {
  std::fill(det_ring_.begin(), det_ring_.end(), 0.0f);
  std::fill(deque_head_.begin(), deque_head_.end(), 0);
  std::fill(deque_size_.begin(), deque_size_.end(), 0);
  std::fill(rms_sum_.begin(), rms_sum_.end(), 0.0);
  std::fill(gain_state_db_.begin(), gain_state_db_.end(), 0.0);
  det_pos_ = 0;
  delay_.reset();
  sum_reduction_db_ = max_reduction_db_ = 0.0;
  frames_ = 0;
}

double compressor_stage::detect(int c, float x) noexcept {
  const auto ch = static_cast<std::size_t>(c);
  float* ring = det_ring_.data() + ch * window_;
  if (rms_) {
    const float sq = x * x;
    // Running sum in float64 of float squares: the add and the later subtract of one value
    // differ only by float64 rounding, so the drift stays ~1e-16 of the loudest power seen.
    rms_sum_[ch] += static_cast<double>(sq) - static_cast<double>(ring[det_pos_]);
    ring[det_pos_] = sq;
    return std::max(rms_sum_[ch], 0.0) / static_cast<double>(window_);
  }
  // Sliding maximum over the last window_ frames: a deque of ring positions whose values
  // decrease from front to back; the front is the maximum. The ring slot about to be
  // overwritten holds the value from window_ frames ago, which leaves the window now.
  std::uint32_t* dq = deque_.data() + ch * window_;
  std::size_t& head = deque_head_[ch];
  std::size_t& size = deque_size_[ch];
  const auto slot = static_cast<std::uint32_t>(det_pos_);
  if (size > 0 && dq[head] == slot) {
    head = head + 1 == window_ ? 0 : head + 1;
    --size;
  }
  const float v = std::abs(x);
  ring[det_pos_] = v;
  while (size > 0) {
    std::size_t back = head + size - 1;
    if (back >= window_) back -= window_;
    if (ring[dq[back]] > v) break;
    --size;
  }
  std::size_t tail = head + size;
  if (tail >= window_) tail -= window_;
  dq[tail] = slot;
  ++size;
  return static_cast<double>(ring[dq[head]]);
}

double compressor_stage::to_db(double detected) const noexcept {
  return rms_ ? 10.0 * std::log10(std::max(detected, level_floor_amp * level_floor_amp))
              : 20.0 * std::log10(std::max(detected, level_floor_amp));
}

double compressor_stage::smooth(double& state_db, double level_db) const noexcept {
  const double target = compressor_static_gain_db(params_, level_db);
  // GMR 2012's smooth branching detector, run on the gain in dB: attack when the level rises
  // (the gain moves in attack_sign_'s direction), release when it falls.
  const double coeff = (target - state_db) * attack_sign_ > 0.0 ? attack_coeff_ : release_coeff_;
  state_db = target + coeff * (state_db - target);
  return state_db;
}

void compressor_stage::process(const_block_view in, block_view out) noexcept {
  const std::size_t n = in.frames;
  const auto ch = static_cast<std::size_t>(channels_);
  // Pass 1, sequential: detection and gain per frame, from the undelayed input (so the gain
  // leads the delayed audio by the lookahead). Done before the delay since in may alias out.
  for (std::size_t i = 0; i < n; ++i) {
    double detected[max_channels];
    for (int c = 0; c < channels_; ++c) detected[c] = detect(c, in[c][i]);
    if (++det_pos_ == window_) det_pos_ = 0;
    if (linked_) {
      // Max over channels in the linear domain (monotonic with dB), so one log per frame.
      double d = detected[0];
      for (int c = 1; c < channels_; ++c) d = std::max(d, detected[c]);
      const double g = smooth(gain_state_db_[0], to_db(d));
      const auto lin = static_cast<float>(std::exp((g + makeup_db_) * ln10_over_20));
      for (std::size_t c = 0; c < ch; ++c) gain_[c * max_block_ + i] = lin;
      sum_reduction_db_ -= g;
      max_reduction_db_ = std::max(max_reduction_db_, -g);
    } else {
      for (std::size_t c = 0; c < ch; ++c) {
        const double g = smooth(gain_state_db_[c], to_db(detected[c]));
        gain_[c * max_block_ + i] = static_cast<float>(std::exp((g + makeup_db_) * ln10_over_20));
        sum_reduction_db_ -= g;
        max_reduction_db_ = std::max(max_reduction_db_, -g);
      }
    }
  }
  frames_ += n;
  // Pass 2: lookahead delay, then the gain (makeup included); a plain vector loop.
  delay_.process(in, out);
  for (std::size_t c = 0; c < ch; ++c) {
    float* y = out[static_cast<int>(c)];
    const float* g = gain_.data() + c * max_block_;
    for (std::size_t i = 0; i < n; ++i) y[i] *= g[i];
  }
}

dynamics_stats compressor_stage::stats() const noexcept {
  dynamics_stats s;
  s.frames = frames_;
  s.max_gain_reduction_db = max_reduction_db_;
  const double paths = linked_ ? 1.0 : static_cast<double>(channels_);
  s.mean_gain_reduction_db = frames_ == 0 ? 0.0 : sum_reduction_db_ / (static_cast<double>(frames_) * paths);
  return s;
}

}  // namespace lathe
