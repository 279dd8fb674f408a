// GPU Welch power spectrum (kernels/qc/tonal.cu, welch_power_batch) against the CPU reference
// lathe::measure_welch_power, track by track: batches of stereo tracks of lengths 0, 1, around
// the frame size (n - 1, n, n + 1, n + hop +- 1), primes, several frames, and demo songs; per bin
// (relative, above a floor) and per 1/3-octave band after summarize(); slices that cut tracks;
// bitwise repeatability; bad arguments. Every test starts with LATHE_REQUIRE_GPU(): without a GPU
// they skip, saying why. The decomposition itself is emulated on the CPU (bitwise against the CPU
// reference) by tests/qc/gpu_tonal_layout_test.cpp.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gpu/gpu_test_support.hpp"
#include "gpu/welch_support.hpp"
#include "lathe/error.hpp"
#include "lathe/tonal.hpp"
#include "lathe_gpu/convolution.hpp"
#include "lathe_gpu/detail/welch_layout.hpp"
#include "lathe_gpu/memory.hpp"
#include "lathe_gpu/tonal.hpp"

namespace {

namespace wt = lathe::welch_test;
using lathe::welch_power;

// cuFFT and FFTW round the float transform differently; the transform input and the float64
// summation order are the CPU's. Per bin relative to max(bin, 1e-5 x strongest bin): each float
// FFT stays within 0.5e-4 of the exact transform (gpu_tonal_layout_test measures FFTW).
constexpr double bin_rel_tolerance = 1e-4;
// The task's criterion for the report: 1/3-octave levels after summarize().
constexpr double band_tolerance_db = 0.01;
constexpr double fs_hz = 48'000.0;

struct gpu_env {
  lathe::gpu::stream s;
  lathe::gpu::cufft_plan_cache plans;
};

lathe::gpu::device_vector<float> upload(const wt::host_batch& b, const lathe::gpu::stream& s) {
  lathe::gpu::device_vector<float> d(b.samples.size());
  d.upload_async(b.samples, s);
  return d;
}

wt::host_batch make_batch(double rate_hz) {
  const std::size_t n = lathe::tonal_fft_size(rate_hz), hop = n / 2;
  wt::host_batch b;
  const std::vector<std::size_t> lengths = {1,           2,       31,          257,  n - 1,  n,       n + 1,
                                            n + hop - 1, n + hop, n + hop + 1, 7919, 65'537, 104'729, 0};
  for (std::size_t k = 0; k < lengths.size(); ++k) wt::add_track(b, wt::noise_track(lengths[k], 101 + 13 * k));
  wt::add_track(b, wt::song(6.0, rate_hz, 1));
  wt::add_track(b, wt::song(2.5, rate_hz, 7));
  return b;
}

void expect_matches_cpu(const wt::host_batch& b, const std::vector<welch_power>& got, double rate_hz,
                        const std::string& what) {
  ASSERT_EQ(got.size(), b.tracks.size()) << what;
  double worst_bin = 0.0, worst_band = 0.0;
  for (std::size_t t = 0; t < b.tracks.size(); ++t) {
    const welch_power want = lathe::measure_welch_power(b.tracks[t], rate_hz);
    const std::string name =
        what + ", track " + std::to_string(t) + " (" + std::to_string(b.tracks[t].frames()) + " frames)";
    wt::expect_same_framing(got[t], want, name);
    const double bin = wt::max_bin_rel_error(got[t], want);
    EXPECT_LE(bin, bin_rel_tolerance) << name;
    worst_bin = std::max(worst_bin, bin);
    if (want.frames_analyzed > 0) {
      const double band = wt::max_band_error_db(got[t], want);
      EXPECT_LE(band, band_tolerance_db) << name;
      worst_band = std::max(worst_band, band);
    } else {
      for (const double v : got[t].mid) EXPECT_EQ(v, 0.0) << name;
      for (const double v : got[t].side) EXPECT_EQ(v, 0.0) << name;
    }
  }
  std::printf("%s: %zu tracks, worst bin rel %.3g, worst band %.3g dB\n", what.c_str(), b.tracks.size(), worst_bin,
              worst_band);
}

bool bitwise_equal(const std::vector<welch_power>& a, const std::vector<welch_power>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t t = 0; t < a.size(); ++t) {
    if (a[t].mid != b[t].mid || a[t].side != b[t].side || a[t].frames_analyzed != b[t].frames_analyzed) return false;
  }
  return true;
}

TEST(GpuTonal, MatchesMeasureWelchPowerPerBinAndBand) {
  LATHE_REQUIRE_GPU();
  gpu_env env;
  for (const double rate : {fs_hz, 44'100.0, 96'000.0}) {
    const wt::host_batch b = make_batch(rate);
    const auto d = upload(b, env.s);
    const auto got = lathe::gpu::welch_power_batch(b.layout, rate, d, env.plans, env.s);
    expect_matches_cpu(b, got, rate, std::to_string(static_cast<int>(rate)) + " Hz, default budget");
  }
}

TEST(GpuTonal, SlicesThatCutTracksGiveTheSameResult) {
  LATHE_REQUIRE_GPU();
  gpu_env env;
  const wt::host_batch b = make_batch(fs_hz);
  const auto d = upload(b, env.s);
  const std::size_t frame_bytes = lathe::gpu::detail::welch_frame_work_bytes(lathe::tonal_fft_size(fs_hz));
  for (const std::size_t frames_per_slice : {1, 3, 16}) {
    const auto got =
        lathe::gpu::welch_power_batch(b.layout, fs_hz, d, env.plans, env.s, frames_per_slice * frame_bytes);
    expect_matches_cpu(b, got, fs_hz, "budget of " + std::to_string(frames_per_slice) + " frames");
  }
}

TEST(GpuTonal, TwoRunsAreBitwiseIdentical) {
  LATHE_REQUIRE_GPU();
  gpu_env env;
  const wt::host_batch b = make_batch(fs_hz);
  const auto d = upload(b, env.s);
  const std::size_t small = 5 * lathe::gpu::detail::welch_frame_work_bytes(lathe::tonal_fft_size(fs_hz));
  for (const std::size_t budget : {lathe::gpu::welch_default_work_budget_bytes, small}) {
    const auto first = lathe::gpu::welch_power_batch(b.layout, fs_hz, d, env.plans, env.s, budget);
    const auto second = lathe::gpu::welch_power_batch(b.layout, fs_hz, d, env.plans, env.s, budget);
    EXPECT_TRUE(bitwise_equal(first, second)) << "budget " << budget;
  }
}

TEST(GpuTonal, EmptyBatchesAndSilentTracks) {
  LATHE_REQUIRE_GPU();
  gpu_env env;
  const lathe::gpu::lane_layout none;
  const lathe::gpu::device_vector<float> nothing;
  EXPECT_TRUE(lathe::gpu::welch_power_batch(none, fs_hz, nothing, env.plans, env.s).empty());

  wt::host_batch b;
  wt::add_track(b, lathe::audio_buffer(2, 0));
  wt::add_track(b, lathe::audio_buffer(2, 0));
  const auto d = upload(b, env.s);
  const auto got = lathe::gpu::welch_power_batch(b.layout, fs_hz, d, env.plans, env.s);
  expect_matches_cpu(b, got, fs_hz, "empty tracks");
}

TEST(GpuTonal, BadArgumentsThrowBeforeAnyWork) {
  LATHE_REQUIRE_GPU();
  gpu_env env;
  wt::host_batch b;
  wt::add_track(b, wt::noise_track(1000, 3));
  const auto d = upload(b, env.s);
  lathe::gpu::lane_layout odd;  // one lane: not a stereo track
  odd.add(1000);
  EXPECT_THROW((void)lathe::gpu::welch_power_batch(odd, fs_hz, d, env.plans, env.s), lathe::error);
  lathe::gpu::lane_layout unequal;
  unequal.add(1000);
  unequal.add(999);
  EXPECT_THROW((void)lathe::gpu::welch_power_batch(unequal, fs_hz, d, env.plans, env.s), lathe::error);
  const lathe::gpu::device_vector<float> small(b.samples.size() - 1);
  EXPECT_THROW((void)lathe::gpu::welch_power_batch(b.layout, fs_hz, small, env.plans, env.s), lathe::error);
  EXPECT_THROW((void)lathe::gpu::welch_power_batch(b.layout, 0.0, d, env.plans, env.s), lathe::error);
}

}  // namespace
