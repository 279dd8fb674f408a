// The float64 FFT of lathe/fft64.hpp, on FFTW's double-precision split-array interface.
#include "lathe/fft64.hpp"

#include <fftw3.h>

#include <mutex>

#include "lathe/convolver.hpp"
#include "lathe/error.hpp"

namespace lathe::detail {

void fft_inverse(std::vector<double>& re, std::vector<double>& im) {
  const std::size_t n = re.size();
  LATHE_EXPECTS(im.size() == n && n > 0 && n <= (std::size_t{1} << 30), "FFT needs re and im of one size, 1..2^30");
  // FFTW's split-array DFT is the forward transform; with the real and imaginary arrays swapped
  // on both sides it computes the backward one (conj(F(conj x)) = n F^-1 x), in place.
  fftw_iodim dim{static_cast<int>(n), 1, 1};
  fftw_plan plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    plan = fftw_plan_guru_split_dft(1, &dim, 0, nullptr, im.data(), re.data(), im.data(), re.data(), FFTW_ESTIMATE);
  }
  LATHE_EXPECTS(plan != nullptr, "FFTW could not plan a float64 DFT");
  fftw_execute(plan);
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  fftw_destroy_plan(plan);
}

}  // namespace lathe::detail
