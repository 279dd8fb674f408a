#pragma once
// Shared by the GPU Welch power test (tests/gpu/tonal_test.cpp) and its CPU emulation
// (tests/qc/gpu_tonal_layout_test.cpp): a host batch of stereo tracks in the lane layout, test
// tracks, and the comparisons of two welch_power results (per bin, and per 1/3-octave band
// after summarize()). Host-only, CUDA-free.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "../../kernels/include/lathe_gpu/lanes.hpp"
#include "demo_catalog.hpp"
#include "lathe/audio_buffer.hpp"
#include "lathe/tonal.hpp"

namespace lathe::welch_test {

/// Per-bin relative error is taken against max(power, floor x the strongest bin's power): float
/// FFT rounding is ~1e-7 of a frame's rms in every bin, so bins far below the strongest one carry
/// relative errors that say nothing about the decomposition. 1e-5 is -50 dB.
constexpr double bin_floor_rel = 1e-5;

struct host_batch {
  gpu::lane_layout layout;
  std::vector<float> samples;
  std::vector<audio_buffer> tracks;
};

inline void add_track(host_batch& b, audio_buffer track) {
  for (int c = 0; c < 2; ++c) {
    b.layout.add(track.frames());
    b.samples.insert(b.samples.end(), track.channel(c), track.channel(c) + track.frames());
  }
  b.tracks.push_back(std::move(track));
}

/// Independent Gaussian noise per channel with a common part, so mid and side both carry power
/// and differ; the level ramps over the track so frames weigh differently.
inline audio_buffer noise_track(std::size_t n, unsigned seed) {
  audio_buffer b(2, n);
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 0.2);
  for (std::size_t i = 0; i < n; ++i) {
    const double ramp = 0.2 + 0.8 * static_cast<double>(i) / static_cast<double>(std::max<std::size_t>(n, 1));
    const double common = g(rng);
    b.channel(0)[i] = static_cast<float>(ramp * (common + 0.5 * g(rng)));
    b.channel(1)[i] = static_cast<float>(ramp * (common - 0.3 * g(rng)));
  }
  return b;
}

inline audio_buffer song(double seconds, double rate_hz, unsigned seed = 1) {
  demo_track_spec spec;
  spec.seconds = seconds;
  spec.sample_rate_hz = rate_hz;
  spec.seed = seed;
  return synthesize_song(spec);
}

/// max over bins of |got - want| / max(want, bin_floor_rel x max(want)), mid and side.
inline double max_bin_rel_error(const welch_power& got, const welch_power& want) {
  double e = 0.0;
  for (const auto& [g, w] : {std::pair{&got.mid, &want.mid}, std::pair{&got.side, &want.side}}) {
    if (g->size() != w->size()) return INFINITY;
    const double peak = w->empty() ? 0.0 : *std::max_element(w->begin(), w->end());
    for (std::size_t k = 0; k < w->size(); ++k) {
      const double ref = std::max((*w)[k], bin_floor_rel * peak);
      const double d = std::abs((*g)[k] - (*w)[k]);
      if (d > 0) e = std::max(e, ref > 0 ? d / ref : INFINITY);
    }
  }
  return e;
}

/// Largest |got - want| in dB over the finite 1/3-octave mid and side levels after summarize();
/// a level finite on one side and not the other counts as infinite.
inline double max_band_error_db(const welch_power& got, const welch_power& want) {
  const tonal_analysis a = summarize(got, 1.0f), b = summarize(want, 1.0f);
  double e = 0.0;
  for (const auto& [x, y] : {std::pair{&a.mid_db, &b.mid_db}, std::pair{&a.side_db, &b.side_db}}) {
    for (std::size_t i = 0; i < x->size(); ++i) {
      const double u = (*x)[i], v = (*y)[i];
      if (std::isnan(u) && std::isnan(v)) continue;
      if (u == v) continue;  // also equal infinities (a silent side)
      e = std::max(e, std::isfinite(u) && std::isfinite(v) ? std::abs(u - v) : INFINITY);
    }
  }
  return e;
}

/// Framing and counts must match exactly.
inline void expect_same_framing(const welch_power& got, const welch_power& want, const std::string& what) {
  EXPECT_EQ(got.fft_size, want.fft_size) << what;
  EXPECT_EQ(got.sample_rate_hz, want.sample_rate_hz) << what;
  EXPECT_EQ(got.frames_analyzed, want.frames_analyzed) << what;
  EXPECT_EQ(got.samples, want.samples) << what;
  EXPECT_EQ(got.mid.size(), want.mid.size()) << what;
  EXPECT_EQ(got.side.size(), want.side.size()) << what;
}

}  // namespace lathe::welch_test
