#include "lathe/polyphase.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <numeric>
#include <string>

#include "lathe/error.hpp"
#include "lathe/kaiser.hpp"

namespace lathe {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::uint64_t integer_rate(double hz, const char* which) {
  LATHE_EXPECTS(hz >= 1.0 && hz <= 1e7 && hz == std::floor(hz),
                std::string(which) + " must be an integer number of Hz in [1, 10'000'000] for polyphase resampling");
  return static_cast<std::uint64_t>(hz);
}

}  // namespace

void polyphase_resampler::prepare(double in_rate_hz, double out_rate_hz, const polyphase_params& params) {
  const std::uint64_t in = integer_rate(in_rate_hz, "in_rate_hz");
  const std::uint64_t out = integer_rate(out_rate_hz, "out_rate_hz");
  LATHE_EXPECTS(
      params.passband_end > 0.0 && params.passband_end < params.stopband_begin && params.stopband_begin <= 1.0,
      "polyphase_params: need 0 < passband_end < stopband_begin <= 1 (fractions of the lower Nyquist)");
  LATHE_EXPECTS(params.stopband_attenuation_db >= 21.0 && params.stopband_attenuation_db <= 250.0,
                "polyphase_params: stopband_attenuation_db must be in [21, 250]");
  const std::uint64_t g = std::gcd(in, out);
  in_rate_hz_ = in_rate_hz;
  out_rate_hz_ = out_rate_hz;
  params_ = params;
  up_ = static_cast<std::uint32_t>(out / g);
  down_ = static_cast<std::uint32_t>(in / g);
  if (up_ == 1 && down_ == 1) {
    // Equal rates: a copy, as lathe::resample does; no low-pass.
    half_taps_ = 0;
    beta_ = 0.0;
    cutoff_ = 1.0;
    coeffs_.assign(1, 1.0f);
    return;
  }

  // Everything below is at the conceptual upsampled rate fu = L * in = M * out, in cycles per
  // sample of fu.
  const double L = static_cast<double>(up_);
  const double fu = L * static_cast<double>(in);
  const double nyquist_low = 0.5 * static_cast<double>(std::min(in, out));
  const double transition = (params.stopband_begin - params.passband_end) * nyquist_low / fu;
  cutoff_ = 0.5 * (params.passband_end + params.stopband_begin);
  const double fc = cutoff_ * nyquist_low / fu;
  beta_ = kaiser::beta_for(params.stopband_attenuation_db);
  // Kaiser's length estimate N - 1 = (A - 7.95) / (2.285 * 2 pi * transition); the half length
  // is rounded up to a multiple of L so every phase has the same 2K+1 taps (a longer window
  // with the same beta only narrows the transition).
  const double order = std::ceil((params.stopband_attenuation_db - 7.95) / (14.36 * transition));
  const auto half_min = static_cast<std::uint64_t>(std::ceil(0.5 * order));
  const std::uint64_t k = (half_min + up_ - 1) / up_;
  const std::uint64_t taps = 2 * k + 1;
  LATHE_EXPECTS(taps * up_ <= max_coefficients,
                "polyphase resampler " + std::to_string(in) + " -> " + std::to_string(out) + " Hz needs " +
                    std::to_string(taps * up_) + " coefficients (over the limit " + std::to_string(max_coefficients) +
                    "); use lathe::resample (libsoxr) for this pair");
  half_taps_ = static_cast<std::size_t>(k);
  const std::int64_t h_half = static_cast<std::int64_t>(k * up_);  // H: prototype taps n in [-H, H]

  const double i0_beta = kaiser::bessel_i0(beta_);
  auto prototype = [&](std::int64_t n) {  // unnormalized, symmetric in n
    const double x = static_cast<double>(n) / static_cast<double>(h_half);
    const double w = kaiser::window(x, beta_, i0_beta);
    const double arg = 2.0 * fc * static_cast<double>(n);
    const double sinc = n == 0 ? 1.0 : std::sin(kPi * arg) / (kPi * arg);
    return 2.0 * fc * sinc * w;
  };
  // DC gain L (each output is an average over phases of unity gain): normalize by the float64
  // sum, smallest terms first so the sum is exact to rounding.
  double sum = 0.0;
  for (std::int64_t n = h_half; n >= 1; --n) sum += 2.0 * prototype(n);
  sum += prototype(0);
  const double scale = L / sum;

  // Phase r, tap t holds h(n) with n = (K - t) L + r: the taps run forward in input time, so a
  // dot product with x[q - K + t] is the convolution at output time q L + r.
  coeffs_.assign(static_cast<std::size_t>(taps * up_), 0.0f);
  for (std::int64_t n = -h_half; n <= h_half; ++n) {
    // n = (K - t) L + r  <=>  r = n mod L, t = K - (n - r) / L
    const std::int64_t r = ((n % static_cast<std::int64_t>(up_)) + up_) % up_;
    const std::int64_t t = static_cast<std::int64_t>(k) - (n - r) / static_cast<std::int64_t>(up_);
    coeffs_[static_cast<std::size_t>(r) * taps + static_cast<std::size_t>(t)] =
        static_cast<float>(scale * prototype(n < 0 ? -n : n));
  }
}

std::size_t polyphase_resampler::output_frames(std::size_t in_frames) const noexcept {
  // floor(n L / M + 1/2) in integers; n L < 2^64 for any track shorter than ~1e13 frames / L.
  return static_cast<std::size_t>((2 * static_cast<std::uint64_t>(in_frames) * up_ + down_) /
                                  (2 * std::uint64_t{down_}));
}

void polyphase_resampler::process(std::span<const float> in, std::size_t first_out,
                                  std::span<float> out) const noexcept {
  const std::size_t taps = taps_per_phase();
  const auto n_in = static_cast<std::int64_t>(in.size());
  const float* x = in.data();
  // j M = q L + r, stepped without division.
  const std::uint64_t jm = static_cast<std::uint64_t>(first_out) * down_;
  std::uint64_t q = jm / up_, r = jm % up_;
  const std::uint64_t q_step = down_ / up_, r_step = down_ % up_;
  for (std::size_t j = 0; j < out.size(); ++j) {
    const float* c = coeffs_.data() + r * taps;
    const std::int64_t start = static_cast<std::int64_t>(q) - static_cast<std::int64_t>(half_taps_);
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    if (start >= 0 && start + static_cast<std::int64_t>(taps) <= n_in) {
      const float* w = x + start;
      std::size_t t = 0;
      for (; t + 4 <= taps; t += 4) {
        s[0] += static_cast<double>(c[t]) * static_cast<double>(w[t]);
        s[1] += static_cast<double>(c[t + 1]) * static_cast<double>(w[t + 1]);
        s[2] += static_cast<double>(c[t + 2]) * static_cast<double>(w[t + 2]);
        s[3] += static_cast<double>(c[t + 3]) * static_cast<double>(w[t + 3]);
      }
      for (; t < taps; ++t) s[t & 3] += static_cast<double>(c[t]) * static_cast<double>(w[t]);
    } else {
      // Near the lane's ends: the input is zero outside it (same operations as above, the
      // missing samples read as 0, so the result is the same as a zero-padded lane's).
      for (std::size_t t = 0; t < taps; ++t) {
        const std::int64_t i = start + static_cast<std::int64_t>(t);
        const float v = (i >= 0 && i < n_in) ? x[i] : 0.0f;
        s[t & 3] += static_cast<double>(c[t]) * static_cast<double>(v);
      }
    }
    out[j] = static_cast<float>((s[0] + s[1]) + (s[2] + s[3]));
    q += q_step;
    r += r_step;
    if (r >= up_) {
      r -= up_;
      ++q;
    }
  }
}

audio_buffer polyphase_resampler::process(const audio_buffer& in) const {
  audio_buffer out(in.channels(), output_frames(in.frames()));
  for (int c = 0; c < in.channels(); ++c) process(in.span(c), out.span(c));
  return out;
}

double polyphase_resampler::magnitude(double freq_hz) const {
  // Prototype tap n = (K - t) L + r at rate L * in; response / L.
  const std::size_t taps = taps_per_phase();
  const double w = 2.0 * kPi * freq_hz / (static_cast<double>(up_) * in_rate_hz_);
  std::complex<double> acc = 0.0;
  for (std::size_t r = 0; r < up_; ++r) {
    for (std::size_t t = 0; t < taps; ++t) {
      const double h = coeffs_[r * taps + t];
      if (h == 0.0) continue;
      const double n = (static_cast<double>(half_taps_) - static_cast<double>(t)) * up_ + static_cast<double>(r);
      acc += h * std::polar(1.0, -w * n);
    }
  }
  return std::abs(acc) / static_cast<double>(up_);
}

}  // namespace lathe
