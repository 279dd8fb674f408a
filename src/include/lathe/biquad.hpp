#pragma once
// Second-order IIR section: coefficients designed in float64, state kept in float64
// (transposed direct form II), so long recursions at low frequencies stay accurate.
#include <cmath>
#include <complex>

namespace lathe {

struct biquad_coeffs {
  double b0 = 1.0, b1 = 0.0, b2 = 0.0, a1 = 0.0, a2 = 0.0;  ///< a0 normalized to 1

  /// Complex response at `f_hz` for sample rate `fs_hz`.
  std::complex<double> response(double f_hz, double fs_hz) const noexcept {
    const std::complex<double> z1 = std::polar(1.0, -2.0 * M_PI * f_hz / fs_hz);
    const std::complex<double> z2 = z1 * z1;
    return (b0 + b1 * z1 + b2 * z2) / (1.0 + a1 * z1 + a2 * z2);
  }
};

/// Second-order Butterworth-section high-pass with quality factor q (bilinear, prewarped).
biquad_coeffs design_highpass(double cutoff_hz, double q, double fs_hz);
/// First-order high-pass expressed as a biquad (b2 = a2 = 0).
biquad_coeffs design_highpass_1st(double cutoff_hz, double fs_hz);

class biquad {
 public:
  void set(const biquad_coeffs& c) noexcept { c_ = c; }
  void reset() noexcept { s1_ = s2_ = 0.0; }
  double tick(double x) noexcept {
    const double y = c_.b0 * x + s1_;
    s1_ = c_.b1 * x - c_.a1 * y + s2_;
    s2_ = c_.b2 * x - c_.a2 * y;
    return y;
  }
  void process(const float* in, float* out, std::size_t n) noexcept {
    double s1 = s1_, s2 = s2_;
    const biquad_coeffs c = c_;
    for (std::size_t i = 0; i < n; ++i) {
      const double x = in[i];
      const double y = c.b0 * x + s1;
      s1 = c.b1 * x - c.a1 * y + s2;
      s2 = c.b2 * x - c.a2 * y;
      out[i] = static_cast<float>(y);
    }
    // Flush denormals: state this small is inaudible and slow.
    s1_ = std::abs(s1) < 1e-30 ? 0.0 : s1;
    s2_ = std::abs(s2) < 1e-30 ? 0.0 : s2;
  }
  const biquad_coeffs& coeffs() const noexcept { return c_; }

 private:
  biquad_coeffs c_;
  double s1_ = 0.0, s2_ = 0.0;
};

}  // namespace lathe
