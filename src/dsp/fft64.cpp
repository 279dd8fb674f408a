// The float64 FFT of lathe/fft64.hpp.
#include "lathe/fft64.hpp"

#include <cmath>
#include <cstddef>
#include <utility>

#include "lathe/error.hpp"

namespace lathe::detail {

void fft_inverse(std::vector<double>& re, std::vector<double>& im) {
  const std::size_t n = re.size();
  LATHE_EXPECTS(im.size() == n && n > 0 && (n & (n - 1)) == 0, "FFT size must be a power of two, re and im alike");
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      std::swap(re[i], re[j]);
      std::swap(im[i], im[j]);
    }
  }
  std::vector<double> tw_re(n / 2), tw_im(n / 2);
  for (std::size_t k = 0; k < n / 2; ++k) {
    const double phase = 2.0 * M_PI * static_cast<double>(k) / static_cast<double>(n);  // e^{+i...}: inverse
    tw_re[k] = std::cos(phase);
    tw_im[k] = std::sin(phase);
  }
  for (std::size_t len = 2; len <= n; len <<= 1) {
    const std::size_t half = len / 2, step = n / len;
    for (std::size_t i = 0; i < n; i += len) {
      for (std::size_t j = 0; j < half; ++j) {
        const double wr = tw_re[j * step], wi = tw_im[j * step];
        const std::size_t a = i + j, b = a + half;
        const double vr = re[b] * wr - im[b] * wi;
        const double vi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - vr;
        im[b] = im[a] - vi;
        re[a] += vr;
        im[a] += vi;
      }
    }
  }
}

}  // namespace lathe::detail
