// Stage 1: Butterworth high-pass / DC blocker. References: the analytic magnitude of the
// bilinear-transformed (prewarped) Butterworth prototype, and least-squares sine fits of the
// stage's own output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "lathe/highpass.hpp"
#include "support/blocks.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<highpass_stage>);

// Design vs analytic formula: both are float64 evaluations of the same rational function, so
// only rounding separates them; 0.001 dB is the contract.
constexpr double design_tolerance_db = 0.001;
// Measured sine gain vs magnitude(): float32 input/output rounding (~-150 dB) and the fit.
constexpr double measured_tolerance_db = 0.01;
// Residual DC after settling.
constexpr double dc_residual_limit_dbfs = -100.0;

double db(double x) {
  return 20.0 * std::log10(x);
}

// |H|^2 of an order-n Butterworth HIGH-pass after the bilinear transform prewarped at fc:
// 1 / (1 + (tan(pi fc/fs) / tan(pi f/fs))^(2n)). (The low-pass has the ratio inverted.)
double bilinear_butterworth_hp_magnitude(double f_hz, double fc_hz, int order, double fs_hz) {
  const double ratio = std::tan(M_PI * fc_hz / fs_hz) / std::tan(M_PI * f_hz / fs_hz);
  return 1.0 / std::sqrt(1.0 + std::pow(ratio, 2.0 * order));
}

stream_spec spec_for(double fs_hz, int channels) {
  return {fs_hz, channels, 8192};
}

TEST(Highpass, DesignMatchesBilinearButterworth) {
  for (double fs : {44'100.0, 48'000.0, 96'000.0}) {
    for (int order = 1; order <= 8; ++order) {
      for (double fc : {20.0, 35.0}) {
        highpass_stage st({fc, order, 2.0});
        st.prepare(spec_for(fs, 2));
        EXPECT_NEAR(db(st.magnitude(fc)), db(std::sqrt(0.5)), design_tolerance_db) << "-3 dB point, order " << order;
        double worst = 0.0;
        for (double f = 5.0; f <= 20'000.0; f *= 1.01) {
          const double err = db(st.magnitude(f)) - db(bilinear_butterworth_hp_magnitude(f, fc, order, fs));
          worst = std::max(worst, std::abs(err));
        }
        EXPECT_LT(worst, design_tolerance_db) << "fs " << fs << " order " << order << " fc " << fc;
      }
    }
  }
}

TEST(Highpass, DcBlockerDesignIsFirstOrderAtDcCutoff) {
  highpass_stage st({0.0, 4, 2.0});
  st.prepare(spec_for(48'000.0, 1));
  for (double f = 0.5; f <= 20'000.0; f *= 1.05) {
    EXPECT_NEAR(db(st.magnitude(f)), db(bilinear_butterworth_hp_magnitude(f, 2.0, 1, 48'000.0)), design_tolerance_db);
  }
}

TEST(Highpass, MeasuredSineGainMatchesMagnitude) {
  const double fs = 48'000.0;
  for (int order : {1, 4, 7, 8}) {
    highpass_stage st({20.0, order, 2.0});
    st.prepare(spec_for(fs, 1));
    for (double f : {10.0, 15.0, 20.0, 28.0, 50.0, 100.0, 1'000.0, 12'000.0}) {
      st.reset();
      // 2 s settles the sharpest pole (order 8, Q 2.56: time constant 41 ms) far below 1e-10.
      audio_buffer x = test::sine(f, -6.0, 3.0, fs, 1);
      audio_buffer y = x;
      test::process_in_place(st, y, {4096});
      const std::size_t b = static_cast<std::size_t>(2.0 * fs), e = x.frames();
      const double gain =
          test::sine_amplitude(y.channel(0), b, e, f, fs) / test::sine_amplitude(x.channel(0), b, e, f, fs);
      EXPECT_NEAR(db(gain), db(st.magnitude(f)), measured_tolerance_db) << "order " << order << " f " << f;
    }
  }
}

void expect_dc_removed(const highpass_params& p) {
  const double fs = 48'000.0;
  highpass_stage st(p);
  st.prepare(spec_for(fs, 2));
  audio_buffer x = test::sine(1'000.0, -12.0, 4.0, fs, 2);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < x.frames(); ++i) x.channel(c)[i] += 0.5f;  // -6 dBFS of DC
  test::process_in_place(st, x, {1024});
  // Mean over the last second: 1000 whole periods of the 1 kHz sine, so only DC remains. The
  // 2 Hz DC blocker (time constant 80 ms) has had 3 s = 37 time constants to settle.
  for (int c = 0; c < 2; ++c) {
    double sum = 0.0;
    const std::size_t b = static_cast<std::size_t>(3.0 * fs);
    for (std::size_t i = b; i < x.frames(); ++i) sum += x.channel(c)[i];
    const double dc = std::abs(sum / static_cast<double>(x.frames() - b));
    EXPECT_LT(db(std::max(dc, 1e-300)), dc_residual_limit_dbfs) << "cutoff " << p.cutoff_hz << " order " << p.order;
  }
}

TEST(Highpass, RemovesDcWithHighpass) {
  expect_dc_removed({20.0, 4, 2.0});
  expect_dc_removed({30.0, 1, 2.0});
}

TEST(Highpass, RemovesDcWithHighpassOff) {
  expect_dc_removed({0.0, 4, 2.0});
}

TEST(Highpass, BlockSizeIndependentAndResettable) {
  const double fs = 44'100.0;
  audio_buffer x = test::white_noise(-12.0, 3.0, fs, 2, 7);
  for (int order : {3, 8}) {
    highpass_stage st({25.0, order, 2.0});
    st.prepare(spec_for(fs, 2));
    audio_buffer whole = x;
    st.process(whole.view(), whole.view());
    std::mt19937 rng(order);
    std::uniform_int_distribution<std::size_t> pick(1, 5'000);
    std::vector<std::size_t> random_sizes(64);
    for (auto& s : random_sizes) s = pick(rng);
    for (const std::vector<std::size_t>& sizes :
         std::vector<std::vector<std::size_t>>{{1}, {7}, {64}, {997}, {4096}, {1, 13, 2, 4099, 31}, random_sizes}) {
      st.reset();
      audio_buffer y = x;
      test::process_in_place(st, y, sizes);
      for (int c = 0; c < 2; ++c)
        ASSERT_EQ(0, std::memcmp(whole.channel(c), y.channel(c), x.frames() * sizeof(float)))
            << "order " << order << " first block size " << sizes.front();
    }
  }
}

TEST(Highpass, RejectsBadParameters) {
  highpass_stage bad_order({20.0, 9, 2.0});
  EXPECT_THROW(bad_order.prepare(spec_for(48'000.0, 2)), logic_error);
  highpass_stage bad_cutoff({30'000.0, 4, 2.0});
  EXPECT_THROW(bad_cutoff.prepare(spec_for(48'000.0, 2)), logic_error);
}

}  // namespace
}  // namespace lathe
