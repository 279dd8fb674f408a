// ITU-R BS.1770-4 loudness and EBU Tech 3342 loudness range: the EBU Tech 3341 / 3342 minimum
// requirement cases (synthesized), the K-weighting against BS.1770's table and its analog
// prototype, an analytic block model of the gating, block-size independence and merge().
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "lathe/loudness.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

// ---- tolerances ----------------------------------------------------------------------------------
// EBU Tech 3341 / 3342 acceptance tolerances.
constexpr double tech3341_tolerance_lu = 0.1;
constexpr double tech3342_tolerance_lu = 1.0;
// What this meter achieves against a float64 analytic model of the same signal (block energies
// from the sine's mean square and the K-weighting's response; filter transients at level steps are
// the only thing the model leaves out). Measured worst 0.0013 LU (a 50 Hz sine, whose start
// transient through the 38 Hz high-pass the model ignores); the Tech 3341/3342 cases stay within
// 0.0005 LU.
constexpr double analytic_tolerance_lu = 0.002;
// Tech 3341 cases 10 and 13 sweep a burst across the meter's 10 ms evaluation grid: the best window
// still holds all but at most 5 ms of the burst (3 s: 0.0073 LU, 400 ms: 0.055 LU) plus ringing
// (measured worst 0.0058 and 0.044 LU).
constexpr double burst_grid_tolerance_short_term_lu = 0.01;
constexpr double burst_grid_tolerance_momentary_lu = 0.06;
// LRA on the Tech 3342 tone cases against the exact level difference (measured < 0.0005 LU).
constexpr double lra_analytic_tolerance_lu = 0.002;
// BS.1770-4 Table 1/2 print the 48 kHz coefficients to 14 decimals.
constexpr double bs1770_table_tolerance = 1e-13;
// The digital K-weighting against its analog prototype at the prewarped frequency: algebraically
// identical, so only rounding remains (evaluating (1 - z^-1)^2 at 10 Hz and 192 kHz cancels ~7 of
// the 16 digits, hence not 1e-12).
constexpr double prototype_tolerance_db = 1e-6;
// merge(): the same float64 sums in the same order.
constexpr double merge_relative_tolerance = 1e-9;

constexpr double tone_hz = 1000.0;
constexpr double silent = -std::numeric_limits<double>::infinity();  // segment level: digital silence

// ---- signals -------------------------------------------------------------------------------------

struct segment {
  double level_dbfs;  // peak level of the sine (-inf: silence)
  double seconds;
};

/// A 1 kHz sine with continuous phase whose level steps per segment, on `channels` channels with
/// per-channel level offsets (dB).
audio_buffer tone_segments(const std::vector<segment>& segs, double fs_hz,
                           std::vector<double> channel_offsets_db = {0.0, 0.0}) {
  double total = 0.0;
  for (const auto& s : segs) total += s.seconds;
  const auto n = static_cast<std::size_t>(std::llround(total * fs_hz));
  const int channels = static_cast<int>(channel_offsets_db.size());
  audio_buffer b(channels, n);
  double t0 = 0.0;
  for (const auto& s : segs) {
    const auto begin = static_cast<std::size_t>(std::llround(t0 * fs_hz));
    t0 += s.seconds;
    const auto end = std::min(n, static_cast<std::size_t>(std::llround(t0 * fs_hz)));
    if (!std::isfinite(s.level_dbfs)) continue;
    for (int c = 0; c < channels; ++c) {
      const double a = std::pow(10.0, (s.level_dbfs + channel_offsets_db[static_cast<std::size_t>(c)]) / 20.0);
      for (std::size_t i = begin; i < end; ++i) {
        b.channel(c)[i] = static_cast<float>(a * std::sin(2.0 * M_PI * tone_hz * static_cast<double>(i) / fs_hz));
      }
    }
  }
  return b;
}

/// Power gain of the K-weighting at f (from the designed biquads' exact response).
double k_power_gain(double f_hz, double fs_hz) {
  const k_weighting_coeffs k = design_k_weighting(fs_hz);
  return std::norm(k.shelf.response(f_hz, fs_hz) * k.highpass.response(f_hz, fs_hz));
}

// ---- analytic block model ------------------------------------------------------------------------
// Block energies of a piecewise-constant 1 kHz sine computed from its mean square (A^2/2 times the
// K-weighting power gain, weighted and summed over channels) and the overlap of each block with
// each segment: the definition of BS.1770 / Tech 3342, evaluated without running any filter.

std::vector<double> analytic_blocks(const std::vector<segment>& segs, double block_s, double fs_hz,
                                    const std::vector<double>& channel_offsets_db = {0.0, 0.0},
                                    const std::vector<double>& weights = {1.0, 1.0}) {
  double total = 0.0;
  for (const auto& s : segs) total += s.seconds;
  const double gain = k_power_gain(tone_hz, fs_hz);
  std::vector<double> blocks;
  for (int k = 0;; ++k) {
    const double end = block_s + 0.1 * k;
    if (end > total + 1e-9) break;
    const double begin = end - block_s;
    double energy = 0.0, t0 = 0.0;
    for (const auto& s : segs) {
      const double lo = std::max(begin, t0), hi = std::min(end, t0 + s.seconds);
      t0 += s.seconds;
      if (hi <= lo || !std::isfinite(s.level_dbfs)) continue;
      for (std::size_t c = 0; c < channel_offsets_db.size(); ++c) {
        const double a2 = std::pow(10.0, (s.level_dbfs + channel_offsets_db[c]) / 10.0);
        energy += weights[c] * 0.5 * a2 * gain * (hi - lo) / block_s;
      }
    }
    blocks.push_back(energy);
  }
  return blocks;
}

// The gating definitions, written out independently in float64.
double reference_integrated(const std::vector<double>& z) {
  const double abs_gate = std::pow(10.0, (-70.0 + 0.691) / 10.0);
  double sum = 0.0;
  int n = 0;
  for (double e : z) {
    if (e >= abs_gate) sum += e, ++n;
  }
  if (n == 0) return silence_lufs;
  const double rel = 0.1 * sum / n;
  sum = 0.0;
  n = 0;
  for (double e : z) {
    if (e >= abs_gate && e >= rel) sum += e, ++n;
  }
  return -0.691 + 10.0 * std::log10(sum / n);
}

double reference_lra(std::vector<double> z) {
  const double abs_gate = std::pow(10.0, (-70.0 + 0.691) / 10.0);
  std::erase_if(z, [&](double e) { return e < abs_gate; });
  if (z.empty()) return 0.0;
  const double mean = std::accumulate(z.begin(), z.end(), 0.0) / static_cast<double>(z.size());
  std::erase_if(z, [&](double e) { return e < 0.01 * mean; });
  std::sort(z.begin(), z.end());
  const auto at = [&](double p) {
    return z[static_cast<std::size_t>((static_cast<double>(z.size()) - 1.0) * p + 0.5)];
  };
  return 10.0 * std::log10(at(0.95)) - 10.0 * std::log10(at(0.10));
}

double lufs(double energy) {
  return -0.691 + 10.0 * std::log10(energy);
}

// ---- meter helpers -------------------------------------------------------------------------------

loudness_meter run_meter(const audio_buffer& b, double fs_hz, std::size_t block = 4096) {
  loudness_meter m;
  m.prepare(fs_hz, b.channels());
  for (std::size_t pos = 0; pos < b.frames(); pos += block) m.process(b.view(pos, std::min(block, b.frames() - pos)));
  return m;
}

/// Feeds `b` 10 ms at a time (fs/100 must be whole) and calls back with the time fed and the
/// meter, so every momentary / short-term value the meter produces can be checked.
void feed_by_tick(loudness_meter& m, const audio_buffer& b, double fs_hz,
                  const std::function<void(double, const loudness_meter&)>& each) {
  const auto tick = static_cast<std::size_t>(std::llround(fs_hz / 100.0));
  ASSERT_EQ(static_cast<double>(tick) * 100.0, fs_hz);
  for (std::size_t pos = 0; pos + tick <= b.frames(); pos += tick) {
    m.process(b.view(pos, tick));
    each(static_cast<double>(pos + tick) / fs_hz, m);
  }
}

// ---- K-weighting ---------------------------------------------------------------------------------

TEST(KWeighting, MatchesBs1770TableAt48k) {
  const k_weighting_coeffs k = design_k_weighting(48'000.0);
  EXPECT_NEAR(k.shelf.b0, 1.53512485958697, bs1770_table_tolerance);
  EXPECT_NEAR(k.shelf.b1, -2.69169618940638, bs1770_table_tolerance);
  EXPECT_NEAR(k.shelf.b2, 1.19839281085285, bs1770_table_tolerance);
  EXPECT_NEAR(k.shelf.a1, -1.69065929318241, bs1770_table_tolerance);
  EXPECT_NEAR(k.shelf.a2, 0.73248077421585, bs1770_table_tolerance);
  EXPECT_EQ(k.highpass.b0, 1.0);
  EXPECT_EQ(k.highpass.b1, -2.0);
  EXPECT_EQ(k.highpass.b2, 1.0);
  EXPECT_NEAR(k.highpass.a1, -1.99004745483398, bs1770_table_tolerance);
  EXPECT_NEAR(k.highpass.a2, 0.99007225036621, bs1770_table_tolerance);
}

TEST(KWeighting, ResponseIsTheAnalogPrototypeAtThePrewarpedFrequency) {
  // Analog prototypes in the normalized variable s = j tan(pi f / fs) / tan(pi f0 / fs):
  // shelf (Vh s^2 + Vb s / Q + 1) / (s^2 + s / Q + 1), high-pass s^2 / (s^2 + s / Q + 1) times the
  // table's unnormalized numerator gain (1 + K/Q + K^2).
  const double vh = std::pow(10.0, 3.999843853973347 / 20.0);
  const double vb = std::pow(vh, 0.4996667741545416);
  for (double fs : {8'000.0, 22'050.0, 32'000.0, 44'100.0, 48'000.0, 88'200.0, 96'000.0, 192'000.0, 37'800.0}) {
    const k_weighting_coeffs k = design_k_weighting(fs);
    const double ks = std::tan(M_PI * 1681.974450955533 / fs);
    const double kh = std::tan(M_PI * 38.13547087602444 / fs);
    const double qs = 0.7071752369554196, qh = 0.5003270373238773;
    for (double f = 10.0; f < 0.45 * fs; f *= 1.1) {
      const double w = std::tan(M_PI * f / fs);
      const std::complex<double> ss(0.0, w / ks), sh(0.0, w / kh);
      const auto shelf = (vh * ss * ss + vb * ss / qs + 1.0) / (ss * ss + ss / qs + 1.0);
      const auto hp = (1.0 + kh / qh + kh * kh) * sh * sh / (sh * sh + sh / qh + 1.0);
      const double ref_db = 20.0 * std::log10(std::abs(shelf * hp));
      const double got_db = 20.0 * std::log10(std::abs(k.shelf.response(f, fs) * k.highpass.response(f, fs)));
      ASSERT_NEAR(got_db, ref_db, prototype_tolerance_db) << "fs " << fs << " f " << f;
    }
  }
}

TEST(LoudnessMeter, SineLoudnessIsTheKWeightedMeanSquare) {
  // Stereo sines whose 400 ms blocks hold whole periods: every block's energy is A^2 |H(f)|^2.
  for (double fs : {44'100.0, 48'000.0, 96'000.0}) {
    for (double f : {50.0, 100.0, 1000.0, 5000.0, 10'000.0}) {
      const audio_buffer b = test::sine(f, -12.0, 5.0, fs);
      const double a2 = std::pow(10.0, -12.0 / 10.0);
      const double expected = lufs(2.0 * 0.5 * a2 * k_power_gain(f, fs));
      const loudness_meter m = run_meter(b, fs);
      EXPECT_NEAR(m.integrated_lufs(), expected, analytic_tolerance_lu) << "fs " << fs << " f " << f;
    }
  }
}

// ---- EBU Tech 3341 -------------------------------------------------------------------------------

struct integrated_case {
  const char* name;
  double expected_lufs;
  std::vector<segment> segs;
  std::vector<double> offsets_db;  // per channel
  std::vector<double> weights;     // BS.1770 weights of those channels
};

class Tech3341Integrated : public ::testing::TestWithParam<double> {};

TEST_P(Tech3341Integrated, Cases1To6) {
  const double fs = GetParam();
  const std::vector<integrated_case> cases = {
      {"1: -23 dBFS, 20 s", -23.0, {{-23.0, 20.0}}, {0, 0}, {1, 1}},
      {"2: -33 dBFS, 20 s", -33.0, {{-33.0, 20.0}}, {0, 0}, {1, 1}},
      {"3: -36/-23/-36 dBFS, 10/60/10 s", -23.0, {{-36.0, 10.0}, {-23.0, 60.0}, {-36.0, 10.0}}, {0, 0}, {1, 1}},
      {"4: -72/-36/-23/-36/-72 dBFS, 10/10/60/10/10 s",
       -23.0,
       {{-72.0, 10.0}, {-36.0, 10.0}, {-23.0, 60.0}, {-36.0, 10.0}, {-72.0, 10.0}},
       {0, 0},
       {1, 1}},
      {"5: -26/-20/-26 dBFS, 20/20.1/20 s", -23.0, {{-26.0, 20.0}, {-20.0, 20.1}, {-26.0, 20.0}}, {0, 0}, {1, 1}},
      // 5.0 L R C Ls Rs: -28, -28, -24, -30, -30 dBFS; surrounds weighted 1.41.
      {"6: 5.0, L R -28, C -24, Ls Rs -30 dBFS, 20 s",
       -23.0,
       {{0.0, 20.0}},
       {-28, -28, -24, -30, -30},
       {1, 1, 1, 1.41, 1.41}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const audio_buffer b = tone_segments(c.segs, fs, c.offsets_db);
    const loudness_meter m = run_meter(b, fs);
    const double got = m.integrated_lufs();
    EXPECT_NEAR(got, c.expected_lufs, tech3341_tolerance_lu);
    const double model = reference_integrated(analytic_blocks(c.segs, 0.4, fs, c.offsets_db, c.weights));
    EXPECT_NEAR(got, model, analytic_tolerance_lu);
    if (c.segs.size() == 1 && c.offsets_db.size() == 2) {
      // Cases 1 and 2 also specify M and S: check every value once the windows are full.
      const double level = c.expected_lufs;
      EXPECT_NEAR(m.momentary_lufs(), level, tech3341_tolerance_lu);
      EXPECT_NEAR(m.short_term_lufs(), level, tech3341_tolerance_lu);
      for (double z : m.blocks().momentary_energy) ASSERT_NEAR(energy_to_lufs(z), level, tech3341_tolerance_lu);
      for (double z : m.blocks().short_term_energy) ASSERT_NEAR(energy_to_lufs(z), level, tech3341_tolerance_lu);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Rates, Tech3341Integrated, ::testing::Values(48'000.0, 44'100.0, 96'000.0));

TEST(Tech3341, Cases7And8NeedAuthenticProgramme) {
  GTEST_SKIP() << "Tech 3341 cases 7 and 8 (and Tech 3342 cases 5, 6) are authentic programme excerpts "
                  "distributed only as the EBU loudness test set's WAV files, which this repository does "
                  "not carry; they cannot be synthesized.";
}

constexpr double tech3341_fs = 48'000.0;  // the EBU test set's rate

// Cases 9 and 12: a period of `high_s` at -20 dBFS and `low_s` at -30 dBFS, exactly one window
// long, repeated: from one window on, every value the meter gives must read -23.
void check_constant_after_one_window(double high_s, double low_s, int repeats, bool short_term, int expected_values) {
  std::vector<segment> segs;
  for (int i = 0; i < repeats; ++i) segs.push_back({-20.0, high_s}), segs.push_back({-30.0, low_s});
  const double window_s = high_s + low_s;
  const audio_buffer b = tone_segments(segs, tech3341_fs);
  const double model = lufs(analytic_blocks({{-20.0, high_s}, {-30.0, low_s}}, window_s, tech3341_fs).front());
  loudness_meter m;
  m.prepare(tech3341_fs, 2);
  int checked = 0;
  feed_by_tick(m, b, tech3341_fs, [&](double t, const loudness_meter& mm) {
    if (t < window_s - 1e-9) return;
    const double v = short_term ? mm.short_term_lufs() : mm.momentary_lufs();
    ASSERT_NEAR(v, -23.0, tech3341_tolerance_lu) << "t " << t;
    ASSERT_NEAR(v, model, analytic_tolerance_lu) << "t " << t;
    ++checked;
  });
  EXPECT_EQ(checked, expected_values);
  const auto& blocks = short_term ? m.blocks().short_term_energy : m.blocks().momentary_energy;
  for (double z : blocks) EXPECT_NEAR(energy_to_lufs(z), model, analytic_tolerance_lu);
}

TEST(Tech3341, Case9ShortTermConstantAfter3s) {
  check_constant_after_one_window(1.34, 1.66, 5, true, 1201);  // 3.00 s .. 15.00 s every 10 ms
}

TEST(Tech3341, Case12MomentaryConstantAfter1s) {
  // The standard says "after 1 s"; every 400 ms window already holds one period, so check from 0.4 s.
  check_constant_after_one_window(0.18, 0.22, 25, false, 961);  // 0.40 s .. 10.00 s every 10 ms
}

// Cases 10 and 13: a -23 dBFS burst (3 s / 400 ms) at twenty positions; the maximum S / M must read
// -23. The EBU files' exact offsets are not given in the table, so the positions here step by an
// amount that is not a multiple of the meter's 10 ms grid: the bursts fall everywhere on it.
void check_burst_maximum(double burst_s, double max_tolerance_lu, bool short_term) {
  const double model = lufs(analytic_blocks({{-23.0, burst_s}}, burst_s, tech3341_fs).front());
  for (int k = 0; k < 20; ++k) {
    const double offset_s = 0.5 + k * 0.1537 + k * 0.00031;
    const audio_buffer b = tone_segments({{silent, offset_s}, {-23.0, burst_s}, {silent, 1.0}}, tech3341_fs);
    const loudness_meter m = run_meter(b, tech3341_fs, 1000 + 37 * static_cast<std::size_t>(k));
    const double got = short_term ? m.max_short_term_lufs() : m.max_momentary_lufs();
    EXPECT_NEAR(got, -23.0, tech3341_tolerance_lu) << "offset " << offset_s;
    EXPECT_NEAR(got, model, max_tolerance_lu) << "offset " << offset_s;
  }
}

TEST(Tech3341, Case10MaxShortTermOfA3sBurstAnywhere) {
  check_burst_maximum(3.0, burst_grid_tolerance_short_term_lu, true);
}

TEST(Tech3341, Case13MaxMomentaryOfA400msBurstAnywhere) {
  check_burst_maximum(0.4, burst_grid_tolerance_momentary_lu, false);
}

// Cases 11 and 14: twenty successive bursts at -38, -37, ..., -19 dBFS (3 s / 400 ms each, each
// followed by as much silence); the maximum over each burst's period reads its level.
void check_successive_maxima(double burst_s, bool short_term) {
  std::vector<segment> segs;
  for (int i = 0; i < 20; ++i) segs.push_back({-38.0 + i, burst_s}), segs.push_back({silent, burst_s});
  const audio_buffer b = tone_segments(segs, tech3341_fs);
  std::vector<double> max_per_burst(20, silence_lufs);
  loudness_meter m;
  m.prepare(tech3341_fs, 2);
  feed_by_tick(m, b, tech3341_fs, [&](double t, const loudness_meter& mm) {
    // A window ending in (2 i burst, 2 (i + 1) burst] belongs to burst i.
    const int i = static_cast<int>(std::ceil(t / (2.0 * burst_s) - 1e-9)) - 1;
    if (i < 0 || i >= 20) return;
    const double v = short_term ? mm.short_term_lufs() : mm.momentary_lufs();
    max_per_burst[static_cast<std::size_t>(i)] = std::max(max_per_burst[static_cast<std::size_t>(i)], v);
  });
  for (int i = 0; i < 20; ++i) {
    const double level = -38.0 + i;
    const double model = lufs(analytic_blocks({{level, burst_s}}, burst_s, tech3341_fs).front());
    EXPECT_NEAR(max_per_burst[static_cast<std::size_t>(i)], level, tech3341_tolerance_lu) << "burst " << i;
    EXPECT_NEAR(max_per_burst[static_cast<std::size_t>(i)], model, analytic_tolerance_lu) << "burst " << i;
  }
}

TEST(Tech3341, Case11SuccessiveMaxShortTerm) {
  check_successive_maxima(3.0, true);
}
TEST(Tech3341, Case14SuccessiveMaxMomentary) {
  check_successive_maxima(0.4, false);
}

// ---- EBU Tech 3342 -------------------------------------------------------------------------------

TEST(Tech3342, Cases1To4) {
  struct lra_case {
    const char* name;
    std::vector<segment> segs;
    double expected_lu;
  };
  const std::vector<lra_case> cases = {
      {"1: -20 then -30 dBFS, 20 s each", {{-20.0, 20.0}, {-30.0, 20.0}}, 10.0},
      {"2: -20 then -15 dBFS, 20 s each", {{-20.0, 20.0}, {-15.0, 20.0}}, 5.0},
      {"3: -40 then -20 dBFS, 20 s each", {{-40.0, 20.0}, {-20.0, 20.0}}, 20.0},
      {"4: -50 -35 -20 -35 -50 dBFS, 20 s each",
       {{-50.0, 20.0}, {-35.0, 20.0}, {-20.0, 20.0}, {-35.0, 20.0}, {-50.0, 20.0}},
       15.0},
  };
  for (double fs : {48'000.0, 44'100.0}) {
    for (const auto& c : cases) {
      SCOPED_TRACE(c.name);
      const loudness_meter m = run_meter(tone_segments(c.segs, fs), fs);
      const double got = m.loudness_range_lu();
      EXPECT_NEAR(got, c.expected_lu, tech3342_tolerance_lu);
      EXPECT_NEAR(got, c.expected_lu, lra_analytic_tolerance_lu);
      EXPECT_NEAR(got, reference_lra(analytic_blocks(c.segs, 3.0, fs)), lra_analytic_tolerance_lu);
    }
  }
}

// ---- gating and LRA definitions on hand-made block lists -----------------------------------------

TEST(LoudnessBlocks, GatingFollowsTheDefinition) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> level(-90.0, -5.0);
  for (int trial = 0; trial < 50; ++trial) {
    loudness_blocks b;
    for (int i = 0; i < 1 + trial * 13; ++i) {
      b.momentary_energy.push_back(std::pow(10.0, (level(rng) + 0.691) / 10.0));
      b.short_term_energy.push_back(std::pow(10.0, (level(rng) + 0.691) / 10.0));
    }
    const double ref_i = reference_integrated(b.momentary_energy);
    if (std::isinf(ref_i)) {
      EXPECT_EQ(b.integrated_lufs(), ref_i);
    } else {
      EXPECT_NEAR(b.integrated_lufs(), ref_i, 1e-12);
    }
    EXPECT_NEAR(b.loudness_range_lu(), reference_lra(b.short_term_energy), 1e-12);
  }
  loudness_blocks quiet;
  quiet.momentary_energy.assign(100, std::pow(10.0, (-71.0 + 0.691) / 10.0));
  quiet.short_term_energy = quiet.momentary_energy;
  EXPECT_EQ(quiet.integrated_lufs(), silence_lufs);
  EXPECT_EQ(quiet.loudness_range_lu(), 0.0);
}

TEST(LoudnessMeter, SilenceReadsMinusInfinity) {
  loudness_meter m;
  m.prepare(48'000.0, 2);
  EXPECT_EQ(m.momentary_lufs(), silence_lufs);
  EXPECT_EQ(m.short_term_lufs(), silence_lufs);
  const audio_buffer silence(2, 48'000 * 5);
  m.process(silence.view());
  EXPECT_EQ(m.integrated_lufs(), silence_lufs);
  EXPECT_EQ(m.momentary_lufs(), silence_lufs);
  EXPECT_EQ(m.max_short_term_lufs(), silence_lufs);
  EXPECT_EQ(m.loudness_range_lu(), 0.0);
  EXPECT_EQ(m.blocks().momentary_energy.size(), 47u);   // 0.4 s .. 5.0 s
  EXPECT_EQ(m.blocks().short_term_energy.size(), 21u);  // 3.0 s .. 5.0 s
}

// ---- channels ------------------------------------------------------------------------------------

TEST(LoudnessMeter, OneToEightChannelsWithWeights) {
  const double fs = 48'000.0;
  for (int channels = 1; channels <= max_channels; ++channels) {
    std::vector<double> offsets, weights;
    for (int c = 0; c < channels; ++c) {
      offsets.push_back(-20.0 - 2.0 * c);
      weights.push_back(c == 3 ? 0.0 : 1.0 + 0.25 * c);  // channel 3 excluded, like an LFE
    }
    const audio_buffer b = tone_segments({{0.0, 4.0}}, fs, offsets);
    loudness_meter m;
    m.prepare(fs, channels, weights);
    m.process(b.view());
    const double model = reference_integrated(analytic_blocks({{0.0, 4.0}}, 0.4, fs, offsets, weights));
    EXPECT_NEAR(m.integrated_lufs(), model, analytic_tolerance_lu) << channels << " channels";
  }
  // Default weights: 1.41 on the surrounds of a 5-channel layout only.
  const std::vector<double> five = {-28, -28, -24, -30, -30};
  const loudness_meter m5 = run_meter(tone_segments({{0.0, 4.0}}, fs, five), fs);
  EXPECT_NEAR(m5.integrated_lufs(),
              reference_integrated(analytic_blocks({{0.0, 4.0}}, 0.4, fs, five, {1, 1, 1, 1.41, 1.41})),
              analytic_tolerance_lu);
  const std::vector<double> six = {-28, -28, -24, -30, -30, -30};
  const loudness_meter m6 = run_meter(tone_segments({{0.0, 4.0}}, fs, six), fs);
  EXPECT_NEAR(m6.integrated_lufs(),
              reference_integrated(analytic_blocks({{0.0, 4.0}}, 0.4, fs, six, {1, 1, 1, 1, 1, 1})),
              analytic_tolerance_lu);
}

// ---- block-size independence ---------------------------------------------------------------------

TEST(LoudnessMeter, ResultsDoNotDependOnBlockSize) {
  for (double fs : {44'100.0, 48'000.0, 22'050.0}) {
    audio_buffer b = test::white_noise(-20.0, 7.3, fs, 3, 11);
    const audio_buffer tone = tone_segments({{-10.0, 7.3}}, fs, {0, -3, -6});
    for (int c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < b.frames(); ++i)
        b.channel(c)[i] += tone.channel(c)[i] * (i > b.frames() / 2 ? 1.0f : 0.1f);
    const loudness_meter whole = run_meter(b, fs, b.frames());
    for (int trial = 0; trial < 4; ++trial) {
      loudness_meter m;
      m.prepare(fs, 3);
      std::mt19937 rng(static_cast<unsigned>(trial));
      const std::size_t sizes[] = {1, 2, 3, 7, 13, 127, 441, 480, 4093, 8191};
      std::size_t pos = 0;
      while (pos < b.frames()) {
        const std::size_t n = std::min(b.frames() - pos, trial == 0 ? std::size_t{1} : sizes[rng() % 10]);
        m.process(b.view(pos, n));
        pos += n;
      }
      ASSERT_EQ(m.blocks().momentary_energy, whole.blocks().momentary_energy) << "fs " << fs;
      ASSERT_EQ(m.blocks().short_term_energy, whole.blocks().short_term_energy) << "fs " << fs;
      EXPECT_EQ(m.max_momentary_lufs(), whole.max_momentary_lufs());
      EXPECT_EQ(m.max_short_term_lufs(), whole.max_short_term_lufs());
      EXPECT_EQ(m.momentary_lufs(), whole.momentary_lufs());
      EXPECT_EQ(m.short_term_lufs(), whole.short_term_lufs());
    }
  }
}

// process(in, energy) is process(in) bit for bit, and a one-channel meter fed that per-frame
// energy (add_energy) reads the same loudness: the energy is stored as float, so within 1e-5 LU.
TEST(LoudnessMeter, PerFrameEnergyReproducesTheMeter) {
  for (const int channels : {1, 2, 3, 5}) {
    const double fs = 48'000.0;
    audio_buffer b = test::white_noise(-20.0, 6.0, fs, channels, 3);
    const audio_buffer tone =
        tone_segments({{-12.0, 6.0}}, fs, std::vector<double>(static_cast<std::size_t>(channels), -2.0));
    for (int c = 0; c < channels; ++c)
      for (std::size_t i = 0; i < b.frames(); ++i)
        b.channel(c)[i] += tone.channel(c)[i] * (i > b.frames() / 3 ? 1.0f : 0.05f);
    const loudness_meter plain = run_meter(b, fs, b.frames());
    loudness_meter tapped, fed;
    tapped.prepare(fs, channels);
    fed.prepare(fs, 1);
    std::vector<float> energy(4093);
    std::vector<double> e64(energy.size());
    for (std::size_t pos = 0; pos < b.frames(); pos += energy.size()) {
      const std::size_t n = std::min(energy.size(), b.frames() - pos);
      tapped.process(b.view(pos, n), energy.data());
      for (std::size_t i = 0; i < n; ++i) e64[i] = energy[i];
      fed.add_energy(e64.data(), n);
    }
    ASSERT_EQ(tapped.blocks().momentary_energy, plain.blocks().momentary_energy) << channels << " channels";
    ASSERT_EQ(tapped.blocks().short_term_energy, plain.blocks().short_term_energy) << channels << " channels";
    ASSERT_TRUE(std::isfinite(plain.integrated_lufs()));
    EXPECT_NEAR(fed.integrated_lufs(), plain.integrated_lufs(), 1e-5) << channels << " channels";
    EXPECT_NEAR(fed.loudness_range_lu(), plain.loudness_range_lu(), 1e-5) << channels << " channels";
  }
}

TEST(LoudnessMeter, ResetGivesTheSameResultAgain) {
  const audio_buffer b = test::white_noise(-18.0, 4.0, 44'100.0, 2, 5);
  loudness_meter m = run_meter(b, 44'100.0);
  const loudness_blocks first = m.blocks();
  m.reset();
  m.process(b.view());
  EXPECT_EQ(m.blocks().momentary_energy, first.momentary_energy);
  EXPECT_EQ(m.blocks().short_term_energy, first.short_term_energy);
}

// ---- merge ---------------------------------------------------------------------------------------

TEST(LoudnessBlocks, MergeIsAlbumLoudness) {
  // A and B are whole multiples of 100 ms, and A ends in 0.5 s of silence, so the K-weighting's
  // memory of A has decayed (to ~1e-40) before B starts: the blocks of the continuous run that lie
  // wholly inside A or B are then A's and B's own blocks.
  const double fs = 44'100.0;
  audio_buffer a = test::white_noise(-14.0, 12.0, fs, 2, 21);
  const audio_buffer tail(2, static_cast<std::size_t>(0.5 * fs));
  a = test::concat({&a, &tail});
  audio_buffer b = tone_segments({{-30.0, 4.0}, {-12.0, 3.0}, {-45.0, 2.0}}, fs);
  const audio_buffer ab = test::concat({&a, &b});
  const loudness_meter ma = run_meter(a, fs), mb = run_meter(b, fs), mab = run_meter(ab, fs);

  loudness_blocks merged = ma.blocks();
  merged.merge(mb.blocks());
  ASSERT_EQ(merged.momentary_energy.size(), ma.blocks().momentary_energy.size() + mb.blocks().momentary_energy.size());
  ASSERT_EQ(merged.short_term_energy.size(),
            ma.blocks().short_term_energy.size() + mb.blocks().short_term_energy.size());
  EXPECT_TRUE(
      std::equal(mb.blocks().momentary_energy.begin(), mb.blocks().momentary_energy.end(),
                 merged.momentary_energy.begin() + static_cast<std::ptrdiff_t>(ma.blocks().momentary_energy.size())));

  // Definition, computed from the blocks directly.
  EXPECT_NEAR(merged.integrated_lufs(), reference_integrated(merged.momentary_energy), 1e-12);
  EXPECT_NEAR(merged.loudness_range_lu(), reference_lra(merged.short_term_energy), 1e-12);

  // The continuous run, less the 3 gating blocks and 29 short-term blocks straddling the junction.
  loudness_blocks joined;
  const auto& zm = mab.blocks().momentary_energy;
  const auto& zs = mab.blocks().short_term_energy;
  const auto na = static_cast<std::ptrdiff_t>(ma.blocks().momentary_energy.size());
  const auto nsa = static_cast<std::ptrdiff_t>(ma.blocks().short_term_energy.size());
  joined.momentary_energy.assign(zm.begin(), zm.begin() + na);
  joined.momentary_energy.insert(joined.momentary_energy.end(), zm.begin() + na + 3, zm.end());
  joined.short_term_energy.assign(zs.begin(), zs.begin() + nsa);
  joined.short_term_energy.insert(joined.short_term_energy.end(), zs.begin() + nsa + 29, zs.end());
  ASSERT_EQ(joined.momentary_energy.size(), merged.momentary_energy.size());
  ASSERT_EQ(joined.short_term_energy.size(), merged.short_term_energy.size());
  const double rel_i = std::abs(std::pow(10.0, (merged.integrated_lufs() - joined.integrated_lufs()) / 10.0) - 1.0);
  EXPECT_LE(rel_i, merge_relative_tolerance);
  EXPECT_NEAR(merged.loudness_range_lu(), joined.loudness_range_lu(),
              10.0 * std::log10(1.0 + merge_relative_tolerance));
}

}  // namespace
}  // namespace lathe
