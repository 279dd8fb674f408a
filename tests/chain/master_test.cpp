// The per-track chain: normalization with the limiter, linear mode, silence, dither placement.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>

#include "lathe/gain_search.hpp"
#include "lathe/master.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

constexpr double loudness_tolerance_lu = 0.1;

delivery_profile base_profile() {
  delivery_profile p;
  p.name = "t";
  p.target_lufs = -14.0;
  p.ceiling_dbtp = -1.0;
  p.bit_depth = 24;
  p.highpass.cutoff_hz = 20.0;
  return p;
}

// High crest factor: a noise bed near -21 LUFS with 1 ms clicks at -6 dBFS twice a second, so
// reaching -14 LUFS needs about +7 dB of gain and the clicks must be limited.
audio_buffer peaky(double fs) {
  audio_buffer a = test::white_noise(-26.0, 10.0, fs, 2, 7);
  const auto period = static_cast<std::size_t>(fs / 2), click = static_cast<std::size_t>(fs / 1000);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < a.frames(); ++i)
      if (i % period < click) a.channel(c)[i] += (i % 2 == 0 ? 0.5f : -0.5f);
  return a;
}

TEST(RenderMaster, LimitModeReachesTheTargetUnderTheCeiling) {
  const double fs = 44'100.0;
  const audio_buffer in = peaky(fs);
  const delivery_profile p = base_profile();
  const rendered_master m = render_master(in, fs, p, p.target_lufs, 1);
  EXPECT_NEAR(m.measured.integrated_lufs, p.target_lufs, loudness_tolerance_lu);
  EXPECT_LE(m.measured.true_peak_dbtp, p.ceiling_dbtp);
  EXPECT_TRUE(m.normalization.limited);
  EXPECT_GT(m.normalization.limiter.max_gain_reduction_db, 0.0);
  EXPECT_TRUE(m.passed);
  EXPECT_EQ(m.int_samples.size(), 2 * in.frames());
}

// Limit mode predicts the loudness of each trial gain from the source's K-weighted energy and
// delivers once the prediction reaches the target; the delivered master is measured exactly, and
// when that measurement misses by more than the search's tolerance the gain is searched again
// with measured renders and delivered once more. Either way the master lands within
// gain_search::converged_lu.
TEST(RenderMaster, LimitModeDeliversAtThePredictedGainAndCorrectsAMiss) {
  const double fs = 48'000.0;
  // Clicks over noise (the prediction holds), and the same with a 25 Hz tone under the
  // K-weighting's 38 Hz high-pass: heavy limiting moves the tone's energy into sidebands the
  // filter passes, so at -10 LUFS the prediction misses by about 0.6 LU and is corrected.
  const audio_buffer clicks = peaky(fs);
  audio_buffer bass = peaky(fs);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < bass.frames(); ++i)
      bass.channel(c)[i] += 0.4f * static_cast<float>(std::sin(2.0 * M_PI * 25.0 * static_cast<double>(i) / fs));
  int delivered_once = 0, corrected = 0;
  for (const double target : {-14.0, -10.0}) {
    for (const audio_buffer* in : {&clicks, static_cast<const audio_buffer*>(&bass)}) {
      delivery_profile p = base_profile();
      p.target_lufs = target;
      p.limiter.max_reduction_db = 40.0;  // -10 LUFS needs about 28 dB on the bass signal
      const rendered_master m = render_master(*in, fs, p, target, 1);
      const normalization_result& n = m.normalization;
      EXPECT_LE(std::abs(m.measured.integrated_lufs - target), gain_search::converged_lu) << target;
      EXPECT_LE(m.measured.true_peak_dbtp, p.ceiling_dbtp) << target;
      EXPECT_TRUE(n.limited) << target;
      EXPECT_GE(n.predictions, 1) << target;
      EXPECT_EQ(n.passes, 1 + n.iterations) << target;  // pass 1, then each measured render
      if (n.iterations == 1) ++delivered_once;
      if (n.iterations > 1) ++corrected;
    }
  }
  EXPECT_GE(delivered_once, 3);
  EXPECT_GE(corrected, 1);
}

// Where the limiter cannot raise the loudness (a 25 Hz tone under the K-weighting's high-pass
// dominates the peaks), the gain search would run away: without the bound it took the gain past
// +200 dB, where the master overflowed and measured -inf LUFS. With it, the limiter cuts the loudest
// peak by exactly max_reduction_db, the master stops short, measured and under the ceiling, and
// fails its check saying why; a larger bound reaches further.
TEST(RenderMaster, LimitModeStopsAtTheLimitingBoundAndSaysSo) {
  const double fs = 48'000.0;
  audio_buffer bass = test::white_noise(-26.0, 10.0, fs, 2, 7);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < bass.frames(); ++i)
      bass.channel(c)[i] += 0.4f * static_cast<float>(std::sin(2.0 * M_PI * 25.0 * static_cast<double>(i) / fs));
  delivery_profile p = base_profile();
  p.target_lufs = -6.0;
  double reached = 0.0;
  for (const double bound : {12.0, 18.0}) {
    p.limiter.max_reduction_db = bound;
    const rendered_master m = render_master(bass, fs, p, p.target_lufs, 1);
    const normalization_result& n = m.normalization;
    EXPECT_NEAR(n.limiter.max_gain_reduction_db, bound, 0.05) << bound;  // the report rounds to 0.01 dB
    EXPECT_GT(m.measured.integrated_lufs, -30.0) << bound;
    EXPECT_LE(m.measured.true_peak_dbtp, p.ceiling_dbtp) << bound;
    EXPECT_GT(n.shortfall_lu, 1.0) << bound;
    EXPECT_LE(n.passes, 3) << bound;  // pass 1 and the delivery; no measured search at the bound
    EXPECT_FALSE(m.passed) << bound;
    ASSERT_FALSE(m.failures.empty()) << bound;
    EXPECT_NE(m.failures.front().find("max_reduction_db"), std::string::npos) << m.failures.front();
    if (bound > 12.0) EXPECT_GT(m.measured.integrated_lufs, reached + 0.1);
    reached = m.measured.integrated_lufs;
  }
}

TEST(RenderMaster, LinearModeNeverLimitsAndSaysHowFarShortItStopped) {
  const double fs = 48'000.0;
  const audio_buffer in = peaky(fs);
  delivery_profile p = base_profile();
  p.normalization = normalization_mode::linear;
  p.bit_depth = 32;  // float: no dither, so the output is exactly a gain of the input
  const rendered_master m = render_master(in, fs, p, p.target_lufs, 1);
  EXPECT_FALSE(m.normalization.limited);
  EXPECT_GT(m.normalization.shortfall_lu, 1.0);
  EXPECT_FALSE(m.passed);
  ASSERT_FALSE(m.failures.empty());
  EXPECT_NE(m.failures.front().find("short of the target"), std::string::npos);
  EXPECT_LE(m.measured.true_peak_dbtp, p.ceiling_dbtp);
  // Pure gain: every output sample is the input times one constant.
  const float g = static_cast<float>(std::pow(10.0, m.normalization.gain_db / 20.0));
  for (std::size_t i = 0; i < in.frames(); i += 997) ASSERT_EQ(m.float_samples[2 * i], in.channel(0)[i] * g) << i;
  EXPECT_NEAR(m.measured.integrated_lufs + m.normalization.shortfall_lu, p.target_lufs, 0.01);
}

TEST(RenderMaster, LinearModeReachesTheTargetWhenHeadroomAllows) {
  const double fs = 44'100.0;
  const audio_buffer in = test::sine(1000.0, -30.0, 5.0, fs);
  delivery_profile p = base_profile();
  p.normalization = normalization_mode::linear;
  p.target_lufs = -23.0;
  const rendered_master m = render_master(in, fs, p, p.target_lufs, 1);
  EXPECT_NEAR(m.measured.integrated_lufs, -23.0, loudness_tolerance_lu);
  EXPECT_EQ(m.normalization.shortfall_lu, 0.0);
  EXPECT_TRUE(m.passed);
}

TEST(RenderMaster, SilenceIsReportedNotNormalized) {
  const audio_buffer in(2, 44'100 * 3);
  const delivery_profile p = base_profile();
  const rendered_master m = render_master(in, 44'100.0, p, p.target_lufs, 1);
  EXPECT_FALSE(m.passed);
  EXPECT_NE(m.failures.front().find("silent"), std::string::npos);
}

TEST(RenderMaster, ResamplesToTheProfileRateAndDeterministically) {
  const double fs = 44'100.0;
  const audio_buffer in = peaky(fs);
  delivery_profile p = base_profile();
  p.sample_rate_hz = 48'000.0;
  p.bit_depth = 16;
  const rendered_master a = render_master(in, fs, p, p.target_lufs, 42);
  const rendered_master b = render_master(in, fs, p, p.target_lufs, 42);
  EXPECT_EQ(a.measured.sample_rate_hz, 48'000.0);
  EXPECT_EQ(a.int_samples.size(), 2 * static_cast<std::size_t>(std::llround(in.frames() * 48'000.0 / fs)));
  EXPECT_EQ(a.int_samples, b.int_samples);
  const rendered_master c = render_master(in, fs, p, p.target_lufs, 43);
  EXPECT_NE(a.int_samples, c.int_samples);  // the seed drives the dither
  EXPECT_NEAR(a.measured.integrated_lufs, p.target_lufs, loudness_tolerance_lu);
}

TEST(RenderMaster, ExtremeSourceRatesLandOnTarget) {
  // 8 and 384 kHz are the ends of the accepted range; an EQ band above the source's Nyquist is
  // left out rather than failing the track.
  for (const double fs : {8'000.0, 384'000.0}) {
    SCOPED_TRACE(fs);
    const audio_buffer in = peaky(fs);
    delivery_profile p = base_profile();
    p.eq.bands.push_back({eq_band_type::high_shelf, 10'000.0, 1.0, 0.707});
    const audio_buffer pre = apply_prechain(in, fs, p);
    for (const std::optional<double> rate : {std::optional<double>{}, std::optional<double>{44'100.0}}) {
      p.sample_rate_hz = rate;
      const rendered_master m = render_master(pre, fs, p, p.target_lufs, 5);
      EXPECT_NEAR(m.measured.integrated_lufs, p.target_lufs, loudness_tolerance_lu);
      EXPECT_LE(m.measured.true_peak_dbtp, p.ceiling_dbtp);
      EXPECT_EQ(m.measured.sample_rate_hz, rate.value_or(fs));
    }
  }
}

// The streamed render with its spills in files gives the whole-buffer render's master: the same
// delivered samples, figures and pass counts, in every normalization mode, bit depth and rate
// change, and each delivery attempt's blocks add up to the master's length.
TEST(RenderMaster, StreamedOverFileSpillsEqualsTheWholeBufferRender) {
  struct sink_into final : master_sink {
    std::vector<std::int32_t> ints;
    std::vector<float> floats;
    std::size_t frames = 0, added = 0;
    int attempts = 0;
    void begin(double, int, int, std::size_t n) override {
      ints.clear();
      floats.clear();
      frames = n;
      added = 0;
      ++attempts;
    }
    void add(const_block_view d, std::span<const std::int32_t> i, std::span<const float> f) override {
      ints.insert(ints.end(), i.begin(), i.end());
      floats.insert(floats.end(), f.begin(), f.end());
      added += d.frames;
    }
  };
  const double fs = 44'100.0;
  const audio_buffer loud = peaky(fs);
  const audio_buffer silent(2, 30'000);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "lathe-master-spill";
  for (const normalization_mode mode : {normalization_mode::limit, normalization_mode::linear}) {
    for (const int bits : {16, 24, 32}) {
      for (const std::optional<double> rate : {std::optional<double>{}, std::optional<double>{48'000.0}}) {
        for (const audio_buffer* in : {&loud, &silent}) {
          delivery_profile p = base_profile();
          p.normalization = mode;
          p.bit_depth = bits;
          p.shaping = bits == 16 ? noise_shaping::f_weighted : noise_shaping::none;
          p.sample_rate_hz = rate;
          SCOPED_TRACE(testing::Message() << (mode == normalization_mode::limit ? "limit " : "linear ") << bits
                                          << "-bit " << rate.value_or(fs) << (in == &silent ? " silent" : ""));
          const rendered_master ref = render_master(*in, fs, p, p.target_lufs, 9);
          audio_spill pre(2, dir);
          pre.append(in->view());
          sink_into sink;
          const rendered_master got = render_master(pre, fs, p, p.target_lufs, 9, sink, dir);
          EXPECT_EQ(sink.ints, ref.int_samples);
          EXPECT_EQ(sink.floats.size(), ref.float_samples.size());
          EXPECT_EQ(std::memcmp(sink.floats.data(), ref.float_samples.data(), sink.floats.size() * sizeof(float)), 0);
          EXPECT_TRUE(got.int_samples.empty() && got.float_samples.empty());
          EXPECT_EQ(sink.added, got.measured.frames);
          EXPECT_EQ(got.measured.integrated_lufs, ref.measured.integrated_lufs);
          EXPECT_EQ(got.measured.true_peak_dbtp, ref.measured.true_peak_dbtp);
          EXPECT_EQ(got.normalization.gain_db, ref.normalization.gain_db);
          EXPECT_EQ(got.normalization.iterations, ref.normalization.iterations);
          EXPECT_EQ(got.normalization.passes, ref.normalization.passes);
          EXPECT_EQ(got.failures, ref.failures);
          // One resampling/detection pass, then the measured renders: in limit mode every delivery
          // and any measured trial of the gain search (iterations), otherwise the deliveries.
          const int attempts = sink.attempts;
          EXPECT_GE(attempts, 1);
          const bool limit = mode == normalization_mode::limit && in == &loud;
          if (limit) EXPECT_GE(got.normalization.iterations, attempts);
          EXPECT_EQ(got.normalization.passes, 1 + (limit ? got.normalization.iterations : attempts));
        }
      }
    }
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(Prechain, KeysDifferWhenSettingsDiffer) {
  delivery_profile a = base_profile(), b = base_profile();
  EXPECT_EQ(prechain_key(a), prechain_key(b));
  b.eq.bands.push_back({eq_band_type::bell, 100.0, 2.0, 1.0});
  EXPECT_NE(prechain_key(a), prechain_key(b));
  b = base_profile();
  b.target_lufs = -23.0;  // loudness is not part of the pre-chain
  EXPECT_EQ(prechain_key(a), prechain_key(b));
}

}  // namespace
}  // namespace lathe
