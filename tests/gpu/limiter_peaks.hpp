#pragma once
// Test helper shared by tests/dsp/gpu_limiter_host_test.cpp and tests/gpu/limiter_test.cpp: the
// per-lane detector peaks the GPU limiter consumes, made with the CPU detectors exactly as
// offline_limiter::analyze makes them (the lane followed by `tail` zeros through
// true_peak_interpolator and meter_peak_interpolator, max of the two), so the GPU path and
// offline_limiter see the same detection.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "lathe/limiter.hpp"
#include "lathe/true_peak.hpp"

namespace lathe::test {

inline std::vector<float> limiter_lane_peaks(const float* x, std::size_t frames, std::size_t tail,
                                             double sample_rate_hz) {
  true_peak_interpolator detector;
  detector.prepare(sample_rate_hz);
  detail::meter_peak_interpolator meter;
  meter.prepare(sample_rate_hz, detector.latency_frames());
  const std::size_t total = frames + tail;
  std::vector<float> a(total), b(total);
  const std::vector<float> zeros(tail, 0.0f);
  detector.process(x, a.data(), frames);
  detector.process(zeros.data(), a.data() + frames, tail);
  meter.process(x, b.data(), frames);
  meter.process(zeros.data(), b.data() + frames, tail);
  for (std::size_t t = 0; t < total; ++t) a[t] = std::max(a[t], b[t]);
  return a;
}

}  // namespace lathe::test
