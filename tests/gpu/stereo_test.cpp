// The stereo stage on the GPU (kernels/dsp/stereo.cu) against the CPU chain
// (run_aligned(stereo_stage) per track): outputs and the per-track statistics (correlations,
// window minima, side/mid ratios), on batches of tracks whose lengths straddle warp (32),
// thread-block (256), the chain block (8'192) and the meter window (17'640 at 44.1 kHz), with
// length 1 and primes, noise and music-like audio; bass mono on and off, bypass; and bitwise
// repeatability. Every test starts with LATHE_REQUIRE_GPU(): without a GPU they skip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gpu/gpu_test_support.hpp"
#include "gpu/tone_support.hpp"
#include "lathe/stereo.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/stereo.hpp"

namespace {

using lathe::gpu::lane_layout;
using lathe::gpu::test::host_batch;

// The GPU precision target (-100 dB): max |gpu - cpu| / rms(cpu), per lane (the side FIR is a
// cuFFT convolution on the GPU, a partitioned FFTW one on the CPU).
constexpr double gpu_rel_tolerance = 1e-5;
constexpr double correlation_tolerance = 1e-6;
constexpr double ratio_tolerance_db = 1e-3;
constexpr double fs_hz = 44'100.0;
constexpr std::size_t block = 8'192;

// Track t: lanes 2t, 2t+1. Noise tracks with partly correlated channels, then a song.
host_batch make_batch(const std::vector<std::size_t>& lengths, unsigned seed) {
  host_batch b;
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 0.2);
  for (std::size_t n : lengths) {
    std::vector<float> l(n), r(n);
    for (std::size_t i = 0; i < n; ++i) {
      l[i] = static_cast<float>(g(rng));
      r[i] = static_cast<float>(0.6 * l[i] + 0.4 * g(rng));
    }
    b.add(l.data(), n);
    b.add(r.data(), n);
  }
  lathe::gpu::test::add_song(b, 3.0, fs_hz);
  return b;
}

struct gpu_result {
  std::vector<float> out;
  std::vector<lathe::stereo_stats> stats;
};

gpu_result run_gpu(const lathe::stereo_params& p, const host_batch& batch, const lathe::gpu::stream& s) {
  lathe::gpu::test::owned_resources res;
  lathe::gpu::device_vector<float> in(batch.samples.size()), out(batch.samples.size());
  in.upload_async(batch.samples, s);
  out.zero_async(s);
  gpu_result r;
  r.stats = lathe::gpu::stereo_batch(p, fs_hz, batch.layout, in, out, res.res, s);
  r.out.resize(batch.samples.size());
  out.download_async(r.out, s);
  s.synchronize();
  return r;
}

std::vector<lathe::stereo_params> cases() {
  std::vector<lathe::stereo_params> c(4);
  c[0].width = 1.4, c[0].mid_gain_db = 2.0, c[0].bass_mono_below_hz = 120.0;
  c[1].width = 0.0;  // mono, latency 0
  c[3].bass_mono_below_hz = 300.0, c[3].meter_window_ms = 50.0;
  return c;  // c[2]: bypass
}

void expect_near_or_same(double got, double want, double tol, const std::string& what) {
  if (std::isfinite(want))
    EXPECT_NEAR(got, want, tol) << what;
  else
    EXPECT_TRUE(got == want || (std::isnan(got) && std::isnan(want))) << what << ": " << got << " vs " << want;
}

TEST(GpuStereo, MatchesCpuChainOutputsAndStatistics) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  const host_batch batch = make_batch({1, 2, 31, 33, 257, 8'191, 8'192, 8'193, 17'639, 17'640, 17'641, 65'521}, 5);
  const std::size_t tracks = batch.layout.lanes() / 2;
  for (std::size_t k = 0; k < cases().size(); ++k) {
    const lathe::stereo_params p = cases()[k];
    const gpu_result got = run_gpu(p, batch, s);
    ASSERT_EQ(got.stats.size(), tracks);
    double worst = 0.0;
    for (std::size_t t = 0; t < tracks; ++t) {
      const std::size_t n = batch.layout.frames[2 * t];
      lathe::audio_buffer x(2, n);
      for (int c = 0; c < 2; ++c) std::copy_n(batch.samples.data() + batch.layout.offset[2 * t + c], n, x.channel(c));
      lathe::stereo_stage st(p);
      st.prepare({fs_hz, 2, block});
      lathe::run_aligned(st, x, block);
      const std::string what =
          "case " + std::to_string(k) + ", track " + std::to_string(t) + " (" + std::to_string(n) + " frames)";
      for (int c = 0; c < 2; ++c) {
        const float* g = got.out.data() + batch.layout.offset[2 * t + c];
        const double rel = lathe::gpu::test::relative_error(g, x.channel(c), n);
        worst = std::max(worst, rel);
        EXPECT_LE(rel, gpu_rel_tolerance) << what << ", channel " << c;
      }
      const lathe::stereo_stats want = st.stats(), g = got.stats[t];
      expect_near_or_same(g.correlation_before, want.correlation_before, correlation_tolerance, what);
      expect_near_or_same(g.correlation_after, want.correlation_after, correlation_tolerance, what);
      expect_near_or_same(g.min_window_correlation_before, want.min_window_correlation_before, correlation_tolerance,
                          what);
      expect_near_or_same(g.min_window_correlation_after, want.min_window_correlation_after, correlation_tolerance,
                          what);
      expect_near_or_same(g.side_to_mid_db_before, want.side_to_mid_db_before, ratio_tolerance_db, what);
      expect_near_or_same(g.side_to_mid_db_after, want.side_to_mid_db_after, ratio_tolerance_db, what);
    }
    std::printf("stereo case %zu: worst relative error %.3g over %zu tracks\n", k, worst, tracks);
  }
}

TEST(GpuStereo, BitwiseIdenticalAcrossRuns) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  const host_batch batch = make_batch({1, 8'193, 40'009}, 7);
  for (const lathe::stereo_params& p : cases()) {
    const gpu_result a = run_gpu(p, batch, s), b = run_gpu(p, batch, s);
    EXPECT_EQ(std::memcmp(a.out.data(), b.out.data(), a.out.size() * sizeof(float)), 0);
    ASSERT_EQ(a.stats.size(), b.stats.size());
    for (std::size_t t = 0; t < a.stats.size(); ++t) {
      EXPECT_EQ(std::memcmp(&a.stats[t], &b.stats[t], sizeof(lathe::stereo_stats)), 0) << "track " << t;
    }
  }
}

TEST(GpuStereo, RejectsBadLayouts) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  lathe::gpu::test::owned_resources r;
  lane_layout odd;
  odd.add(10);
  lathe::gpu::device_vector<float> in(30), out(30);
  EXPECT_THROW(lathe::gpu::stereo_batch({}, fs_hz, odd, in, out, r.res, s), lathe::logic_error);
  lane_layout uneven;
  uneven.add(10);
  uneven.add(11);
  EXPECT_THROW(lathe::gpu::stereo_batch({}, fs_hz, uneven, in, out, r.res, s), lathe::logic_error);
}

}  // namespace
