#pragma once
// lathe::dither_uniform (src/dsp/dither.cpp) and the per-sample quantization of lathe::quantize with
// shaping none, as functions that compile for the device (nvcc) and the host (g++), so a CPU
// unit test (tests/dsp/gpu_limiter_host_test.cpp) checks this very code against the CPU library.
// Host-compilable (see host_device.hpp).
//
// Bit-exactness: the hash is unsigned 64-bit integer arithmetic (wrapping, identical on both);
// z >> 11 < 2^53 converts to double exactly and the 2^-53 scaling is exact; the sample path is
// one multiply by a power of two (exact), two subtractions and two additions in the CPU's
// order with no contraction (__dadd_rn etc. on the device), and rint (round half to even,
// as std::nearbyint in the default rounding mode).
#include <cmath>
#include <cstdint>

#include "host_device.hpp"  // relative: CPU tests include this header by path

namespace lathe::gpu::detail {

inline constexpr std::uint64_t golden_gamma = 0x9E3779B97F4A7C15ull;

LATHE_GPU_HD constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The (seed, channel, substream) key, hoisted out of per-frame work.
LATHE_GPU_HD constexpr std::uint64_t dither_key(std::uint64_t seed, int channel, int substream) {
  const std::uint64_t s =
      (static_cast<std::uint64_t>(static_cast<std::uint32_t>(channel)) << 32) | static_cast<std::uint32_t>(substream);
  return mix64(seed ^ mix64(s + golden_gamma));
}

LATHE_GPU_HD inline double dither_uniform_from_key(std::uint64_t key, std::uint64_t frame) {
  return static_cast<double>(mix64(key + (frame + 1) * golden_gamma) >> 11) * 0x1.0p-53;
}

/// Equals lathe::dither_uniform(seed, channel, frame, substream) bit for bit.
LATHE_GPU_HD inline double dither_uniform(std::uint64_t seed, int channel, std::uint64_t frame, int substream) {
  return dither_uniform_from_key(dither_key(seed, channel, substream), frame);
}

struct quantized_sample {
  std::int32_t value;
  bool clipped;
};

/// One sample of lathe::quantize with shaping none: v = x 2^(b-1); t = (u0 - 0.5) + (u1 - 0.5)
/// (0 without dither); q = rint(v + t); clamp to [-scale, scale - 1].
LATHE_GPU_HD inline quantized_sample quantize_sample(float x, double scale, std::uint64_t key0, std::uint64_t key1,
                                                     std::uint64_t frame, bool dither) {
  const double w = mul_rn(static_cast<double>(x), scale);
  double t = 0.0;
  if (dither) {
    t = add_rn(sub_rn(dither_uniform_from_key(key0, frame), 0.5), sub_rn(dither_uniform_from_key(key1, frame), 0.5));
  }
  double q = rint(add_rn(w, t));
  bool clipped = false;
  if (q < -scale) {
    q = -scale;
    clipped = true;
  } else if (q > scale - 1.0) {
    q = scale - 1.0;
    clipped = true;
  }
  return {static_cast<std::int32_t>(q), clipped};
}

}  // namespace lathe::gpu::detail
