// GPU loudness (kernels/analysis/loudness.cu) against lathe::loudness_meter: block lists, integrated
// loudness and loudness range of several stereo tracks of different lengths in one batch.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu/gpu_test_support.hpp"
#include "lathe/loudness.hpp"
#include "lathe_gpu/loudness.hpp"
#include "support/signals.hpp"

namespace {

using namespace lathe;
using namespace lathe::gpu;

// The GPU contract: relative error of each block energy (-100 dB), and what it means in LU.
constexpr double energy_rel_tolerance = 1e-5;
constexpr double loudness_tolerance_lu = 1e-4;  // 10 log10(1 + 1e-5) = 4.3e-5 LU, rounded up

struct batch {
  lane_layout layout;
  std::vector<float> host;
  std::vector<audio_buffer> tracks;
};

// Music of several lengths (a partial final sub-block, exactly 3 s, under one gating block,
// under one sub-block) and a noise-then-tone track.
batch make_batch(double fs) {
  batch b;
  unsigned seed = 1;
  for (double seconds : {12.34, 3.0, 3.05, 0.39, 0.05}) {
    demo_track_spec spec;
    spec.seconds = seconds;
    spec.sample_rate_hz = fs;
    spec.seed = seed++;
    b.tracks.push_back(synthesize_song(spec));
  }
  const audio_buffer noise = test::white_noise(-23.0, 4.0, fs, 2, 5);
  const audio_buffer tone = test::sine(997.0, -9.0, 6.7, fs, 2);
  b.tracks.push_back(test::concat({&noise, &tone}));
  for (const audio_buffer& t : b.tracks)
    for (int c = 0; c < 2; ++c) {
      b.layout.add(t.frames());
      b.host.insert(b.host.end(), t.channel(c), t.channel(c) + t.frames());
    }
  return b;
}

std::vector<loudness_blocks> run_gpu(const batch& b, double fs) {
  stream s;
  device_vector<float> d(b.host.size());
  d.upload_async(b.host, s);
  return measure_loudness(d.data(), b.layout, fs, s);
}

void expect_energies_near(const std::vector<double>& got, const std::vector<double>& ref, const char* what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (std::size_t i = 0; i < ref.size(); ++i)
    EXPECT_NEAR(got[i], ref[i], energy_rel_tolerance * std::max(ref[i], 1e-300)) << what << " block " << i;
}

TEST(GpuLoudness, BlocksIntegratedAndRangeMatchTheCpuMeter) {
  LATHE_REQUIRE_GPU();
  for (double fs : {44'100.0, 48'000.0}) {
    const batch b = make_batch(fs);
    const std::vector<loudness_blocks> got = run_gpu(b, fs);
    ASSERT_EQ(got.size(), b.tracks.size());
    for (std::size_t t = 0; t < b.tracks.size(); ++t) {
      const audio_buffer& track = b.tracks[t];
      loudness_meter meter;
      meter.prepare(fs, 2);
      meter.process(track.view());
      expect_energies_near(got[t].momentary_energy, meter.blocks().momentary_energy, "gating");
      expect_energies_near(got[t].short_term_energy, meter.blocks().short_term_energy, "short-term");
      const double ref_i = meter.integrated_lufs();
      if (std::isfinite(ref_i))
        EXPECT_NEAR(got[t].integrated_lufs(), ref_i, loudness_tolerance_lu) << fs << " Hz, track " << t;
      else
        EXPECT_EQ(got[t].integrated_lufs(), ref_i) << fs << " Hz, track " << t;
      EXPECT_NEAR(got[t].loudness_range_lu(), meter.loudness_range_lu(), loudness_tolerance_lu)
          << fs << " Hz, track " << t;
    }
  }
}

TEST(GpuLoudness, RepeatableBitwiseAndPlanReusable) {
  LATHE_REQUIRE_GPU();
  const double fs = 44'100.0;
  const batch b = make_batch(fs);
  stream s;
  device_vector<float> d(b.host.size());
  d.upload_async(b.host, s);
  loudness_plan plan(b.layout, fs, s);
  const auto first = plan.measure(d.data(), s);
  const auto second = plan.measure(d.data(), s);
  const auto fresh = run_gpu(b, fs);
  for (std::size_t t = 0; t < first.size(); ++t) {
    EXPECT_EQ(first[t].momentary_energy, second[t].momentary_energy);  // exact double equality
    EXPECT_EQ(first[t].short_term_energy, second[t].short_term_energy);
    EXPECT_EQ(first[t].momentary_energy, fresh[t].momentary_energy);
  }
}

}  // namespace
