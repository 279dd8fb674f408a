// Tests of resample(): analytically resampled sines (amplitude, phase, frequency, alignment),
// alias and image rejection, exact length, determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lathe/resampler.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Passband amplitude: soxr VHQ's rolloff is <= 0.01 dB below its passband end (0.913 Nyquist).
constexpr double kAmplitudeToleranceDb = 0.01;
// Sample-by-sample error against the analytic sine at the output rate, relative to amplitude
// (gain-corrected above 0.6 Nyquist, where the passband rolloff is checked separately).
constexpr double kWaveformErrorDb = -90.0;
// Residual above the output Nyquist (aliases) and images of upsampling, relative to the input.
constexpr double kRejectionDb = -100.0;
// soxr's edge transients (the sine starts abruptly) are skipped: 100 ms at each end.
constexpr double kEdgeSeconds = 0.1;

struct rate_pair {
  double in_hz, out_hz;
};
const rate_pair kPairs[] = {{44'100, 48'000}, {48'000, 44'100}, {44'100, 96'000}, {96'000, 44'100}};

double to_db(double v) {
  return 20.0 * std::log10(v);
}

// Least-squares fit y[n] ~ a sin(w n) + b cos(w n) over [begin, end): exact for a pure sinusoid
// (no leakage, unlike a single-bin DFT). Returns {amplitude, phase (rad) relative to sin}.
struct fit {
  double amplitude, phase;
};
fit fit_sine(const float* y, std::size_t begin, std::size_t end, double freq_hz, double fs) {
  double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
  for (std::size_t n = begin; n < end; ++n) {
    const double s = std::sin(2.0 * kPi * freq_hz * static_cast<double>(n) / fs);
    const double c = std::cos(2.0 * kPi * freq_hz * static_cast<double>(n) / fs);
    ss += s * s, cc += c * c, sc += s * c, ys += y[n] * s, yc += y[n] * c;
  }
  const double det = ss * cc - sc * sc;
  const double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  return {std::hypot(a, b), std::atan2(b, a)};
}

TEST(Resampler, SinesKeepAmplitudeFrequencyAndAlignment) {
  const double amp = 0.5;
  for (const auto& pr : kPairs) {
    const double nyq = 0.5 * std::min(pr.in_hz, pr.out_hz);
    for (double f : {100.0, 997.0, 5'000.0, 12'345.0, 0.9 * nyq}) {
      const audio_buffer x = test::sine(f, to_db(amp), 1.0, pr.in_hz, 1);
      const audio_buffer y = resample(x, pr.in_hz, pr.out_hz);
      const auto edge = static_cast<std::size_t>(kEdgeSeconds * pr.out_hz);
      const std::size_t begin = edge, end = y.frames() - edge;
      const fit whole = fit_sine(y.channel(0), begin, end, f, pr.out_hz);
      // Against the analytic sine (phase and timing not fitted); near the band edge soxr's
      // passband rolloff (<= 0.01 dB, checked below) alone is a -64 dB waveform error, so the
      // -90 dB criterion applies to the gain-corrected sine there, and raw below 0.6 Nyquist.
      const double ref_amp = f <= 0.6 * nyq ? amp : whole.amplitude;
      double max_err = 0.0;
      for (std::size_t n = begin; n < end; ++n) {
        const double ref = ref_amp * std::sin(2.0 * kPi * f * static_cast<double>(n) / pr.out_hz);
        max_err = std::max(max_err, std::abs(y.channel(0)[n] - ref));
      }
      // Frequency: the phase of the first and last 100 ms agree (a frequency error df would
      // turn it by 2 pi df 0.7 s).
      const std::size_t w = edge;
      const fit first = fit_sine(y.channel(0), begin, begin + w, f, pr.out_hz);
      const fit last = fit_sine(y.channel(0), end - w, end, f, pr.out_hz);
      const double freq_err_hz =
          std::abs(last.phase - first.phase) / (2.0 * kPi * (static_cast<double>(end - w - begin) / pr.out_hz));
      std::printf("%6.0f -> %6.0f  %8.1f Hz: max err %7.1f dB, gain %+.5f dB, phase %+.2e rad, df %.1e Hz\n", pr.in_hz,
                  pr.out_hz, f, to_db(max_err / amp), to_db(whole.amplitude / amp), whole.phase, freq_err_hz);
      EXPECT_LT(to_db(max_err / amp), kWaveformErrorDb) << pr.in_hz << "->" << pr.out_hz << " f=" << f;
      EXPECT_NEAR(to_db(whole.amplitude / amp), 0.0, kAmplitudeToleranceDb)
          << pr.in_hz << "->" << pr.out_hz << " f=" << f;
      EXPECT_LT(freq_err_hz, 1e-3) << pr.in_hz << "->" << pr.out_hz << " f=" << f;
    }
  }
}

TEST(Resampler, RejectsAliasesAndImages) {
  const double amp = 0.5;
  struct probe {
    rate_pair rates;
    double tone_hz;      // input tone
    double residual_hz;  // where its alias / image would land at the output rate
  };
  const probe probes[] = {
      {{48'000, 44'100}, 23'000.0, 44'100.0 - 23'000.0},  // above the output Nyquist: alias
      {{96'000, 44'100}, 30'000.0, 44'100.0 - 30'000.0}, {{96'000, 44'100}, 40'000.0, 44'100.0 - 40'000.0},
      {{44'100, 96'000}, 15'000.0, 44'100.0 - 15'000.0},  // image of upsampling
      {{44'100, 48'000}, 20'000.0, 44'100.0 - 20'000.0},
  };
  for (const auto& p : probes) {
    const audio_buffer x = test::sine(p.tone_hz, to_db(amp), 1.0, p.rates.in_hz, 1);
    const audio_buffer y = resample(x, p.rates.in_hz, p.rates.out_hz);
    const auto edge = static_cast<std::size_t>(kEdgeSeconds * p.rates.out_hz);
    const fit residual = fit_sine(y.channel(0), edge, y.frames() - edge, p.residual_hz, p.rates.out_hz);
    const double rejection_db = to_db(residual.amplitude / amp);
    std::printf("%6.0f -> %6.0f  tone %7.0f Hz: residual at %7.0f Hz %7.1f dB\n", p.rates.in_hz, p.rates.out_hz,
                p.tone_hz, p.residual_hz, rejection_db);
    EXPECT_LT(rejection_db, kRejectionDb) << p.tone_hz;
    if (p.tone_hz > 0.5 * p.rates.out_hz) {
      // Nothing of an out-of-band tone may survive anywhere: total output RMS too.
      double sum = 0.0;
      for (std::size_t n = edge; n < y.frames() - edge; ++n)
        sum += static_cast<double>(y.channel(0)[n]) * y.channel(0)[n];
      const double rms = std::sqrt(sum / static_cast<double>(y.frames() - 2 * edge));
      EXPECT_LT(to_db(rms / (amp / std::sqrt(2.0))), kRejectionDb) << p.tone_hz;
    }
  }
}

TEST(Resampler, LengthIsRoundedRatio) {
  for (const auto& pr : kPairs) {
    for (std::size_t n : {0u, 1u, 2u, 7u, 100u, 1'000u, 44'099u, 44'100u, 48'001u}) {
      const audio_buffer x = test::white_noise(-20.0, static_cast<double>(n) / pr.in_hz, pr.in_hz, 2, 3);
      ASSERT_EQ(x.frames(), n);
      const audio_buffer y = resample(x, pr.in_hz, pr.out_hz);
      EXPECT_EQ(y.frames(), static_cast<std::size_t>(std::llround(static_cast<double>(n) * pr.out_hz / pr.in_hz)))
          << pr.in_hz << "->" << pr.out_hz << " n=" << n;
      EXPECT_EQ(y.channels(), 2);
    }
  }
}

TEST(Resampler, EqualRatesCopyBitExactly) {
  const audio_buffer x = test::white_noise(-10.0, 0.2, 48'000.0, 2, 9);
  const audio_buffer y = resample(x, 48'000.0, 48'000.0);
  ASSERT_EQ(y.frames(), x.frames());
  for (int c = 0; c < 2; ++c) EXPECT_EQ(std::memcmp(x.channel(c), y.channel(c), x.frames() * sizeof(float)), 0);
}

TEST(Resampler, DeterministicAndChannelsIndependent) {
  audio_buffer x = test::white_noise(-10.0, 0.5, 44'100.0, 2, 5);
  std::copy(x.channel(0), x.channel(0) + x.frames(), x.channel(1));  // identical channels
  const audio_buffer a = resample(x, 44'100.0, 48'000.0);
  const audio_buffer b = resample(x, 44'100.0, 48'000.0);
  for (int c = 0; c < 2; ++c) EXPECT_EQ(std::memcmp(a.channel(c), b.channel(c), a.frames() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.channel(0), a.channel(1), a.frames() * sizeof(float)), 0);
  // A mono run of the same channel gives the same samples: channels do not interact.
  audio_buffer mono(1, x.frames());
  std::copy(x.channel(0), x.channel(0) + x.frames(), mono.channel(0));
  const audio_buffer m = resample(mono, 44'100.0, 48'000.0);
  EXPECT_EQ(std::memcmp(a.channel(0), m.channel(0), a.frames() * sizeof(float)), 0);
}

TEST(Resampler, RejectsNonPositiveRates) {
  const audio_buffer x(1, 10);
  EXPECT_THROW(resample(x, 0.0, 48'000.0), lathe::logic_error);
  EXPECT_THROW(resample(x, 48'000.0, -1.0), lathe::logic_error);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// The stream stages soxr's input in fixed chunks, so any push sizes give resample()'s output.
TEST(ResampleStream, AnyPushSizesGiveTheWholeBufferResultBitForBit) {
  const audio_buffer x = test::white_noise(-12.0, 3.1, 44'100.0, 2, 11);  // 136'710 frames, 3 chunks
  for (const auto& [in_hz, out_hz] :
       std::vector<std::pair<double, double>>{{44'100.0, 48'000.0}, {44'100.0, 96'000.0}, {96'000.0, 44'100.0}}) {
    const audio_buffer ref = resample(x, in_hz, out_hz);
    for (const std::size_t push : {std::size_t{1'000}, std::size_t{65'537}, std::size_t{7}, x.frames()}) {
      resample_stream s(in_hz, out_hz, 2, x.frames());
      audio_buffer got(2, s.out_frames());
      std::size_t written = 0;
      auto keep = [&](const_block_view v) {
        ASSERT_LE(written + v.frames, got.frames());
        for (int c = 0; c < 2; ++c) std::copy_n(v[c], v.frames, got.channel(c) + written);
        written += v.frames;
      };
      for (std::size_t pos = 0; pos < x.frames(); pos += push)
        s.push(x.view(pos, std::min(push, x.frames() - pos)), keep);
      s.finish(keep);
      ASSERT_EQ(written, ref.frames());
      for (int c = 0; c < 2; ++c)
        EXPECT_EQ(std::memcmp(got.channel(c), ref.channel(c), ref.frames() * sizeof(float)), 0)
            << in_hz << " -> " << out_hz << " pushes of " << push;
    }
  }
}

}  // namespace
}  // namespace lathe
