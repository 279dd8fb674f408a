// Linear-phase crossover. References: the ideal crossover (bands summing to a pure delay, an
// ideal brick-wall band as the magnitude target in and far outside each band), the band impulse
// responses' own DTFT evaluated directly in float64, and the input itself (sum of the bands).
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdio>
#include <random>

#include "lathe/crossover.hpp"
#include "lathe/dynamics.hpp"
#include "lathe/multiband.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<linear_phase_crossover>);
static_assert(dsp_stage<compressor_stage>);
static_assert(dsp_stage<multiband_stage>);

constexpr double fs = 44'100.0;
// The float64 band FIRs sum to the unit impulse up to float64 rounding of the differences.
constexpr double design_sum_tolerance = 1e-14;
// Sum of the streamed bands vs the delayed input: magnitude anywhere, and the worst sample
// error relative to the input's peak (float taps and float FFT convolution, N bands summed).
constexpr double sum_magnitude_tolerance_db = 0.01;
constexpr double sum_sample_error_db = -100.0;
// Linear phase: band impulse response mirrored about its centre, relative to its largest tap.
constexpr double symmetry_tolerance = 1e-6;
// Each band at its centre vs 0 dB, and the least rejection two octaves from its centre.
constexpr double centre_tolerance_db = 0.05;
constexpr double two_octave_rejection_db = 40.0;

double db(double x) {
  return 20.0 * std::log10(x);
}

double dtft_magnitude(const std::vector<double>& h, double f_hz) {
  std::complex<double> acc = 0.0;
  const double w = 2.0 * M_PI * f_hz / fs;
  for (std::size_t n = 0; n < h.size(); ++n) acc += h[n] * std::polar(1.0, -w * static_cast<double>(n));
  return std::abs(acc);
}

// Streams `in` through split() in blocks cycling through `sizes`; returns the raw (delayed)
// bands, as many frames as the input.
std::vector<audio_buffer> split_in_blocks(linear_phase_crossover& x, const audio_buffer& in,
                                          const std::vector<std::size_t>& sizes) {
  std::vector<audio_buffer> bands(static_cast<std::size_t>(x.band_count()), audio_buffer(in.channels(), in.frames()));
  std::vector<block_view> views(bands.size());
  std::size_t pos = 0;
  for (std::size_t b = 0; pos < in.frames(); ++b) {
    const std::size_t n = std::min(sizes[b % sizes.size()], in.frames() - pos);
    for (std::size_t k = 0; k < bands.size(); ++k) views[k] = bands[k].view(pos, n);
    x.split(in.view(pos, n), views);
    pos += n;
  }
  return bands;
}

struct layout {
  std::vector<double> crossover_hz;
};

// Centre of each band for the magnitude checks: geometric mean of its edges; the lowest band's
// is an octave below its edge, the highest's an octave above its edge.
std::vector<double> band_centres(const std::vector<double>& xo) {
  std::vector<double> c;
  c.push_back(xo.front() / 2.0);
  for (std::size_t k = 1; k < xo.size(); ++k) c.push_back(std::sqrt(xo[k - 1] * xo[k]));
  c.push_back(std::min(2.0 * xo.back(), 0.49 * fs));
  return c;
}

class crossover_layouts : public ::testing::TestWithParam<layout> {};

TEST_P(crossover_layouts, DesignSumsToUnitImpulseAndIsSymmetric) {
  const auto& xo = GetParam().crossover_hz;
  const std::size_t taps = crossover_auto_taps(xo, fs);
  const auto bands = design_crossover_bands(xo, fs, taps);
  ASSERT_EQ(bands.size(), xo.size() + 1);
  const std::size_t centre = (taps - 1) / 2;
  for (std::size_t i = 0; i < taps; ++i) {
    double s = 0.0;
    for (const auto& h : bands) s += h[i];
    EXPECT_NEAR(s, i == centre ? 1.0 : 0.0, design_sum_tolerance) << "tap " << i;
  }
  for (const auto& h : bands)
    for (std::size_t j = 1; j <= centre; ++j) ASSERT_EQ(h[centre + j], h[centre - j]);
}

TEST_P(crossover_layouts, StreamedBandsAreLinearPhaseAndSelective) {
  const auto& xo = GetParam().crossover_hz;
  linear_phase_crossover x(crossover_params{xo});
  x.prepare({fs, 1, 4096});
  const std::size_t taps = x.taps(), latency = x.latency_frames(), centre = (taps - 1) / 2;
  ASSERT_EQ(taps, crossover_auto_taps(xo, fs));
  ASSERT_EQ(latency, centre + 4096);
  audio_buffer impulse(1, latency + centre + 1);
  impulse.channel(0)[0] = 1.0f;
  const auto bands = split_in_blocks(x, impulse, {4096});
  const std::size_t start = latency - centre;  // first tap of the FIR in the raw output
  const auto centres = band_centres(xo);
  std::vector<double> sum(taps, 0.0);
  for (std::size_t k = 0; k < bands.size(); ++k) {
    const float* y = bands[k].channel(0);
    std::vector<double> h(y + start, y + start + taps);
    double peak = 0.0;
    for (double v : h) peak = std::max(peak, std::abs(v));
    double worst_asym = 0.0;
    for (std::size_t j = 1; j <= centre; ++j)
      worst_asym = std::max(worst_asym, std::abs(h[centre + j] - h[centre - j]));
    EXPECT_LE(worst_asym, symmetry_tolerance * peak) << "band " << k;
    for (std::size_t i = 0; i < start; ++i) ASSERT_LE(std::abs(y[i]), symmetry_tolerance * peak) << "before the FIR";
    for (std::size_t i = 0; i < taps; ++i) sum[i] += h[i];

    const double at_centre = db(dtft_magnitude(h, centres[k]));
    EXPECT_NEAR(at_centre, 0.0, centre_tolerance_db) << "band " << k << " at " << centres[k] << " Hz";
    double worst_far = -400.0;
    // Two octaves below and above, where that lies outside the band (the lowest band is a
    // low-pass, the highest a high-pass).
    for (double f : {centres[k] / 4.0, centres[k] * 4.0}) {
      const double lo = k == 0 ? 0.0 : xo[k - 1], hi = k == xo.size() ? 0.5 * fs : xo[k];
      if (f >= 0.5 * fs || (f >= lo && f <= hi)) continue;
      const double m = db(dtft_magnitude(h, f));
      worst_far = std::max(worst_far, m);
      EXPECT_LE(m, -two_octave_rejection_db) << "band " << k << " at " << f << " Hz";
    }
    std::printf("band %zu: centre %.1f Hz %+.4f dB, two octaves away %.1f dB\n", k, centres[k], at_centre, worst_far);
  }
  double worst_sum_db = 0.0;
  for (int i = 0; i <= 200; ++i) {
    const double f = 10.0 * std::pow(2'000.0, i / 200.0);  // 10 Hz .. 20 kHz, log spaced
    worst_sum_db = std::max(worst_sum_db, std::abs(db(dtft_magnitude(sum, f))));
  }
  EXPECT_LE(worst_sum_db, sum_magnitude_tolerance_db);
  std::printf("taps %zu, latency %zu, worst |sum| deviation %.2e dB\n", taps, latency, worst_sum_db);
}

TEST_P(crossover_layouts, SumOfBandsIsTheDelayedInput) {
  const auto& xo = GetParam().crossover_hz;
  linear_phase_crossover x(crossover_params{xo});
  audio_buffer noise = test::white_noise(-12.0, 2.0, fs, 2, 7);
  audio_buffer out = noise;
  x.prepare({fs, 2, 1024});
  run_aligned(x, out, 1024);
  double peak = 0.0, worst = 0.0;
  for (int c = 0; c < 2; ++c) {
    for (std::size_t i = 0; i < noise.frames(); ++i) {
      peak = std::max(peak, static_cast<double>(std::abs(noise.channel(c)[i])));
      worst = std::max(worst, static_cast<double>(std::abs(out.channel(c)[i] - noise.channel(c)[i])));
    }
  }
  EXPECT_LE(db(worst / peak), sum_sample_error_db);
  std::printf("worst sample error of the band sum: %.1f dB re peak\n", db(worst / peak));
}

INSTANTIATE_TEST_SUITE_P(bands, crossover_layouts,
                         ::testing::Values(layout{{1'000.0}}, layout{{200.0, 800.0, 3'200.0}},
                                           layout{{100.0, 300.0, 1'000.0, 3'000.0, 10'000.0}}));

TEST(crossover, BlockSizeDoesNotChangeTheBands) {
  linear_phase_crossover x(crossover_params{{150.0, 1'500.0, 6'000.0}, 0, 256});
  const audio_buffer in = test::white_noise(-20.0, 0.3, fs, 2, 3);
  x.prepare({fs, 2, 4096});
  const auto whole = split_in_blocks(x, in, {4096});
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::size_t> pick(1, 4096);
  std::vector<std::size_t> random_sizes = {1, 3, 7, 13, 997, 4'093};
  for (int i = 0; i < 32; ++i) random_sizes.push_back(pick(rng));
  for (const auto& sizes : {std::vector<std::size_t>{1}, std::vector<std::size_t>{997}, random_sizes}) {
    x.reset();
    const auto split = split_in_blocks(x, in, sizes);
    for (std::size_t k = 0; k < whole.size(); ++k)
      for (int c = 0; c < 2; ++c)
        for (std::size_t i = 0; i < in.frames(); ++i)
          ASSERT_EQ(split[k].channel(c)[i], whole[k].channel(c)[i]) << "band " << k << " frame " << i;
  }
}

TEST(crossover, RejectsBadLayouts) {
  const stream_spec spec{fs, 2, 1024};
  for (const std::vector<double>& bad : {std::vector<double>{},
                                         {800.0, 200.0},
                                         {200.0, 200.0},
                                         {30'000.0},
                                         {100.0, 200.0, 300.0, 400.0, 500.0, 600.0}}) {
    linear_phase_crossover x(crossover_params{bad});
    EXPECT_THROW(x.prepare(spec), error);
  }
  linear_phase_crossover even(crossover_params{{1'000.0}, 1'024});
  EXPECT_THROW(even.prepare(spec), error);
}

}  // namespace
}  // namespace lathe
