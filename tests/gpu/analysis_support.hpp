#pragma once
// Shared by the GPU analysis tests (iir, loudness, true peak) and their CPU-side layout test:
// the contract's error measure and batch builders. Host-only.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <random>
#include <vector>

#include "demo_catalog.hpp"
#include "lathe_gpu/lanes.hpp"

namespace lathe::test {

/// The GPU contract's measure: max |got - ref| / rms(ref) (rms floored at 1e-30).
inline double relative_error(const float* got, const float* ref, std::size_t n) {
  double max_diff = 0.0, sq = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(got[i]) - ref[i]));
    sq += static_cast<double>(ref[i]) * ref[i];
  }
  const double rms = n ? std::sqrt(sq / static_cast<double>(n)) : 0.0;
  return max_diff / std::max(rms, 1e-30);
}

/// A batch: lanes in `layout`, their samples concatenated in `host`.
struct lane_batch {
  gpu::lane_layout layout;
  std::vector<float> host;

  /// Appends one lane of `n` Gaussian samples.
  void add_noise(std::size_t n, std::mt19937& rng, float mean, float sigma) {
    std::normal_distribution<float> g(mean, sigma);
    layout.add(n);
    for (std::size_t i = 0; i < n; ++i) host.push_back(g(rng));
  }
  /// Appends both channels of a synthesized demo song as two lanes.
  void add_song(double seconds, double fs, unsigned seed = 1) {
    demo_track_spec spec;
    spec.seconds = seconds;
    spec.sample_rate_hz = fs;
    spec.seed = seed;
    const audio_buffer song = synthesize_song(spec);
    for (int c = 0; c < song.channels(); ++c) {
      layout.add(song.frames());
      host.insert(host.end(), song.channel(c), song.channel(c) + song.frames());
    }
  }
};

/// Noise lanes of the given lengths, then a stereo song.
inline lane_batch noise_lanes_and_song(std::initializer_list<std::size_t> lengths, float mean, float sigma,
                                       unsigned seed, double song_seconds, double fs) {
  lane_batch b;
  std::mt19937 rng(seed);
  for (std::size_t n : lengths) b.add_noise(n, rng, mean, sigma);
  b.add_song(song_seconds, fs);
  return b;
}

}  // namespace lathe::test
