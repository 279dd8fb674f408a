// Multiband dynamics. References: the delayed input (neutral dynamics), the GMR 2012 static gain
// (restated here) for a tone that sits in one band, and tone amplitudes measured by projection
// onto each tone over a whole number of its periods (exact separation of the tones).
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdio>
#include <random>

#include "lathe/multiband.hpp"
#include "support/blocks.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<multiband_stage>);

constexpr double fs = 48'000.0;
// Neutral multiband vs the delayed input: the crossover's own tolerance (worst sample error re
// the input's peak).
constexpr double neutral_sample_error_db = -100.0;
// Tones in bands that are not compressed keep their level.
constexpr double untouched_band_tolerance_db = 0.05;
// The compressed tone vs the static curve (settled, exact-peak detection).
constexpr double compressed_band_tolerance_db = 0.1;

double db(double x) {
  return 20.0 * std::log10(x);
}

const std::vector<double> crossovers = {200.0, 800.0, 3'200.0};

compressor_params band_comp(double ratio, double lookahead_ms) {
  compressor_params p;
  p.threshold_db = -30.0, p.ratio = ratio, p.knee_db = 0.0, p.attack_ms = 5.0, p.release_ms = 50.0;
  p.lookahead_ms = lookahead_ms;
  return p;
}

using test::run_blocks;

// Amplitude of the f_hz component over frames [from, from + frames) (a whole number of periods).
double tone_amplitude(const audio_buffer& b, int c, double f_hz, std::size_t from, std::size_t frames) {
  std::complex<double> acc = 0.0;
  for (std::size_t i = from; i < from + frames; ++i)
    acc += static_cast<double>(b.channel(c)[i]) * std::polar(1.0, -2.0 * M_PI * f_hz * static_cast<double>(i) / fs);
  return 2.0 * std::abs(acc) / static_cast<double>(frames);
}

TEST(multiband, NeutralDynamicsGiveTheDelayedInput) {
  multiband_params p;
  p.crossover.crossover_hz = crossovers;
  // Different lookaheads per band exercise the band alignment; 0.5 dry/wet the parallel path.
  p.bands = {band_comp(1.0, 0.0), band_comp(1.0, 2.0), band_comp(1.0, 5.0), band_comp(1.0, 1.0)};
  p.dry_wet = 0.5;
  multiband_stage s(p);
  s.prepare({fs, 2, 1024});
  linear_phase_crossover x(p.crossover);
  x.prepare({fs, 2, 1024});
  ASSERT_EQ(s.latency_frames(), x.latency_frames() + 240);
  const audio_buffer in = test::white_noise(-12.0, 1.0, fs, 2, 4);
  audio_buffer out = in;
  run_aligned(s, out, 1024);
  double peak = 0.0, worst = 0.0;
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < in.frames(); ++i) {
      peak = std::max(peak, static_cast<double>(std::abs(in.channel(c)[i])));
      worst = std::max(worst, static_cast<double>(std::abs(out.channel(c)[i] - in.channel(c)[i])));
    }
  EXPECT_LE(db(worst / peak), neutral_sample_error_db);
  std::printf("neutral multiband: worst sample error %.1f dB re peak\n", db(worst / peak));
}

TEST(multiband, LoudToneIsCompressedOnlyInItsBand) {
  // 1.5 kHz loud in band 3 (800..3200 Hz); quiet tones in the other three bands. At 48 kHz
  // every tone has a whole number of samples per period, so the peak detector reads true peaks
  // and a 24576-frame window holds whole periods of all four.
  const double loud_hz = 1'500.0, loud_db = -6.0, quiet_db = -40.0;
  const std::vector<double> quiet_hz = {93.75, 375.0, 6'000.0};
  const std::size_t n = 96'000, measure = 24'576, fade = 2'400, from = n - fade - measure;
  audio_buffer in(2, n);
  for (std::size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / fs;
    double v = std::pow(10.0, loud_db / 20.0) * std::sin(2.0 * M_PI * loud_hz * t);
    for (double f : quiet_hz) v += std::pow(10.0, quiet_db / 20.0) * std::sin(2.0 * M_PI * f * t);
    // Raised-cosine fades: no broadband click at either end for the other bands' detectors
    // (run_aligned also flushes the stage with silence after the end).
    const std::size_t edge = std::min(i, n - 1 - i);
    if (edge < fade) v *= 0.5 - 0.5 * std::cos(M_PI * static_cast<double>(edge) / fade);
    in.channel(0)[i] = in.channel(1)[i] = static_cast<float>(v);
  }
  const double ratio = 4.0;
  const double loud_gain_db = -(loud_db - (-30.0)) * (1.0 - 1.0 / ratio);  // static curve, hard knee
  struct mix {
    double dry_wet, output_gain_db;
  };
  for (const mix m : {mix{1.0, 0.0}, mix{0.5, -2.0}}) {
    multiband_params p;
    p.crossover.crossover_hz = crossovers;
    p.bands = {band_comp(ratio, 0.0), band_comp(ratio, 3.0), band_comp(ratio, 1.0), band_comp(ratio, 0.0)};
    p.dry_wet = m.dry_wet, p.output_gain_db = m.output_gain_db;
    multiband_stage s(p);
    s.prepare({fs, 2, 2048});
    audio_buffer out = in;
    run_aligned(s, out, 2048);
    // Parallel mix of a band gain g: dry_wet g + (1 - dry_wet), then the output gain.
    auto mixed_db = [&](double g_db) {
      return db(m.dry_wet * std::pow(10.0, g_db / 20.0) + (1.0 - m.dry_wet)) + m.output_gain_db;
    };
    for (int c = 0; c < 2; ++c) {
      const double loud =
          db(tone_amplitude(out, c, loud_hz, from, measure) / tone_amplitude(in, c, loud_hz, from, measure));
      EXPECT_NEAR(loud, mixed_db(loud_gain_db), compressed_band_tolerance_db) << "dry_wet " << m.dry_wet;
      for (double f : quiet_hz) {
        const double g = db(tone_amplitude(out, c, f, from, measure) / tone_amplitude(in, c, f, from, measure));
        EXPECT_NEAR(g, mixed_db(0.0), untouched_band_tolerance_db) << f << " Hz, dry_wet " << m.dry_wet;
        if (c == 0)
          std::printf("dry_wet %.1f: %.2f Hz tone %+.4f dB (expected %+.4f)\n", m.dry_wet, f, g, mixed_db(0.0));
      }
      if (c == 0)
        std::printf("dry_wet %.1f: loud tone %+.4f dB (expected %+.4f)\n", m.dry_wet, loud, mixed_db(loud_gain_db));
    }
    for (int k = 0; k < s.band_count(); ++k) {
      const dynamics_stats st = s.band_stats(k);
      if (k == 2) {
        EXPECT_NEAR(st.max_gain_reduction_db, -loud_gain_db, compressed_band_tolerance_db);
      } else {
        EXPECT_EQ(st.max_gain_reduction_db, 0.0) << "band " << k;  // never reached threshold
      }
    }
  }
}

TEST(multiband, BlockSizeDoesNotChangeTheOutput) {
  multiband_params p;
  p.crossover = crossover_params{crossovers, 0, 512};
  p.bands = {band_comp(3.0, 0.0), band_comp(0.5, 2.0), band_comp(6.0, 1.0), band_comp(2.0, 0.0)};
  p.bands[1].link = stereo_link::independent;
  p.bands[2].detector = level_detector::rms;
  p.dry_wet = 0.7;
  const audio_buffer quiet = test::white_noise(-40.0, 0.1, fs, 2, 5);
  const audio_buffer loud = test::white_noise(-6.0, 0.1, fs, 2, 6);
  const audio_buffer in = test::concat({&quiet, &loud, &quiet});
  multiband_stage s(p);
  s.prepare({fs, 2, 2048});
  const audio_buffer whole = run_blocks(s, in, {2048});
  std::mt19937 rng(8);
  std::uniform_int_distribution<std::size_t> pick(1, 2048);
  std::vector<std::size_t> random_sizes = {1, 3, 7, 13, 997, 2'039};
  for (int i = 0; i < 32; ++i) random_sizes.push_back(pick(rng));
  for (const auto& sizes : {std::vector<std::size_t>{1}, std::vector<std::size_t>{127}, random_sizes}) {
    s.reset();
    const audio_buffer split = run_blocks(s, in, sizes);
    for (int c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < in.frames(); ++i)
        ASSERT_EQ(split.channel(c)[i], whole.channel(c)[i]) << "frame " << i;
  }
}

TEST(multiband, FullyDryIsTheDelayedInputExactly) {
  multiband_params p;
  p.crossover.crossover_hz = {500.0};
  p.bands = {band_comp(8.0, 4.0), band_comp(8.0, 0.0)};
  p.dry_wet = 0.0;
  multiband_stage s(p);
  s.prepare({fs, 2, 700});
  const audio_buffer in = test::white_noise(-3.0, 0.3, fs, 2, 2);
  audio_buffer out = in;
  run_aligned(s, out, 700);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < in.frames(); ++i) ASSERT_EQ(out.channel(c)[i], in.channel(c)[i]);
  EXPECT_GT(s.band_stats(0).max_gain_reduction_db, 10.0);  // the wet path did work
}

TEST(multiband, RejectsBadParameters) {
  multiband_params p;
  p.crossover.crossover_hz = crossovers;
  p.bands = {band_comp(2.0, 0.0)};  // one compressor for four bands
  multiband_stage s(p);
  EXPECT_THROW(s.prepare({fs, 2, 1024}), error);
  p.bands.assign(4, band_comp(2.0, 0.0));
  p.dry_wet = 1.5;
  multiband_stage t(p);
  EXPECT_THROW(t.prepare({fs, 2, 1024}), error);
}

}  // namespace
}  // namespace lathe
