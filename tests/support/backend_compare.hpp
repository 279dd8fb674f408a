#pragma once
// Comparing what two backends (CPU and GPU) can be held to, master against master:
//   - float masters (before quantization) sample by sample, relative to their peak;
//   - a quantized master against the float master it was quantized from, within the bound the
//     quantizer's dither and error feedback allow (never against the other backend's quantized
//     master: an error-feedback shaper diverges for good after a one-ulp difference upstream);
//   - loudness within the sum of both sides' own tolerances.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lathe/dither.hpp"

namespace lathe::test {

struct difference {
  bool within = false;
  double worst = 0.0;  ///< in the comparison's unit (relative to the peak, or LSB)
  std::size_t at = 0;  ///< the sample of the worst difference
  std::string why;     ///< when not within: what failed, in words
};

/// |a[i] - b[i]| / max(peak(a), peak(b)) <= relative_tolerance for every i; the lengths must match.
inline difference compare_float_masters(std::span<const float> a, std::span<const float> b, double relative_tolerance) {
  difference d;
  if (a.size() != b.size()) {
    d.why = "lengths differ: " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
    return d;
  }
  double peak = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    peak = std::max({peak, std::abs(static_cast<double>(a[i])), std::abs(static_cast<double>(b[i]))});
  if (peak == 0.0) {
    d.within = true;
    return d;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double e = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])) / peak;
    if (e > d.worst) {
      d.worst = e;
      d.at = i;
    }
  }
  d.within = d.worst <= relative_tolerance;
  if (!d.within) d.why = "sample " + std::to_string(d.at) + " differs by " + std::to_string(d.worst) + " of the peak";
  return d;
}

/// The largest |delivered - input| quantize() can leave, in LSB: each step's error (rounding,
/// 0.5 LSB, plus TPDF dither, 1 LSB) through the noise transfer function 1 - sum c_k z^-k, so
/// 1.5 (1 + sum |c_k|). Clamping at full scale is outside it.
inline double quantizer_error_bound_lsb(noise_shaping shaping, double sample_rate_hz) {
  double gain = 1.0;
  for (const double c : noise_shaping_coefficients(shaping, sample_rate_hz)) gain += std::abs(c);
  return 1.5 * gain;
}

/// Every |q[i] 2^-(bits-1) - x[i]| within `bound_lsb` LSB: `q` is `x` quantized to `bits`.
inline difference quantized_against_float(std::span<const std::int32_t> q, int bits, std::span<const float> x,
                                          double bound_lsb) {
  difference d;
  if (q.size() != x.size()) {
    d.why = "lengths differ: " + std::to_string(q.size()) + " vs " + std::to_string(x.size());
    return d;
  }
  const double lsb = std::ldexp(1.0, -(bits - 1));
  for (std::size_t i = 0; i < q.size(); ++i) {
    const double e = std::abs(static_cast<double>(q[i]) * lsb - static_cast<double>(x[i])) / lsb;
    if (e > d.worst) {
      d.worst = e;
      d.at = i;
    }
  }
  d.within = d.worst <= bound_lsb;
  if (!d.within)
    d.why = "sample " + std::to_string(d.at) + " is " + std::to_string(d.worst) + " LSB from its input (bound " +
            std::to_string(bound_lsb) + ")";
  return d;
}

/// Two measurements that each hold their own tolerance of one target agree within the sum.
inline bool loudness_agrees(double a_lufs, double b_lufs, double a_tolerance_lu, double b_tolerance_lu) {
  return std::abs(a_lufs - b_lufs) <= a_tolerance_lu + b_tolerance_lu;
}

}  // namespace lathe::test
