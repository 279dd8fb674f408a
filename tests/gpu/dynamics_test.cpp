// GPU compressor, multiband dynamics and de-esser (kernels/dsp/dynamics.cu) against the CPU chain:
// compressor_stage, multiband_stage and deesser_stage through run_aligned with the chain's block
// size, on batches of stereo tracks of different lengths (1 frame, primes, the chain block and the
// smoothing chunk +-1, several chunks), white noise under an envelope, the demo song and
// sibilant-like bursts; statistics; bitwise repeatability; the fixed-point iteration counts.
// Every test starts with LATHE_REQUIRE_GPU(): without a GPU they skip, saying why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu/gpu_test_support.hpp"
#include "lathe/audio_buffer.hpp"
#include "lathe/biquad.hpp"
#include "lathe/deesser.hpp"
#include "lathe/dynamics.hpp"
#include "lathe/error.hpp"
#include "lathe/multiband.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/detail/dynamics_law.hpp"
#include "lathe_gpu/dynamics.hpp"

namespace {

using lathe::audio_buffer;
using lathe::gpu::lane_layout;

// The GPU precision target (-100 dB): max |gpu - cpu| / rms(cpu), per lane.
constexpr double gpu_rel_tolerance = 1e-5;
// Statistics in dB (the engine reports them rounded to 0.01 dB).
constexpr double stats_tolerance_db = 1e-3;
// The de-esser's active-frame count: a reduction that ends within the 1e-6 dB snap may end a frame
// earlier or later where the GPU's band differs from the CPU's in the last bit.
constexpr double active_fraction_tolerance = 1e-3;
constexpr double fs_hz = 48'000.0;
constexpr std::size_t chain_block = lathe::gpu::detail::chain_block_frames;

struct host_batch {
  lane_layout layout;
  std::vector<float> samples;
  std::vector<audio_buffer> tracks;
};

void add_track(host_batch& b, audio_buffer track) {
  for (int c = 0; c < 2; ++c) {
    b.layout.add(track.frames());
    b.samples.insert(b.samples.end(), track.channel(c), track.channel(c) + track.frames());
  }
  b.tracks.push_back(std::move(track));
}

// Independent noise per channel under a slow envelope (~30 dB swings: attack and release act).
audio_buffer noise_track(std::size_t n, unsigned seed) {
  audio_buffer b(2, n);
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 0.2);
  for (int c = 0; c < 2; ++c) {
    for (std::size_t i = 0; i < n; ++i) {
      const double env = 0.03 + 0.97 * std::pow(std::sin(2.0 * M_PI * (static_cast<double>(i) / 9000.0 + 0.3 * c)), 2);
      b.channel(c)[i] = static_cast<float>(g(rng) * env);
    }
  }
  return b;
}

audio_buffer song(double seconds) {
  lathe::demo_track_spec spec;
  spec.seconds = seconds;
  spec.sample_rate_hz = fs_hz;
  return lathe::synthesize_song(spec);
}

// Quiet noise with 62.5 ms bursts of loud hiss in the de-esser's band, like sibilants.
audio_buffer sibilant_track(std::size_t n, unsigned seed) {
  audio_buffer b(2, n);
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  lathe::biquad hiss;
  hiss.set(lathe::deesser_stage::design_band(lathe::deesser_params{}, fs_hz));
  for (int c = 0; c < 2; ++c) {
    hiss.reset();
    for (std::size_t i = 0; i < n; ++i) {
      const double h = hiss.tick(0.8 * g(rng));
      const bool on = (i / 3000) % 3 == 1;
      b.channel(c)[i] = static_cast<float>(0.05 * g(rng) + (on ? h : 0.0));
    }
  }
  return b;
}

// Lengths around warp, block, chain block (8192), the de-esser's (32768) and the compressor's
// (65536) smoothing chunks, primes, 1 frame; each a noise track; plus the demo song.
host_batch make_batch(unsigned seed, bool sibilant = false) {
  host_batch b;
  const std::vector<std::size_t> lengths = {1, 2, 31, 257, 8191, 8193, 32767, 32769, 65535, 65537, 7919, 150'001};
  for (std::size_t k = 0; k < lengths.size(); ++k) {
    const unsigned s = seed + 17 * static_cast<unsigned>(k);
    add_track(b, sibilant ? sibilant_track(lengths[k], s) : noise_track(lengths[k], s));
  }
  add_track(b, song(3.0));
  return b;
}

double rel_error(const float* got, const float* want, std::size_t n) {
  double err = 0.0, power = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
    power += static_cast<double>(want[i]) * want[i];
  }
  return n == 0 ? 0.0 : err / std::max(std::sqrt(power / static_cast<double>(n)), 1e-20);
}

void expect_lanes_match(const host_batch& b, const std::vector<float>& got, const std::vector<audio_buffer>& want,
                        const char* what) {
  for (std::size_t t = 0; t < b.tracks.size(); ++t) {
    for (int c = 0; c < 2; ++c) {
      const std::size_t lane = 2 * t + static_cast<std::size_t>(c);
      const double e = rel_error(got.data() + b.layout.offset[lane], want[t].channel(c), b.layout.frames[lane]);
      EXPECT_LE(e, gpu_rel_tolerance) << what << " track " << t << " (" << b.layout.frames[lane] << " frames) lane "
                                      << c;
    }
  }
}

struct gpu_env {
  lathe::gpu::stream s;
  lathe::gpu::cufft_plan_cache plans;
  lathe::gpu::gpu_convolver convolver;
  lathe::gpu::stage_resources resources{plans, convolver};
};

struct device_batch {
  lathe::gpu::device_vector<float> in, out;
  device_batch(const host_batch& b, const lathe::gpu::stream& s) : in(b.samples.size()), out(b.samples.size()) {
    in.upload_async(b.samples, s);
    out.zero_async(s);
  }
  std::vector<float> download(const lathe::gpu::stream& s) const {
    std::vector<float> h(out.size());
    out.download_async(h, s);
    s.synchronize();
    return h;
  }
};

void print_report(const char* what, const lathe::gpu::smoothing_report& r) {
  std::printf("[ %s ] %d smoothing runs, max %d / total %d fixed-point iterations%s\n", what, r.runs, r.max_iterations,
              r.total_iterations, r.serial_fallback ? ", serial fallback" : "");
}

// ---- compressor ------------------------------------------------------------------------------------

TEST(GpuDynamics, CompressorMatchesTheCpuStage) {
  LATHE_REQUIRE_GPU();
  const host_batch b = make_batch(1);
  std::vector<lathe::compressor_params> cases(3);
  cases[0].threshold_db = -22.0, cases[0].ratio = 4.0, cases[0].attack_ms = 5.0, cases[0].release_ms = 80.0;
  cases[0].lookahead_ms = 3.0, cases[0].knee_db = 6.0, cases[0].makeup_db = 2.0;
  cases[1] = cases[0];
  cases[1].detector = lathe::level_detector::rms, cases[1].link = lathe::stereo_link::independent;
  cases[1].detector_window_ms = 12.0;
  cases[2].threshold_db = -35.0, cases[2].ratio = 0.5, cases[2].attack_ms = 1.0, cases[2].release_ms = 40.0;
  for (const lathe::compressor_params& p : cases) {
    gpu_env env;
    device_batch d(b, env.s);
    lathe::gpu::smoothing_report report;
    const auto stats = lathe::gpu::compressor_batch(p, fs_hz, b.layout, d.in, d.out, env.s, &report);
    const std::vector<float> got = d.download(env.s);
    print_report("compressor", report);
    EXPECT_FALSE(report.serial_fallback);
    std::vector<audio_buffer> want;
    ASSERT_EQ(stats.size(), b.tracks.size());
    for (std::size_t t = 0; t < b.tracks.size(); ++t) {
      lathe::compressor_stage st(p);
      st.prepare(lathe::stream_spec{fs_hz, 2, chain_block});
      want.push_back(b.tracks[t]);
      lathe::run_aligned(st, want.back(), chain_block);
      const lathe::dynamics_stats s = st.stats();
      EXPECT_EQ(stats[t].frames, s.frames) << "track " << t;
      EXPECT_NEAR(stats[t].max_gain_reduction_db, s.max_gain_reduction_db, stats_tolerance_db) << "track " << t;
      EXPECT_NEAR(stats[t].mean_gain_reduction_db, s.mean_gain_reduction_db, stats_tolerance_db) << "track " << t;
    }
    expect_lanes_match(b, got, want, "compressor");
    // Twice: bitwise.
    device_batch d2(b, env.s);
    (void)lathe::gpu::compressor_batch(p, fs_hz, b.layout, d2.in, d2.out, env.s);
    EXPECT_EQ(d2.download(env.s), got);
  }
}

// ---- multiband -------------------------------------------------------------------------------------

std::vector<lathe::multiband_params> multiband_cases() {
  std::vector<lathe::multiband_params> cs;
  lathe::compressor_params lo, hi;
  lo.threshold_db = -28.0, lo.ratio = 3.0, lo.attack_ms = 5.0, lo.release_ms = 80.0, lo.detector_window_ms = 4.0;
  hi = lo;
  hi.threshold_db = -32.0, hi.ratio = 6.0, hi.lookahead_ms = 1.5, hi.makeup_db = 2.0;
  lathe::multiband_params two;
  two.crossover.crossover_hz = {1'800.0};
  two.bands = {lo, hi};
  cs.push_back(two);  // 2 bands, linked, lookahead on one band, fully wet
  lathe::multiband_params four;
  four.crossover.crossover_hz = {200.0, 1'200.0, 5'000.0};
  lathe::compressor_params b2 = lo, b4 = hi;
  b2.link = lathe::stereo_link::independent, b2.detector = lathe::level_detector::rms, b2.lookahead_ms = 4.0;
  b4.link = lathe::stereo_link::independent, b4.knee_db = 8.0, b4.lookahead_ms = 0.0;
  four.bands = {lo, b2, hi, b4};
  four.dry_wet = 0.6, four.output_gain_db = -1.5;
  cs.push_back(four);  // 4 bands, linked and independent, peak and rms, lookaheads, dry/wet, gain
  return cs;
}

TEST(GpuDynamics, MultibandMatchesTheCpuStage) {
  LATHE_REQUIRE_GPU();
  const host_batch b = make_batch(2);
  for (const lathe::multiband_params& p : multiband_cases()) {
    gpu_env env;
    device_batch d(b, env.s);
    lathe::gpu::smoothing_report report;
    const auto stats = lathe::gpu::multiband_batch(p, fs_hz, b.layout, d.in, d.out, env.resources, env.s, report);
    const std::vector<float> got = d.download(env.s);
    print_report("multiband", report);
    EXPECT_FALSE(report.serial_fallback);
    EXPECT_EQ(report.runs, static_cast<int>(p.bands.size()));
    ASSERT_EQ(stats.size(), b.tracks.size());
    std::vector<audio_buffer> want;
    for (std::size_t t = 0; t < b.tracks.size(); ++t) {
      lathe::multiband_stage st(p);
      st.prepare(lathe::stream_spec{fs_hz, 2, chain_block});
      want.push_back(b.tracks[t]);
      lathe::run_aligned(st, want.back(), chain_block);
      ASSERT_EQ(stats[t].size(), p.bands.size());
      for (std::size_t k = 0; k < p.bands.size(); ++k) {
        const lathe::dynamics_stats s = st.band_stats(static_cast<int>(k));
        EXPECT_EQ(stats[t][k].frames, s.frames) << "track " << t << " band " << k;
        EXPECT_NEAR(stats[t][k].max_gain_reduction_db, s.max_gain_reduction_db, stats_tolerance_db)
            << "track " << t << " band " << k;
        EXPECT_NEAR(stats[t][k].mean_gain_reduction_db, s.mean_gain_reduction_db, stats_tolerance_db)
            << "track " << t << " band " << k;
      }
    }
    expect_lanes_match(b, got, want, "multiband");
    device_batch d2(b, env.s);
    (void)lathe::gpu::multiband_batch(p, fs_hz, b.layout, d2.in, d2.out, env.resources, env.s);
    EXPECT_EQ(d2.download(env.s), got);
  }
}

// A tiny convolver budget cuts the band convolutions into many slices: the result agrees with the
// default budget's within the precision bound (not bitwise: the cuFFT batch sizes differ).
TEST(GpuDynamics, MultibandDoesNotDependOnTheConvolverBudget) {
  LATHE_REQUIRE_GPU();
  host_batch b;
  add_track(b, noise_track(70'001, 5));
  add_track(b, song(2.0));
  const lathe::multiband_params p = multiband_cases()[1];
  gpu_env env;
  device_batch d(b, env.s);
  (void)lathe::gpu::multiband_batch(p, fs_hz, b.layout, d.in, d.out, env.resources, env.s);
  const std::vector<float> ref = d.download(env.s);
  lathe::gpu::gpu_convolver small(std::size_t{4} << 20);
  lathe::gpu::stage_resources res{env.plans, small};
  device_batch d2(b, env.s);
  (void)lathe::gpu::multiband_batch(p, fs_hz, b.layout, d2.in, d2.out, res, env.s);
  const std::vector<float> got = d2.download(env.s);
  for (std::size_t l = 0; l < b.layout.lanes(); ++l) {
    EXPECT_LE(rel_error(got.data() + b.layout.offset[l], ref.data() + b.layout.offset[l], b.layout.frames[l]),
              gpu_rel_tolerance)
        << "lane " << l;
  }
}

// ---- de-esser --------------------------------------------------------------------------------------

TEST(GpuDynamics, DeesserMatchesTheCpuStage) {
  LATHE_REQUIRE_GPU();
  const host_batch b = make_batch(3, true);
  lathe::deesser_params p;
  p.threshold_db = -25.0;
  gpu_env env;
  device_batch d(b, env.s);
  lathe::gpu::smoothing_report report;
  const auto stats = lathe::gpu::deesser_batch(p, fs_hz, b.layout, d.in, d.out, env.resources, env.s, report);
  const std::vector<float> got = d.download(env.s);
  print_report("de-esser", report);
  EXPECT_FALSE(report.serial_fallback);
  ASSERT_EQ(stats.size(), b.tracks.size());
  std::vector<audio_buffer> want;
  std::size_t active = 0;
  for (std::size_t t = 0; t < b.tracks.size(); ++t) {
    lathe::deesser_stage st(p);
    st.prepare(lathe::stream_spec{fs_hz, 2, chain_block});
    want.push_back(b.tracks[t]);
    lathe::run_aligned(st, want.back(), chain_block);
    const lathe::deesser_stats& s = st.stats();
    EXPECT_EQ(stats[t].frames, s.frames) << "track " << t;
    EXPECT_NEAR(stats[t].max_reduction_db, s.max_reduction_db, stats_tolerance_db) << "track " << t;
    EXPECT_NEAR(stats[t].mean_reduction_db(), s.mean_reduction_db(), stats_tolerance_db) << "track " << t;
    const double n = std::max<double>(1.0, static_cast<double>(s.frames));
    EXPECT_NEAR(static_cast<double>(stats[t].active_frames) / n, static_cast<double>(s.active_frames) / n,
                active_fraction_tolerance)
        << "track " << t;
    active += s.active_frames;
  }
  EXPECT_GT(active, std::size_t{100'000}) << "the bursts must be reduced for this test to mean much";
  expect_lanes_match(b, got, want, "de-esser");
  device_batch d2(b, env.s);
  (void)lathe::gpu::deesser_batch(p, fs_hz, b.layout, d2.in, d2.out, env.resources, env.s);
  EXPECT_EQ(d2.download(env.s), got);
}

TEST(GpuDynamics, BadArgumentsThrowBeforeAnyWork) {
  LATHE_REQUIRE_GPU();
  gpu_env env;
  host_batch b;
  add_track(b, noise_track(100, 1));
  device_batch d(b, env.s);
  lathe::gpu::device_vector<float> small(10);
  EXPECT_THROW((void)lathe::gpu::deesser_batch({}, fs_hz, b.layout, d.in, small, env.resources, env.s), lathe::error);
  lathe::multiband_params p = multiband_cases()[0];
  p.bands.pop_back();
  EXPECT_THROW((void)lathe::gpu::multiband_batch(p, fs_hz, b.layout, d.in, d.out, env.resources, env.s), lathe::error);
  lathe::compressor_params c;
  c.ratio = 0.0;
  EXPECT_THROW((void)lathe::gpu::compressor_batch(c, fs_hz, b.layout, d.in, d.out, env.s), lathe::error);
  lane_layout odd;
  odd.add(100);
  EXPECT_THROW((void)lathe::gpu::compressor_batch({}, fs_hz, odd, d.in, d.out, env.s), lathe::error);
}

}  // namespace
