#pragma once
// The float64 inverse DFT for one-off designs and test references, through FFTW's double
// precision library: the linear-phase EQ's frequency-sampling design, and float64 test signals
// synthesized in the frequency domain.
#include <vector>

namespace lathe::detail {

/// In-place inverse complex DFT without the 1/n factor: x_j = sum_k X_k e^{+2 pi i jk/n}.
/// re and im have the same size n > 0 (any n; FFTW's error grows as log2(n) ulps for every
/// size). Plans with FFTW_ESTIMATE under fftw_planner_mutex(), so it is safe from any thread.
void fft_inverse(std::vector<double>& re, std::vector<double>& im);

}  // namespace lathe::detail
