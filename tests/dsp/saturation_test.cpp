// Saturation stage. References: the Fourier coefficients of tanh(a sin t) by float64
// quadrature (level of the fundamental and harmonics), a float64 FFT with a 4-term
// Blackman-Harris window (aliasing floor, even harmonics), and exact float identities.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <complex>
#include <cstring>
#include <random>

#include "lathe/saturation.hpp"
#include "support/blocks.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<saturation_stage>);

constexpr double fs = 44'100.0;
constexpr std::size_t fft_n = 65'536;
// Every alias product (and everything else outside the fundamental's main lobe) must be this
// far below the fundamental for a 10 kHz sine at 44.1 kHz with the default 8x oversampling.
constexpr double aliasing_floor_db = 100.0;
// Symmetric shaper: even harmonics at least this far below the fundamental.
constexpr double even_harmonic_floor_db = 120.0;
// Small-signal gain vs 1 (tanh's cubic term at -60 dBFS is 2e-6 dB; the Kaiser ripple of the
// 120 dB filters ~1e-5 dB).
constexpr double unity_tolerance_db = 0.001;
// Fundamental and 3rd harmonic vs the float64 Fourier coefficients of tanh (in-band, flat).
constexpr double harmonic_tolerance_db = 0.01;
// Blackman-Harris main lobe: a coherent sine occupies bins within +-3 of its own.
constexpr std::size_t main_lobe_bins = 3;
// Passband flatness of the whole cascade (interpolation and decimation) up to 0.9 of Nyquist.
constexpr double passband_flatness_db = 0.01;
// saturation_tanh vs float64 tanh rounded to float.
constexpr std::int64_t tanh_tolerance_ulp = 8;

void fft(std::vector<std::complex<double>>& a) {
  const std::size_t n = a.size();
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (std::size_t len = 2; len <= n; len <<= 1) {
    for (std::size_t j = 0; j < len / 2; ++j) {
      const std::complex<double> w = std::polar(1.0, -2.0 * M_PI * static_cast<double>(j) / static_cast<double>(len));
      for (std::size_t i = 0; i < n; i += len) {
        const std::complex<double> v = a[i + j + len / 2] * w;
        a[i + j + len / 2] = a[i + j] - v;
        a[i + j] += v;
      }
    }
  }
}

// Power spectrum (dB, arbitrary reference) of fft_n samples from x[first] under a 4-term
// Blackman-Harris window (side lobes -92 dB), bins 0..fft_n/2.
std::vector<double> spectrum_db(const float* x) {
  std::vector<std::complex<double>> a(fft_n);
  for (std::size_t i = 0; i < fft_n; ++i) {
    const double t = 2.0 * M_PI * static_cast<double>(i) / static_cast<double>(fft_n);
    const double w = 0.35875 - 0.48829 * std::cos(t) + 0.14128 * std::cos(2 * t) - 0.01168 * std::cos(3 * t);
    a[i] = w * static_cast<double>(x[i]);
  }
  fft(a);
  std::vector<double> p(fft_n / 2 + 1);
  for (std::size_t k = 0; k <= fft_n / 2; ++k) p[k] = 10.0 * std::log10(std::norm(a[k]) + 1e-300);
  return p;
}

// Bin a frequency on bin b lands on after sampling at fft_n bins per fs (folded to 0..N/2).
std::size_t folded_bin(std::size_t b) {
  const std::size_t m = b % fft_n;
  return m <= fft_n / 2 ? m : fft_n - m;
}

double band_max(const std::vector<double>& p, std::size_t centre) {
  double m = -1e300;
  for (std::size_t k = centre > main_lobe_bins ? centre - main_lobe_bins : 0;
       k <= std::min(centre + main_lobe_bins, fft_n / 2); ++k)
    m = std::max(m, p[k]);
  return m;
}

// k-th sine Fourier coefficient of tanh(a sin t), by the midpoint rule over one period (exact
// to rounding for a smooth periodic integrand with this many points).
double tanh_harmonic(double a, int k) {
  const int n = 1 << 14;
  double s = 0.0;
  for (int i = 0; i < n; ++i) {
    const double t = 2.0 * M_PI * (i + 0.5) / n;
    s += std::tanh(a * std::sin(t)) * std::sin(k * t);
  }
  return 2.0 * s / n;
}

// Sine exactly on FFT bin `bin` (coherent: the window holds whole periods).
audio_buffer bin_sine(std::size_t bin, double peak_dbfs, double seconds) {
  return test::sine(static_cast<double>(bin) * fs / static_cast<double>(fft_n), peak_dbfs, seconds, fs, 1);
}

audio_buffer render(const saturation_params& p, audio_buffer x, std::size_t block = 4096) {
  saturation_stage s(p);
  s.prepare({fs, x.channels(), block});
  run_aligned(s, x, block);
  return x;
}

struct alias_report {
  double fundamental_db, worst_alias_db, worst_other_db;
};

// Fundamental on bin b0: odd harmonics k >= 3 lie above Nyquist for b0 near 10 kHz, so every
// one of them that shows up does so folded (an alias) at folded_bin(k b0); anything else outside
// the fundamental's main lobe is noise or an unforeseen spur.
alias_report measure_aliasing(const saturation_params& p, std::size_t b0, double peak_dbfs) {
  const audio_buffer y = render(p, bin_sine(b0, peak_dbfs, 2.0));
  const std::vector<double> s = spectrum_db(y.channel(0) + 8'192);
  alias_report r{band_max(s, b0), -1e300, -1e300};
  std::vector<bool> claimed(s.size(), false);
  for (std::size_t k = b0 > main_lobe_bins ? b0 - main_lobe_bins : 0; k <= b0 + main_lobe_bins; ++k) claimed[k] = true;
  for (std::size_t h = 3; h < 400; h += 2) {
    const std::size_t bin = folded_bin(h * b0);
    r.worst_alias_db = std::max(r.worst_alias_db, band_max(s, bin));
  }
  for (std::size_t k = 1; k < s.size(); ++k) {
    if (!claimed[k]) r.worst_other_db = std::max(r.worst_other_db, s[k]);
  }
  return r;
}

TEST(Saturation, AliasingOfTenKilohertzSineAtLeast100dBDown) {
  const std::size_t b0 = 14'861;  // 10000.3 Hz at 44.1 kHz, on a bin of the 65536-point FFT
  // Shaper input peak = drive * sine peak: 2 (tanh well into compression: 3rd harmonic -11 dB)
  // and 4 (hard: -6 dB); the claim is made for both.
  for (const auto& [drive_db, peak_db] : std::vector<std::pair<double, double>>{{6.0, 0.0}, {12.0, 0.0}}) {
    saturation_params p;
    p.drive_db = drive_db;
    p.output_db = -drive_db * 0.5;
    const alias_report r = measure_aliasing(p, b0, peak_db);
    std::printf(
        "8x, drive %+.0f dB on a %.0f dBFS 10 kHz sine: aliases %.1f dB below fundamental, "
        "worst other bin %.1f dB below\n",
        drive_db, peak_db, r.fundamental_db - r.worst_alias_db, r.fundamental_db - r.worst_other_db);
    EXPECT_GE(r.fundamental_db - r.worst_alias_db, aliasing_floor_db) << "drive " << drive_db;
    EXPECT_GE(r.fundamental_db - r.worst_other_db, aliasing_floor_db) << "drive " << drive_db;
  }
  // The measurement can fail: without oversampling the folded 3rd harmonic (30 kHz -> 14.1 kHz)
  // sits near -11 dB.
  saturation_params naive;
  naive.drive_db = 6.0;
  naive.oversampling = 1;
  const alias_report r = measure_aliasing(naive, b0, 0.0);
  std::printf("1x, drive +6 dB: aliases %.1f dB below fundamental\n", r.fundamental_db - r.worst_alias_db);
  EXPECT_LT(r.fundamental_db - r.worst_alias_db, 40.0);
}

TEST(Saturation, SmallSignalGainIsUnity) {
  // y = trim * tanh(drive x) ~ trim * drive * x: 0 dB at drive 0 / trim 0, and at +12 / -12.
  for (const auto& [drive_db, output_db] : std::vector<std::pair<double, double>>{{0.0, 0.0}, {12.0, -12.0}}) {
    saturation_params p;
    p.drive_db = drive_db;
    p.output_db = output_db;
    const std::size_t b = 1'486;  // ~1 kHz on a bin
    const audio_buffer x = bin_sine(b, -60.0, 2.0);
    const audio_buffer y = render(p, x);
    const std::vector<double> sx = spectrum_db(x.channel(0) + 8'192), sy = spectrum_db(y.channel(0) + 8'192);
    EXPECT_NEAR(sy[b] - sx[b], 0.0, unity_tolerance_db) << "drive " << drive_db;
  }
}

TEST(Saturation, OddSymmetryAndHarmonicLevels) {
  const std::size_t b = 1'486;  // 1000.0 Hz: harmonics up to the 21st are in band
  saturation_params p;
  p.drive_db = 12.0;
  const double peak_db = -6.0;  // tanh input peak 2
  const double a = std::pow(10.0, (p.drive_db + peak_db) / 20.0);
  const audio_buffer y = render(p, bin_sine(b, peak_db, 2.0));
  const std::vector<double> s = spectrum_db(y.channel(0) + 8'192);
  const double fund = band_max(s, b);
  // Absolute level: the window's coherent gain maps amplitude A to |X| = A * sum(w) / 2.
  const double coherent = 20.0 * std::log10(0.35875 * static_cast<double>(fft_n) / 2.0);
  EXPECT_NEAR(fund - coherent, 20.0 * std::log10(tanh_harmonic(a, 1)), harmonic_tolerance_db);
  EXPECT_NEAR(band_max(s, 3 * b) - fund, 20.0 * std::log10(std::abs(tanh_harmonic(a, 3) / tanh_harmonic(a, 1))),
              harmonic_tolerance_db);
  double worst_even = -1e300;
  for (std::size_t h = 2; h * b < fft_n / 2 - main_lobe_bins; h += 2)
    worst_even = std::max(worst_even, band_max(s, h * b));
  std::printf("drive +12 dB, -6 dBFS 1 kHz: even harmonics %.1f dB below fundamental\n", fund - worst_even);
  EXPECT_GE(fund - worst_even, even_harmonic_floor_db);
}

// A drive small enough to be linear (tanh's cubic term at -40 dBFS is 3e-5, 3e-4 dB): the
// output amplitude of sines up to 0.9 x Nyquist equals the input's, by least-squares fits of
// the sine (float64) away from the edges.
TEST(Saturation, PassbandFlatToNineTenthsOfNyquist) {
  saturation_params p;  // drive 0 dB, trim 0 dB, 8x
  double worst_db = 0.0;
  for (const double f_hz : {20.0, 100.0, 1'000.0, 5'000.0, 10'000.0, 15'000.0, 18'000.0, 19'000.0, 0.9 * fs / 2.0}) {
    const audio_buffer x = test::sine(f_hz, -40.0, 1.0, fs, 1);
    const audio_buffer y = render(p, x);
    const std::size_t first = 4'096, last = x.frames() - 4'096;
    const double gain_db = 20.0 * std::log10(test::sine_amplitude(y.channel(0), first, last, f_hz, fs) /
                                             test::sine_amplitude(x.channel(0), first, last, f_hz, fs));
    EXPECT_NEAR(gain_db, 0.0, passband_flatness_db) << f_hz << " Hz";
    worst_db = std::max(worst_db, std::abs(gain_db));
  }
  std::printf("passband: worst deviation %.2e dB up to 0.9 x Nyquist\n", worst_db);
}

// Distance in representable floats (the bit patterns of finite floats are ordered).
std::int64_t ulp_distance(float a, float b) {
  auto key = [](float f) {
    std::int32_t i;
    std::memcpy(&i, &f, sizeof i);
    return i < 0 ? -static_cast<std::int64_t>(i & 0x7fff'ffff) : static_cast<std::int64_t>(i);
  };
  return std::abs(key(a) - key(b));
}

TEST(Saturation, TanhWithinUlpsOfFloat64AndExactlyOdd) {
  std::int64_t worst = 0;
  float worst_x = 0.0f;
  // Every 101st float from 1e-30 to 20 (1.7e6 checks of 1.7e8 floats), plus 0 and huge.
  for (float x = 1e-30f; x < 20.0f;) {
    const float ref = static_cast<float>(std::tanh(static_cast<double>(x)));
    const float got = saturation_tanh(x);
    const std::int64_t d = ulp_distance(got, ref);
    if (d > worst) worst = d, worst_x = x;
    ASSERT_EQ(std::bit_cast<std::uint32_t>(saturation_tanh(-x)), std::bit_cast<std::uint32_t>(-got)) << x;
    std::uint32_t b = std::bit_cast<std::uint32_t>(x) + 101;
    x = std::bit_cast<float>(b);
  }
  std::printf("saturation_tanh: worst %lld ULP at x = %g\n", static_cast<long long>(worst),
              static_cast<double>(worst_x));
  EXPECT_LE(worst, tanh_tolerance_ulp);
  EXPECT_EQ(saturation_tanh(0.0f), 0.0f);
  // Clamped to 9: tanh(9) = 1 - 3.05e-8, which rounds to the float below 1.
  EXPECT_LE(ulp_distance(saturation_tanh(1e30f), 1.0f), 1);
  EXPECT_LE(ulp_distance(saturation_tanh(-1e30f), -1.0f), 1);
}

// Linear phase: every stage's prototype is symmetric, so the decimation taps read the same
// coefficients forwards and backwards, and the interpolation phases mirror each other.
TEST(Saturation, CascadeIsLinearPhase) {
  for (const int factor : {2, 4, 8, 16}) {
    saturation_params p;
    p.oversampling = factor;
    const saturation_design d = design_saturation(p);
    ASSERT_EQ(d.stages.size(), static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(factor))));
    for (const saturation_oversampling_stage& st : d.stages) {
      const std::vector<float>& h = st.down.coeff;
      for (std::size_t t = 0; t < h.size(); ++t) EXPECT_EQ(h[t], h[h.size() - 1 - t]);
      // Positions symmetric about the window centre.
      const std::int32_t centre2 = st.down.min_pos() + st.down.max_pos();
      for (std::size_t t = 0; t < h.size(); ++t) EXPECT_EQ(st.down.pos[t] + st.down.pos[h.size() - 1 - t], centre2);
    }
  }
  saturation_params bad;
  bad.oversampling = 6;
  EXPECT_THROW(design_saturation(bad), logic_error);
}

TEST(Saturation, DryMixIsDelayedInput) {
  saturation_params p;
  p.drive_db = 18.0;
  p.mix = 0.0;
  const audio_buffer x = test::white_noise(-12.0, 0.5, fs, 2, 3);
  const audio_buffer y = render(p, x);
  for (int c = 0; c < 2; ++c) EXPECT_EQ(std::memcmp(x.channel(c), y.channel(c), x.frames() * sizeof(float)), 0);
}

TEST(Saturation, BlockSizeIndependence) {
  saturation_params p;
  p.drive_db = 9.0;
  p.mix = 0.7;
  const audio_buffer x = test::white_noise(-10.0, 0.5, fs, 2, 4);
  const audio_buffer whole = render(p, x, 8'192);
  for (const std::vector<std::size_t>& sizes :
       std::vector<std::vector<std::size_t>>{{1}, {2, 3, 5, 7, 11, 13}, {997, 1, 4096}, {509}}) {
    saturation_stage s(p);
    s.prepare({fs, 2, 4096});
    const std::size_t lat = s.latency_frames();
    audio_buffer buf(2, x.frames() + lat);
    for (int c = 0; c < 2; ++c) std::copy(x.channel(c), x.channel(c) + x.frames(), buf.channel(c));
    test::process_in_place(s, buf, sizes);
    for (int c = 0; c < 2; ++c)
      EXPECT_EQ(std::memcmp(buf.channel(c) + lat, whole.channel(c), x.frames() * sizeof(float)), 0) << sizes[0];
  }
}

}  // namespace
}  // namespace lathe
