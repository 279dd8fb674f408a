// Tests of the final quantization: exact round trip, TPDF error statistics, decorrelation of
// the error from the signal, noise-shaping spectra against the analytic noise transfer
// functions, determinism, the counter-based generator against its documented definition, and the
// streaming quantizer against quantize() bit for bit for any block partition.
#include <fftw3.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "lathe/dither.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Statistical tolerances are this many standard errors of the estimate (p < 1e-8 each).
constexpr double kSigmas = 6.0;
// Dithered error spectrum: no bin of a 32-segment averaged periodogram may exceed the mean floor
// by more than this (for white noise P(bin > 4 dB) ~ 4e-10 per bin: Gamma(32) tail).
constexpr double kSpurLimitDb = 4.0;
// The same criterion must flag undithered quantization of the same tone by at least this much.
constexpr double kUnditheredSpurMinDb = 10.0;
// Shaped-noise band levels vs the analytic |NTF|^2 (about 5 standard errors of a 128-segment
// Hann-windowed Welch estimate over >= 150 bins).
constexpr double kBandLevelToleranceDb = 0.3;
// Chi-square acceptance for 1000 bins: mean 999, sd 44.7; 6 sd.
constexpr double kChiSquareLimit = 999.0 + 6.0 * 44.7;

double to_db_power(double v) {
  return 10.0 * std::log10(v);
}

// Total error in LSB of channel c: out - x 2^(b-1).
std::vector<double> error_lsb(const audio_buffer& x, const std::vector<std::int32_t>& q, int bits, int c) {
  const double scale = std::ldexp(1.0, bits - 1);
  std::vector<double> e(x.frames());
  for (std::size_t i = 0; i < x.frames(); ++i)
    e[i] = static_cast<double>(q[i * static_cast<std::size_t>(x.channels()) + static_cast<std::size_t>(c)]) -
           x.channel(c)[i] * scale;
  return e;
}

// Averaged periodogram (Welch, no overlap), normalized so white noise of variance s gives s per bin.
std::vector<double> welch_psd(const std::vector<double>& e, std::size_t seg, bool hann) {
  std::vector<float> in(seg);
  std::vector<fftwf_complex> out(seg / 2 + 1);
  fftwf_plan plan = fftwf_plan_dft_r2c_1d(static_cast<int>(seg), in.data(), out.data(), FFTW_ESTIMATE);
  std::vector<double> w(seg, 1.0);
  if (hann)
    for (std::size_t i = 0; i < seg; ++i)
      w[i] = 0.5 * (1.0 - std::cos(2.0 * kPi * static_cast<double>(i) / static_cast<double>(seg)));
  double w2 = 0.0;
  for (double v : w) w2 += v * v;
  std::vector<double> psd(seg / 2 + 1, 0.0);
  const std::size_t segments = e.size() / seg;
  for (std::size_t s = 0; s < segments; ++s) {
    for (std::size_t i = 0; i < seg; ++i) in[i] = static_cast<float>(e[s * seg + i] * w[i]);
    fftwf_execute(plan);
    for (std::size_t k = 0; k < psd.size(); ++k) psd[k] += (out[k][0] * out[k][0] + out[k][1] * out[k][1]) / w2;
  }
  fftwf_destroy_plan(plan);
  for (double& v : psd) v /= static_cast<double>(segments);
  return psd;
}

// Mean of psd over the bins with frequency in [f1, f2).
double band_mean(const std::vector<double>& psd, std::size_t seg, double fs, double f1, double f2) {
  double sum = 0.0;
  std::size_t n = 0;
  for (std::size_t k = 1; k < psd.size(); ++k) {
    const double f = static_cast<double>(k) * fs / static_cast<double>(seg);
    if (f >= f1 && f < f2) sum += psd[k], ++n;
  }
  return sum / static_cast<double>(n);
}

// 0.25 LSB^2 (rounding + TPDF) times |1 - sum c_k e^{-j w k}|^2, averaged over the same bins.
double band_mean_analytic(const std::vector<double>& c, std::size_t seg, double fs, double f1, double f2) {
  double sum = 0.0;
  std::size_t n = 0;
  for (std::size_t k = 1; k <= seg / 2; ++k) {
    const double f = static_cast<double>(k) * fs / static_cast<double>(seg);
    if (f < f1 || f >= f2) continue;
    std::complex<double> h = 1.0;
    for (std::size_t i = 0; i < c.size(); ++i)
      h -= c[i] * std::polar(1.0, -2.0 * kPi * f / fs * static_cast<double>(i + 1));
    sum += 0.25 * std::norm(h);
    ++n;
  }
  return sum / static_cast<double>(n);
}

TEST(Dither, ExactGridValuesRoundTripWithoutDither) {
  for (int bits : {8, 16, 24}) {
    const long full = 1L << (bits - 1);
    const long step = bits == 24 ? 4099 : 1;  // every code for 8/16 bits, a prime stride for 24
    std::vector<long> codes;
    for (long k = -full; k < full; k += step) codes.push_back(k);
    codes.push_back(full - 1);
    audio_buffer x(1, codes.size());
    for (std::size_t i = 0; i < codes.size(); ++i)
      x.channel(0)[i] = static_cast<float>(std::ldexp(static_cast<double>(codes[i]), 1 - bits));
    for (noise_shaping s : {noise_shaping::none, noise_shaping::first_order, noise_shaping::f_weighted}) {
      quantize_params p;
      p.bit_depth = bits;
      p.shaping = s;
      p.dither = false;
      p.sample_rate_hz = 44'100.0;
      std::vector<std::int32_t> q;
      const quantize_stats st = quantize(x, p, q);
      ASSERT_EQ(q.size(), codes.size());
      for (std::size_t i = 0; i < codes.size(); ++i) ASSERT_EQ(q[i], codes[i]) << bits << " bits, " << to_string(s);
      EXPECT_EQ(st.clipped_samples, 0u);
    }
  }
}

TEST(Dither, ClampsAndCountsOutOfRangeSamples) {
  audio_buffer x(2, 4);
  const float v[4] = {1.0f, -1.0f, 1.5f, -3.0f};
  for (int c = 0; c < 2; ++c) std::copy(v, v + 4, x.channel(c));
  quantize_params p;
  p.dither = false;
  std::vector<std::int32_t> q;
  const quantize_stats st = quantize(x, p, q);
  // +1.0 is one code above the range; -1.0 is exactly the minimum code.
  const std::vector<std::int32_t> expect = {32767, 32767, -32768, -32768, 32767, 32767, -32768, -32768};
  EXPECT_EQ(q, expect);
  EXPECT_EQ(st.clipped_samples, 6u);
}

TEST(Dither, TpdfTotalErrorHasZeroMeanAndQuarterLsbVariance) {
  const audio_buffer x = test::white_noise(-20.0, 20.0, 48'000.0, 2, 1);  // busy: ~3300 LSB rms
  quantize_params p;
  p.seed = 42;
  std::vector<std::int32_t> q;
  quantize(x, p, q);
  double sum = 0.0, sum_sq = 0.0, worst = 0.0;
  std::size_t n = 0;
  for (int c = 0; c < 2; ++c) {
    for (double e : error_lsb(x, q, 16, c)) {
      sum += e, sum_sq += e * e, ++n;
      worst = std::max(worst, std::abs(e));
    }
  }
  const double mean = sum / static_cast<double>(n);
  const double var = sum_sq / static_cast<double>(n) - mean * mean;
  // Error = rounding (uniform, 1/12) + TPDF (1/6): as a sum of three uniforms its fourth
  // cumulant is -3/120, so var(e^2) = E e^4 - (E e^2)^2 = (3/16 - 1/40) - 1/16 = 0.1.
  EXPECT_NEAR(mean, 0.0, kSigmas * std::sqrt(0.25 / static_cast<double>(n)));
  EXPECT_NEAR(var, 0.25, kSigmas * std::sqrt(0.1 / static_cast<double>(n)));
  EXPECT_LE(worst, 1.5);  // |rounding| <= 1/2 plus |TPDF| < 1
  std::printf("TPDF error: mean %+.2e LSB, variance %.5f LSB^2 (expected 0.25), n = %zu\n", mean, var, n);
}

TEST(Dither, ErrorOfALowLevelToneHasNoHarmonicSpurs) {
  const double fs = 44'100.0;
  const std::size_t seg = 4096, segments = 32;
  // 2 LSB at 16 bits, bin-centred (93 periods per segment) so no leakage with a plain window.
  const double f = fs * 93.0 / static_cast<double>(seg);
  audio_buffer x(1, seg * segments);
  for (std::size_t i = 0; i < x.frames(); ++i)
    x.channel(0)[i] = static_cast<float>(2.0 / 32768.0 * std::sin(2.0 * kPi * f * static_cast<double>(i) / fs));
  auto spur_db = [&](bool dither) {
    quantize_params p;
    p.dither = dither;
    p.seed = 7;
    std::vector<std::int32_t> q;
    quantize(x, p, q);
    const std::vector<double> psd = welch_psd(error_lsb(x, q, 16, 0), seg, false);
    double sum = 0.0, peak = 0.0;
    for (std::size_t k = 1; k < psd.size() - 1; ++k) sum += psd[k], peak = std::max(peak, psd[k]);
    return to_db_power(peak / (sum / static_cast<double>(psd.size() - 2)));
  };
  const double dithered = spur_db(true), plain = spur_db(false);
  std::printf("largest error-spectrum bin over the mean floor: %.1f dB dithered, %.1f dB undithered\n", dithered,
              plain);
  EXPECT_LT(dithered, kSpurLimitDb);
  EXPECT_GT(plain, kUnditheredSpurMinDb) << "the criterion must detect undithered distortion";
}

TEST(Dither, FirstOrderShapingTiltsNoiseAsFourSinSquared) {
  const double fs = 44'100.0;
  const std::size_t seg = 4096;
  const audio_buffer x = test::white_noise(-40.0, 128.0 * seg / fs, fs, 1, 2);
  quantize_params p;
  p.shaping = noise_shaping::first_order;
  p.seed = 3;
  std::vector<std::int32_t> q;
  quantize(x, p, q);
  const std::vector<double> e = error_lsb(x, q, 16, 0);
  const std::vector<double> psd = welch_psd(e, seg, true);
  // Mean of 4 sin^2(pi f/fs) over [f1, f2), in closed form: 2 - fs/(pi (f2-f1)) [sin(2 pi f/fs)]_f1^f2.
  auto mean_ntf = [&](double f1, double f2) {
    return 2.0 - fs / (kPi * (f2 - f1)) * (std::sin(2.0 * kPi * f2 / fs) - std::sin(2.0 * kPi * f1 / fs));
  };
  const double analytic_db = to_db_power(mean_ntf(15'000, 20'000) / mean_ntf(0, 4'000));
  const double measured_db = to_db_power(band_mean(psd, seg, fs, 15'000, 20'000) / band_mean(psd, seg, fs, 0, 4'000));
  std::printf("first order: 15-20 kHz over 0-4 kHz %.2f dB (analytic %.2f dB)\n", measured_db, analytic_db);
  EXPECT_NEAR(measured_db, analytic_db, kBandLevelToleranceDb);
  // Total power: 0.25 LSB^2 white through 1 - z^-1 (sum of squared taps 2).
  double power = 0.0;
  for (double v : e) power += v * v;
  power /= static_cast<double>(e.size());
  EXPECT_NEAR(to_db_power(power / 0.5), 0.0, kBandLevelToleranceDb);
}

TEST(Dither, FWeightedShapingMatchesPublishedFilter) {
  // Wannamaker's 9-tap F-weighted error filter (JAES 1992), as in SoX's dither -f f-weighted.
  const std::vector<double> published = {2.412, -3.370, 3.937, -4.174, 3.353, -2.205, 1.281, -0.569, 0.0847};
  for (double fs : {44'100.0, 48'000.0}) {
    EXPECT_EQ(noise_shaping_coefficients(noise_shaping::f_weighted, fs), published);
    const std::size_t seg = 4096;
    const audio_buffer x = test::white_noise(-40.0, 128.0 * seg / fs, fs, 1, 4);
    quantize_params p;
    p.shaping = noise_shaping::f_weighted;
    p.sample_rate_hz = fs;
    p.seed = 5;
    std::vector<std::int32_t> q;
    const quantize_stats st = quantize(x, p, q);
    EXPECT_EQ(st.clipped_samples, 0u);
    const std::vector<double> psd = welch_psd(error_lsb(x, q, 16, 0), seg, true);
    const double bands[][2] = {{100, 2'000}, {2'000, 5'000}, {5'000, 10'000}, {10'000, 15'000}, {15'000, 20'000}};
    for (const auto& b : bands) {
      const double measured = band_mean(psd, seg, fs, b[0], b[1]);
      const double analytic = band_mean_analytic(published, seg, fs, b[0], b[1]);
      std::printf("f-weighted @%.0f: %5.0f-%5.0f Hz %+6.2f dB re 1/4 LSB^2 (analytic %+6.2f)\n", fs, b[0], b[1],
                  to_db_power(measured / 0.25), to_db_power(analytic / 0.25));
      EXPECT_NEAR(to_db_power(measured / analytic), 0.0, kBandLevelToleranceDb) << fs << " Hz, band " << b[0];
    }
  }
}

TEST(Dither, FWeightedFallsBackToFirstOrderAwayFrom44And48kHz) {
  const audio_buffer x = test::white_noise(-30.0, 0.2, 96'000.0, 2, 6);
  quantize_params p;
  p.seed = 9;
  p.sample_rate_hz = 96'000.0;
  p.shaping = noise_shaping::f_weighted;
  std::vector<std::int32_t> fw, fo;
  quantize(x, p, fw);
  p.shaping = noise_shaping::first_order;
  quantize(x, p, fo);
  EXPECT_EQ(fw, fo);
  p.shaping = noise_shaping::f_weighted;
  p.sample_rate_hz = 0.0;  // unknown rate: refused rather than guessed
  EXPECT_THROW(quantize(x, p, fw), lathe::logic_error);
}

TEST(Dither, DeterministicPerSeedAndIndependentPerChannel) {
  audio_buffer x = test::white_noise(-30.0, 0.5, 48'000.0, 2, 8);
  std::copy(x.channel(0), x.channel(0) + x.frames(), x.channel(1));  // identical channels
  quantize_params p;
  p.seed = 1234;
  p.shaping = noise_shaping::f_weighted;
  p.sample_rate_hz = 48'000.0;
  std::vector<std::int32_t> a, b, c;
  quantize(x, p, a);
  quantize(x, p, b);
  EXPECT_EQ(a, b);
  p.seed = 1235;
  quantize(x, p, c);
  std::size_t differ_seed = 0, differ_channel = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ_seed += a[i] != c[i];
  for (std::size_t i = 0; i < x.frames(); ++i) differ_channel += a[2 * i] != a[2 * i + 1];
  // Independent TPDF draws change the code in most samples (well over a quarter here).
  EXPECT_GT(differ_seed, a.size() / 4);
  EXPECT_GT(differ_channel, x.frames() / 4);
}

// The generator exactly as dither.hpp documents it, written independently here.
std::uint64_t doc_mix(std::uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double doc_uniform(std::uint64_t seed, int channel, std::uint64_t frame, int substream) {
  const std::uint64_t stream =
      (static_cast<std::uint64_t>(static_cast<std::uint32_t>(channel)) << 32) | static_cast<std::uint32_t>(substream);
  const std::uint64_t key = doc_mix(seed ^ doc_mix(stream + 0x9E3779B97F4A7C15ull));
  const std::uint64_t z = doc_mix(key + (frame + 1) * 0x9E3779B97F4A7C15ull);
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

TEST(Dither, UniformMatchesDocumentedDefinitionBitForBit) {
  // The mixer is SplitMix64's: its published first output for state 0 is 0xE220A8397B1DCDAF.
  EXPECT_EQ(doc_mix(0x9E3779B97F4A7C15ull), 0xE220A8397B1DCDAFull);
  for (std::uint64_t seed : {0ull, 1ull, 0xDEADBEEFull, ~0ull})
    for (int ch = 0; ch < 8; ++ch)
      for (int sub = 0; sub < 2; ++sub)
        for (std::uint64_t frame : {0ull, 1ull, 2ull, 1'000'000ull, (1ull << 40) + 3})
          ASSERT_EQ(dither_uniform(seed, ch, frame, sub), doc_uniform(seed, ch, frame, sub));
}

TEST(Dither, UniformIsUniformAndUncorrelated) {
  const std::size_t per_stream = 62'500, bins = 1000;
  std::vector<std::size_t> hist(bins, 0);
  std::size_t n = 0;
  double mean = 0.0, cross = 0.0, serial = 0.0, chan = 0.0;
  for (int ch = 0; ch < 8; ++ch) {
    for (std::uint64_t f = 0; f < per_stream; ++f) {
      const double u0 = dither_uniform(77, ch, f, 0), u1 = dither_uniform(77, ch, f, 1);
      for (double u : {u0, u1}) {
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
        ++hist[static_cast<std::size_t>(u * bins)];
        mean += u;
        ++n;
      }
      cross += (u0 - 0.5) * (u1 - 0.5);
      serial += (u0 - 0.5) * (dither_uniform(77, ch, f + 1, 0) - 0.5);
      chan += (u0 - 0.5) * (dither_uniform(77, (ch + 1) % 8, f, 0) - 0.5);
    }
  }
  const double expected = static_cast<double>(n) / bins;
  double chi2 = 0.0;
  for (std::size_t h : hist)
    chi2 += (static_cast<double>(h) - expected) * (static_cast<double>(h) - expected) / expected;
  std::printf("dither_uniform: chi-square %.1f over %zu bins (limit %.1f), n = %zu\n", chi2, bins, kChiSquareLimit, n);
  EXPECT_LT(chi2, kChiSquareLimit);
  EXPECT_NEAR(mean / static_cast<double>(n), 0.5, kSigmas * std::sqrt(1.0 / 12.0 / static_cast<double>(n)));
  // Correlation coefficients of pairs: each has standard error 1/sqrt(pairs).
  const double pairs = static_cast<double>(n) / 2.0;
  const double var = 1.0 / 12.0;
  EXPECT_LT(std::abs(cross / pairs / var), kSigmas / std::sqrt(pairs)) << "substreams 0 and 1";
  EXPECT_LT(std::abs(serial / pairs / var), kSigmas / std::sqrt(pairs)) << "consecutive frames";
  EXPECT_LT(std::abs(chan / pairs / var), kSigmas / std::sqrt(pairs)) << "neighbouring channels";
}

TEST(Dither, NoiseShapingNamesRoundTrip) {
  for (noise_shaping s : {noise_shaping::none, noise_shaping::first_order, noise_shaping::f_weighted}) {
    noise_shaping parsed = noise_shaping::none;
    ASSERT_TRUE(parse_noise_shaping(to_string(s), parsed));
    EXPECT_EQ(parsed, s);
  }
  noise_shaping unused;
  EXPECT_FALSE(parse_noise_shaping("shibata", unused));
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// quantize() exactly as dither.hpp documents it, written independently here (one frame at a time,
// the error history as a plain array, the documented generator).
std::vector<std::int32_t> doc_quantize(const audio_buffer& x, const quantize_params& p) {
  const std::vector<double> c = noise_shaping_coefficients(p.shaping, p.sample_rate_hz);
  const double scale = std::ldexp(1.0, p.bit_depth - 1);
  const auto channels = static_cast<std::size_t>(x.channels());
  std::vector<std::int32_t> out(channels * x.frames());
  for (int ch = 0; ch < x.channels(); ++ch) {
    std::vector<double> e(x.frames());
    for (std::size_t n = 0; n < x.frames(); ++n) {
      double w = x.channel(ch)[n] * scale;
      for (std::size_t k = 1; k <= c.size(); ++k) w -= c[k - 1] * (n >= k ? e[n - k] : 0.0);
      const double t = p.dither ? (doc_uniform(p.seed, ch, n, 0) - 0.5) + (doc_uniform(p.seed, ch, n, 1) - 0.5) : 0.0;
      const double q = std::nearbyint(w + t);
      e[n] = q - w;
      out[n * channels + static_cast<std::size_t>(ch)] = static_cast<std::int32_t>(std::clamp(q, -scale, scale - 1.0));
    }
  }
  return out;
}

// Stereo noise with DC, a silent gap and stretches over full scale (clamped), 1 s at 48 kHz.
audio_buffer streaming_master() {
  audio_buffer x = test::white_noise(-9.0, 1.0, 48'000.0, 2, 51);
  for (std::size_t i = 0; i < x.frames(); ++i) x.channel(0)[i] += 0.003f;
  for (std::size_t i = 10'000; i < 14'000; ++i) x.channel(0)[i] = x.channel(1)[i] = 0.0f;
  for (std::size_t i = 4090; i < 4200; ++i) x.channel(1)[i] *= 8.0f;
  for (std::size_t i = 30'000; i < 30'500; ++i) x.channel(0)[i] = 1.0f;
  return x;
}

TEST(Quantizer, AnyBlockPartitionGivesQuantizeBitForBitAndQuantizeIsAsDocumented) {
  const audio_buffer x = streaming_master();
  std::mt19937 rng(13);
  std::uniform_int_distribution<std::size_t> size(1, 9000);
  std::vector<std::size_t> random(53);
  for (std::size_t& s : random) s = size(rng);
  const std::vector<std::vector<std::size_t>> partitions = {{1}, {7}, {480}, {4096}, {65'537}, random};
  for (const noise_shaping shaping : {noise_shaping::none, noise_shaping::first_order, noise_shaping::f_weighted}) {
    for (const bool dither : {true, false}) {
      quantize_params p;
      p.bit_depth = 16;
      p.shaping = shaping;
      p.seed = 77;
      p.dither = dither;
      p.sample_rate_hz = 48'000.0;
      std::vector<std::int32_t> whole;
      const quantize_stats whole_stats = quantize(x, p, whole);
      ASSERT_GT(whole_stats.clipped_samples, 500u);
      EXPECT_EQ(whole, doc_quantize(x, p)) << to_string(shaping);
      for (const std::vector<std::size_t>& sizes : partitions) {
        SCOPED_TRACE(std::string(to_string(shaping)) + (dither ? ", dither" : ", no dither") + ", blocks " +
                     (sizes.size() == 1 ? std::to_string(sizes[0]) : "random"));
        quantizer q(p, x.channels());
        std::vector<std::int32_t> streamed(whole.size());
        std::size_t pos = 0;
        for (std::size_t k = 0; pos < x.frames(); ++k) {
          const std::size_t n = std::min(sizes[k % sizes.size()], x.frames() - pos);
          q.process(x.view(pos, n), std::span(streamed).subspan(pos * 2, n * 2));
          pos += n;
        }
        EXPECT_EQ(std::memcmp(streamed.data(), whole.data(), whole.size() * sizeof(std::int32_t)), 0);
        EXPECT_EQ(q.stats().clipped_samples, whole_stats.clipped_samples);
      }
    }
  }
}

TEST(Quantizer, ResetStartsTheStreamAgain) {
  const audio_buffer x = streaming_master();
  quantize_params p;
  p.shaping = noise_shaping::f_weighted;
  p.sample_rate_hz = 48'000.0;
  std::vector<std::int32_t> whole, first(2 * x.frames()), again(2 * x.frames());
  const quantize_stats s = quantize(x, p, whole);
  quantizer q(p, 2);
  q.process(x.view(), first);
  q.reset();
  q.process(x.view(), again);
  EXPECT_EQ(again, whole);
  EXPECT_EQ(q.stats().clipped_samples, s.clipped_samples);
}

}  // namespace
}  // namespace lathe
