// Tonal analysis. References: analytic sine and multi-tone powers, noise synthesized in float64
// in the frequency domain whose per-band power is summed exactly from its own spectral lines,
// and analytic tilts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lathe/eq.hpp"
#include "lathe/error.hpp"
#include "lathe/fft64.hpp"
#include "lathe/profile.hpp"
#include "lathe/tonal.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

// A 0 dBFS sine at a band centre reads 0 dB in its band.
constexpr double sine_band_tolerance_db = 0.1;
// ... and at least this far below in the bands two away.
constexpr double sine_rejection_db = 40.0;
// Measured vs the synthesized noise's own per-band power (Hann smoothing of a 1/f density over
// +-2 bins, and the band edges, are the error).
constexpr double band_level_tolerance_db = 0.25;
constexpr double band_level_rms_tolerance_db = 0.5;
constexpr double tilt_tolerance_db_per_octave = 0.2;
// Fine spectrum vs the band level a smooth spectrum implies.
constexpr double fine_tolerance_db = 0.3;
// Independent white noises: side and mid have equal power; each band's estimate has a relative
// standard error of about 1/sqrt(bins x frames / 2), i.e. <= 0.07 dB at 250 Hz for 60 s.
constexpr double independent_width_tolerance_db = 0.3;
// Mono reads far below and L = -R far above this many dB of width.
constexpr double mono_width_margin_db = 100.0;
constexpr double energy_ratio_tolerance_db = 0.1;
constexpr double crest_tolerance_db = 0.05;
constexpr double merge_tolerance_db = 0.1;
constexpr double deviation_tolerance_db = 0.1;
// Auto-EQ of tilted pink toward flat pink: the output's distance from the target.
constexpr double auto_eq_landing_tolerance_db = 0.5;
// Half the amount gives half the correction.
constexpr double amount_linearity_tolerance_db = 0.01;
// The EQ stage's zero-phase amplitude vs eq_target_magnitude with the curve.
constexpr double curve_stage_tolerance_db = 0.1;
// Interpolation of the curve in log frequency vs the analytic line between two points.
constexpr double curve_interp_tolerance_db = 1e-12;
// A saved target is written with 0.01 dB resolution.
constexpr double saved_resolution_db = 0.005;
// Power means computed two ways in float64.
constexpr double power_mean_tolerance_db = 1e-9;

constexpr std::size_t band_40 = 3, band_100 = 7, band_1k = 17, band_10k = 27, band_16k = 29;

// Noise with deterministic line magnitudes and random phases, power density
// ~ f^-1 * 10^(tilt log2(f / 1 kHz) / 10) from 10 Hz up (pink when tilt is 0), 2^log2_n samples,
// periodic, scaled to mean square `ms`. Float64 throughout. line_power[k] is line k's share of
// the mean square (k * fs / n Hz).
struct synth_noise {
  std::vector<double> x, line_power;
  double fs_hz;
};

synth_noise tilted_pink(double tilt_db_per_octave, int log2_n, double fs_hz, double ms, std::uint32_t seed) {
  const std::size_t n = std::size_t{1} << log2_n;
  std::vector<double> re(n, 0.0), im(n, 0.0), line(n / 2 + 1, 0.0);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> phase(0.0, 2.0 * M_PI);
  for (std::size_t k = 1; k < n / 2; ++k) {
    const double f = fs_hz * static_cast<double>(k) / static_cast<double>(n);
    const double ph = phase(rng);
    if (f < 10.0) continue;
    line[k] = std::pow(10.0, tilt_db_per_octave * std::log2(f / 1000.0) / 10.0) / f;
    const double a = std::sqrt(line[k]);
    re[k] = a * std::cos(ph), im[k] = a * std::sin(ph);
    re[n - k] = re[k], im[n - k] = -im[k];
  }
  detail::fft_inverse(re, im);
  double sum = 0.0;
  for (double v : line) sum += v;
  // A real signal with lines X_k, X_{n-k} = conj(X_k): x_j = 2 |X_k| cos(...) per line, mean
  // square 2 |X_k|^2; normalize so the lines' powers sum to ms.
  const double scale = std::sqrt(ms / (2.0 * sum));
  for (double& v : re) v *= scale;
  for (double& v : line) v *= ms / sum;
  return {std::move(re), std::move(line), fs_hz};
}

double band_reference_db(const synth_noise& s, std::size_t band) {
  const double c = third_octave_centres_hz()[band], lo = c * std::exp2(-1.0 / 6.0), hi = c * std::exp2(1.0 / 6.0);
  const double n = static_cast<double>(2 * (s.line_power.size() - 1));
  double p = 0.0;
  for (std::size_t k = 0; k < s.line_power.size(); ++k) {
    const double f = s.fs_hz * static_cast<double>(k) / n;
    if (f >= lo && f < hi) p += s.line_power[k];
  }
  return 10.0 * std::log10(p / 0.5);
}

audio_buffer stereo_of(const std::vector<double>& l, const std::vector<double>& r) {
  audio_buffer b(2, l.size());
  for (std::size_t i = 0; i < l.size(); ++i) {
    b.channel(0)[i] = static_cast<float>(l[i]);
    b.channel(1)[i] = static_cast<float>(r[i]);
  }
  return b;
}

TEST(Tonal, BandTableIsBase2WithIsoNames) {
  const auto& c = third_octave_centres_hz();
  EXPECT_DOUBLE_EQ(c[band_1k], 1000.0);
  EXPECT_DOUBLE_EQ(c[band_16k], 16'000.0);
  for (std::size_t i = 1; i < c.size(); ++i) EXPECT_NEAR(c[i] / c[i - 1], std::exp2(1.0 / 3.0), 1e-12);
  EXPECT_STREQ(third_octave_names()[0], "20");
  EXPECT_STREQ(third_octave_names()[band_1k], "1k");
  EXPECT_STREQ(third_octave_names()[30], "20k");
}

TEST(Tonal, FftSizeResolvesAboutFivePointFourHz) {
  EXPECT_EQ(tonal_fft_size(44'100.0), 8'192u);
  EXPECT_EQ(tonal_fft_size(48'000.0), 8'192u);
  EXPECT_EQ(tonal_fft_size(96'000.0), 16'384u);
  EXPECT_EQ(tonal_fft_size(192'000.0), 32'768u);
}

TEST(Tonal, FullScaleSineReadsZeroDbInItsBand) {
  for (double fs : {44'100.0, 48'000.0}) {
    for (std::size_t band : {band_100, band_1k, band_10k}) {
      const audio_buffer x = test::sine(third_octave_centres_hz()[band], 0.0, 10.0, fs);
      const tonal_analysis a = analyze_tonal(x, fs);
      EXPECT_NEAR(a.mid_db[band], 0.0, sine_band_tolerance_db) << fs << " Hz, band " << band;
      EXPECT_LE(a.mid_db[band - 2], -sine_rejection_db) << fs << " Hz, band " << band;
      EXPECT_LE(a.mid_db[band + 2], -sine_rejection_db) << fs << " Hz, band " << band;
      EXPECT_EQ(a.side_db[band], -std::numeric_limits<double>::infinity());  // L = R exactly
    }
  }
}

TEST(Tonal, PinkNoiseBandsMatchItsOwnSpectrumAndReadTheTilt) {
  constexpr double fs = 44'100.0;
  for (double tilt : {0.0, -3.0, 1.5}) {
    const synth_noise s = tilted_pink(tilt, 21, fs, 0.01, 11);
    const tonal_analysis a = analyze_tonal(stereo_of(s.x, s.x), fs);
    EXPECT_NEAR(a.tilt_db_per_octave, tilt, tilt_tolerance_db_per_octave) << "tilt " << tilt;
    double sq = 0.0;
    int n = 0;
    for (std::size_t b = band_40; b <= band_16k; ++b) {
      const double ref = band_reference_db(s, b);
      EXPECT_NEAR(a.mid_db[b], ref, band_level_tolerance_db) << "tilt " << tilt << ", band " << b;
      sq += (a.mid_db[b] - ref) * (a.mid_db[b] - ref), ++n;
    }
    EXPECT_LE(std::sqrt(sq / n), band_level_rms_tolerance_db) << "tilt " << tilt;
    if (tilt == 0.0) {
      // Pure pink is flat per band: against the analytic (not the synthesized) reference.
      const auto norm = normalized_mid_db(a);
      double flat_sq = 0.0;
      for (std::size_t b = band_40; b <= band_16k; ++b) flat_sq += norm[b] * norm[b];
      EXPECT_LE(std::sqrt(flat_sq / (band_16k - band_40 + 1)), band_level_rms_tolerance_db);
    }
    // The fine spectrum of a smooth spectrum reads what its band would.
    for (std::size_t i = 0; i < a.fine_freq_hz.size(); ++i) {
      const double f = a.fine_freq_hz[i];
      if (f < 40.0 || f > 16'000.0) continue;
      const double expected = band_reference_db(s, band_1k) + tilt * std::log2(f / 1000.0);
      EXPECT_NEAR(a.fine_db[i], expected, fine_tolerance_db) << "tilt " << tilt << ", " << f << " Hz";
    }
  }
}

TEST(Tonal, WidthOfMonoAntiPhaseAndIndependentChannels) {
  constexpr double fs = 44'100.0;
  const synth_noise s = tilted_pink(0.0, 19, fs, 0.01, 3);
  std::vector<double> neg(s.x.size());
  for (std::size_t i = 0; i < neg.size(); ++i) neg[i] = -s.x[i];
  const tonal_analysis mono = analyze_tonal(stereo_of(s.x, s.x), fs);
  const tonal_analysis anti = analyze_tonal(stereo_of(s.x, neg), fs);
  for (std::size_t b = 0; b < third_octave_band_count; ++b) {
    EXPECT_LE(mono.width_db[b], -mono_width_margin_db) << b;
    EXPECT_GE(anti.width_db[b], mono_width_margin_db) << b;
  }
  const tonal_analysis indep = analyze_tonal(test::white_noise(-20.0, 60.0, fs, 2, 5), fs);
  for (std::size_t b = 12; b <= band_16k; ++b) {  // 250 Hz .. 16 kHz
    EXPECT_NEAR(indep.width_db[b], 0.0, independent_width_tolerance_db) << b;
  }
}

TEST(Tonal, LowAndHighEndEnergyOfTones) {
  constexpr double fs = 48'000.0;
  const double a_low = 0.4, a_mid = 0.3, a_high = 0.1;
  const audio_buffer lo = test::sine(60.0, 20.0 * std::log10(a_low), 10.0, fs);
  const audio_buffer mid = test::sine(1'000.0, 20.0 * std::log10(a_mid), 10.0, fs);
  const audio_buffer hi = test::sine(12'000.0, 20.0 * std::log10(a_high), 10.0, fs);
  audio_buffer x(2, lo.frames());
  for (int c = 0; c < 2; ++c) {
    for (std::size_t i = 0; i < x.frames(); ++i)
      x.channel(c)[i] = lo.channel(c)[i] + mid.channel(c)[i] + hi.channel(c)[i];
  }
  const double total = a_low * a_low + a_mid * a_mid + a_high * a_high;
  const tonal_analysis a = analyze_tonal(x, fs);
  EXPECT_NEAR(a.low_end_db, 10.0 * std::log10(a_low * a_low / total), energy_ratio_tolerance_db);
  EXPECT_NEAR(a.high_end_db, 10.0 * std::log10(a_high * a_high / total), energy_ratio_tolerance_db);
}

TEST(Tonal, CrestFactorOfSineIsThreeDb) {
  for (double fs : {44'100.0, 48'000.0}) {
    const tonal_analysis a = analyze_tonal(test::sine(997.0, -6.0, 10.0, fs), fs);
    EXPECT_NEAR(a.crest_factor_db, 10.0 * std::log10(2.0), crest_tolerance_db) << fs;
  }
}

// Merging changes only the frames around the cut. At a cut on the hop grid the two parts' frames
// are the whole's minus the one straddling the cut, so every band agrees; at an arbitrary cut the
// second part is framed differently, and the lowest bands (1-2 bins each) differ by their own
// estimation noise (~0.1 dB over 47 s), so those are compared from 40 Hz up.
TEST(Tonal, MergedHalvesMatchTheWhole) {
  constexpr double fs = 44'100.0;
  const synth_noise s = tilted_pink(-1.0, 21, fs, 0.01, 17);
  const audio_buffer whole = stereo_of(s.x, s.x);
  const tonal_analysis w = analyze_tonal(whole, fs);
  const std::size_t hop = tonal_fft_size(fs) / 2;
  for (const std::size_t cut : {whole.frames() / 2 / hop * hop, whole.frames() / 2 + 1'234}) {
    audio_buffer first(2, cut), second(2, whole.frames() - cut);
    for (int c = 0; c < 2; ++c) {
      std::copy(whole.channel(c), whole.channel(c) + cut, first.channel(c));
      std::copy(whole.channel(c) + cut, whole.channel(c) + whole.frames(), second.channel(c));
    }
    welch_power merged;  // empty: merge adopts the first part
    merged.merge(measure_welch_power(first, fs));
    merged.merge(measure_welch_power(second, fs));
    EXPECT_EQ(merged.samples, whole.frames());
    const tonal_analysis m = summarize(merged, 1.0f);
    for (std::size_t b = cut % hop == 0 ? 0 : band_40; b < third_octave_band_count; ++b) {
      EXPECT_NEAR(m.mid_db[b], w.mid_db[b], merge_tolerance_db) << "cut " << cut << ", band " << b;
    }
  }
}

TEST(Tonal, BandsAboveNyquistAreNaN) {
  constexpr double fs = 8'000.0;
  const synth_noise s = tilted_pink(0.0, 17, fs, 0.01, 2);
  const tonal_analysis a = analyze_tonal(stereo_of(s.x, s.x), fs);
  for (std::size_t b = 0; b < third_octave_band_count; ++b) {
    const bool above = third_octave_centres_hz()[b] * std::exp2(-1.0 / 6.0) >= fs / 2;
    EXPECT_EQ(std::isnan(a.mid_db[b]), above) << b;
    EXPECT_EQ(std::isnan(a.width_db[b]), above) << b;
  }
  EXPECT_TRUE(std::isfinite(a.tilt_db_per_octave));  // over the bands that exist
  EXPECT_LE(a.fine_freq_hz.back(), 0.49 * fs);
}

TEST(Tonal, RepeatedRunsAreBitIdentical) {
  const audio_buffer x = test::white_noise(-12.0, 5.0, 44'100.0, 2, 9);
  const welch_power a = measure_welch_power(x, 44'100.0), b = measure_welch_power(x, 44'100.0);
  ASSERT_EQ(a.mid.size(), b.mid.size());
  EXPECT_EQ(std::memcmp(a.mid.data(), b.mid.data(), a.mid.size() * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(a.side.data(), b.side.data(), a.side.size() * sizeof(double)), 0);
}

// Block sizes for the streaming tests: 1, a prime, 10 ms at 48 kHz, a power of two, a prime, and
// random sizes (cycled).
std::vector<std::vector<std::size_t>> stream_partitions() {
  std::mt19937 rng(12);
  std::uniform_int_distribution<std::size_t> size(1, 20'000);
  std::vector<std::size_t> random(61);
  for (std::size_t& s : random) s = size(rng);
  return {{1}, {7}, {480}, {4096}, {65'537}, random};
}

// Stereo noise of `frames` frames with DC on the left, a silent gap and full-scale runs.
audio_buffer streaming_track(std::size_t frames, std::uint32_t seed) {
  audio_buffer b = test::white_noise(-15.0, static_cast<double>(frames) / 44'100.0, 44'100.0, 2, seed);
  for (std::size_t i = 0; i < b.frames(); ++i) b.channel(0)[i] += 0.02f;
  for (std::size_t i = b.frames() / 3; i < b.frames() / 2; ++i) b.channel(0)[i] = b.channel(1)[i] = 0.0f;
  for (std::size_t i = 4090; i < std::min<std::size_t>(b.frames(), 4105); ++i) b.channel(1)[i] = -1.0f;
  return b;
}

std::uint64_t bits(double x) {
  return std::bit_cast<std::uint64_t>(x);
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

void expect_bitwise_equal(const welch_power& got, const welch_power& want) {
  EXPECT_EQ(got.fft_size, want.fft_size);
  EXPECT_EQ(got.sample_rate_hz, want.sample_rate_hz);
  EXPECT_EQ(got.frames_analyzed, want.frames_analyzed);
  EXPECT_EQ(got.samples, want.samples);
  EXPECT_TRUE(same_bits(got.mid, want.mid));
  EXPECT_TRUE(same_bits(got.side, want.side));
}

// Bitwise, NaN bands included.
void expect_bitwise_equal(const tonal_analysis& got, const tonal_analysis& want) {
  EXPECT_EQ(got.sample_rate_hz, want.sample_rate_hz);
  EXPECT_EQ(got.frames, want.frames);
  EXPECT_EQ(std::memcmp(got.mid_db.data(), want.mid_db.data(), sizeof got.mid_db), 0);
  EXPECT_EQ(std::memcmp(got.side_db.data(), want.side_db.data(), sizeof got.side_db), 0);
  EXPECT_EQ(std::memcmp(got.width_db.data(), want.width_db.data(), sizeof got.width_db), 0);
  EXPECT_TRUE(same_bits(got.fine_freq_hz, want.fine_freq_hz));
  EXPECT_TRUE(same_bits(got.fine_db, want.fine_db));
  EXPECT_EQ(bits(got.tilt_db_per_octave), bits(want.tilt_db_per_octave));
  EXPECT_EQ(bits(got.low_end_db), bits(want.low_end_db));
  EXPECT_EQ(bits(got.high_end_db), bits(want.high_end_db));
  EXPECT_EQ(bits(got.crest_factor_db), bits(want.crest_factor_db));
  EXPECT_EQ(bits(got.plr_db), bits(want.plr_db));
}

// Lengths around the framing's edges (no frame, one partial, one full, a full and a partial, two
// full, ...) and a few seconds with DC, silence and clipping.
std::vector<std::size_t> streaming_lengths() {
  const std::size_t n = tonal_fft_size(44'100.0), hop = n / 2;
  return {0, 1, n - 1, n, n + 1, n + hop - 1, n + hop, n + hop + 1, 5 * 44'100 + 17};
}

TEST(WelchAccumulator, AnyBlockPartitionGivesTheWholeBufferResultsBitForBit) {
  for (const std::size_t frames : streaming_lengths()) {
    const audio_buffer b = streaming_track(frames, 41);
    const welch_power whole_power = measure_welch_power(b, 44'100.0);
    const tonal_analysis whole = analyze_tonal(b, 44'100.0);
    for (const std::vector<std::size_t>& sizes : stream_partitions()) {
      SCOPED_TRACE(std::to_string(frames) + " frames, blocks " +
                   (sizes.size() == 1 ? std::to_string(sizes[0]) : "random"));
      welch_accumulator w(44'100.0);
      tonal_analyzer a(44'100.0);
      std::size_t pos = 0;
      for (std::size_t k = 0; pos < b.frames(); ++k) {
        const const_block_view v = b.view(pos, std::min(sizes[k % sizes.size()], b.frames() - pos));
        w.add(v);
        a.add(v);
        pos += v.frames;
      }
      expect_bitwise_equal(w.finish(), whole_power);
      expect_bitwise_equal(a.finish(), whole);
    }
  }
}

TEST(WelchAccumulator, FramesAsDocumented) {
  // One frame per hop until one reaches the end; only the last may be partial.
  const std::size_t n = tonal_fft_size(44'100.0), hop = n / 2;
  const std::vector<std::size_t> want = {0, 1, 1, 1, 2, 2, 2, 3, 1 + (5 * 44'100 + 17 - n + hop - 1) / hop};
  const std::vector<std::size_t> lengths = streaming_lengths();
  for (std::size_t k = 0; k < lengths.size(); ++k) {
    EXPECT_EQ(measure_welch_power(audio_buffer(2, lengths[k]), 44'100.0).frames_analyzed, want[k]) << lengths[k];
  }
}

TEST(Tonal, DeviationFromAFlatTargetIsTheTiltsRms) {
  constexpr double fs = 44'100.0, tilt = -1.0;
  const synth_noise s = tilted_pink(tilt, 21, fs, 0.01, 23);
  const tonal_analysis a = analyze_tonal(stereo_of(s.x, s.x), fs);
  target_curve flat;  // mid_db all 0
  // The normalized tilt line is tilt * log2(f / 1 kHz) (100 Hz .. 10 kHz is symmetric about 1 kHz).
  double sq = 0.0;
  for (std::size_t b = band_40; b <= band_16k; ++b) {
    const double v = tilt * std::log2(third_octave_centres_hz()[b] / 1000.0);
    sq += v * v;
  }
  EXPECT_NEAR(target_deviation_db(a, flat), std::sqrt(sq / (band_16k - band_40 + 1)), deviation_tolerance_db);
}

namespace fs = std::filesystem;

fs::path scratch_dir() {
  // One folder per test process: ctest runs cases side by side, and names repeat across them.
  const fs::path d = fs::path(LATHE_BINARY_DIR) / "test-tmp" / ("tonal_test_scratch-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path f = scratch_dir() / name;
  std::ofstream(f) << text;
  return f;
}

std::string bands_text(int count, const char* value) {
  std::string s = "[";
  for (int i = 0; i < count; ++i) s += std::string(i ? ", " : "") + value;
  return s + "]";
}

TEST(TargetCurve, SaveLoadRoundTrip) {
  target_curve t;
  t.name = "round \"trip\"";
  t.description = "a\\b";
  t.derived_from = "test";
  for (std::size_t i = 0; i < t.mid_db.size(); ++i) {
    t.mid_db[i] = std::sin(static_cast<double>(i)) * 7.123;
    t.width_db[i] = i % 5 == 0 ? std::numeric_limits<double>::quiet_NaN() : -10.0 + 0.37 * static_cast<double>(i);
  }
  const fs::path f = scratch_dir() / "round_trip.toml";
  save_target_curve(t, f);
  const target_curve u = load_target_curve(f);
  EXPECT_EQ(u.name, t.name);
  EXPECT_EQ(u.description, t.description);
  EXPECT_EQ(u.derived_from, t.derived_from);
  EXPECT_TRUE(u.has_width());
  for (std::size_t i = 0; i < t.mid_db.size(); ++i) {
    EXPECT_NEAR(u.mid_db[i], t.mid_db[i], saved_resolution_db) << i;
    if (std::isnan(t.width_db[i])) {
      EXPECT_TRUE(std::isnan(u.width_db[i])) << i;
    } else {
      EXPECT_NEAR(u.width_db[i], t.width_db[i], saved_resolution_db) << i;
    }
  }
  // Without width_db: no width target at all.
  const target_curve v = load_target_curve(write_file("no_width.toml", "mid_db = " + bands_text(31, "0") + "\n"));
  EXPECT_FALSE(v.has_width());
  EXPECT_EQ(v.name, "no_width");
}

// Each bad file fails with config_error "FILE:LINE:COL: reason" pointing at the culprit.
TEST(TargetCurve, StrictErrorsNameFileLineAndColumn) {
  struct bad_case {
    const char* file;
    std::string text;
    const char* where;  // ":LINE:COL:" expected right after the file name
    const char* reason;
  };
  const std::string ok = bands_text(31, "1.5");
  const std::vector<bad_case> cases = {
      {"unknown_key.toml", "mid_db = " + ok + "\nmid_dB = 3\n", ":2:1:", "unknown key `mid_dB`"},
      {"short.toml", "name = \"x\"\nmid_db = " + bands_text(30, "0") + "\n", ":2:10:", "holds 30 values"},
      {"empty.toml", "mid_db = []\n", ":1:10:", "holds 0 values"},
      {"missing.toml", "name = \"x\"\n", ":1:1:", "needs `mid_db`"},
      {"syntax.toml", "mid_db = [1, 2\n", ":", ""},
      {"string_name.toml", "name = 3\nmid_db = " + ok + "\n", ":1:8:", "`name` must be a string"},
  };
  for (const bad_case& c : cases) {
    const fs::path f = write_file(c.file, c.text);
    try {
      (void)load_target_curve(f);
      ADD_FAILURE() << c.file << " loaded";
    } catch (const config_error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(f.string() + c.where, 0), 0u) << msg;
      EXPECT_NE(msg.find(c.reason), std::string::npos) << msg;
    }
  }
  // A non-finite value inside a full-length array points at that element.
  std::string arr = "mid_db = [";
  for (int i = 0; i < 31; ++i) arr += i == 4 ? "inf, " : i == 30 ? "0" : "0, ";
  const fs::path inf_file = write_file("inf_element.toml", arr + "]\n");
  EXPECT_THROW((void)load_target_curve(inf_file), config_error);
  try {
    (void)load_target_curve(inf_file);
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(inf_file.string() + ":1:23:", 0), 0u) << e.what();
  }
  std::string words = "mid_db = [";
  for (int i = 0; i < 31; ++i) words += i == 2 ? "\"loud\", " : i == 30 ? "0" : "0, ";
  const fs::path word_file = write_file("word_element.toml", words + "]\n");
  try {
    (void)load_target_curve(word_file);
    ADD_FAILURE() << "a string in mid_db loaded";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("`mid_db`[2] must be a number"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)load_target_curve(scratch_dir() / "does_not_exist.toml"), config_error);
}

tonal_analysis analysis_with(double level_db) {
  tonal_analysis a;
  a.mid_db.fill(level_db);
  a.width_db.fill(-6.0);
  return a;
}

TEST(TargetCurve, MeanTargetIsThePowerMeanOfNormalizedLevels) {
  // a: flat; b: flat plus 10 dB in the 1 kHz band, 3 dB louder overall (normalization removes
  // that), mono (width -inf) and NaN above 16 kHz.
  tonal_analysis a = analysis_with(-20.0), b = analysis_with(-17.0);
  b.mid_db[band_1k] += 10.0;
  b.width_db.fill(-std::numeric_limits<double>::infinity());
  b.mid_db[30] = b.width_db[30] = std::numeric_limits<double>::quiet_NaN();
  const std::vector<tonal_analysis> both = {a, b};
  const target_curve t = mean_target(both, "mean", "test");
  // Analytic: b normalized is -10/21 dB off the 1 kHz band and 10 - 10/21 dB in it.
  const double off = 10.0 * std::log10((1.0 + std::pow(10.0, -1.0 / 21.0)) / 2.0);
  const double in = 10.0 * std::log10((1.0 + std::pow(10.0, (10.0 - 10.0 / 21.0) / 10.0)) / 2.0);
  const double mean = (20.0 * off + in) / 21.0;  // the target is renormalized over 100 Hz .. 10 kHz
  for (std::size_t i = 0; i < 30; ++i) {
    EXPECT_NEAR(t.mid_db[i], (i == band_1k ? in : off) - mean, power_mean_tolerance_db) << i;
    EXPECT_NEAR(t.width_db[i], -6.0 + 10.0 * std::log10(0.5), power_mean_tolerance_db) << i;  // mono adds 0 power
  }
  EXPECT_TRUE(std::isnan(t.mid_db[30]));
  EXPECT_TRUE(std::isnan(t.width_db[30]));
  // One analysis: the target it defines.
  const target_curve r = target_from_analysis(b, "ref", "reference: b");
  const target_curve m = mean_target(std::span<const tonal_analysis>(&b, 1), "ref", "reference: b");
  for (std::size_t i = 0; i < 30; ++i) {
    EXPECT_NEAR(r.mid_db[i], (i == band_1k ? 10.0 : 0.0) - 10.0 / 21.0, power_mean_tolerance_db) << i;
    EXPECT_NEAR(m.mid_db[i], r.mid_db[i], power_mean_tolerance_db) << i;
    EXPECT_TRUE(std::isnan(r.width_db[i])) << i;  // a mono reference sets no width target
  }
}

TEST(TargetCurve, ShippedTargetsLoad) {
  const fs::path dir = fs::path(LATHE_SOURCE_DIR) / "configs" / "targets";
  int count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".toml") continue;
    const target_curve t = load_target_curve(e.path());
    EXPECT_FALSE(t.derived_from.empty()) << e.path();
    // Normalized: mean 0 over 100 Hz .. 10 kHz, to the file's 0.01 dB resolution.
    double s = 0.0;
    for (std::size_t i = band_100; i <= band_10k; ++i) s += t.mid_db[i];
    EXPECT_NEAR(s / (band_10k - band_100 + 1), 0.0, saved_resolution_db) << e.path();
    ++count;
  }
  EXPECT_GE(count, 3);
  for (const char* f : {"warzone2100-music.toml", "wesnoth-music.toml", "smooth-tilt.toml"}) {
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  }
}

target_curve flat_target() {
  target_curve t;
  t.name = "flat pink";
  t.width_db.fill(std::numeric_limits<double>::quiet_NaN());
  return t;  // mid_db all 0: equal power per 1/3 octave
}

audio_buffer apply_eq(const eq_params& p, audio_buffer x, double fs) {
  linear_phase_eq_stage eq(p);
  stream_spec spec;
  spec.sample_rate_hz = fs;
  spec.max_block_frames = 4'096;
  eq.prepare(spec);
  run_aligned(eq, x, spec.max_block_frames);
  return x;
}

TEST(AutoEq, TiltedPinkLandsOnAFlatTarget) {
  constexpr double fs = 44'100.0, tilt = -1.0;
  const synth_noise s = tilted_pink(tilt, 21, fs, 0.01, 31);
  const audio_buffer x = stereo_of(s.x, s.x);
  const tonal_analysis before = analyze_tonal(x, fs);
  auto_eq_params p;
  p.amount = 1.0;
  p.max_gain_db = 6.0;
  const auto correction = auto_eq_correction_db(before, flat_target(), p);
  eq_params eq;
  eq.curve = auto_eq_curve(correction);
  const tonal_analysis after = analyze_tonal(apply_eq(eq, x, fs), fs);
  const double before_db = target_deviation_db(before, flat_target()),
               after_db = target_deviation_db(after, flat_target());
  EXPECT_GT(before_db, 2.0 * auto_eq_landing_tolerance_db);  // there was something to correct
  EXPECT_LE(after_db, auto_eq_landing_tolerance_db) << "before " << before_db;
  EXPECT_NEAR(after.tilt_db_per_octave, 0.0, tilt_tolerance_db_per_octave);
}

TEST(AutoEq, AmountZeroLeavesTheEqEmptyAndTheAudioBitIdentical) {
  constexpr double fs = 48'000.0;
  const synth_noise s = tilted_pink(-2.0, 18, fs, 0.01, 5);
  const audio_buffer x = stereo_of(s.x, s.x);
  auto_eq_params p;
  p.amount = 0.0;
  const auto correction = auto_eq_correction_db(analyze_tonal(x, fs), flat_target(), p);
  for (double c : correction) EXPECT_EQ(c, 0.0);
  eq_params eq;
  eq.curve = auto_eq_curve(correction);
  EXPECT_TRUE(eq.curve.empty());
  EXPECT_TRUE(linear_phase_eq_stage(eq).bypassed());
  const audio_buffer y = apply_eq(eq, x, fs);
  ASSERT_EQ(y.frames(), x.frames());
  for (int c = 0; c < 2; ++c) EXPECT_EQ(std::memcmp(y.channel(c), x.channel(c), x.frames() * sizeof(float)), 0);
}

TEST(AutoEq, CorrectionIsClampedAndLinearInAmount) {
  constexpr double fs = 44'100.0;
  const synth_noise s = tilted_pink(-6.0, 19, fs, 0.01, 8);
  const tonal_analysis a = analyze_tonal(stereo_of(s.x, s.x), fs);
  auto_eq_params full;
  full.max_gain_db = 4.0;
  auto_eq_params half = full;
  half.amount = 0.5;
  const auto c1 = auto_eq_correction_db(a, flat_target(), full), c2 = auto_eq_correction_db(a, flat_target(), half);
  double largest = 0.0;
  for (std::size_t b = 0; b < c1.size(); ++b) {
    EXPECT_LE(std::abs(c1[b]), full.max_gain_db) << b;
    EXPECT_NEAR(c2[b], 0.5 * c1[b], amount_linearity_tolerance_db) << b;
    largest = std::max(largest, std::abs(c1[b]));
  }
  EXPECT_EQ(largest, full.max_gain_db);  // a 6 dB/oct tilt needs more: the clamp acted
  // Outside [low_hz, high_hz] the correction tapers: 0 from one octave beyond.
  EXPECT_LT(std::abs(c1[30]), std::abs(c1[band_16k]));  // 20 kHz is in the taper above 16 kHz
}

TEST(EqCurve, InterpolatesInLogFrequencyAndHoldsBeyondTheEnds) {
  const std::vector<eq_curve_point> c = {{100.0, 2.0}, {400.0, -4.0}, {30'000.0, 9.0}};
  constexpr double fs = 48'000.0;  // the 30 kHz point is above 0.49 fs: left out
  EXPECT_NEAR(eq_curve_gain_db(c, 50.0, fs), 2.0, curve_interp_tolerance_db);
  EXPECT_NEAR(eq_curve_gain_db(c, 200.0, fs), -1.0, curve_interp_tolerance_db);  // half way in octaves
  EXPECT_NEAR(eq_curve_gain_db(c, 20'000.0, fs), -4.0, curve_interp_tolerance_db);
  EXPECT_EQ(eq_curve_gain_db({}, 1'000.0, fs), 0.0);
  EXPECT_NEAR(eq_target_magnitude({}, c, 200.0, fs), std::pow(10.0, -1.0 / 20.0), curve_interp_tolerance_db);
}

// The stage's zero-phase amplitude (its impulse response's DTFT, evaluated directly) follows
// eq_target_magnitude with a curve of +-3 dB wiggles at 1/3-octave spacing and a band.
TEST(EqCurve, StageMagnitudeFollowsTheTarget) {
  for (double fs : {44'100.0, 48'000.0}) {
    eq_params p;
    p.bands = {{eq_band_type::high_shelf, 8'000.0, -2.0, 0.707}};
    for (std::size_t b = 0; b < third_octave_band_count; ++b) {
      p.curve.push_back({third_octave_centres_hz()[b], 3.0 * std::sin(0.9 * static_cast<double>(b))});
    }
    const std::size_t taps = eq_auto_taps(p.bands, p.curve, fs);
    EXPECT_GT(taps, eq_auto_taps(p.bands, fs));  // the curve's 20 Hz point needs a longer FIR
    const std::size_t at = taps;                 // impulse position: the whole symmetric response fits
    audio_buffer x(2, 2 * taps + 1);
    x.channel(0)[at] = x.channel(1)[at] = 1.0f;
    const audio_buffer y = apply_eq(p, x, fs);
    for (double f = 40.0; f <= 16'000.0; f *= std::exp2(1.0 / 12.0)) {
      double amp = 0.0;
      const double w = 2.0 * M_PI * f / fs;
      for (std::size_t n = 0; n < y.frames(); ++n) {
        amp += y.channel(0)[n] * std::cos(w * (static_cast<double>(n) - static_cast<double>(at)));
      }
      const double want = eq_target_magnitude(p.bands, p.curve, f, fs);
      EXPECT_NEAR(20.0 * std::log10(std::abs(amp)), 20.0 * std::log10(want), curve_stage_tolerance_db)
          << fs << " Hz rate, " << f << " Hz";
    }
  }
}

// A curve changes the audio, so it changes the resume fingerprints.
TEST(EqCurve, CurveIsPartOfTheFingerprints) {
  delivery_profile p;
  p.chain_order = {chain_stage::eq};
  const std::string chain = chain_fingerprint(p), profile = profile_fingerprint(p);
  p.eq.curve = {{100.0, 1.0}, {1'000.0, -0.5}};
  EXPECT_NE(chain_fingerprint(p), chain);
  EXPECT_NE(profile_fingerprint(p), profile);
  const std::string with_curve = chain_fingerprint(p);
  p.eq.curve[1].gain_db = -0.25;
  EXPECT_NE(chain_fingerprint(p), with_curve);
}

}  // namespace
}  // namespace lathe
