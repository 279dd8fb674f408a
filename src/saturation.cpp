#include "lathe/saturation.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lathe/error.hpp"
#include "lathe/polyphase.hpp"

namespace lathe {
namespace {

// Eight independent partial sums: a fixed order (bit-identical run to run) that the compiler
// can keep in one vector register without -ffast-math.
inline float dot(const float* a, const float* b, std::size_t n) noexcept {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t t = 0;
  for (; t + 8 <= n; t += 8) {
    for (std::size_t k = 0; k < 8; ++k) acc[k] += a[t + k] * b[t + k];
  }
  float tail = 0.0f;
  for (; t < n; ++t) tail += a[t] * b[t];
  return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

}  // namespace

void saturation_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(spec.max_block_frames > 0, "max_block_frames must be positive");
  LATHE_EXPECTS(std::isfinite(params_.drive_db) && params_.drive_db >= -24.0 && params_.drive_db <= 36.0,
                "saturation drive_db must be in [-24, 36]");
  LATHE_EXPECTS(std::isfinite(params_.output_db) && params_.output_db >= -48.0 && params_.output_db <= 24.0,
                "saturation output_db must be in [-48, 24]");
  LATHE_EXPECTS(params_.mix >= 0.0 && params_.mix <= 1.0, "saturation mix must be in [0, 1]");
  LATHE_EXPECTS(params_.oversampling >= 1 && params_.oversampling <= 16, "saturation oversampling must be 1..16");
  channels_ = spec.channels;
  max_block_ = spec.max_block_frames;
  factor_ = static_cast<std::size_t>(params_.oversampling);
  drive_ = static_cast<float>(std::pow(10.0, params_.drive_db / 20.0));
  trim_ = static_cast<float>(std::pow(10.0, params_.output_db / 20.0));
  wet_ = static_cast<float>(params_.mix);
  dry_ = static_cast<float>(1.0 - params_.mix);

  if (factor_ == 1) {
    up_coeffs_.assign(1, 1.0f);
    down_coeffs_.assign(1, 1.0f);
    up_taps_ = down_taps_ = 1;
    up_half_ = down_half_ = down_delay_ = 0;
  } else {
    // The polyphase design depends only on the rate ratio and the fractions of the lower
    // Nyquist, so nominal integer rates give the tables for any actual sample rate.
    polyphase_params pp;
    pp.stopband_attenuation_db = params_.filter_attenuation_db;
    const double base = 1'000.0, high = base * static_cast<double>(factor_);
    polyphase_resampler up, down;
    up.prepare(base, high, pp);    // phase r, tap t: output q*L + r from x[q - K + t]
    down.prepare(high, base, pp);  // one phase: output j from u[j*L - K + t]
    up_coeffs_.assign(up.coefficients().begin(), up.coefficients().end());
    down_coeffs_.assign(down.coefficients().begin(), down.coefficients().end());
    up_taps_ = up.taps_per_phase();
    up_half_ = up.half_taps();
    down_taps_ = down.taps_per_phase();
    down_half_ = down.half_taps();
    down_delay_ = (down_half_ + factor_ - 1) / factor_;
  }
  latency_ = up_half_ + down_delay_;
  // The input history must hold the interpolator's window and the dry path's delay.
  x_hist_ = std::max(2 * up_half_, latency_);
  // Decimating at high-rate index H + L (i - D) needs [.. - K, .. + K] with L D >= K.
  u_hist_ = 2 * factor_ * down_delay_;
  x_.assign(static_cast<std::size_t>(channels_), std::vector<float>(x_hist_ + max_block_, 0.0f));
  u_.assign(static_cast<std::size_t>(channels_), std::vector<float>(u_hist_ + factor_ * max_block_, 0.0f));
}

void saturation_stage::reset() noexcept {
  for (auto& v : x_) std::fill(v.begin(), v.end(), 0.0f);
  for (auto& v : u_) std::fill(v.begin(), v.end(), 0.0f);
}

void saturation_stage::process(const_block_view in, block_view out) noexcept {
  const std::size_t n = in.frames;
  const std::size_t L = factor_;
  const float drive = drive_, trim = trim_, wet = wet_, dry = dry_;
  for (int c = 0; c < in.channels; ++c) {
    float* x = x_[static_cast<std::size_t>(c)].data();
    float* u = u_[static_cast<std::size_t>(c)].data();
    std::memcpy(x + x_hist_, in[c], n * sizeof(float));  // before out is written (in place)
    // Interpolate: new input i centres the window on q = i - K_up; every phase of it is shaped.
    for (std::size_t i = 0; i < n; ++i) {
      const float* w = x + x_hist_ + i - 2 * up_half_;
      float* dst = u + u_hist_ + i * L;
      for (std::size_t r = 0; r < L; ++r) dst[r] = dot(up_coeffs_.data() + r * up_taps_, w, up_taps_);
    }
    // tanh is odd to the bit (glibc evaluates |x| and restores the sign), so the shaper adds no
    // even harmonics.
    float* fresh = u + u_hist_;
    for (std::size_t k = 0; k < n * L; ++k) fresh[k] = trim * std::tanh(drive * fresh[k]);
    float* y = out[c];
    const float* dry_x = x + x_hist_ - latency_;
    for (std::size_t i = 0; i < n; ++i) {
      const float* w = u + u_hist_ + L * i - L * down_delay_ - down_half_;
      const float v = dot(down_coeffs_.data(), w, down_taps_);
      y[i] = wet * v + dry * dry_x[i];
    }
    std::memmove(x, x + n, x_hist_ * sizeof(float));
    std::memmove(u, u + n * L, u_hist_ * sizeof(float));
  }
}

}  // namespace lathe
