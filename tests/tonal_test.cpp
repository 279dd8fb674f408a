// Tonal analysis. References: analytic sine and multi-tone powers, noise synthesized in float64
// in the frequency domain whose per-band power is summed exactly from its own spectral lines,
// and analytic tilts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lathe/fft64.hpp"
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

}  // namespace
}  // namespace lathe
