// Stage 2: linear-phase EQ. References: the RBJ Audio-EQ-Cookbook digital biquads (for the
// target), the FIR's own DTFT evaluated directly in float64 (for the design), and least-squares
// sine fits of the stage's output (end to end).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "lathe/biquad.hpp"
#include "lathe/eq.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<linear_phase_eq_stage>);

// eq_target_magnitude vs the cookbook's digital biquad: same function, different algebra.
constexpr double cookbook_relative_tolerance = 1e-9;
// FIR design vs target inside the band of validity (see FirMatchesTargetInBandOfValidity).
constexpr double fir_tolerance_db = 0.1;
// Stage's steady-state sine gain vs target.
constexpr double stage_tolerance_db = 0.05;
// A zero-gain design must be a unit impulse up to float64 FFT rounding.
constexpr double unit_impulse_tolerance = 1e-9;
// Float taps through float FFT convolution vs the float64 taps (relative to the peak tap).
constexpr double impulse_response_tolerance = 1e-5;
// Target floor of the band of validity: where the target goes to zero (a low_pass at Nyquist),
// the dB error of any finite FIR is unbounded.
constexpr double validity_floor_db = -30.0;

double db(double x) {
  return 20.0 * std::log10(x);
}

eq_band band(eq_band_type t, double f, double g, double q) {
  return eq_band{t, f, g, q};
}

// The cookbook's digital biquad (bilinear transform prewarped at f0), a0 normalized.
biquad_coeffs rbj_biquad(const eq_band& b, double fs) {
  const double w0 = 2.0 * M_PI * b.freq_hz / fs, cw = std::cos(w0), alpha = std::sin(w0) / (2.0 * b.q);
  const double a = std::pow(10.0, b.gain_db / 40.0), sa = 2.0 * std::sqrt(a) * alpha;
  double b0 = 1, b1 = 0, b2 = 0, a0 = 1, a1 = 0, a2 = 0;
  switch (b.type) {
    case eq_band_type::bell:
      b0 = 1 + alpha * a, b1 = -2 * cw, b2 = 1 - alpha * a, a0 = 1 + alpha / a, a1 = -2 * cw, a2 = 1 - alpha / a;
      break;
    case eq_band_type::low_shelf:
      b0 = a * ((a + 1) - (a - 1) * cw + sa), b1 = 2 * a * ((a - 1) - (a + 1) * cw),
      b2 = a * ((a + 1) - (a - 1) * cw - sa);
      a0 = (a + 1) + (a - 1) * cw + sa, a1 = -2 * ((a - 1) + (a + 1) * cw), a2 = (a + 1) + (a - 1) * cw - sa;
      break;
    case eq_band_type::high_shelf:
      b0 = a * ((a + 1) + (a - 1) * cw + sa), b1 = -2 * a * ((a - 1) + (a + 1) * cw),
      b2 = a * ((a + 1) + (a - 1) * cw - sa);
      a0 = (a + 1) - (a - 1) * cw + sa, a1 = 2 * ((a - 1) - (a + 1) * cw), a2 = (a + 1) - (a - 1) * cw - sa;
      break;
    case eq_band_type::high_pass:
      b0 = (1 + cw) / 2, b1 = -(1 + cw), b2 = (1 + cw) / 2, a0 = 1 + alpha, a1 = -2 * cw, a2 = 1 - alpha;
      break;
    case eq_band_type::low_pass:
      b0 = (1 - cw) / 2, b1 = 1 - cw, b2 = (1 - cw) / 2, a0 = 1 + alpha, a1 = -2 * cw, a2 = 1 - alpha;
      break;
  }
  return biquad_coeffs{b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0};
}

// Zero-phase amplitude of a symmetric odd-length FIR at f_hz: the DTFT evaluated directly in
// float64 (the naive DFT at exactly the frequencies tested).
double fir_amplitude(const std::vector<double>& h, double f_hz, double fs_hz) {
  const std::size_t c = (h.size() - 1) / 2;
  double s = h[c];
  const double w = 2.0 * M_PI * f_hz / fs_hz;
  for (std::size_t m = 1; m <= c; ++m) s += 2.0 * h[c + m] * std::cos(w * static_cast<double>(m));
  return s;
}

double lowest_freq(const std::vector<eq_band>& bands) {
  double f = 1e300;
  for (const eq_band& b : bands) f = std::min(f, b.freq_hz);
  return f;
}

struct design_case {
  std::vector<eq_band> bands;
  double fs_hz;
};

std::vector<design_case> design_cases() {
  using t = eq_band_type;
  return {
      {{band(t::high_pass, 30, 0, 0.707), band(t::bell, 3'000, -4, 2)}, 44'100.0},
      {{band(t::low_shelf, 80, 4, 0.707), band(t::bell, 400, -2.5, 1.2), band(t::high_shelf, 10'000, 3, 0.707)},
       48'000.0},
      {{band(t::bell, 200, -10, 4)}, 96'000.0},
      {{band(t::bell, 60, 6, 0.9), band(t::low_pass, 18'000, 0, 0.707)}, 44'100.0},
      {{band(t::high_pass, 20, 0, 1.0), band(t::bell, 2'500, 3, 0.7), band(t::high_shelf, 12'000, -6, 0.707)},
       48'000.0},
  };
}

TEST(EqTarget, MatchesCookbookDigitalBiquads) {
  using t = eq_band_type;
  for (double fs : {44'100.0, 96'000.0}) {
    for (const eq_band& b :
         {band(t::bell, 1'000, 6, 1.4), band(t::bell, 90, -9, 0.5), band(t::low_shelf, 120, 5, 0.707),
          band(t::low_shelf, 300, -8, 1.1), band(t::high_shelf, 8'000, 4, 0.707), band(t::high_shelf, 15'000, -3, 0.5),
          band(t::high_pass, 40, 0, 0.707), band(t::low_pass, 16'000, 0, 2.0)}) {
      const biquad_coeffs c = rbj_biquad(b, fs);
      for (double f = 10.0; f < 0.49 * fs; f *= 1.02) {
        const double expected = std::abs(c.response(f, fs));
        const double got = eq_target_magnitude({b}, f, fs);
        EXPECT_NEAR(got, expected, cookbook_relative_tolerance * std::max(expected, 1e-6))
            << to_string(b.type) << " " << b.freq_hz << " Hz at f " << f;
      }
    }
  }
  // Bands multiply.
  const std::vector<eq_band> two = {band(t::bell, 500, 3, 1), band(t::high_shelf, 6'000, -2, 0.707)};
  for (double f : {50.0, 500.0, 6'000.0}) {
    EXPECT_NEAR(eq_target_magnitude(two, f, 48'000.0),
                eq_target_magnitude({two[0]}, f, 48'000.0) * eq_target_magnitude({two[1]}, f, 48'000.0), 1e-12);
  }
}

// eq_auto_taps' documented rule: 8 * fs * max(1, Q_eff) / f0 for the most demanding band
// (Q_eff = Q * max(A, 1/A) for bells, Q otherwise), up to 2^k + 1, clamped to 1025..65537.
TEST(EqDesign, AutoTapsFollowResolutionRule) {
  using t = eq_band_type;
  EXPECT_EQ(eq_auto_taps({band(t::bell, 1'000, 3, 1)}, 48'000.0), 1'025u);         // 384 -> clamp
  EXPECT_EQ(eq_auto_taps({band(t::high_pass, 30, 0, 0.707)}, 44'100.0), 16'385u);  // 11760
  EXPECT_EQ(eq_auto_taps({band(t::bell, 10, 3, 1)}, 44'100.0), 65'537u);           // 35280
  EXPECT_EQ(eq_auto_taps({band(t::bell, 5, 3, 1)}, 44'100.0), 65'537u);            // 70560 -> clamp
  // Cut of 10 dB at Q 4: Q_eff = 4 * 10^(10/40) = 7.11 -> 8 * 96000 * 7.11 / 200 = 27314.
  EXPECT_EQ(eq_auto_taps({band(t::bell, 200, -10, 4)}, 96'000.0), 32'769u);
  for (const design_case& d : design_cases()) {
    const std::size_t n = eq_auto_taps(d.bands, d.fs_hz);
    EXPECT_EQ(n % 2, 1u);
    EXPECT_EQ((n - 1) & (n - 2), 0u) << "2^k + 1";
    EXPECT_GE(static_cast<double>(n), std::min(65'537.0, 8.0 * d.fs_hz / lowest_freq(d.bands)));
  }
}

// Band of validity: f in [2 * f_lowest, fs/2) where the target is above validity_floor_db.
// eq_auto_taps makes the resolution fs/taps <= f_lowest / (8 Q_eff), so at 2 * f_lowest the
// lowest band's corner is >= 8 resolution cells away, well outside the Blackman window's main
// lobe (+-3 cells) whose smoothing causes the error; every other band is higher and so resolved
// at least as finely. Below that the smoothing of a steep low end shows (a 30 Hz high-pass is
// ~0.4 dB off at 10 Hz). At the upper end only the floor matters (a low_pass reaches zero at
// fs/2, where no finite FIR has bounded dB error).
TEST(EqDesign, FirMatchesTargetInBandOfValidity) {
  for (const design_case& d : design_cases()) {
    const std::size_t taps = eq_auto_taps(d.bands, d.fs_hz);
    const std::vector<double> h = design_linear_phase_fir(d.bands, d.fs_hz, taps);
    ASSERT_EQ(h.size(), taps);
    double worst = 0.0, worst_f = 0.0;
    for (double f = 2.0 * lowest_freq(d.bands); f < 0.5 * d.fs_hz; f *= 1.005) {
      const double target = eq_target_magnitude(d.bands, f, d.fs_hz);
      if (db(target) < validity_floor_db) continue;
      const double err = std::abs(db(std::abs(fir_amplitude(h, f, d.fs_hz))) - db(target));
      if (err > worst) worst = err, worst_f = f;
    }
    EXPECT_LT(worst, fir_tolerance_db) << "worst at " << worst_f << " Hz, fs " << d.fs_hz << ", taps " << taps;
  }
}

TEST(EqDesign, ZeroGainBellIsUnitImpulse) {
  for (std::size_t taps : {1'025u, 16'385u, 65'537u}) {
    const std::vector<double> h = design_linear_phase_fir({band(eq_band_type::bell, 1'000, 0.0, 1.0)}, 48'000.0, taps);
    const std::size_t c = (taps - 1) / 2;
    for (std::size_t i = 0; i < taps; ++i) ASSERT_NEAR(h[i], i == c ? 1.0 : 0.0, unit_impulse_tolerance) << "tap " << i;
  }
}

TEST(EqDesign, TapsExactlySymmetricWithPeakAtCentre) {
  for (const design_case& d : design_cases()) {
    const std::vector<double> h = design_linear_phase_fir(d.bands, d.fs_hz, 4'097);
    const std::size_t c = 2'048;
    for (std::size_t m = 1; m <= c; ++m) ASSERT_EQ(h[c + m], h[c - m]) << "m " << m;
    // Designs without a pass-band notch at DC have their largest tap at the centre.
    if (d.bands.front().type == eq_band_type::high_pass) continue;
    const auto peak =
        std::max_element(h.begin(), h.end(), [](double a, double b) { return std::abs(a) < std::abs(b); });
    EXPECT_EQ(static_cast<std::size_t>(peak - h.begin()), c);
  }
}

TEST(EqDesign, RejectsBadInput) {
  EXPECT_THROW(design_linear_phase_fir({band(eq_band_type::bell, 1'000, 3, 1)}, 48'000.0, 1'024), logic_error);
  EXPECT_THROW(eq_auto_taps({band(eq_band_type::bell, 30'000, 3, 1)}, 48'000.0), logic_error);
  EXPECT_THROW(eq_auto_taps({band(eq_band_type::bell, 1'000, 3, 0.0)}, 48'000.0), logic_error);
}

TEST(EqBandType, ParsesAndPrints) {
  for (eq_band_type t : {eq_band_type::bell, eq_band_type::low_shelf, eq_band_type::high_shelf, eq_band_type::high_pass,
                         eq_band_type::low_pass}) {
    eq_band_type back = eq_band_type::bell;
    ASSERT_TRUE(parse_eq_band_type(to_string(t), back));
    EXPECT_EQ(back, t);
  }
  eq_band_type out = eq_band_type::low_pass;
  EXPECT_FALSE(parse_eq_band_type("peaking", out));
  EXPECT_EQ(out, eq_band_type::low_pass);
}

TEST(EqStage, LatencyCompensatedImpulseResponseIsTheDesignedFir) {
  const double fs = 48'000.0;
  const std::vector<eq_band> bands = {band(eq_band_type::bell, 1'000, 3, 1),
                                      band(eq_band_type::high_shelf, 8'000, -2, 0.707)};
  for (std::size_t part : {256u, 4'096u}) {
    linear_phase_eq_stage st({bands, 0, part});
    st.prepare({fs, 2, 4'096});
    const std::size_t taps = st.taps();
    EXPECT_EQ(taps, eq_auto_taps(bands, fs));
    EXPECT_EQ(st.latency_frames(), (taps - 1) / 2 + part);
    audio_buffer x(2, taps);
    x.channel(0)[0] = x.channel(1)[0] = 1.0f;
    run_aligned(st, x, 1'000);
    const std::vector<double> h = design_linear_phase_fir(bands, fs, taps);
    const std::size_t c = (taps - 1) / 2;
    for (int ch = 0; ch < 2; ++ch) {
      const float* y = x.channel(ch);
      const auto peak = std::max_element(y, y + x.frames(), [](float a, float b) { return std::abs(a) < std::abs(b); });
      EXPECT_EQ(peak - y, 0) << "peak must sit at index 0 after latency compensation";
      // Aligned impulse response = the causal half of the zero-phase FIR.
      for (std::size_t i = 0; i <= c; ++i) ASSERT_NEAR(y[i], h[c + i], impulse_response_tolerance * h[c]) << "i " << i;
      for (std::size_t i = c + 1; i < x.frames(); ++i) ASSERT_NEAR(y[i], 0.0, impulse_response_tolerance * h[c]);
    }
  }
}

TEST(EqStage, SteadyStateSineGainMatchesTarget) {
  const double fs = 44'100.0;
  const std::vector<eq_band> bands = {band(eq_band_type::low_shelf, 80, 4, 0.707),
                                      band(eq_band_type::bell, 400, -2.5, 1.2),
                                      band(eq_band_type::high_shelf, 10'000, 3, 0.707)};
  linear_phase_eq_stage st({bands, 0, 2'048});
  st.prepare({fs, 2, 4'096});
  const std::size_t taps = st.taps();
  for (double f : {160.0, 250.0, 400.0, 1'000.0, 3'000.0, 9'000.0, 15'000.0, 19'000.0}) {
    st.reset();
    const std::size_t n = taps + 16'384;
    audio_buffer x = test::sine(f, -6.0, static_cast<double>(n) / fs, fs, 2);
    audio_buffer y = x;
    run_aligned(st, y, 4'096);
    // Aligned output is steady state where the whole FIR sees the sine: [taps/2, n - taps/2).
    const std::size_t b = taps / 2 + 1, e = x.frames() - taps / 2 - 1;
    for (int c = 0; c < 2; ++c) {
      const double gain =
          test::sine_amplitude(y.channel(c), b, e, f, fs) / test::sine_amplitude(x.channel(c), b, e, f, fs);
      EXPECT_NEAR(db(gain), db(eq_target_magnitude(bands, f, fs)), stage_tolerance_db) << "f " << f;
    }
  }
}

TEST(EqStage, BypassIsBitExactWithZeroLatency) {
  linear_phase_eq_stage st;
  st.prepare({44'100.0, 2, 4'096});
  EXPECT_TRUE(st.bypassed());
  EXPECT_EQ(st.latency_frames(), 0u);
  const audio_buffer x = test::white_noise(-10.0, 0.5, 44'100.0, 2, 11);
  audio_buffer out(2, x.frames());
  st.process(x.view(), out.view());
  audio_buffer in_place = x;
  st.process(in_place.view(), in_place.view());
  for (int c = 0; c < 2; ++c) {
    EXPECT_EQ(0, std::memcmp(x.channel(c), out.channel(c), x.frames() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(x.channel(c), in_place.channel(c), x.frames() * sizeof(float)));
  }
}

TEST(EqStage, BlockSizeIndependent) {
  const double fs = 44'100.0;
  const audio_buffer x = test::white_noise(-12.0, 2.0, fs, 2, 5);
  linear_phase_eq_stage st(
      {{band(eq_band_type::high_pass, 30, 0, 0.707), band(eq_band_type::bell, 3'000, -4, 2)}, 0, 1'024});
  st.prepare({fs, 2, x.frames()});
  audio_buffer whole = x;
  st.process(whole.view(), whole.view());
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::size_t> pick(1, 6'000);
  std::vector<std::size_t> random_sizes = {1, 3, 7, 13, 997, 4'099};
  for (int i = 0; i < 64; ++i) random_sizes.push_back(pick(rng));
  for (const std::vector<std::size_t>& sizes :
       {std::vector<std::size_t>{1}, std::vector<std::size_t>{997}, random_sizes}) {
    st.reset();
    audio_buffer y = x;
    std::size_t pos = 0, k = 0;
    while (pos < y.frames()) {
      const std::size_t n = std::min(sizes[k++ % sizes.size()], y.frames() - pos);
      st.process(y.view(pos, n), y.view(pos, n));
      pos += n;
    }
    for (int c = 0; c < 2; ++c) ASSERT_EQ(0, std::memcmp(whole.channel(c), y.channel(c), x.frames() * sizeof(float)));
  }
}

}  // namespace
}  // namespace lathe
