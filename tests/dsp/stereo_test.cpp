// Stereo image stage. References: exact float identities (pass-through, mono), the analytic
// 8th-order Butterworth magnitude the side FIR approximates, least-squares sine fits of the
// output, and the sampling distribution of Pearson's r for independent noise.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "lathe/stereo.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<stereo_stage>);

constexpr double fs = 44'100.0;
// Bass mono at 150 Hz: a side-only 50 Hz tone must be this far down (the Butterworth target is
// -76 dB at fc/3; the windowed FIR and float convolution leave it well below -40 dB).
constexpr double bass_mono_rejection_db = 40.0;
// ... and a side-only 1 kHz tone must keep its level within this (target -1e-12 dB there).
constexpr double passband_tolerance_db = 0.05;
// Correlation of identical / inverted channels: +-1 up to float64 rounding of the sums.
constexpr double exact_correlation_tolerance = 1e-12;
// Independent Gaussian noise: r ~ N(0, 1/N); allow 5 standard deviations.
constexpr double independent_sigmas = 5.0;
// Side/mid ratio of an analytic mix vs the meter (float rounding of the samples only).
constexpr double ratio_tolerance_db = 1e-4;

bool bit_equal(const audio_buffer& a, const audio_buffer& b) {
  if (a.channels() != b.channels() || a.frames() != b.frames()) return false;
  for (int c = 0; c < a.channels(); ++c) {
    if (std::memcmp(a.channel(c), b.channel(c), a.frames() * sizeof(float)) != 0) return false;
  }
  return true;
}

// L = s, R = -s: a side-only signal.
audio_buffer side_only(double f_hz, double peak_dbfs, double seconds) {
  audio_buffer b = test::sine(f_hz, peak_dbfs, seconds, fs, 2);
  for (std::size_t i = 0; i < b.frames(); ++i) b.channel(1)[i] = -b.channel(0)[i];
  return b;
}

audio_buffer render(const stereo_params& p, audio_buffer x, std::size_t block, stereo_stats* st = nullptr) {
  stereo_stage s(p);
  s.prepare({fs, x.channels(), block});
  run_aligned(s, x, block);
  if (st) *st = s.stats();
  return x;
}

// Streams x plus latency zeros through the stage in the cycled block sizes, in place, and
// returns the output aligned with x.
audio_buffer render_blocks(const stereo_params& p, const audio_buffer& x, const std::vector<std::size_t>& sizes) {
  stereo_stage s(p);
  const std::size_t max_block = 4096;
  s.prepare({fs, x.channels(), max_block});
  const std::size_t lat = s.latency_frames();
  audio_buffer padded(x.channels(), x.frames() + lat);
  for (int c = 0; c < x.channels(); ++c) std::copy(x.channel(c), x.channel(c) + x.frames(), padded.channel(c));
  std::size_t k = 0;
  for (std::size_t pos = 0; pos < padded.frames();) {
    const std::size_t n = std::min({sizes[k++ % sizes.size()], max_block, padded.frames() - pos});
    block_view v = padded.view(pos, n);
    s.process(v, v);
    pos += n;
  }
  audio_buffer out(x.channels(), x.frames());
  for (int c = 0; c < x.channels(); ++c)
    std::copy(padded.channel(c) + lat, padded.channel(c) + lat + x.frames(), out.channel(c));
  return out;
}

TEST(Stereo, UnityWidthWithoutBassMonoIsBitExact) {
  const audio_buffer x = test::white_noise(-12.0, 1.0, fs, 2, 7);
  stereo_stage s;
  s.prepare({fs, 2, 1024});
  EXPECT_EQ(s.latency_frames(), 0u);
  EXPECT_TRUE(bit_equal(render({}, x, 1024), x));
}

TEST(Stereo, ZeroWidthGivesIdenticalChannels) {
  const audio_buffer x = test::white_noise(-12.0, 1.0, fs, 2, 8);
  for (double bass : {0.0, 150.0}) {
    stereo_params p;
    p.width = 0.0;
    p.bass_mono_below_hz = bass;
    stereo_stats st;
    const audio_buffer y = render(p, x, 1024, &st);
    EXPECT_EQ(std::memcmp(y.channel(0), y.channel(1), y.frames() * sizeof(float)), 0) << "bass " << bass;
    EXPECT_NEAR(st.correlation_after, 1.0, exact_correlation_tolerance);
    EXPECT_EQ(st.side_to_mid_db_after, -std::numeric_limits<double>::infinity());
    // Independent noise: side/mid ~ 0 dB before (r ~ 0).
    EXPECT_NEAR(st.correlation_before, 0.0, independent_sigmas / std::sqrt(static_cast<double>(x.frames())));
  }
}

TEST(Stereo, MidGainAndWidthScaleMidAndSide) {
  // L = a + b, R = a - b with a, b independent noise: M = a, S = b. Width w and mid gain g give
  // M' = g a, S' = w b, so side/mid changes by 20 log10(w / g) exactly (up to float rounding).
  audio_buffer x = test::white_noise(-20.0, 1.0, fs, 2, 9);
  for (std::size_t i = 0; i < x.frames(); ++i) {
    const float a = x.channel(0)[i], b = x.channel(1)[i];
    x.channel(0)[i] = a + b;
    x.channel(1)[i] = a - b;
  }
  stereo_params p;
  p.width = 1.5;
  p.mid_gain_db = -2.0;
  stereo_stats st;
  render(p, x, 512, &st);
  EXPECT_NEAR(st.width_change_db(), 20.0 * std::log10(1.5) + 2.0, ratio_tolerance_db);
}

TEST(Stereo, BassMonoRemovesLowSideAndKeepsHighSide) {
  stereo_params p;
  p.bass_mono_below_hz = 150.0;
  const double seconds = 2.0;
  const std::size_t n = static_cast<std::size_t>(seconds * fs);
  const std::size_t first = n / 4, last = 3 * n / 4;  // away from the FIR's fill and tail
  const double peak_db = -6.0, peak = std::pow(10.0, peak_db / 20.0);

  const audio_buffer low = render(p, side_only(50.0, peak_db, seconds), 4096);
  for (int c = 0; c < 2; ++c) {
    const double rejection = 20.0 * std::log10(peak / test::sine_amplitude(low.channel(c), first, last, 50.0, fs));
    EXPECT_GT(rejection, bass_mono_rejection_db) << "channel " << c;
    RecordProperty("rejection_50hz_db_ch" + std::to_string(c), std::to_string(rejection));
    std::printf("bass mono 150 Hz: side-only 50 Hz down %.1f dB (channel %d)\n", rejection, c);
  }
  const audio_buffer high = render(p, side_only(1'000.0, peak_db, seconds), 4096);
  for (int c = 0; c < 2; ++c) {
    const double gain = 20.0 * std::log10(test::sine_amplitude(high.channel(c), first, last, 1'000.0, fs) / peak);
    EXPECT_NEAR(gain, 0.0, passband_tolerance_db) << "channel " << c;
  }
  // The mid is untouched apart from its delay: a mid-only 50 Hz tone comes through aligned.
  const audio_buffer mid_in = test::sine(50.0, peak_db, seconds, fs, 2);
  const audio_buffer mid_out = render(p, mid_in, 4096);
  for (std::size_t i = first; i < last; ++i) ASSERT_EQ(mid_out.channel(0)[i], mid_in.channel(0)[i]) << i;
}

TEST(Stereo, CorrelationMeterKnownCases) {
  const audio_buffer noise = test::white_noise(-10.0, 3.0, fs, 2, 11);
  const std::size_t n = noise.frames();
  const float* a = noise.channel(0);
  std::vector<float> inverted(n);
  for (std::size_t i = 0; i < n; ++i) inverted[i] = -a[i];

  correlation_meter same(17'640), inv(17'640), indep(17'640);
  same.add(a, a, n);
  inv.add(a, inverted.data(), n);
  indep.add(a, noise.channel(1), n);
  EXPECT_NEAR(same.correlation(), 1.0, exact_correlation_tolerance);
  EXPECT_NEAR(same.min_window_correlation(), 1.0, exact_correlation_tolerance);
  EXPECT_NEAR(inv.correlation(), -1.0, exact_correlation_tolerance);
  EXPECT_NEAR(inv.mean_window_correlation(), -1.0, exact_correlation_tolerance);
  EXPECT_EQ(same.windows(), n / 17'640);
  const double sigma = 1.0 / std::sqrt(static_cast<double>(n));
  EXPECT_NEAR(indep.correlation(), 0.0, independent_sigmas * sigma);
  // Each 400 ms window has 17640 frames: its r within 5 sigma of that length.
  EXPECT_GT(indep.min_window_correlation(), -independent_sigmas / std::sqrt(17'640.0));

  // Merging two halves gives the overall correlation of the whole (same sums, reordered).
  correlation_meter first(17'640), second(17'640);
  first.add(a, noise.channel(1), n / 2);
  second.add(a + n / 2, noise.channel(1) + n / 2, n - n / 2);
  first.merge(second);
  EXPECT_NEAR(first.correlation(), indep.correlation(), exact_correlation_tolerance);
}

TEST(Stereo, BlockSizeIndependence) {
  const audio_buffer x = test::white_noise(-12.0, 1.0, fs, 2, 12);
  stereo_params p;
  p.width = 1.3;
  p.mid_gain_db = 1.0;
  p.bass_mono_below_hz = 120.0;
  const audio_buffer whole = render(p, x, 4096);
  for (const std::vector<std::size_t>& sizes :
       std::vector<std::vector<std::size_t>>{{1}, {7, 1, 13, 4096}, {997, 2, 31}, {4096}}) {
    if (sizes.size() == 1 && sizes[0] == 1) {
      // One frame per call over a short excerpt (the FIR is long; keep the run short).
      audio_buffer shortx(2, 30'000);
      for (int c = 0; c < 2; ++c) std::copy(x.channel(c), x.channel(c) + 30'000, shortx.channel(c));
      EXPECT_TRUE(bit_equal(render_blocks(p, shortx, sizes), render(p, shortx, 4096)));
      continue;
    }
    EXPECT_TRUE(bit_equal(render_blocks(p, x, sizes), whole)) << "first block " << sizes[0];
  }
}

}  // namespace
}  // namespace lathe
