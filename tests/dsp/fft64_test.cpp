// lathe::detail::fft_inverse (FFTW double) against the inverse DFT summed directly in long
// double, for power-of-two and other sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "lathe/error.hpp"
#include "lathe/fft64.hpp"

namespace lathe {
namespace {

// An FFT's rms error is O(eps log2 n) of the rms output (Higham, Accuracy and Stability of
// Numerical Algorithms, 24.1): bound it at eps log2 n, three to ten times what FFTW measures here.
constexpr double error_ulps_per_log2_n = 1.0;

TEST(Fft64, InverseMatchesTheDirectSum) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> g;
  for (std::size_t n : {1u, 2u, 64u, 1'000u, 2'048u, 2'187u}) {
    std::vector<double> re(n), im(n);
    for (std::size_t k = 0; k < n; ++k) re[k] = g(rng), im[k] = g(rng);
    std::vector<long double> xr(n, 0.0L), xi(n, 0.0L);
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t k = 0; k < n; ++k) {
        // jk reduced mod n keeps the angle small, so cos/sin stay exact to long double.
        const long double a = 2.0L * 3.14159265358979323846264338327950288L * static_cast<long double>((j * k) % n) /
                              static_cast<long double>(n);
        xr[j] += re[k] * std::cos(a) - im[k] * std::sin(a);
        xi[j] += re[k] * std::sin(a) + im[k] * std::cos(a);
      }
    }
    detail::fft_inverse(re, im);
    long double err2 = 0.0L, ref2 = 0.0L;
    for (std::size_t j = 0; j < n; ++j) {
      err2 += (re[j] - xr[j]) * (re[j] - xr[j]) + (im[j] - xi[j]) * (im[j] - xi[j]);
      ref2 += xr[j] * xr[j] + xi[j] * xi[j];
    }
    const double rel = static_cast<double>(std::sqrt(err2 / ref2));
    const double bound = error_ulps_per_log2_n * std::max(1.0, std::log2(static_cast<double>(n))) * 0x1p-52;
    std::printf("n %zu: rms error %.3g of the rms output (bound %.3g)\n", n, rel, bound);
    EXPECT_LE(rel, bound) << "n " << n;
  }
}

TEST(Fft64, RejectsMismatchedSizes) {
  std::vector<double> re(8), im(4);
  EXPECT_THROW(detail::fft_inverse(re, im), logic_error);
  std::vector<double> none;
  EXPECT_THROW(detail::fft_inverse(none, none), logic_error);
}

}  // namespace
}  // namespace lathe
