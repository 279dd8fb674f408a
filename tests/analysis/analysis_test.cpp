// analyze(): DC offset, clipped runs, sample peak, PLR, and consistency with the loudness meter
// and the true-peak interpolator it is built from; track_analyzer and sample_scanner, its
// streaming forms, against it bit for bit for any block partition.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lathe/analysis.hpp"
#include "lathe/true_peak.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

// DC of sine + constant against the constant: a sine of amplitude A and frequency f adds at most
// A / (pi f T) to the mean over T seconds (0.5 / (pi 997 Hz 5 s) = 3.2e-5).
constexpr double dc_against_constant = 1e-4;
// DC against the float64 mean of the very samples: the same sum, so only rounding.
constexpr double dc_against_samples = 1e-12;
// A 997 Hz sine's true peak is its amplitude to the interpolator's accuracy (true_peak_test).
constexpr double sine_true_peak_db = 0.01;

double db(double a) {
  return 20.0 * std::log10(a);
}

TEST(Analyze, DcOffsetOfSinePlusKnownDc) {
  const double fs = 48'000.0;
  audio_buffer b = test::sine(997.0, db(0.5), 5.0, fs, 3);
  const double dc[] = {0.01, -0.002, 0.0};
  for (int c = 0; c < 3; ++c)
    for (std::size_t i = 0; i < b.frames(); ++i) b.channel(c)[i] += static_cast<float>(dc[c]);
  const track_analysis a = analyze(b, fs);
  for (int c = 0; c < 3; ++c) {
    long double sum = 0.0L;
    for (std::size_t i = 0; i < b.frames(); ++i) sum += b.channel(c)[i];
    EXPECT_NEAR(a.dc_offset[static_cast<std::size_t>(c)], static_cast<double>(sum / b.frames()), dc_against_samples);
    EXPECT_NEAR(a.dc_offset[static_cast<std::size_t>(c)], dc[c], dc_against_constant);
  }
  // Largest |mean| is channel 0's 0.01: -40 dBFS.
  EXPECT_NEAR(a.dc_offset_dbfs, -40.0, db(1.0 + dc_against_constant / 0.01));
}

TEST(Analyze, ClippedRunsAreFoundWithStartLengthAndTime) {
  const double fs = 44'100.0;
  audio_buffer b = test::white_noise(-30.0, 2.0, fs, 2, 4);  // never near full scale
  const std::size_t end = b.frames();
  const float just_below = std::nextafter(clip_level, 0.0f);
  auto fill = [&](int c, std::size_t start, std::size_t n, float v) {
    for (std::size_t i = start; i < start + n; ++i) b.channel(c)[i] = v;
  };
  fill(0, 1000, 5, 1.0f);          // run
  fill(0, 5000, 3, -clip_level);   // run, exactly at the threshold, negative
  fill(0, 9000, 2, 1.0f);          // too short: a peak, not clipping
  fill(0, 12'000, 6, just_below);  // below the threshold
  fill(1, 20'000, 10, 0.99999f);   // run
  fill(1, end - 4, 4, -1.0f);      // run that ends the track
  const track_analysis a = analyze(b, fs);
  const std::vector<clip_run> expected = {{0, 1000, 5, 1000 / fs},
                                          {0, 5000, 3, 5000 / fs},
                                          {1, 20'000, 10, 20'000 / fs},
                                          {1, end - 4, 4, static_cast<double>(end - 4) / fs}};
  ASSERT_EQ(a.clip_runs.size(), expected.size());
  for (std::size_t k = 0; k < expected.size(); ++k) {
    EXPECT_EQ(a.clip_runs[k].channel, expected[k].channel) << k;
    EXPECT_EQ(a.clip_runs[k].start_frame, expected[k].start_frame) << k;
    EXPECT_EQ(a.clip_runs[k].length_frames, expected[k].length_frames) << k;
    EXPECT_DOUBLE_EQ(a.clip_runs[k].start_s, expected[k].start_s) << k;
  }
  EXPECT_EQ(a.clipped_samples, 5u + 3u + 10u + 4u);
  EXPECT_EQ(a.sample_peak_dbfs, 0.0);

  const track_analysis clean = analyze(test::white_noise(-12.0, 2.0, fs, 2, 5), fs);
  EXPECT_TRUE(clean.clip_runs.empty());
  EXPECT_EQ(clean.clipped_samples, 0u);
}

TEST(Analyze, HardClippedSineHasOneRunPerHalfPeriod) {
  // 2 sin(2 pi f t) clipped to +-1 at f = fs / 480: |x| >= clip_level wherever |sin| >= clip_level / 2,
  // i.e. phase in [asin(c/2), pi - asin(c/2)] of each half period; 100 half periods in 1 s.
  const double fs = 48'000.0, f = 100.0;
  audio_buffer b(1, 48'000);
  for (std::size_t i = 0; i < b.frames(); ++i) {
    const double v = 2.0 * std::sin(2.0 * M_PI * f * static_cast<double>(i) / fs + 0.01);
    b.channel(0)[i] = static_cast<float>(std::clamp(v, -1.0, 1.0));
  }
  const track_analysis a = analyze(b, fs);
  ASSERT_EQ(a.clip_runs.size(), 200u);
  const double half_period = fs / (2.0 * f);  // 240 samples
  const double clipped_fraction = 1.0 - 2.0 * std::asin(static_cast<double>(clip_level) / 2.0) / M_PI;
  for (std::size_t k = 0; k < a.clip_runs.size(); ++k) {
    const double expected_len = clipped_fraction * half_period;  // 160 samples
    EXPECT_NEAR(static_cast<double>(a.clip_runs[k].length_frames), expected_len, 1.0) << k;
    const double expected_start = (static_cast<double>(k) + 1.0 / 6.0) * half_period - 0.01 / (2.0 * M_PI * f) * fs;
    EXPECT_NEAR(static_cast<double>(a.clip_runs[k].start_frame), expected_start, 1.0) << k;
  }
}

TEST(Analyze, SamplePeakIsExact) {
  audio_buffer b = test::white_noise(-30.0, 1.0, 48'000.0, 2, 6);
  b.channel(1)[12'345] = -0.8765f;
  const track_analysis a = analyze(b, 48'000.0);
  EXPECT_EQ(a.sample_peak_dbfs, 20.0 * std::log10(static_cast<double>(0.8765f)));
  EXPECT_GE(a.true_peak_dbtp, a.sample_peak_dbfs);
}

TEST(Analyze, MatchesItsBuildingBlocksAndPlrIsTheirDifference) {
  for (double fs : {44'100.0, 96'000.0}) {
    audio_buffer b = test::white_noise(-18.0, 6.0, fs, 2, 8);
    const audio_buffer tone = test::sine(3001.0, -6.0, 6.0, fs, 2);
    for (int c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < b.frames(); ++i) b.channel(c)[i] += tone.channel(c)[i] * (c == 0 ? 1.0f : 0.5f);
    const track_analysis a = analyze(b, fs);
    loudness_meter m;
    m.prepare(fs, 2);
    m.process(b.view());
    EXPECT_EQ(a.integrated_lufs, m.integrated_lufs());
    EXPECT_EQ(a.loudness_range_lu, m.loudness_range_lu());
    EXPECT_EQ(a.max_momentary_lufs, m.max_momentary_lufs());
    EXPECT_EQ(a.max_short_term_lufs, m.max_short_term_lufs());
    EXPECT_EQ(a.blocks.momentary_energy, m.blocks().momentary_energy);
    EXPECT_EQ(a.blocks.short_term_energy, m.blocks().short_term_energy);
    const float tp = std::max(true_peak_of(b.channel(0), b.frames(), fs), true_peak_of(b.channel(1), b.frames(), fs));
    EXPECT_EQ(a.true_peak_dbtp, db(tp));
    EXPECT_EQ(a.plr_db, a.true_peak_dbtp - a.integrated_lufs);
    EXPECT_EQ(a.sample_rate_hz, fs);
    EXPECT_EQ(a.channels, 2);
    EXPECT_EQ(a.frames, b.frames());
    EXPECT_DOUBLE_EQ(a.duration_s, 6.0);
  }
}

TEST(Analyze, SinePlrFromTheory) {
  // Stereo 997 Hz sine at -10 dBFS: true peak -10 dBTP; loudness -10 dBFS + K-weighting gain - 0.691
  // + 3.01 (two channels) - 3.01 (mean square of a sine) = -10 + 10 log10 |H|^2 - 0.691.
  const double fs = 48'000.0;
  const track_analysis a = analyze(test::sine(997.0, -10.0, 10.0, fs), fs);
  const k_weighting_coeffs k = design_k_weighting(fs);
  const double loudness =
      -10.0 + 10.0 * std::log10(std::norm(k.shelf.response(997.0, fs) * k.highpass.response(997.0, fs))) - 0.691;
  EXPECT_NEAR(a.true_peak_dbtp, -10.0, sine_true_peak_db);
  EXPECT_NEAR(a.integrated_lufs, loudness, 0.002);
  EXPECT_NEAR(a.plr_db, -10.0 - loudness, sine_true_peak_db + 0.002);
}

TEST(Analyze, SilenceAndEmpty) {
  for (std::size_t frames : {std::size_t{0}, std::size_t{48'000 * 4}}) {
    const track_analysis a = analyze(audio_buffer(2, frames), 48'000.0);
    EXPECT_EQ(a.integrated_lufs, silence_lufs);
    EXPECT_EQ(a.loudness_range_lu, 0.0);
    EXPECT_EQ(a.max_momentary_lufs, silence_lufs);
    EXPECT_EQ(a.true_peak_dbtp, -std::numeric_limits<double>::infinity());
    EXPECT_EQ(a.sample_peak_dbfs, -std::numeric_limits<double>::infinity());
    EXPECT_EQ(a.dc_offset_dbfs, -std::numeric_limits<double>::infinity());
    EXPECT_EQ(a.plr_db, 0.0);
    EXPECT_TRUE(a.clip_runs.empty());
  }
}

TEST(Analyze, FiveChannelsUseTheSurroundWeights) {
  const double fs = 48'000.0;
  audio_buffer b(5, static_cast<std::size_t>(4 * fs));
  const audio_buffer tone = test::sine(1000.0, -20.0, 4.0, fs, 1);
  for (int c = 0; c < 5; ++c) std::copy(tone.channel(0), tone.channel(0) + tone.frames(), b.channel(c));
  const track_analysis a = analyze(b, fs);
  loudness_meter m;
  const double weights[] = {1.0, 1.0, 1.0, 1.41, 1.41};
  m.prepare(fs, 5, weights);
  m.process(b.view());
  EXPECT_EQ(a.integrated_lufs, m.integrated_lufs());
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

TEST(Analyze, ScanPlusCompletionEqualsTheWholeAnalysis) {
  // What the GPU path assembles: the CPU sample scan completed with loudness blocks and a true
  // peak measured elsewhere (here by the CPU meter and interpolator themselves).
  audio_buffer a = test::white_noise(-20.0, 6.0, 48'000.0, 2, 3);
  for (std::size_t i = 0; i < a.frames(); ++i) a.channel(0)[i] += 0.01f;  // some DC
  for (std::size_t i = 1000; i < 1010; ++i) a.channel(1)[i] = 1.0f;       // a clipped run
  const track_analysis whole = analyze(a, 48'000.0);
  track_analysis parts = scan_samples(a, 48'000.0);
  EXPECT_EQ(parts.clip_runs.size(), whole.clip_runs.size());
  EXPECT_EQ(parts.dc_offset, whole.dc_offset);
  EXPECT_EQ(parts.sample_peak_dbfs, whole.sample_peak_dbfs);
  float tp = 0.0f;
  for (int c = 0; c < 2; ++c) tp = std::max(tp, true_peak_of(a.channel(c), a.frames(), 48'000.0));
  complete_analysis(parts, whole.blocks, tp);
  EXPECT_EQ(parts.integrated_lufs, whole.integrated_lufs);
  EXPECT_EQ(parts.loudness_range_lu, whole.loudness_range_lu);
  EXPECT_EQ(parts.true_peak_dbtp, whole.true_peak_dbtp);
  EXPECT_EQ(parts.plr_db, whole.plr_db);
  // Maxima from 100 ms steps never exceed the 10 ms evaluation and stay within its grid bound.
  constexpr double step_grid_bound_lu = 0.6;
  EXPECT_LE(parts.max_momentary_lufs, whole.max_momentary_lufs + 1e-9);
  EXPECT_NEAR(parts.max_momentary_lufs, whole.max_momentary_lufs, step_grid_bound_lu);
  EXPECT_LE(parts.max_short_term_lufs, whole.max_short_term_lufs + 1e-9);
  EXPECT_NEAR(parts.max_short_term_lufs, whole.max_short_term_lufs, step_grid_bound_lu);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// Block sizes for the streaming tests: 1, a prime, 10 ms at 48 kHz, a power of two, a prime
// above the meters' 65536-frame chunks, and a random partition (its sizes cycled).
std::vector<std::vector<std::size_t>> stream_partitions() {
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::size_t> size(1, 9000);
  std::vector<std::size_t> random(97);
  for (std::size_t& s : random) s = size(rng);
  return {{1}, {7}, {480}, {4096}, {65'537}, random};
}

// A stereo track with what the scan looks for at awkward places: noise of changing level, DC on
// the left, digital silence gaps, and clipped runs straddling multiples of the block sizes
// (7, 480, 4096, 65536, 65537) and the track's end.
audio_buffer streaming_track(double fs) {
  audio_buffer b = test::white_noise(-18.0, 8.0, fs, 2, 31);
  for (std::size_t i = 0; i < b.frames(); ++i) {
    const float swell = 0.25f + 0.75f * static_cast<float>(i % 100'000) / 100'000.0f;
    b.channel(0)[i] = b.channel(0)[i] * swell + 0.01f;
    b.channel(1)[i] *= swell;
  }
  for (std::size_t i = 150'000; i < 170'000; ++i) b.channel(0)[i] = b.channel(1)[i] = 0.0f;
  for (std::size_t i = 250'000; i < 251'111; ++i) b.channel(1)[i] = 0.0f;
  auto clip = [&](int c, std::size_t start, std::size_t n, float v) {
    for (std::size_t i = start; i < start + n; ++i) b.channel(c)[i] = v;
  };
  clip(0, 475, 9, 1.0f);
  clip(0, 4090, 12, -1.0f);
  clip(1, 4094, 3, 1.0f);
  clip(0, 65'530, 10, 1.0f);
  clip(1, 65'535, 4, -1.0f);
  clip(1, 131'070, 5, 1.0f);
  clip(0, 200'000, 2, 1.0f);  // too short to count, across 7 * 28'571 + 3
  clip(0, b.frames() - 3, 3, -1.0f);
  return b;
}

template <class Analyzer>
Analyzer& feed(Analyzer& a, const audio_buffer& in, const std::vector<std::size_t>& sizes) {
  std::size_t pos = 0;
  for (std::size_t k = 0; pos < in.frames(); ++k) {
    const std::size_t n = std::min(sizes[k % sizes.size()], in.frames() - pos);
    a.add(in.view(pos, n));
    pos += n;
  }
  return a;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

void expect_bitwise_equal(const track_analysis& got, const track_analysis& want) {
  EXPECT_EQ(got.sample_rate_hz, want.sample_rate_hz);
  EXPECT_EQ(got.channels, want.channels);
  EXPECT_EQ(got.frames, want.frames);
  EXPECT_EQ(got.duration_s, want.duration_s);
  EXPECT_EQ(got.integrated_lufs, want.integrated_lufs);
  EXPECT_EQ(got.loudness_range_lu, want.loudness_range_lu);
  EXPECT_EQ(got.max_momentary_lufs, want.max_momentary_lufs);
  EXPECT_EQ(got.max_short_term_lufs, want.max_short_term_lufs);
  EXPECT_EQ(got.true_peak_dbtp, want.true_peak_dbtp);
  EXPECT_EQ(got.sample_peak_dbfs, want.sample_peak_dbfs);
  EXPECT_EQ(got.plr_db, want.plr_db);
  EXPECT_EQ(std::memcmp(got.dc_offset.data(), want.dc_offset.data(), sizeof got.dc_offset), 0);
  EXPECT_EQ(got.dc_offset_dbfs, want.dc_offset_dbfs);
  ASSERT_EQ(got.clip_runs.size(), want.clip_runs.size());
  for (std::size_t k = 0; k < want.clip_runs.size(); ++k) {
    EXPECT_EQ(got.clip_runs[k].channel, want.clip_runs[k].channel) << k;
    EXPECT_EQ(got.clip_runs[k].start_frame, want.clip_runs[k].start_frame) << k;
    EXPECT_EQ(got.clip_runs[k].length_frames, want.clip_runs[k].length_frames) << k;
    EXPECT_EQ(got.clip_runs[k].start_s, want.clip_runs[k].start_s) << k;
  }
  EXPECT_EQ(got.clipped_samples, want.clipped_samples);
  EXPECT_TRUE(same_bits(got.blocks.momentary_energy, want.blocks.momentary_energy));
  EXPECT_TRUE(same_bits(got.blocks.short_term_energy, want.blocks.short_term_energy));
}

TEST(TrackAnalyzer, AnyBlockPartitionGivesTheWholeBufferAnalysisBitForBit) {
  const double fs = 48'000.0;
  const audio_buffer b = streaming_track(fs);
  const track_analysis whole = analyze(b, fs);
  // The track exercises what it should: runs on both channels, across blocks, one at the end.
  ASSERT_EQ(whole.clip_runs.size(), 7u);
  ASSERT_EQ(whole.clip_runs.back().channel, 1);
  ASSERT_EQ(whole.clip_runs[3].start_frame + whole.clip_runs[3].length_frames, b.frames());
  ASSERT_GT(whole.loudness_range_lu, 0.0);
  for (const std::vector<std::size_t>& sizes : stream_partitions()) {
    SCOPED_TRACE(sizes.size() == 1 ? std::to_string(sizes[0]) : "random");
    track_analyzer a(fs, b.channels());
    expect_bitwise_equal(feed(a, b, sizes).finish(), whole);
  }
}

TEST(TrackAnalyzer, MonoAndFiveChannelsShortAndEmptyTracks) {
  const double fs = 44'100.0;
  for (int channels : {1, 5}) {
    for (std::size_t frames : {std::size_t{0}, std::size_t{5}, std::size_t{30'000}}) {
      SCOPED_TRACE(std::to_string(channels) + " channels, " + std::to_string(frames) + " frames");
      audio_buffer b = test::white_noise(-10.0, static_cast<double>(frames) / fs, fs, channels, 32);
      for (std::size_t i = 995; i + 4 <= frames; i += 1000) std::fill_n(b.channel(channels - 1) + i, 4, 1.0f);
      const track_analysis whole = analyze(b, fs);
      ASSERT_EQ(whole.clip_runs.size(), frames / 1000);
      for (const std::vector<std::size_t>& sizes : {std::vector<std::size_t>{1}, std::vector<std::size_t>{7}}) {
        track_analyzer a(fs, channels);
        expect_bitwise_equal(feed(a, b, sizes).finish(), whole);
      }
    }
  }
}

TEST(SampleScanner, AnyBlockPartitionGivesTheWholeBufferScanBitForBit) {
  const double fs = 48'000.0;
  const audio_buffer b = streaming_track(fs);
  const track_analysis whole = scan_samples(b, fs);
  ASSERT_EQ(whole.clip_runs.size(), 7u);
  for (const std::vector<std::size_t>& sizes : stream_partitions()) {
    SCOPED_TRACE(sizes.size() == 1 ? std::to_string(sizes[0]) : "random");
    sample_scanner s(fs, b.channels());
    expect_bitwise_equal(feed(s, b, sizes).finish(), whole);
  }
}

}  // namespace
}  // namespace lathe
