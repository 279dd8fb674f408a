#pragma once
// The Kaiser window, shared by every windowed-sinc design (polyphase resampler, saturation's
// oversampling filters, the true-peak interpolator). float64; deterministic.
#include <algorithm>
#include <cmath>

namespace lathe::kaiser {

/// Modified Bessel function of the first kind, order 0, by its power series, stopping after the
/// first term below 1e-17 of the sum (within ~45 terms for the betas used here, < 30).
inline double bessel_i0(double x) noexcept {
  const double q = 0.25 * x * x;
  double term = 1.0, sum = 1.0;
  for (int k = 1; k < 500; ++k) {
    term *= q / (static_cast<double>(k) * static_cast<double>(k));
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/// Kaiser's empirical beta for a stopband attenuation of `a_db` (Oppenheim & Schafer 7.62).
inline double beta_for(double a_db) noexcept {
  if (a_db > 50.0) return 0.1102 * (a_db - 8.7);
  if (a_db >= 21.0) return 0.5842 * std::pow(a_db - 21.0, 0.4) + 0.07886 * (a_db - 21.0);
  return 0.0;
}

/// The window at x in [-1, 1] (0 at the centre), given i0_beta = bessel_i0(beta).
inline double window(double x, double beta, double i0_beta) noexcept {
  return bessel_i0(beta * std::sqrt(std::max(0.0, 1.0 - x * x))) / i0_beta;
}

}  // namespace lathe::kaiser
