// GPU limiter (kernels/dsp/limiter.cu) against lathe::offline_limiter on the same input and the same
// detector peaks: several stereo tracks of different lengths in one batch, lookaheads around
// warp and block sizes, lengths straddling the release chunk (512) and van Herk block edges;
// bitwise repeatability; the ceiling under an independent meter. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu/gpu_test_support.hpp"
#include "gpu/limiter_peaks.hpp"
#include "lathe/limiter.hpp"
#include "lathe/true_peak.hpp"
#include "lathe_gpu/limiter.hpp"
#include "lathe_gpu/memory.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

// max |gpu - cpu| / rms(cpu) per track: the GPU rules' bound. The expected error is ~1e-9
// (g differs from the CPU by at most a 2^-32 quantum, see lathe_gpu/limiter.hpp).
constexpr double kOutputRelTolerance = 1e-5;
// Stats: tree vs serial order of the dB sum, device log10.
constexpr double kStatsToleranceDb = 1e-4;
// frames_limited counts g < 1; the carried release may snap to unity a frame earlier or later
// than the CPU's (ulp-level difference straddling 1 - 2^-32), once per release event.
constexpr double kFramesLimitedRelTolerance = 1e-3;
// Meter reading above the ceiling (as tests/dsp/limiter_test.cpp).
constexpr double kMeterToleranceDb = 0.01;

struct batch_result {
  std::vector<float> out;
  std::vector<limiter_stats> stats;
};

gpu::lane_layout layout_of(const std::vector<audio_buffer>& tracks) {
  gpu::lane_layout l;
  for (const audio_buffer& t : tracks) {
    l.add(t.frames());
    l.add(t.frames());
  }
  return l;
}

/// Runs the GPU limiter over `tracks` (stereo) with per-track gains; `in_place` writes over
/// the input array; `searched` renders at other gains first and takes the statistics with
/// stats() after the last render_async, as the engine's gain search does.
batch_result run_gpu(const std::vector<audio_buffer>& tracks, const std::vector<double>& gains_db,
                     const limiter_params& p, double fs, bool in_place = false, bool searched = false) {
  const gpu::lane_layout audio = layout_of(tracks);
  const std::size_t latency = gpu::limiter_latency_frames(p, fs);
  const gpu::lane_layout peaks = gpu::limiter_peak_layout(audio, latency);
  std::vector<float> host_in(audio.total_frames), host_peaks(peaks.total_frames);
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    for (int c = 0; c < 2; ++c) {
      const std::size_t lane = 2 * t + static_cast<std::size_t>(c);
      std::copy(tracks[t].channel(c), tracks[t].channel(c) + tracks[t].frames(), host_in.begin() + audio.offset[lane]);
      const std::vector<float> pk = test::limiter_lane_peaks(tracks[t].channel(c), tracks[t].frames(), latency, fs);
      EXPECT_EQ(pk.size(), peaks.frames[lane]);
      std::copy(pk.begin(), pk.end(), host_peaks.begin() + peaks.offset[lane]);
    }
  }
  gpu::stream s;
  gpu::device_vector<float> d_in(host_in.size()), d_out(host_in.size()), d_peaks(host_peaks.size());
  d_in.upload_async(host_in, s);
  d_peaks.upload_async(host_peaks, s);
  gpu::batch_limiter lim;
  lim.prepare(audio, p, fs, s);
  EXPECT_EQ(lim.latency_frames(), latency);
  EXPECT_EQ(lim.peak_layout().total_frames, peaks.total_frames);
  batch_result r;
  float* out = in_place ? d_in.data() : d_out.data();
  if (searched) {
    std::vector<double> other = gains_db;
    for (double& g : other) g += 4.0;
    lim.render_async(d_peaks.data(), d_in.data(), out, other, s);
    lim.render_async(d_peaks.data(), d_in.data(), out, gains_db, s);
    r.stats = lim.stats(s);
  } else {
    r.stats = lim.render(d_peaks.data(), d_in.data(), out, gains_db, s);
  }
  r.out.resize(host_in.size());
  (in_place ? d_in : d_out).download_async(r.out, s);
  s.synchronize();
  return r;
}

/// Compares each track of a GPU batch result with offline_limiter.
void expect_matches_cpu(const std::vector<audio_buffer>& tracks, const std::vector<double>& gains_db,
                        const limiter_params& p, double fs, const batch_result& r, const char* what) {
  const gpu::lane_layout audio = layout_of(tracks);
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    offline_limiter lim;
    lim.analyze(tracks[t], fs, p);
    audio_buffer ref;
    const limiter_stats rs = lim.render(tracks[t], gains_db[t], ref);
    double err = 0.0, sq = 0.0;
    for (int c = 0; c < 2; ++c) {
      const float* y = r.out.data() + audio.offset[2 * t + static_cast<std::size_t>(c)];
      for (std::size_t m = 0; m < ref.frames(); ++m) {
        err = std::max(err, std::abs(static_cast<double>(y[m]) - ref.channel(c)[m]));
        sq += static_cast<double>(ref.channel(c)[m]) * ref.channel(c)[m];
      }
    }
    const double rms = std::sqrt(sq / std::max<double>(1.0, 2.0 * static_cast<double>(ref.frames())));
    EXPECT_LE(err / std::max(rms, 1e-30), kOutputRelTolerance) << what << " track " << t;
    if (ref.frames() > 0 && rms == 0.0) {
      EXPECT_EQ(err, 0.0) << what << " track " << t;
    }
    EXPECT_NEAR(r.stats[t].max_gain_reduction_db, rs.max_gain_reduction_db, kStatsToleranceDb) << what << " " << t;
    EXPECT_NEAR(r.stats[t].mean_gain_reduction_db, rs.mean_gain_reduction_db, kStatsToleranceDb) << what << " " << t;
    EXPECT_NEAR(static_cast<double>(r.stats[t].frames_limited), static_cast<double>(rs.frames_limited),
                kFramesLimitedRelTolerance * static_cast<double>(ref.frames()) + 1.0)
        << what << " " << t;
  }
}

/// Noise with loud tone bursts every 3000 frames, so reductions, releases and snaps alternate.
audio_buffer loud_material(std::size_t frames, double fs, unsigned seed) {
  const audio_buffer noise = test::white_noise(-10.0, 1.0, fs, 2, seed);
  audio_buffer b(2, frames);
  for (int c = 0; c < 2; ++c) {
    for (std::size_t i = 0; i < frames; ++i) {
      const double burst = (i / 1500) % 2 == 0 ? 1.8 * std::sin(0.05 * static_cast<double>(i) + c) : 0.0;
      b.channel(c)[i] = static_cast<float>(noise.channel(c)[i % noise.frames()] + burst);
    }
  }
  return b;
}

limiter_params params_for(std::size_t lookahead_frames, double fs) {
  limiter_params p;
  p.lookahead_ms = static_cast<double>(lookahead_frames) * 1000.0 / fs;
  p.release_ms = 20.0;
  return p;
}

TEST(GpuLimiter, MatchesOfflineLimiterAcrossLookaheadsAndLengths) {
  LATHE_REQUIRE_GPU();
  constexpr double fs = 48'000.0;
  for (std::size_t lookahead : {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{33}, std::size_t{96},
                                std::size_t{255}, std::size_t{256}, std::size_t{257}}) {
    const limiter_params p = params_for(lookahead, fs);
    const std::size_t latency = gpu::limiter_latency_frames(p, fs);
    std::vector<audio_buffer> tracks;
    // Lengths 0, 1, prime, straddling a release chunk edge (stream length = frames + latency
    // at 511, 512, 513) and several chunks.
    for (std::size_t frames : {std::size_t{0}, std::size_t{1}, std::size_t{97}, 511 - latency % 512,
                               512 - latency % 512, 513 - latency % 512, std::size_t{20'011}})
      tracks.push_back(loud_material(frames, fs, static_cast<unsigned>(tracks.size() + 1)));
    std::vector<double> gains(tracks.size());
    for (std::size_t t = 0; t < gains.size(); ++t) gains[t] = -3.0 + 1.5 * static_cast<double>(t);
    const batch_result r = run_gpu(tracks, gains, p, fs);
    expect_matches_cpu(tracks, gains, p, fs, r, ("L=" + std::to_string(lookahead)).c_str());
  }
}

TEST(GpuLimiter, MusicAtDefaultsMatchesAndRespectsTheCeiling) {
  LATHE_REQUIRE_GPU();
  constexpr double fs = 44'100.0;
  std::vector<audio_buffer> tracks;
  for (unsigned seed : {1u, 2u, 3u}) {
    demo_track_spec spec;
    spec.seconds = 3.0 + seed;
    spec.sample_rate_hz = fs;
    spec.seed = seed;
    tracks.push_back(synthesize_song(spec));
  }
  const std::vector<double> gains = {6.0, 9.0, 0.0};
  const limiter_params p;
  const batch_result r = run_gpu(tracks, gains, p, fs);
  expect_matches_cpu(tracks, gains, p, fs, r, "music");
  const gpu::lane_layout audio = layout_of(tracks);
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    for (std::size_t c = 0; c < 2; ++c) {
      const float tp = true_peak_of(r.out.data() + audio.offset[2 * t + c], tracks[t].frames(), fs);
      EXPECT_LE(20.0 * std::log10(tp), p.ceiling_dbtp + kMeterToleranceDb) << "track " << t;
    }
  }
  EXPECT_GT(r.stats[1].frames_limited, 0u) << "material must exercise the limiter";
}

TEST(GpuLimiter, BitwiseRepeatableAndInPlace) {
  LATHE_REQUIRE_GPU();
  constexpr double fs = 96'000.0;
  std::vector<audio_buffer> tracks = {loud_material(30'000, fs, 7), loud_material(4'099, fs, 8)};
  const std::vector<double> gains = {3.0, -1.0};
  const limiter_params p;
  const batch_result a = run_gpu(tracks, gains, p, fs);
  const batch_result b = run_gpu(tracks, gains, p, fs);
  const batch_result c = run_gpu(tracks, gains, p, fs, true);
  ASSERT_EQ(a.out.size(), b.out.size());
  EXPECT_EQ(std::memcmp(a.out.data(), b.out.data(), a.out.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.out.data(), c.out.data(), a.out.size() * sizeof(float)), 0);
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    EXPECT_EQ(std::memcmp(&a.stats[t].mean_gain_reduction_db, &b.stats[t].mean_gain_reduction_db, sizeof(double)), 0);
    EXPECT_EQ(a.stats[t].max_gain_reduction_db, b.stats[t].max_gain_reduction_db);
    EXPECT_EQ(a.stats[t].frames_limited, b.stats[t].frames_limited);
  }
  expect_matches_cpu(tracks, gains, p, fs, a, "96k");
}

// The engine's search renders without statistics and asks once at the end: the output and the
// statistics equal one render() at the final gains, bit for bit.
TEST(GpuLimiter, StatisticsAfterASearchAreTheLastRendersOwn) {
  LATHE_REQUIRE_GPU();
  constexpr double fs = 44'100.0;
  const std::vector<audio_buffer> tracks = {loud_material(50'000, fs, 3), loud_material(7'001, fs, 4)};
  const std::vector<double> gains = {2.0, 5.0};
  const limiter_params p;
  const batch_result once = run_gpu(tracks, gains, p, fs);
  const batch_result searched = run_gpu(tracks, gains, p, fs, false, true);
  ASSERT_EQ(once.out.size(), searched.out.size());
  EXPECT_EQ(std::memcmp(once.out.data(), searched.out.data(), once.out.size() * sizeof(float)), 0);
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    EXPECT_EQ(once.stats[t].mean_gain_reduction_db, searched.stats[t].mean_gain_reduction_db);
    EXPECT_EQ(once.stats[t].max_gain_reduction_db, searched.stats[t].max_gain_reduction_db);
    EXPECT_EQ(once.stats[t].frames_limited, searched.stats[t].frames_limited);
  }
}

TEST(GpuLimiter, RejectsBadLayouts) {
  LATHE_REQUIRE_GPU();
  gpu::stream s;
  gpu::batch_limiter lim;
  gpu::lane_layout odd;
  odd.add(100);
  EXPECT_THROW(lim.prepare(odd, limiter_params{}, 48'000.0, s), lathe::error);
  gpu::lane_layout unequal;
  unequal.add(100);
  unequal.add(101);
  EXPECT_THROW(lim.prepare(unequal, limiter_params{}, 48'000.0, s), lathe::error);
}

}  // namespace
}  // namespace lathe
