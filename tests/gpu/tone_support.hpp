#pragma once
// Shared by the GPU tone-stage tests (stereo_test.cpp, saturation_test.cpp): host batches of
// lanes, the demo song as lanes, the per-lane error measure and the engine resources.
#include <algorithm>
#include <cmath>
#include <vector>

#include "demo_catalog.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/lanes.hpp"

namespace lathe::gpu::test {

struct host_batch {
  lane_layout layout;
  std::vector<float> samples;
  void add(const float* x, std::size_t n) {
    layout.add(n);
    samples.insert(samples.end(), x, x + n);
  }
};

/// Appends the two channels of a music-like demo song as two lanes (one stereo track).
inline void add_song(host_batch& b, double seconds, double fs_hz) {
  demo_track_spec spec;
  spec.seconds = seconds;
  spec.sample_rate_hz = fs_hz;
  const audio_buffer song = synthesize_song(spec);
  for (int c = 0; c < 2; ++c) b.add(song.channel(c), song.frames());
}

/// max |got - want| / rms(want) (rms floored at 1e-20), in float64.
inline double relative_error(const float* got, const float* want, std::size_t n) {
  double err = 0.0, energy = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    err = std::max(err, std::abs(double(got[i]) - double(want[i])));
    energy += double(want[i]) * double(want[i]);
  }
  return err / std::max(std::sqrt(energy / double(std::max<std::size_t>(n, 1))), 1e-20);
}

/// What an engine shares between stages, owned for one test.
struct owned_resources {
  cufft_plan_cache plans;
  gpu_convolver convolver;
  stage_resources res{plans, convolver};
};

}  // namespace lathe::gpu::test
