// Tests of the true-peak limiter (stage 3): the ceiling under two independent meters, the gain
// law against a naive float64 reference, attack/release timing, pass-through, offline vs
// streaming and block-size independence.
#include <ebur128.h>
#include <gtest/gtest.h>

#include <filesystem>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lathe/limiter.hpp"
#include "lathe/true_peak.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

// A meter reading may exceed the ceiling by this much and no more (the brief's bound: the two
// meters interpolate differently from the detector; 0.01 dB is 0.1 % in amplitude).
constexpr double kMeterToleranceDb = 0.01;
// The detector's passband ripple at 1 kHz, which sets how exactly a steady sine's reduction
// matches 20 log10(amplitude / ceiling).
constexpr double kSteadyReductionToleranceDb = 0.01;
// Release: fraction of the way back to unity after one release_ms, vs 1 - 1/e.
constexpr double kReleaseFractionTolerance = 1e-3;
// Gain law vs the float64 reference: the detector's float dot products (13..33 taps of
// magnitude <= 1 with float rounding, <= ~1e-6 relative on the peak, hence on the gain); the
// implementation quantizes the held minimum to 2^-32 and snaps the release within 2^-32 of
// unity (<= 3e-10 relative); the sample is rounded to float (half an ulp, 6e-8 relative).
constexpr double kGainLawRelTolerance = 1.5e-6;
constexpr double kGainLawAbsTolerance = 1e-9;

constexpr double kPi = 3.14159265358979323846;

double to_db(double v) {
  return 20.0 * std::log10(v);
}
double ceiling_linear(const limiter_params& p) {
  return std::pow(10.0, p.ceiling_dbtp / 20.0);
}

// ---- material ------------------------------------------------------------------------------

audio_buffer square_wave(double freq_hz, double seconds, double fs) {
  audio_buffer b(2, static_cast<std::size_t>(seconds * fs));
  for (std::size_t i = 0; i < b.frames(); ++i) {
    const double ph = std::fmod(freq_hz * static_cast<double>(i) / fs, 1.0);
    b.channel(0)[i] = ph < 0.5 ? 1.0f : -1.0f;
    const double ph1 = std::fmod(1.37 * freq_hz * static_cast<double>(i) / fs, 1.0);
    b.channel(1)[i] = ph1 < 0.5 ? 0.9f : -0.9f;
  }
  return b;
}

audio_buffer exp_sweep(double f0_hz, double f1_hz, double seconds, double fs) {
  audio_buffer b(2, static_cast<std::size_t>(seconds * fs));
  const double k = std::log(f1_hz / f0_hz);
  for (std::size_t i = 0; i < b.frames(); ++i) {
    const double t = static_cast<double>(i) / fs;
    const double phase = 2.0 * kPi * f0_hz * seconds / k * (std::exp(t / seconds * k) - 1.0);
    b.channel(0)[i] = static_cast<float>(std::sin(phase));
    b.channel(1)[i] = static_cast<float>(std::cos(phase));
  }
  return b;
}

audio_buffer pink_noise(double rms_dbfs, double seconds, double fs, std::uint32_t seed) {
  audio_buffer b = test::white_noise(0.0, seconds, fs, 2, seed);
  for (int c = 0; c < 2; ++c) {
    // Paul Kellet's economy pink filter (-3 dB/octave within 0.5 dB above 10 Hz at 44.1 kHz).
    double b0 = 0, b1 = 0, b2 = 0;
    double sum_sq = 0.0;
    float* x = b.channel(c);
    for (std::size_t i = 0; i < b.frames(); ++i) {
      const double w = x[i];
      b0 = 0.99765 * b0 + w * 0.0990460;
      b1 = 0.96300 * b1 + w * 0.2965164;
      b2 = 0.57000 * b2 + w * 1.0526913;
      const double v = b0 + b1 + b2 + w * 0.1848;
      x[i] = static_cast<float>(v);
      sum_sq += v * v;
    }
    const double scale = std::pow(10.0, rms_dbfs / 20.0) / std::sqrt(sum_sq / static_cast<double>(b.frames()));
    for (std::size_t i = 0; i < b.frames(); ++i) x[i] = static_cast<float>(x[i] * scale);
  }
  return b;
}

// Kicks with a falling pitch, noise snares and differentiated-noise hats: sharp attacks.
audio_buffer drums(double seconds, double fs, std::uint32_t seed) {
  audio_buffer b(2, static_cast<std::size_t>(seconds * fs));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const auto beat = static_cast<std::size_t>(0.25 * fs);
  double prev = 0.0;
  for (std::size_t i = 0; i < b.frames(); ++i) {
    const double tb = static_cast<double>(i % beat) / fs;        // time since the beat
    const double th = static_cast<double>(i % (beat / 2)) / fs;  // time since the eighth
    const bool snare_beat = (i / beat) % 2 == 1;
    const double kick =
        std::exp(-tb / 0.08) * std::sin(2.0 * kPi * (50.0 * tb + 60.0 * 0.03 * (1.0 - std::exp(-tb / 0.03))));
    const double n = u(rng);
    const double snare = snare_beat ? 0.8 * std::exp(-tb / 0.04) * n : 0.0;
    const double hat = 0.5 * std::exp(-th / 0.01) * (n - prev);
    prev = n;
    b.channel(0)[i] = static_cast<float>(kick + snare + hat);
    b.channel(1)[i] = static_cast<float>(kick + 0.7 * snare - hat);
  }
  return b;
}

// ---- meters --------------------------------------------------------------------------------

audio_buffer with_silent_tail(const audio_buffer& x, std::size_t tail) {
  audio_buffer out(x.channels(), x.frames() + tail);
  for (int c = 0; c < x.channels(); ++c) std::copy(x.channel(c), x.channel(c) + x.frames(), out.channel(c));
  return out;
}

double ebur128_true_peak_dbtp(const audio_buffer& x, double fs) {
  const audio_buffer padded = with_silent_tail(x, 256);  // flush libebur128's interpolator
  ebur128_state* st =
      ebur128_init(static_cast<unsigned>(x.channels()), static_cast<unsigned long>(fs), EBUR128_MODE_TRUE_PEAK);
  std::vector<float> inter(padded.frames() * static_cast<std::size_t>(x.channels()));
  for (std::size_t i = 0; i < padded.frames(); ++i)
    for (int c = 0; c < x.channels(); ++c)
      inter[i * static_cast<std::size_t>(x.channels()) + static_cast<std::size_t>(c)] = padded.channel(c)[i];
  ebur128_add_frames_float(st, inter.data(), padded.frames());
  double best = 0.0;
  for (int c = 0; c < x.channels(); ++c) {
    double v = 0.0;
    ebur128_true_peak(st, static_cast<unsigned>(c), &v);
    best = std::max(best, v);
  }
  ebur128_destroy(&st);
  return to_db(best);
}

double lathe_true_peak_dbtp(const audio_buffer& x, double fs) {
  float best = 0.0f;
  for (int c = 0; c < x.channels(); ++c) best = std::max(best, true_peak_of(x.channel(c), x.frames(), fs));
  return to_db(best);
}

// ---- streaming driver ----------------------------------------------------------------------

// Feeds x and then latency zeros through the streaming stage in blocks of the given sizes (cycled),
// returning the aligned output (the first `latency` output frames dropped).
audio_buffer run_streaming(const audio_buffer& x, double fs, const limiter_params& p, double gain_db,
                           const std::vector<std::size_t>& block_sizes, std::size_t max_block, limiter_stats* stats,
                           bool in_place = false) {
  true_peak_limiter lim(p);
  lim.prepare({fs, x.channels(), max_block});
  lim.set_input_gain_db(gain_db);
  const std::size_t lat = lim.latency_frames();
  audio_buffer padded = with_silent_tail(x, lat);
  audio_buffer out(x.channels(), padded.frames());
  std::size_t pos = 0, k = 0;
  while (pos < padded.frames()) {
    const std::size_t n = std::min({block_sizes[k++ % block_sizes.size()], max_block, padded.frames() - pos});
    if (in_place) {
      lim.process(padded.view(pos, n), padded.view(pos, n));
    } else {
      lim.process(std::as_const(padded).view(pos, n), out.view(pos, n));
    }
    pos += n;
  }
  const audio_buffer& src = in_place ? padded : out;
  audio_buffer aligned(x.channels(), x.frames());
  for (int c = 0; c < x.channels(); ++c)
    std::copy(src.channel(c) + lat, src.channel(c) + lat + x.frames(), aligned.channel(c));
  if (stats != nullptr) *stats = lim.stats();
  return aligned;
}

bool bit_equal(const audio_buffer& a, const audio_buffer& b) {
  if (a.channels() != b.channels() || a.frames() != b.frames()) return false;
  for (int c = 0; c < a.channels(); ++c)
    if (std::memcmp(a.channel(c), b.channel(c), a.frames() * sizeof(float)) != 0) return false;
  return true;
}

// ---- tests ---------------------------------------------------------------------------------

TEST(Limiter, IndependentMetersNeverFindOutputAboveCeiling) {
  const limiter_params p;  // -1 dBTP, 2 ms lookahead, 80 ms release, 0.05 dB margin
  double worst_ebu = -100.0, worst_lathe = -100.0;
  std::string worst_ebu_case, worst_lathe_case;
  for (double fs : {44'100.0, 48'000.0, 96'000.0}) {
    struct material {
      const char* name;
      audio_buffer x;
    };
    const std::vector<material> materials = {
        {"square", square_wave(1234.5, 1.0, fs)},
        {"sweep", exp_sweep(20.0, 20'000.0, 1.5, fs)},
        {"white", test::white_noise(-10.0, 1.0, fs, 2, 7)},
        {"pink", pink_noise(-12.0, 1.0, fs, 11)},
        {"drums", drums(1.0, fs, 5)},
    };
    for (const auto& m : materials) {
      offline_limiter lim;
      lim.analyze(m.x, fs, p);  // analysed once, rendered at several gains
      for (double gain_db : {0.0, 6.0, 20.0}) {
        audio_buffer y;
        const limiter_stats st = lim.render(m.x, gain_db, y);
        const double ebu = ebur128_true_peak_dbtp(y, fs);
        const double own = lathe_true_peak_dbtp(y, fs);
        const std::string name = std::string(m.name) + " @" + std::to_string(static_cast<int>(fs)) + " Hz +" +
                                 std::to_string(static_cast<int>(gain_db)) + " dB";
        EXPECT_LE(ebu, p.ceiling_dbtp + kMeterToleranceDb) << name << " (libebur128)";
        EXPECT_LE(own, p.ceiling_dbtp + kMeterToleranceDb) << name << " (true_peak_of)";
        EXPECT_GT(st.frames_limited, 0u) << name << ": the material must actually be limited";
        if (ebu > worst_ebu) worst_ebu = ebu, worst_ebu_case = name;
        if (own > worst_lathe) worst_lathe = own, worst_lathe_case = name;
      }
    }
  }
  std::printf("worst libebur128 reading %.4f dBTP (%s); worst true_peak_of %.4f dBTP (%s); ceiling %.2f\n", worst_ebu,
              worst_ebu_case.c_str(), worst_lathe, worst_lathe_case.c_str(), p.ceiling_dbtp);
}

TEST(Limiter, BelowCeilingIsBitExactGainedPassThrough) {
  const double fs = 48'000.0;
  const limiter_params p;
  // -10 dBFS peaks + 6 dB gain: true peak about -4 dBTP, well under the ceiling.
  audio_buffer x = test::sine(997.0, -10.0, 0.5, fs);
  const audio_buffer n = test::white_noise(-40.0, 0.5, fs, 2, 3);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < x.frames(); ++i) x.channel(c)[i] += n.channel(c)[i];
  const double gain_db = 6.0;
  offline_limiter lim;
  lim.analyze(x, fs, p);
  ASSERT_LT(lim.input_true_peak_dbtp(gain_db), p.ceiling_dbtp - p.margin_db);
  audio_buffer y;
  const limiter_stats st = lim.render(x, gain_db, y);
  const double gain = std::pow(10.0, gain_db / 20.0);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < x.frames(); ++i)
      ASSERT_EQ(y.channel(c)[i], static_cast<float>(static_cast<double>(x.channel(c)[i]) * gain))
          << "c=" << c << " i=" << i;
  EXPECT_EQ(st.frames_limited, 0u);
  EXPECT_EQ(st.max_gain_reduction_db, 0.0);
  EXPECT_EQ(st.mean_gain_reduction_db, 0.0);
  limiter_stats ss;
  EXPECT_TRUE(bit_equal(run_streaming(x, fs, p, gain_db, {4096}, 4096, &ss), y));
  EXPECT_EQ(ss.frames_limited, 0u);
}

// A quiet DC pilot makes the applied gain observable: g[m] = y[m] / (x[m] * gain).
std::vector<double> observed_gain(const audio_buffer& x, const audio_buffer& y, double gain) {
  std::vector<double> g(x.frames());
  for (std::size_t i = 0; i < x.frames(); ++i)
    g[i] = static_cast<double>(y.channel(0)[i]) / (static_cast<double>(x.channel(0)[i]) * gain);
  return g;
}

TEST(Limiter, ReleaseRecoversWithStatedTimeConstant) {
  const double fs = 48'000.0;
  limiter_params p;
  p.release_ms = 80.0;
  const double pilot = 0.25;
  audio_buffer x(2, static_cast<std::size_t>(1.0 * fs));
  const std::size_t burst_begin = 9'600, burst_end = 14'400;  // 100 ms of 1 kHz: whole periods
  for (std::size_t i = 0; i < x.frames(); ++i) {
    double v = pilot;
    if (i >= burst_begin && i < burst_end)
      v += 4.0 * std::sin(2.0 * kPi * 1000.0 * static_cast<double>(i - burst_begin) / fs);
    x.channel(0)[i] = x.channel(1)[i] = static_cast<float>(v);
  }
  offline_limiter lim;
  lim.analyze(x, fs, p);
  audio_buffer y;
  lim.render(x, 0.0, y);
  const std::vector<double> g = observed_gain(x, y, 1.0);
  // 20 ms after the burst the detector (16-frame reach + window + lookahead) no longer sees it,
  // so 1 - g decays exactly geometrically from there.
  const std::size_t m1 = burst_end + static_cast<std::size_t>(0.020 * fs);
  const std::size_t m2 = m1 + static_cast<std::size_t>(std::llround(p.release_ms * fs / 1000.0));
  ASSERT_LT(g[m1], 0.9) << "the burst must have pulled the gain down";
  const double fraction = (g[m2] - g[m1]) / (1.0 - g[m1]);
  EXPECT_NEAR(fraction, 1.0 - std::exp(-1.0), kReleaseFractionTolerance);
  // And half a time constant on from there, the same law: exp(-0.5).
  const std::size_t m3 = m2 + static_cast<std::size_t>(std::llround(0.5 * p.release_ms * fs / 1000.0));
  EXPECT_NEAR((1.0 - g[m3]) / (1.0 - g[m2]), std::exp(-0.5), kReleaseFractionTolerance);
  // Gain never rises above unity and returns to it exactly once the release has run out.
  EXPECT_EQ(*std::max_element(g.begin(), g.end()) <= 1.0 + 1e-7, true);
}

TEST(Limiter, AttackReachesTargetBeforeThePeakArrives) {
  const double fs = 44'100.0;
  const limiter_params p;
  const double c = ceiling_linear(p);
  const double pilot = 0.25, loud = 3.25;
  audio_buffer x(2, static_cast<std::size_t>(0.3 * fs));
  const std::size_t step = 6'000;
  for (std::size_t i = 0; i < x.frames(); ++i)
    x.channel(0)[i] = x.channel(1)[i] = static_cast<float>(i < step ? pilot : loud);
  offline_limiter lim;
  lim.analyze(x, fs, p);
  audio_buffer y;
  lim.render(x, 0.0, y);
  const std::vector<double> g = observed_gain(x, y, 1.0);
  const auto lookahead = static_cast<std::size_t>(std::llround(p.lookahead_ms * fs / 1000.0));
  // The first loud sample already gets (at most) the steady target gain.
  EXPECT_LE(g[step], c / loud);
  for (std::size_t i = 0; i < x.frames(); ++i) ASSERT_LE(std::abs(y.channel(0)[i]), c) << "i=" << i;
  // The ramp starts no earlier than the lookahead plus the detector's reach (16-frame half
  // filter + 1-frame window) ahead of the step.
  const std::size_t reach = 16 + 1;
  for (std::size_t i = 0; i + lookahead + reach < step; ++i) ASSERT_EQ(g[i], 1.0) << "i=" << i;
  EXPECT_LT(g[step - lookahead / 2], 1.0) << "the gain should be ramping during the lookahead";
}

TEST(Limiter, SteadySineReductionMatchesAnalyticValueAndIsChannelLinked) {
  const double fs = 48'000.0;
  const limiter_params p;
  const double amp = 2.0 * ceiling_linear(p);  // +6.02 dB over the ceiling
  // 1 kHz at 48 kHz: 48 samples per period, whole periods, so both ends are zero crossings.
  audio_buffer x(2, 48'000);
  for (std::size_t i = 0; i < x.frames(); ++i) {
    const double s = std::sin(2.0 * kPi * static_cast<double>(i) / 48.0);
    x.channel(0)[i] = static_cast<float>(amp * s);
    x.channel(1)[i] = static_cast<float>(0.1 * s);  // quiet channel: limited by the link only
  }
  offline_limiter lim;
  lim.analyze(x, fs, p);
  EXPECT_NEAR(lim.input_true_peak_dbtp(0.0), to_db(amp), kSteadyReductionToleranceDb);
  audio_buffer y;
  const limiter_stats st = lim.render(x, 0.0, y);
  const double expected_db = to_db(amp) - p.ceiling_dbtp + p.margin_db;
  EXPECT_NEAR(st.max_gain_reduction_db, expected_db, kSteadyReductionToleranceDb);
  EXPECT_NEAR(st.mean_gain_reduction_db, expected_db, kSteadyReductionToleranceDb);
  EXPECT_EQ(st.frames_limited, x.frames());
  const double g_expected = std::pow(10.0, -expected_db / 20.0);
  // Away from the ends (before the first crest the local detection is lower, legitimately), the
  // quiet channel gets exactly the loud channel's gain.
  for (std::size_t i = 1'005; i + 1'000 < x.frames(); i += 12) {
    if (std::abs(x.channel(1)[i]) < 0.05f) continue;
    EXPECT_NEAR(y.channel(1)[i] / x.channel(1)[i], g_expected, g_expected * 1.2e-3) << "i=" << i;  // 0.01 dB
  }
}

// libebur128's true-peak points, evaluated directly in float64 from its published design
// (49-tap Hann-windowed sinc, 4x below 96 kHz, 2x below 192 kHz): max |y| over [n, n+1).
std::vector<double> meter_points_peak(const float* x, long frames, double fs, long first, long last) {
  const int f = fs < 96'000.0 ? 4 : fs < 192'000.0 ? 2 : 1;
  std::vector<double> out(static_cast<std::size_t>(last - first), 0.0);
  for (long n = first; n < last; ++n) {
    double best = 0.0;
    for (int p = 0; p < f; ++p) {
      double acc = 0.0;
      for (int j = 0; j < 49; ++j) {  // tap j weighs x[i] with n + p/f - i = (j - 24)/f
        const int num = f * static_cast<int>(n) + p - (j - 24);
        if (num % f != 0) continue;
        const long i = num / f;
        if (i < 0 || i >= frames) continue;
        const double s = static_cast<double>(j - 24) / f;
        const double sinc = j == 24 ? 1.0 : std::sin(kPi * s) / (kPi * s);
        acc += x[i] * sinc * 0.5 * (1.0 - std::cos(2.0 * kPi * j / 48.0));
      }
      best = std::max(best, std::abs(acc));
    }
    out[static_cast<std::size_t>(n - first)] = best;
  }
  return out;
}

// Naive float64 gain law, O(N L), no quantization, written from the specification in aligned
// time n: p[n] covers [n, n+1) and is the larger of lathe's 8x/4x interpolator and the
// libebur128-style points; p = 0 before the detectors' reach; e = 1 before the first frame.
struct reference_law {
  std::vector<double> gain;  // per input frame
  limiter_stats stats;
  std::size_t limited_surely = 0;  // frames with g < 1 - 1e-8 (the rest of the count may snap)
};

reference_law reference(const audio_buffer& x, double fs, const limiter_params& p, double gain_db) {
  true_peak_interpolator tp;
  tp.prepare(fs);
  const auto D = static_cast<long>(tp.latency_frames());
  const auto L = static_cast<long>(std::llround(p.lookahead_ms * fs / 1000.0));
  const auto N = static_cast<long>(x.frames());
  // p over n in [-D, N + L + 1] stored at index n + D.
  const long span = N + L + 2 + D;
  std::vector<double> peak(static_cast<std::size_t>(span), 0.0);
  for (int c = 0; c < x.channels(); ++c) {
    std::vector<float> in(static_cast<std::size_t>(span), 0.0f), out(static_cast<std::size_t>(span));
    std::copy(x.channel(c), x.channel(c) + N, in.begin());
    tp.reset();
    tp.process(in.data(), out.data(), in.size());  // out[t] = p[t - D]
    const std::vector<double> meter = meter_points_peak(x.channel(c), N, fs, -D, span - D);
    for (long t = 0; t < span; ++t) {
      const auto k = static_cast<std::size_t>(t);
      peak[k] = std::max({peak[k], static_cast<double>(out[k]), meter[k]});
    }
  }
  auto p_at = [&](long n) { return n < -D || n + D >= span ? 0.0 : peak[static_cast<std::size_t>(n + D)]; };
  const double gain = std::pow(10.0, gain_db / 20.0);
  const double c = std::pow(10.0, (p.ceiling_dbtp - p.margin_db) / 20.0);
  const double a = 1.0 - std::exp(-1.0 / (p.release_ms * fs / 1000.0));
  const long first = -D - 1;  // the earliest frame whose window sees any signal
  std::vector<double> e(static_cast<std::size_t>(N + L - first), 1.0);
  double prev = 1.0;
  for (long n = first; n < N + L; ++n) {
    const double d = gain * std::max({p_at(n - 1), p_at(n), p_at(n + 1)});
    const double r = std::min(1.0, c / d);
    prev = std::min(r, prev + (1.0 - prev) * a);
    e[static_cast<std::size_t>(n - first)] = prev;
  }
  auto e_at = [&](long n) { return n < first ? 1.0 : e[static_cast<std::size_t>(n - first)]; };
  reference_law ref;
  ref.gain.resize(static_cast<std::size_t>(N));
  double sum_db = 0.0, min_g = 1.0;
  std::vector<double> held(static_cast<std::size_t>(N + L));  // h[k], k in [0, N + L)
  for (long k = 0; k < N + L; ++k) {
    double h = 1.0;
    for (long j = k - L; j <= k; ++j) h = std::min(h, e_at(j));
    held[static_cast<std::size_t>(k)] = h;
  }
  for (long m = 0; m < N; ++m) {
    double acc = 0.0;
    for (long k = m; k <= m + L; ++k) acc += held[static_cast<std::size_t>(k)];
    const double g = acc / static_cast<double>(L + 1);
    ref.gain[static_cast<std::size_t>(m)] = g;
    if (g < 1.0) {
      ++ref.stats.frames_limited;
      sum_db -= to_db(g);
      min_g = std::min(min_g, g);
    }
    if (g < 1.0 - 1e-8) ++ref.limited_surely;
  }
  ref.stats.max_gain_reduction_db = -to_db(min_g);
  ref.stats.mean_gain_reduction_db = sum_db / static_cast<double>(N);
  return ref;
}

TEST(Limiter, MatchesNaiveFloat64GainLaw) {
  for (double fs : {44'100.0, 96'000.0}) {
    limiter_params p;
    p.release_ms = 30.0;  // short: the release runs out (22 time constants) inside the silence
    // Loud drums for 0.4 s, then silence: the mean must count the unlimited frames too.
    const audio_buffer loud = drums(0.4, fs, 9);
    const audio_buffer quiet(2, static_cast<std::size_t>(0.8 * fs));
    const audio_buffer x = test::concat({&loud, &quiet});
    const double gain_db = 12.0;
    offline_limiter lim;
    lim.analyze(x, fs, p);
    audio_buffer y;
    const limiter_stats st = lim.render(x, gain_db, y);
    const reference_law ref = reference(x, fs, p, gain_db);
    const double gain = std::pow(10.0, gain_db / 20.0);
    for (int c = 0; c < 2; ++c) {
      for (std::size_t i = 0; i < x.frames(); ++i) {
        const double expect = static_cast<double>(x.channel(c)[i]) * gain * ref.gain[i];
        const double tol =
            kGainLawRelTolerance * std::abs(expect) + kGainLawAbsTolerance * std::abs(x.channel(c)[i] * gain);
        ASSERT_NEAR(y.channel(c)[i], expect, tol) << "fs=" << fs << " c=" << c << " i=" << i;
      }
    }
    EXPECT_NEAR(st.max_gain_reduction_db, ref.stats.max_gain_reduction_db, 1e-6);
    EXPECT_NEAR(st.mean_gain_reduction_db, ref.stats.mean_gain_reduction_db, 1e-6);
    EXPECT_LE(st.frames_limited, ref.stats.frames_limited);
    EXPECT_GE(st.frames_limited, ref.limited_surely);
    EXPECT_LT(st.frames_limited, x.frames()) << "the silent half must end unlimited";
    EXPECT_GT(st.mean_gain_reduction_db, 0.0);
    EXPECT_LT(st.mean_gain_reduction_db, st.max_gain_reduction_db);
  }
}

TEST(Limiter, OfflineAndStreamingAreBitIdentical) {
  for (double fs : {44'100.0, 96'000.0}) {
    const limiter_params p;
    const audio_buffer a = drums(0.5, fs, 21);
    const audio_buffer b = test::white_noise(-12.0, 0.3, fs, 2, 4);
    const audio_buffer x = test::concat({&a, &b});
    offline_limiter lim;
    lim.analyze(x, fs, p);
    for (double gain_db : {0.0, 15.0}) {
      audio_buffer y;
      const limiter_stats st = lim.render(x, gain_db, y);
      limiter_stats ss;
      const audio_buffer z = run_streaming(x, fs, p, gain_db, {512, 37, 1000}, 1024, &ss);
      EXPECT_TRUE(bit_equal(y, z)) << "fs=" << fs << " gain=" << gain_db;
      EXPECT_EQ(st.frames_limited, ss.frames_limited);
      EXPECT_EQ(st.max_gain_reduction_db, ss.max_gain_reduction_db);
      EXPECT_EQ(st.mean_gain_reduction_db, ss.mean_gain_reduction_db);
    }
  }
}

// gains() is the gain render() applies: rendering an input of ones yields it, rounded to float;
// with stats it reports render()'s statistics, without them none.
TEST(Limiter, GainsAreWhatRenderApplies) {
  const double fs = 48'000.0;
  const audio_buffer a = drums(0.5, fs, 21);
  const audio_buffer b = test::white_noise(-12.0, 0.3, fs, 2, 4);
  const audio_buffer x = test::concat({&a, &b});
  offline_limiter lim;
  lim.analyze(x, fs, limiter_params{});
  audio_buffer ones(2, x.frames());
  for (int c = 0; c < 2; ++c) std::fill_n(ones.channel(c), x.frames(), 1.0f);
  for (double gain_db : {0.0, 12.0}) {
    audio_buffer y;
    const limiter_stats rendered = lim.render(ones, gain_db, y);
    std::vector<double> g;
    const limiter_stats st =
        lim.gains(gain_db, [&](std::span<const double> v) { g.insert(g.end(), v.begin(), v.end()); });
    ASSERT_EQ(g.size(), x.frames());
    for (std::size_t i = 0; i < g.size(); ++i) {
      ASSERT_EQ(static_cast<float>(g[i]), y.channel(0)[i]) << "gain " << gain_db << " frame " << i;
      ASSERT_EQ(static_cast<float>(g[i]), y.channel(1)[i]) << "gain " << gain_db << " frame " << i;
    }
    EXPECT_EQ(st.frames_limited, rendered.frames_limited);
    EXPECT_EQ(st.mean_gain_reduction_db, rendered.mean_gain_reduction_db);
    EXPECT_EQ(st.max_gain_reduction_db, rendered.max_gain_reduction_db);
    if (gain_db > 0.0) EXPECT_GT(st.frames_limited, 0u);
    const limiter_stats none = lim.gains(
        gain_db, [](std::span<const double>) {}, false);
    EXPECT_EQ(none.frames_limited, 0u);
  }
}

// The normalization loop's limiter over spills: detection fed in uneven blocks, the envelope
// and the input in files, renders at two gains and a lowered ceiling; every output sample and
// statistic equals the whole-buffer limiter's.
TEST(Limiter, OfflineOverFileSpillsEqualsTheWholeBufferLimiter) {
  const double fs = 48'000.0;
  const limiter_params p;
  const audio_buffer x = drums(0.7, fs, 8);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "lathe-limiter-spill";
  audio_spill in(2, dir);
  offline_limiter streamed;
  streamed.begin_analysis(fs, p, 2, audio_spill(1, dir));
  for (std::size_t pos = 0, k = 0; pos < x.frames(); ++k) {
    const std::size_t n = std::min<std::size_t>(k % 2 == 0 ? 977 : 10'007, x.frames() - pos);
    streamed.analyze_more(x.view(pos, n));
    in.append(x.view(pos, n));
    pos += n;
  }
  streamed.finish_analysis();
  for (const double ceiling_dbtp : {-1.0, -1.7}) {
    limiter_params q = p;
    q.ceiling_dbtp = ceiling_dbtp;
    offline_limiter whole;
    whole.analyze(x, fs, q);
    streamed.set_ceiling_dbtp(ceiling_dbtp);
    for (const double gain_db : {3.0, 14.0}) {
      audio_buffer ref;
      const limiter_stats rs = whole.render(x, gain_db, ref);
      audio_buffer got(2, x.frames());
      std::size_t written = 0;
      const limiter_stats gs = streamed.render(in, gain_db, [&](const_block_view v) {
        for (int c = 0; c < 2; ++c) std::copy_n(v[c], v.frames, got.channel(c) + written);
        written += v.frames;
      });
      EXPECT_EQ(written, x.frames());
      EXPECT_TRUE(bit_equal(ref, got)) << "ceiling " << ceiling_dbtp << " gain " << gain_db;
      EXPECT_EQ(rs.frames_limited, gs.frames_limited);
      EXPECT_EQ(rs.max_gain_reduction_db, gs.max_gain_reduction_db);
      EXPECT_EQ(rs.mean_gain_reduction_db, gs.mean_gain_reduction_db);
      EXPECT_EQ(whole.input_true_peak_dbtp(gain_db), streamed.input_true_peak_dbtp(gain_db));
    }
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(Limiter, StreamingIsBlockSizeIndependent) {
  const double fs = 48'000.0;
  const limiter_params p;
  const audio_buffer x = drums(0.4, fs, 33);
  const double gain_db = 10.0;
  limiter_stats ref_stats;
  const audio_buffer whole = run_streaming(x, fs, p, gain_db, {1u << 30}, x.frames() + 4096, &ref_stats);
  std::mt19937 rng(17);
  std::uniform_int_distribution<std::size_t> pick(1, 700);
  std::vector<std::size_t> random_sizes(64);
  for (auto& s : random_sizes) s = pick(rng);
  const std::vector<std::vector<std::size_t>> schedules = {{1}, {2}, {3, 7, 13}, {127}, {4096}, random_sizes};
  for (const auto& sched : schedules) {
    limiter_stats st;
    EXPECT_TRUE(bit_equal(run_streaming(x, fs, p, gain_db, sched, 4096, &st), whole)) << "first block " << sched[0];
    EXPECT_EQ(st.mean_gain_reduction_db, ref_stats.mean_gain_reduction_db);
  }
  // In place (in and out the same memory), blocks larger than max_block_frames split internally.
  EXPECT_TRUE(bit_equal(run_streaming(x, fs, p, gain_db, {997}, 4096, nullptr, true), whole));
}

TEST(Limiter, InputTruePeakMatchesMeter) {
  const double fs = 44'100.0;
  const audio_buffer x = exp_sweep(20.0, 20'000.0, 0.5, fs);
  offline_limiter lim;
  lim.analyze(x, fs, limiter_params{});
  // The detector reads the larger of true_peak_of's interpolator and libebur128's filter, linked
  // over channels: it equals one of the two readings (libebur128's to its float rounding).
  const double own = lathe_true_peak_dbtp(x, fs) + 3.0, ebu = ebur128_true_peak_dbtp(x, fs) + 3.0;
  const double got = lim.input_true_peak_dbtp(3.0);
  EXPECT_GE(got, own - 1e-9);
  EXPECT_TRUE(std::abs(got - own) < 1e-9 || std::abs(got - ebu) < 1e-4) << got << " vs " << own << " / " << ebu;
}

}  // namespace
}  // namespace lathe
