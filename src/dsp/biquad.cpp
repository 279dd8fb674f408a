#include "lathe/biquad.hpp"

#include "lathe/error.hpp"

namespace lathe {

biquad_coeffs design_highpass(double cutoff_hz, double q, double fs_hz) {
  LATHE_EXPECTS(cutoff_hz > 0.0 && cutoff_hz < 0.5 * fs_hz, "high-pass cutoff must lie in (0, fs/2)");
  const double k = std::tan(M_PI * cutoff_hz / fs_hz);
  const double norm = 1.0 / (1.0 + k / q + k * k);
  biquad_coeffs c;
  c.b0 = norm;
  c.b1 = -2.0 * norm;
  c.b2 = norm;
  c.a1 = 2.0 * (k * k - 1.0) * norm;
  c.a2 = (1.0 - k / q + k * k) * norm;
  return c;
}

biquad_coeffs design_highpass_1st(double cutoff_hz, double fs_hz) {
  LATHE_EXPECTS(cutoff_hz > 0.0 && cutoff_hz < 0.5 * fs_hz, "high-pass cutoff must lie in (0, fs/2)");
  const double k = std::tan(M_PI * cutoff_hz / fs_hz);
  biquad_coeffs c;
  c.b0 = 1.0 / (1.0 + k);
  c.b1 = -c.b0;
  c.a1 = (k - 1.0) / (k + 1.0);
  return c;
}

}  // namespace lathe
