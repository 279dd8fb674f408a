// Compressor / downward expander. References: the gain computer of Giannoulis, Massberg & Reiss,
// JAES 60(6) 2012, eq. (4) (written here as the output level y_G(x), the paper's form), the
// analytic step response of a one-pole smoother, and the input itself (neutral settings).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "lathe/dynamics.hpp"
#include "support/blocks.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<compressor_stage>);

constexpr double fs = 48'000.0;
// compressor_static_gain_db vs the paper's formula: same function, different algebra.
constexpr double curve_formula_tolerance_db = 1e-9;
// A settled steady sine's gain through the whole stage vs the paper's gain computer.
constexpr double static_curve_tolerance_db = 0.1;
// Measured 63 % point of the gain vs the attack / release time constant, relative.
constexpr double time_constant_tolerance = 0.01;
// Gain of the stage vs the analytic one-pole trajectory (float audio, float gain storage).
constexpr double trajectory_tolerance_db = 0.001;
// Linked stereo: both channels get the same gain (float rounding of y / x only).
constexpr double link_tolerance_db = 1e-4;

double db(double x) {
  return 20.0 * std::log10(x);
}

// GMR 2012 eq. (4), output level y_G for input level x (dB); the expander is its mirror image
// about the threshold (straight segment T + (x - T) / R below it, quadratic knee across it).
double paper_output_level(double x, double t, double r, double w) {
  if (r >= 1.0) {
    if (2.0 * (x - t) < -w) return x;
    if (w > 0.0 && 2.0 * std::abs(x - t) <= w) return x + (1.0 / r - 1.0) * std::pow(x - t + w / 2.0, 2.0) / (2.0 * w);
    return t + (x - t) / r;
  }
  if (2.0 * (x - t) > w) return x;
  if (w > 0.0 && 2.0 * std::abs(x - t) <= w) return x - (1.0 / r - 1.0) * std::pow(x - t - w / 2.0, 2.0) / (2.0 * w);
  return t + (x - t) / r;
}

audio_buffer constant(std::initializer_list<std::pair<std::size_t, float>> segments, int channels = 2) {
  std::size_t n = 0;
  for (const auto& s : segments) n += s.first;
  audio_buffer b(channels, n);
  std::size_t pos = 0;
  for (const auto& [len, v] : segments) {
    for (int c = 0; c < channels; ++c) std::fill(b.channel(c) + pos, b.channel(c) + pos + len, v);
    pos += len;
  }
  return b;
}

using test::run_blocks;

double gain_db_at(const audio_buffer& in, const audio_buffer& out, int c, std::size_t i) {
  return db(static_cast<double>(out.channel(c)[i]) / static_cast<double>(in.channel(c)[i]));
}

struct curve_case {
  const char* name;
  compressor_params p;
};

std::vector<curve_case> curve_cases() {
  compressor_params comp;
  comp.threshold_db = -20.0, comp.ratio = 4.0, comp.knee_db = 6.0, comp.attack_ms = 5.0, comp.release_ms = 50.0;
  compressor_params hard = comp;
  hard.knee_db = 0.0, hard.ratio = 10.0, hard.makeup_db = 3.0;
  compressor_params rms = comp;
  rms.detector = level_detector::rms, rms.ratio = 2.5, rms.knee_db = 12.0, rms.threshold_db = -30.0;
  compressor_params exp = comp;
  exp.threshold_db = -40.0, exp.ratio = 0.5, exp.knee_db = 10.0;
  return {{"soft_knee_4_1", comp}, {"hard_knee_10_1_makeup", hard}, {"rms_2.5_1", rms}, {"expander_1_2", exp}};
}

TEST(dynamics, StaticGainIsThePapersGainComputer) {
  for (const auto& cc : curve_cases()) {
    for (double x = -120.0; x <= 6.0; x += 0.0625) {
      const double ref = paper_output_level(x, cc.p.threshold_db, cc.p.ratio, cc.p.knee_db) - x;
      ASSERT_NEAR(compressor_static_gain_db(cc.p, x), ref, curve_formula_tolerance_db) << cc.name << " at " << x;
    }
  }
  compressor_params neutral;
  for (double x = -120.0; x <= 6.0; x += 1.0) EXPECT_EQ(compressor_static_gain_db(neutral, x), 0.0);
}

TEST(dynamics, SettledSineFollowsTheStaticCurve) {
  // 1 kHz at 48 kHz: 48 samples a period, so the 20 ms detector window holds whole periods; the
  // peak detector reads the exact peak (sample 12 of each period) and the rms one exactly A^2/2.
  for (const auto& cc : curve_cases()) {
    double worst = 0.0;
    const bool rms = cc.p.detector == level_detector::rms;
    for (double level = -60.0; level <= 0.0; level += 2.0) {
      compressor_stage s(cc.p);
      s.prepare({fs, 2, 1024});
      const audio_buffer in = test::sine(1'000.0, level, 1.0, fs);
      audio_buffer out = in;
      run_aligned(s, out, 1024);
      const std::size_t from = in.frames() - 4'800;
      double e_in = 0.0, e_out = 0.0;
      for (std::size_t i = from; i < in.frames(); ++i) {
        e_in += static_cast<double>(in.channel(0)[i]) * in.channel(0)[i];
        e_out += static_cast<double>(out.channel(0)[i]) * out.channel(0)[i];
      }
      const double measured = 10.0 * std::log10(e_out / e_in);
      const double detected = rms ? level - 10.0 * std::log10(2.0) : level;
      const double expected =
          paper_output_level(detected, cc.p.threshold_db, cc.p.ratio, cc.p.knee_db) - detected + cc.p.makeup_db;
      EXPECT_NEAR(measured, expected, static_curve_tolerance_db) << cc.name << " at " << level << " dBFS";
      worst = std::max(worst, std::abs(measured - expected));
    }
    std::printf("%s: worst static-curve error %.1e dB\n", cc.name, worst);
  }
}

TEST(dynamics, AttackAndReleaseTimeConstants) {
  compressor_params p;
  p.threshold_db = -30.0, p.ratio = 4.0, p.attack_ms = 10.0, p.release_ms = 80.0, p.detector_window_ms = 1.0;
  const double loud_db = -10.0, quiet_db = -40.0;
  const double target_reduction_db = (loud_db - p.threshold_db) * (1.0 - 1.0 / p.ratio);  // 15 dB
  compressor_stage s(p);
  s.prepare({fs, 2, 512});
  const std::size_t n0 = 4'800, loud_len = 48'000, tail = 48'000;
  const audio_buffer in = constant(
      {{n0, test::db_to_amp(quiet_db)}, {loud_len, test::db_to_amp(loud_db)}, {tail, test::db_to_amp(quiet_db)}});
  const audio_buffer out = run_blocks(s, in, {512});
  const double fraction = 1.0 - std::exp(-1.0);
  // Attack: reduction climbs from 0 toward 15 dB from the step on.
  std::size_t i = n0;
  while (-gain_db_at(in, out, 0, i) < fraction * target_reduction_db) ++i;
  const double attack_measured_ms = static_cast<double>(i - n0 + 1) / fs * 1e3;
  EXPECT_NEAR(attack_measured_ms, p.attack_ms, time_constant_tolerance * p.attack_ms);
  // Release starts once the last loud sample leaves the 1 ms (48-frame) peak window: the
  // detector holds the peak for 47 frames after it.
  const std::size_t n1 = n0 + loud_len + 47;
  EXPECT_NEAR(-gain_db_at(in, out, 0, n1 - 1), target_reduction_db, trajectory_tolerance_db);
  i = n1;
  while (-gain_db_at(in, out, 0, i) > (1.0 - fraction) * target_reduction_db) ++i;
  const double release_measured_ms = static_cast<double>(i - n1 + 1) / fs * 1e3;
  EXPECT_NEAR(release_measured_ms, p.release_ms, time_constant_tolerance * p.release_ms);
  std::printf("63%% points: attack %.3f ms (set %.1f), release %.3f ms (set %.1f)\n", attack_measured_ms, p.attack_ms,
              release_measured_ms, p.release_ms);
}

TEST(dynamics, StatsMatchTheAnalyticTrajectory) {
  // Loud DC from the first sample: reduction G (1 - a^(n+1)), a = exp(-1 / (attack * fs)).
  compressor_params p;
  p.threshold_db = -30.0, p.ratio = 3.0, p.attack_ms = 20.0;
  compressor_stage s(p);
  s.prepare({fs, 2, 1000});
  const std::size_t n = 24'000;
  const audio_buffer in = constant({{n, test::db_to_amp(-6.0)}});
  const audio_buffer out = run_blocks(s, in, {1000});
  const double g = 24.0 * (1.0 - 1.0 / 3.0), a = std::exp(-1.0 / (0.020 * fs));
  for (std::size_t i : {std::size_t{0}, std::size_t{100}, std::size_t{959}, n - 1}) {
    EXPECT_NEAR(-gain_db_at(in, out, 1, i), g * (1.0 - std::pow(a, static_cast<double>(i + 1))),
                trajectory_tolerance_db);
  }
  const double mean =
      g * (1.0 - a * (1.0 - std::pow(a, static_cast<double>(n))) / (static_cast<double>(n) * (1.0 - a)));
  const dynamics_stats st = s.stats();
  EXPECT_EQ(st.frames, n);
  EXPECT_NEAR(st.mean_gain_reduction_db, mean, trajectory_tolerance_db);
  EXPECT_NEAR(st.max_gain_reduction_db, g * (1.0 - std::pow(a, static_cast<double>(n))), trajectory_tolerance_db);
}

TEST(dynamics, StereoLinkGivesTheQuietChannelTheLoudGain) {
  compressor_params p;
  p.threshold_db = -30.0, p.ratio = 4.0, p.attack_ms = 1.0, p.release_ms = 20.0;
  audio_buffer in = test::sine(1'000.0, -6.0, 0.5, fs);
  const audio_buffer quiet = test::sine(440.0, -50.0, 0.5, fs, 1);
  std::copy(quiet.channel(0), quiet.channel(0) + quiet.frames(), in.channel(1));
  const double loud_gain = -24.0 * (1.0 - 1.0 / 4.0);
  for (stereo_link link : {stereo_link::linked, stereo_link::independent}) {
    p.link = link;
    compressor_stage s(p);
    s.prepare({fs, 2, 1024});
    const audio_buffer out = run_blocks(s, in, {1024});
    for (std::size_t i = in.frames() / 2; i < in.frames(); i += 97) {
      if (std::abs(in.channel(0)[i]) < 0.05f || std::abs(in.channel(1)[i]) < 1e-4f) continue;
      const double g0 = gain_db_at(in, out, 0, i), g1 = gain_db_at(in, out, 1, i);
      EXPECT_NEAR(g0, loud_gain, trajectory_tolerance_db);
      EXPECT_NEAR(g1, link == stereo_link::linked ? g0 : 0.0, link_tolerance_db) << "frame " << i;
    }
  }
}

TEST(dynamics, BlockSizeDoesNotChangeTheOutput) {
  // Bursts of noise over quiet noise: attack, release, knee and lookahead all in play.
  const audio_buffer quiet = test::white_noise(-45.0, 0.2, fs, 2, 5);
  const audio_buffer loud = test::white_noise(-8.0, 0.15, fs, 2, 6);
  const audio_buffer in = test::concat({&quiet, &loud, &quiet, &loud, &quiet});
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::size_t> pick(1, 2048);
  std::vector<std::size_t> random_sizes = {1, 2, 3, 5, 7, 13, 127, 997, 2'039};
  for (int i = 0; i < 48; ++i) random_sizes.push_back(pick(rng));
  for (const auto& cc : curve_cases()) {
    for (stereo_link link : {stereo_link::linked, stereo_link::independent}) {
      compressor_params p = cc.p;
      p.link = link, p.lookahead_ms = 3.0;
      compressor_stage s(p);
      s.prepare({fs, 2, 2048});
      const audio_buffer whole = run_blocks(s, in, {2048});
      const dynamics_stats st = s.stats();
      for (const auto& sizes : {std::vector<std::size_t>{1}, std::vector<std::size_t>{997}, random_sizes}) {
        s.reset();
        const audio_buffer split = run_blocks(s, in, sizes);
        for (int c = 0; c < 2; ++c)
          for (std::size_t i = 0; i < in.frames(); ++i)
            ASSERT_EQ(split.channel(c)[i], whole.channel(c)[i]) << cc.name << " frame " << i;
        EXPECT_EQ(s.stats().mean_gain_reduction_db, st.mean_gain_reduction_db);
        EXPECT_EQ(s.stats().max_gain_reduction_db, st.max_gain_reduction_db);
      }
    }
  }
}

TEST(dynamics, LookaheadIsCompensatedAndLeadsTheTransient) {
  compressor_params p;
  p.threshold_db = -30.0, p.ratio = 5.0, p.attack_ms = 2.0, p.release_ms = 50.0, p.lookahead_ms = 5.0;
  const std::size_t lookahead = 240;  // 5 ms at 48 kHz
  // Neutral ratio: the aligned output is the input, bit for bit.
  compressor_params neutral = p;
  neutral.ratio = 1.0;
  compressor_stage n(neutral);
  n.prepare({fs, 2, 333});
  ASSERT_EQ(n.latency_frames(), lookahead);
  const audio_buffer noise = test::white_noise(-10.0, 0.3, fs, 2, 9);
  audio_buffer aligned = noise;
  run_aligned(n, aligned, 333);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < noise.frames(); ++i) ASSERT_EQ(aligned.channel(c)[i], noise.channel(c)[i]);
  // Silence, then loud DC: in the aligned output the gain is already falling when the step
  // arrives, by exactly the lookahead: reduction at step + j is G (1 - a^(j + L + 1)).
  compressor_stage s(p);
  s.prepare({fs, 2, 333});
  const std::size_t n0 = 1'000;
  const audio_buffer in = constant({{n0, 0.0f}, {4'800, test::db_to_amp(-10.0)}});
  audio_buffer out = in;
  run_aligned(s, out, 333);
  for (std::size_t i = 0; i < n0; ++i) ASSERT_EQ(out.channel(0)[i], 0.0f);
  const double g = 20.0 * (1.0 - 1.0 / 5.0), a = std::exp(-1.0 / (0.002 * fs));
  for (std::size_t j = 0; j < 1'000; j += 37) {
    const double expected = g * (1.0 - std::pow(a, static_cast<double>(j + lookahead + 1)));
    EXPECT_NEAR(-gain_db_at(in, out, 0, n0 + j), expected, trajectory_tolerance_db) << "frame " << j;
  }
  EXPECT_GT(-gain_db_at(in, out, 0, n0), 0.9 * g);  // nearly settled when the step arrives
}

TEST(dynamics, RejectsBadParameters) {
  const stream_spec spec{fs, 2, 1024};
  compressor_params p;
  for (auto bad :
       {+[](compressor_params& q) { q.ratio = 0.0; }, +[](compressor_params& q) { q.knee_db = -1.0; },
        +[](compressor_params& q) { q.attack_ms = -1.0; }, +[](compressor_params& q) { q.threshold_db = 3.0; },
        +[](compressor_params& q) { q.detector_window_ms = 0.0; }}) {
    compressor_params q = p;
    bad(q);
    compressor_stage s(q);
    EXPECT_THROW(s.prepare(spec), error);
  }
}

}  // namespace
}  // namespace lathe
