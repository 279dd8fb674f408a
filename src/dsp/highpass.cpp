#include "lathe/highpass.hpp"

#include <algorithm>
#include <cmath>

#include "lathe/error.hpp"

namespace lathe {
namespace {

// The whole cascade runs per sample with coefficients and state in registers (fixed section
// count, so the section loop unrolls): successive sections of successive samples overlap in the
// CPU's pipeline, and the signal stays float64 between sections instead of being rounded to
// float after each one.
template <std::size_t Sections, class State>
void run_cascade(const biquad_coeffs* coeffs, State* state, const float* in, float* out, std::size_t frames) noexcept {
  double b0[Sections], b1[Sections], b2[Sections], a1[Sections], a2[Sections];
  double s1[Sections], s2[Sections];
  for (std::size_t s = 0; s < Sections; ++s) {
    b0[s] = coeffs[s].b0;
    b1[s] = coeffs[s].b1;
    b2[s] = coeffs[s].b2;
    a1[s] = coeffs[s].a1;
    a2[s] = coeffs[s].a2;
    s1[s] = state[s].s1;
    s2[s] = state[s].s2;
  }
  for (std::size_t i = 0; i < frames; ++i) {
    double x = in[i];
    for (std::size_t s = 0; s < Sections; ++s) {
      const double y = b0[s] * x + s1[s];
      s1[s] = b1[s] * x - a1[s] * y + s2[s];
      s2[s] = b2[s] * x - a2[s] * y;
      x = y;
    }
    out[i] = static_cast<float>(x);
  }
  for (std::size_t s = 0; s < Sections; ++s) {
    state[s].s1 = s1[s];
    state[s].s2 = s2[s];
  }
}

// Pole quality factors of the analog Butterworth prototype of `order`, one per conjugate pair.
// The poles sit at angles (2k - 1) * pi / (2 * order) from the imaginary axis.
std::vector<double> butterworth_pair_q(int order) {
  std::vector<double> q;
  for (int k = 1; k <= order / 2; ++k) q.push_back(1.0 / (2.0 * std::sin(M_PI * (2.0 * k - 1.0) / (2.0 * order))));
  return q;
}

}  // namespace

void highpass_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.sample_rate_hz > 0.0, "sample rate must be positive");
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  fs_hz_ = spec.sample_rate_hz;
  sections_.clear();
  if (params_.cutoff_hz > 0.0) {
    LATHE_EXPECTS(params_.order >= 1 && params_.order <= 8, "high-pass order must be 1..8");
    // Every section is prewarped at the same cutoff, so the cascade is the bilinear transform of
    // the whole Butterworth prototype and |H| is exactly -3.01 dB at cutoff_hz.
    for (double q : butterworth_pair_q(params_.order))
      sections_.push_back(design_highpass(params_.cutoff_hz, q, fs_hz_));
    if (params_.order % 2 == 1) sections_.push_back(design_highpass_1st(params_.cutoff_hz, fs_hz_));
  } else {
    LATHE_EXPECTS(params_.cutoff_hz == 0.0, "high-pass cutoff must be >= 0 Hz (0 turns it off)");
    LATHE_EXPECTS(params_.dc_cutoff_hz > 0.0, "DC blocker cutoff must be > 0 Hz");
    sections_.push_back(design_highpass_1st(params_.dc_cutoff_hz, fs_hz_));
  }
  LATHE_EXPECTS(sections_.size() <= max_sections, "internal: too many sections");
  state_.assign(static_cast<std::size_t>(spec.channels) * sections_.size(), section_state{});
  frames_to_flush_ = flush_interval_frames;
}

void highpass_stage::reset() noexcept {
  std::fill(state_.begin(), state_.end(), section_state{});
  frames_to_flush_ = flush_interval_frames;
}

void highpass_stage::process(const_block_view in, block_view out) noexcept {
  const std::size_t sections = sections_.size();
  std::size_t pos = 0;
  while (pos < in.frames) {
    const std::size_t len = std::min(in.frames - pos, frames_to_flush_);
    for (int c = 0; c < in.channels; ++c) {
      section_state* st = state_.data() + static_cast<std::size_t>(c) * sections;
      const float* x = in[c] + pos;
      float* y = out[c] + pos;
      switch (sections) {
        case 1:
          run_cascade<1>(sections_.data(), st, x, y, len);
          break;
        case 2:
          run_cascade<2>(sections_.data(), st, x, y, len);
          break;
        case 3:
          run_cascade<3>(sections_.data(), st, x, y, len);
          break;
        default:
          run_cascade<4>(sections_.data(), st, x, y, len);
          break;
      }
    }
    pos += len;
    frames_to_flush_ -= len;
    if (frames_to_flush_ == 0) {
      // Flush denormals: state this small is inaudible, and denormal arithmetic is slow after a
      // long silence.
      for (section_state& s : state_) {
        if (std::abs(s.s1) < 1e-30) s.s1 = 0.0;
        if (std::abs(s.s2) < 1e-30) s.s2 = 0.0;
      }
      frames_to_flush_ = flush_interval_frames;
    }
  }
}

double highpass_stage::magnitude(double f_hz) const {
  LATHE_EXPECTS(fs_hz_ > 0.0, "magnitude() needs prepare() first");
  double m = 1.0;
  for (const biquad_coeffs& c : sections_) m *= std::abs(c.response(f_hz, fs_hz_));
  return m;
}

}  // namespace lathe
