// Batched GPU reverb (kernels/dsp/reverb.cu) against the CPU chain's reverb stage through
// run_aligned (as apply_prechain runs it), per lane, on batches of stereo tracks of different
// lengths (1 frame, primes, the 4096-frame chunk size +-1, several chunks, music-like audio):
// mono, stereo and true-stereo IRs, IR resampling, pre-delay, wet cuts, dry/wet gains; a long
// IR (10 s at 96 kHz); a tiny convolver work budget (many slices); twice, bitwise.
// Every test starts with LATHE_REQUIRE_GPU(): without a GPU they skip, saying why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu/gpu_test_support.hpp"
#include "lathe/audio_buffer.hpp"
#include "lathe/reverb.hpp"
#include "lathe_gpu/reverb.hpp"
#include "support/reverb_stats_checks.hpp"

namespace {

using namespace lathe;
using gpu::lane_layout;

// The GPU precision target (-100 dB): max |gpu - cpu| / rms(cpu), per lane.
constexpr double gpu_rel_tolerance = 1e-5;
// The stats promise: dB values within 1e-3 dB.
constexpr double stats_tolerance_db = 1e-3;
constexpr double fs_hz = 48'000.0;

std::shared_ptr<const impulse_response> noise_ir(int channels, double rate_hz, double seconds, unsigned seed) {
  auto ir = std::make_shared<impulse_response>();
  ir->path = "in-memory";
  ir->sample_rate_hz = rate_hz;
  const auto frames = static_cast<std::size_t>(seconds * rate_hz);
  ir->audio.resize(channels, frames);
  std::mt19937 rng(seed);
  std::normal_distribution<double> gauss(0.0, 0.1);
  for (int c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < frames; ++i)
      ir->audio.channel(c)[i] = static_cast<float>(gauss(rng) * std::exp(-4.0 * static_cast<double>(i) / frames));
  return ir;
}

// Stereo tracks: white noise of the given lengths, plus a music-like song when `seconds_of_music`.
std::vector<audio_buffer> make_tracks(const std::vector<std::size_t>& lengths, double seconds_of_music, double fs,
                                      unsigned seed) {
  std::vector<audio_buffer> tracks;
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 0.1f);
  for (std::size_t n : lengths) {
    audio_buffer t(2, n);
    for (int c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < n; ++i) t.channel(c)[i] = gauss(rng);
    tracks.push_back(std::move(t));
  }
  if (seconds_of_music > 0.0) {
    demo_track_spec spec;
    spec.seconds = seconds_of_music;
    spec.sample_rate_hz = fs;
    spec.level_db = -6.0;
    spec.seed = seed;
    tracks.push_back(synthesize_song(spec));
  }
  return tracks;
}

struct gpu_result {
  std::vector<float> out;
  std::vector<reverb_stats> stats;
  lane_layout layout;
};

gpu_result run_gpu(const reverb_params& p, const impulse_response& ir, const std::vector<audio_buffer>& tracks,
                   double fs, gpu::stage_resources& res, const gpu::stream& s) {
  gpu_result r;
  std::vector<float> in;
  for (const audio_buffer& t : tracks)
    for (int c = 0; c < 2; ++c) {
      r.layout.add(t.frames());
      in.insert(in.end(), t.channel(c), t.channel(c) + t.frames());
    }
  gpu::device_vector<float> d_in(in.size()), d_out(in.size());
  d_in.upload_async(in, s);
  d_out.zero_async(s);
  r.stats = gpu::reverb_batch(p, ir, fs, r.layout, d_in, d_out, res, s);
  r.out.resize(in.size());
  d_out.download_async(r.out, s);
  s.synchronize();
  return r;
}

// Each track through the CPU stage (run_aligned, apply_prechain's block) vs the GPU lanes.
void expect_matches_cpu(const reverb_params& p, const std::shared_ptr<const impulse_response>& ir,
                        const std::vector<audio_buffer>& tracks, double fs, const gpu_result& g) {
  ASSERT_EQ(g.stats.size(), tracks.size());
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    SCOPED_TRACE("track " + std::to_string(t) + " of " + std::to_string(tracks[t].frames()) + " frames");
    reverb_stage st(p, ir);
    st.prepare({fs, 2, gpu::reverb_chain_block_frames});
    audio_buffer y = tracks[t];
    run_aligned(st, y, gpu::reverb_chain_block_frames);
    for (int c = 0; c < 2; ++c) {
      const float* cpu = y.channel(c);
      const float* gpu_lane = g.out.data() + g.layout.offset[2 * t + static_cast<std::size_t>(c)];
      double rms = 0.0, worst = 0.0;
      for (std::size_t i = 0; i < y.frames(); ++i) {
        rms += static_cast<double>(cpu[i]) * cpu[i];
        worst = std::max(worst, std::abs(static_cast<double>(gpu_lane[i]) - cpu[i]));
      }
      rms = std::sqrt(rms / static_cast<double>(std::max<std::size_t>(y.frames(), 1)));
      EXPECT_LE(worst / std::max(rms, 1e-20), gpu_rel_tolerance) << "channel " << c;
    }
    test::expect_reverb_stats_near(g.stats[t], st.stats(), stats_tolerance_db);
  }
}

void expect_bitwise_equal(const gpu_result& a, const gpu_result& b) {
  ASSERT_EQ(a.out.size(), b.out.size());
  EXPECT_EQ(std::memcmp(a.out.data(), b.out.data(), a.out.size() * sizeof(float)), 0);
  ASSERT_EQ(a.stats.size(), b.stats.size());
  for (std::size_t t = 0; t < a.stats.size(); ++t) {
    EXPECT_EQ(std::memcmp(&a.stats[t].dry_rms_dbfs, &b.stats[t].dry_rms_dbfs, sizeof(double)), 0);
    EXPECT_EQ(std::memcmp(&a.stats[t].wet_rms_dbfs, &b.stats[t].wet_rms_dbfs, sizeof(double)), 0);
    EXPECT_EQ(a.stats[t].frames, b.stats[t].frames);
  }
}

// Lengths straddling warp (32), thread block (256) and chunk (4096) sizes; 1 frame; primes.
const std::vector<std::size_t> straddling_lengths = {1, 2, 31, 33, 257, 4'095, 4'096, 4'097, 7'919, 65'521};

struct routing_case {
  int ir_channels;
  double ir_rate_hz;
  double pre_delay_ms, low_cut_hz, high_cut_hz, wet_db, dry_db;
};

TEST(GpuReverb, MatchesCpuStageForEveryRouting) {
  LATHE_REQUIRE_GPU();
  gpu::stream s;
  gpu::cufft_plan_cache plans;
  gpu::gpu_convolver conv;
  gpu::stage_resources res{plans, conv};
  const std::vector<audio_buffer> tracks = make_tracks(straddling_lengths, 3.0, fs_hz, 3);
  const std::vector<routing_case> cases = {
      {1, 48'000.0, 0.0, 0.0, 0.0, -12.0, 0.0},          // mono IR, no filters
      {2, 44'100.0, 7.3, 180.0, 0.0, -6.0, -1.0},        // resampled stereo IR, pre-delay, low cut
      {4, 96'000.0, 20.0, 120.0, 9'000.0, -3.0, -2.0},   // true stereo, both cuts
      {4, 48'000.0, 0.0, 0.0, 5'000.0, 0.0, -INFINITY},  // true stereo, fully wet
  };
  for (const routing_case& rc : cases) {
    SCOPED_TRACE("IR channels " + std::to_string(rc.ir_channels) + " at " + std::to_string(rc.ir_rate_hz) + " Hz");
    reverb_params p;
    p.pre_delay_ms = rc.pre_delay_ms;
    p.low_cut_hz = rc.low_cut_hz;
    p.high_cut_hz = rc.high_cut_hz;
    p.wet_db = rc.wet_db;
    p.dry_db = rc.dry_db;
    const auto ir = noise_ir(rc.ir_channels, rc.ir_rate_hz, 0.8, 11);
    const gpu_result first = run_gpu(p, *ir, tracks, fs_hz, res, s);
    expect_matches_cpu(p, ir, tracks, fs_hz, first);
    const gpu_result second = run_gpu(p, *ir, tracks, fs_hz, res, s);
    expect_bitwise_equal(first, second);
  }
}

// A tiny work budget cuts the convolutions into many slices; the result must not change beyond
// the precision bound (and stay bitwise repeatable at that budget).
TEST(GpuReverb, TinyConvolverBudgetStillMatches) {
  LATHE_REQUIRE_GPU();
  gpu::stream s;
  gpu::cufft_plan_cache plans;
  gpu::gpu_convolver conv(std::size_t{3} << 20);
  gpu::stage_resources res{plans, conv};
  const std::vector<audio_buffer> tracks = make_tracks({1, 4'097, 30'011, 96'001}, 0.0, fs_hz, 4);
  reverb_params p;
  p.pre_delay_ms = 5.0;
  p.low_cut_hz = 100.0;
  const auto ir = noise_ir(4, fs_hz, 0.5, 12);
  const gpu_result first = run_gpu(p, *ir, tracks, fs_hz, res, s);
  EXPECT_GT(conv.last_plan().slices.size(), 1u);
  expect_matches_cpu(p, ir, tracks, fs_hz, first);
  expect_bitwise_equal(first, run_gpu(p, *ir, tracks, fs_hz, res, s));
}

// 10 s at 96 kHz (960k taps per channel): within gpu_convolver's default budget, against the CPU.
TEST(GpuReverb, TenSecondIrAt96kHz) {
  LATHE_REQUIRE_GPU();
  constexpr double fs = 96'000.0;
  gpu::stream s;
  gpu::cufft_plan_cache plans;
  gpu::gpu_convolver conv;
  gpu::stage_resources res{plans, conv};
  const std::vector<audio_buffer> tracks = make_tracks({1, 100'003}, 2.0, fs, 5);
  for (int channels : {1, 4}) {
    SCOPED_TRACE("IR channels " + std::to_string(channels));
    reverb_params p;
    p.wet_db = -6.0;
    const auto ir = noise_ir(channels, fs, 10.0, 13);
    const gpu_result g = run_gpu(p, *ir, tracks, fs, res, s);
    expect_matches_cpu(p, ir, tracks, fs, g);
  }
}

// Bad inputs are refused before any work: an odd lane count, unequal track lanes, a
// multi-channel IR's parameter errors (what reverb_stage::prepare() refuses).
TEST(GpuReverb, RefusesBadArguments) {
  LATHE_REQUIRE_GPU();
  gpu::stream s;
  gpu::cufft_plan_cache plans;
  gpu::gpu_convolver conv;
  gpu::stage_resources res{plans, conv};
  const auto ir = noise_ir(1, fs_hz, 0.1, 14);
  gpu::device_vector<float> d_in(16), d_out(16);
  lane_layout odd;
  odd.add(5);
  EXPECT_THROW(gpu::reverb_batch({}, *ir, fs_hz, odd, d_in, d_out, res, s), logic_error);
  lane_layout unequal;
  unequal.add(5);
  unequal.add(6);
  EXPECT_THROW(gpu::reverb_batch({}, *ir, fs_hz, unequal, d_in, d_out, res, s), logic_error);
  lane_layout fine;
  fine.add(8);
  fine.add(8);
  reverb_params bad;
  bad.pre_delay_ms = -1.0;
  EXPECT_THROW(gpu::reverb_batch(bad, *ir, fs_hz, fine, d_in, d_out, res, s), logic_error);
}

}  // namespace
