#pragma once
// A small float64 FFT for one-off designs and test references (lathe_core links only
// single-precision FFTW): the linear-phase EQ's frequency-sampling design, and float64 test
// signals synthesized in the frequency domain.
#include <vector>

namespace lathe::detail {

/// In-place inverse complex DFT without the 1/n factor: x_j = sum_k X_k e^{+2 pi i jk/n}.
/// re and im have the same power-of-two size. Iterative radix-2 with twiddles taken straight
/// from cos/sin (no recurrence), so the error stays at a few ulps times log2(n). Allocates.
void fft_inverse(std::vector<double>& re, std::vector<double>& im);

}  // namespace lathe::detail
