// The helpers that hold the GPU backend's masters to the CPU's (tests/support/backend_compare.hpp),
// on synthetic pairs that must pass and pairs that must not.
#include "support/backend_compare.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/dither.hpp"

namespace lathe::test {
namespace {

constexpr double rate_hz = 44'100.0;

std::vector<float> sine(std::size_t n, double amplitude, double hz) {
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i)
    x[i] = static_cast<float>(amplitude * std::sin(2.0 * std::numbers::pi * hz * static_cast<double>(i) / rate_hz));
  return x;
}

TEST(BackendCompare, FloatMastersWithinARelativeToleranceOfTheirPeak) {
  const std::vector<float> a = sine(48'000, 0.5, 997.0);
  std::vector<float> b = a;
  for (float& v : b) v *= 1.0f + 1e-6f;  // a float64 vs float32 style difference
  EXPECT_TRUE(compare_float_masters(a, b, 1e-5).within);

  std::vector<float> off = a;
  off[12'345] += 1e-3f;  // one missed or wrong sample
  const difference d = compare_float_masters(a, off, 1e-5);
  EXPECT_FALSE(d.within);
  EXPECT_EQ(d.at, 12'345u);
  EXPECT_NEAR(d.worst, 1e-3 / 0.5, 1e-6);

  std::vector<float> louder = a;
  for (float& v : louder) v *= 1.0046f;  // 0.04 dB: two gain searches 0.02 LU apart each way
  EXPECT_FALSE(compare_float_masters(a, louder, 1e-4).within);

  const std::vector<float> shorter(a.begin(), a.end() - 1);
  EXPECT_FALSE(compare_float_masters(a, shorter, 1.0).within);
}

TEST(BackendCompare, QuantizedMastersWithinTheirQuantizersBound) {
  EXPECT_DOUBLE_EQ(quantizer_error_bound_lsb(noise_shaping::none, rate_hz), 1.5);
  EXPECT_GT(quantizer_error_bound_lsb(noise_shaping::first_order, rate_hz),
            quantizer_error_bound_lsb(noise_shaping::none, rate_hz));
  EXPECT_GT(quantizer_error_bound_lsb(noise_shaping::f_weighted, rate_hz),
            quantizer_error_bound_lsb(noise_shaping::first_order, rate_hz));

  const std::vector<float> x = sine(96'000, 0.7, 1'234.5);
  audio_buffer in(1, x.size());
  std::copy(x.begin(), x.end(), in.channel(0));
  for (const noise_shaping shaping : {noise_shaping::none, noise_shaping::first_order, noise_shaping::f_weighted}) {
    SCOPED_TRACE(to_string(shaping));
    for (const int bits : {16, 24}) {
      quantize_params qp;
      qp.bit_depth = bits;
      qp.shaping = shaping;
      qp.seed = 42;
      qp.sample_rate_hz = rate_hz;
      std::vector<std::int32_t> q;
      quantize(in, qp, q);
      const double bound = quantizer_error_bound_lsb(shaping, rate_hz);
      const difference d = quantized_against_float(q, bits, x, bound);
      EXPECT_TRUE(d.within) << d.why;

      // One sample a step past the bound, and a master quantized from another gain, fail.
      std::vector<std::int32_t> bad = q;
      const bool above = static_cast<double>(q[777]) * std::ldexp(1.0, -(bits - 1)) >= x[777];
      bad[777] += (above ? 1 : -1) * (static_cast<std::int32_t>(std::ceil(bound)) + 1);
      EXPECT_FALSE(quantized_against_float(bad, bits, x, bound).within);
      std::vector<float> other = x;
      for (float& v : other) v *= 1.001f;
      EXPECT_FALSE(quantized_against_float(q, bits, other, bound).within);
    }
  }
}

TEST(BackendCompare, LoudnessAgreesWithinTheSumOfBothTolerances) {
  EXPECT_TRUE(loudness_agrees(-14.01, -13.98, 0.02, 0.02));
  EXPECT_FALSE(loudness_agrees(-14.03, -13.98, 0.02, 0.02));
}

}  // namespace
}  // namespace lathe::test
