// De-esser. References: the analytic static curve applied to the detector level of a sine
// (computed from the band-pass's complex response in float64), the split's analytic response
// x + (g - 1) H(f) x, least-squares sine fits of the output, and exact float identities.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lathe/deesser.hpp"
#include "support/blocks.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<deesser_stage>);

constexpr double fs = 44'100.0;
// Steady 7 kHz output level vs the analytic static curve.
constexpr double static_curve_tolerance_db = 0.5;
// A 1 kHz tone under active de-essing: |1 + (g - 1) H(1 kHz)| is >= -0.04 dB for any g.
constexpr double passband_tolerance_db = 0.05;
// Maximum reduction in the stats vs the analytic steady value.
constexpr double stats_tolerance_db = 0.5;

double db(double x) {
  return 20.0 * std::log10(x);
}

audio_buffer render(const deesser_params& p, audio_buffer x, std::size_t block, deesser_stats* st = nullptr) {
  deesser_stage s(p);
  s.prepare({fs, x.channels(), block});
  run_aligned(s, x, block);
  if (st) *st = s.stats();
  return x;
}

// Steady reduction (dB) and output gain for a sine of peak `amp` at f_hz: detector RMS =
// amp |H|^2 / sqrt(2) (two band-pass sections), output = |1 + (g - 1) H| amp.
struct expected_t {
  double reduction_db, out_gain_db;
};
expected_t expected(const deesser_params& p, double f_hz, double amp) {
  const std::complex<double> h = deesser_stage::design_band(p, fs).response(f_hz, fs);
  const double level_db = db(amp * std::norm(h) / std::sqrt(2.0));
  const double red = deesser_stage::static_reduction_db(p, level_db);
  const double g = std::pow(10.0, -red / 20.0);
  return {red, db(std::abs(1.0 + (g - 1.0) * h))};
}

TEST(DeEsser, StaticCurveOfSibilantBurst) {
  deesser_params p;
  p.threshold_db = -30.0;
  p.ratio = 3.0;
  p.max_reduction_db = 15.0;  // 0 dBFS asks for 17.8 dB: capped
  // Below the knee's cap, in the middle, and capped.
  for (double peak_db : {-24.0, -12.0, 0.0}) {
    const double amp = std::pow(10.0, peak_db / 20.0);
    const audio_buffer silence(2, 4'410);
    const audio_buffer tone = test::sine(7'000.0, peak_db, 0.3, fs, 2);
    const audio_buffer x = test::concat({&silence, &tone, &silence});
    deesser_stats st;
    const audio_buffer y = render(p, x, 1024, &st);
    const std::size_t last = 4'410 + tone.frames(), first = last - 6'615;  // the burst's last 150 ms
    const expected_t e = expected(p, 7'000.0, amp);
    for (int c = 0; c < 2; ++c) {
      const double gain_db = db(test::sine_amplitude(y.channel(c), first, last, 7'000.0, fs) / amp);
      EXPECT_NEAR(gain_db, e.out_gain_db, static_curve_tolerance_db) << peak_db << " dBFS, channel " << c;
      std::printf("7 kHz at %+.0f dBFS: output %+.2f dB, analytic %+.2f dB (band reduction %.2f dB)\n", peak_db,
                  gain_db, e.out_gain_db, e.reduction_db);
    }
    EXPECT_NEAR(st.max_reduction_db, e.reduction_db, stats_tolerance_db);
    EXPECT_GT(st.mean_reduction_db(), 0.0);
    EXPECT_LT(st.mean_reduction_db(), st.max_reduction_db);
  }
}

TEST(DeEsser, LowToneUnchangedWhileDeEssing) {
  deesser_params p;  // defaults: 5-9 kHz, -30 dB, 4:1, max 12 dB
  audio_buffer x = test::sine(1'000.0, -6.0, 1.0, fs, 2);
  const audio_buffer ess = test::sine(7'000.0, -12.0, 1.0, fs, 2);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < x.frames(); ++i) x.channel(c)[i] += ess.channel(c)[i];
  deesser_stats st;
  const audio_buffer y = render(p, x, 512, &st);
  EXPECT_GT(st.max_reduction_db, 6.0);  // it is de-essing
  const double amp = std::pow(10.0, -6.0 / 20.0);
  for (int c = 0; c < 2; ++c) {
    const double gain_db = db(test::sine_amplitude(y.channel(c), 11'025, x.frames(), 1'000.0, fs) / amp);
    EXPECT_NEAR(gain_db, 0.0, passband_tolerance_db) << "channel " << c;
  }
}

TEST(DeEsser, BelowThresholdIsPassThrough) {
  // Tolerance: exact. With no reduction the band gain is exactly 1 and out = x + band * 0.
  deesser_params p;
  audio_buffer x = test::sine(7'000.0, -40.0, 0.5, fs, 2);  // detector ~ -43 dB < -30 dB
  const audio_buffer noise = test::white_noise(-50.0, 0.5, fs, 2, 5);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < x.frames(); ++i) x.channel(c)[i] += noise.channel(c)[i];
  deesser_stats st;
  const audio_buffer y = render(p, x, 777, &st);
  EXPECT_EQ(st.max_reduction_db, 0.0);
  EXPECT_EQ(st.active_frames, 0u);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < x.frames(); ++i) ASSERT_EQ(y.channel(c)[i], x.channel(c)[i]) << i;
}

TEST(DeEsser, BlockSizeIndependence) {
  deesser_params p;
  audio_buffer x = test::white_noise(-14.0, 0.5, fs, 2, 6);
  const audio_buffer burst = test::sine(6'000.0, -6.0, 0.5, fs, 2);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = x.frames() / 3; i < x.frames() / 2; ++i) x.channel(c)[i] += burst.channel(c)[i];
  deesser_stats whole_stats;
  const audio_buffer whole = render(p, x, 4096, &whole_stats);
  for (const std::vector<std::size_t>& sizes :
       std::vector<std::vector<std::size_t>>{{1}, {2, 3, 5, 7, 11, 13}, {997, 1, 4096}, {509}}) {
    deesser_stage s(p);
    s.prepare({fs, 2, 4096});
    audio_buffer buf = x;
    test::process_in_place(s, buf, sizes);
    for (int c = 0; c < 2; ++c)
      EXPECT_EQ(std::memcmp(buf.channel(c), whole.channel(c), x.frames() * sizeof(float)), 0) << sizes[0];
    EXPECT_EQ(s.stats().max_reduction_db, whole_stats.max_reduction_db);
  }
}

TEST(DeEsser, SplitIsComplementary) {
  // Band-pass + notch = identity: the split's rest is 1 - H, which is the cookbook notch.
  deesser_params p;
  const biquad_coeffs h = deesser_stage::design_band(p, fs);
  const double f0 = std::sqrt(p.low_hz * p.high_hz);
  EXPECT_NEAR(std::abs(h.response(f0, fs)), 1.0, 1e-12);
  EXPECT_NEAR(std::abs(1.0 - h.response(f0, fs)), 0.0, 1e-12);
}

}  // namespace
}  // namespace lathe
