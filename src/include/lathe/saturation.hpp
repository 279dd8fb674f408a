#pragma once
// Saturation: y = trim * tanh(drive * x), a smooth odd-symmetric shaper (only odd harmonics),
// run at `oversampling` times the sample rate between linear-phase FIR interpolation and
// decimation filters designed in float64, so the harmonics above the original Nyquist are
// removed instead of folding back as aliases.
//
// The oversampling is a cascade of 2x stages. Stage 0 (between fs and 2 fs) carries the whole
// passband: a Kaiser-windowed sinc flat to 0.91 of the original Nyquist with its stopband from
// 1.0, so nothing above the original Nyquist survives and no image falls below it. The inner
// stages s >= 1 (between 2^s fs and 2^(s+1) fs) only have to keep [0, fs/2] and reject what
// would fold onto it, a transition from fs/2 to 2^s fs - fs/2: half-band filters of a few
// dozen taps whose every other tap is zero. Each stage is polyphase: interpolation computes
// only the non-zero taps of each output phase, decimation only the kept outputs.
//
// Every filtered sample is one float sum of its taps in a fixed order (design().stages[s] lists
// them), accumulated from 0 without fused multiply-adds, and tanh is a fixed sequence of float
// operations (saturation_tanh), so the GPU kernel (kernels/dsp/saturation.cu) reproduces the
// stage's output bit for bit from the same design.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lathe/audio_buffer.hpp"

#if defined(__CUDACC__)
#define LATHE_SATURATION_HD __host__ __device__
#else
#define LATHE_SATURATION_HD
#endif

namespace lathe {

struct saturation_params {
  double drive_db = 0.0;   ///< gain into tanh (-24..+36 dB); small-signal gain is drive * trim
  double output_db = 0.0;  ///< trim after the shaper (-48..+24 dB)
  double mix = 1.0;        ///< 0 = dry (delay-matched), 1 = fully saturated
  /// Rate multiplier of the shaper: 1 (no oversampling, aliases) or 2, 4, 8, 16 (a cascade of
  /// 2x stages). 8 keeps aliasing of a 10 kHz sine at 44.1 kHz >= 100 dB below the fundamental
  /// for drives to about +12 dB on a full-scale sine (tanh's harmonics fall ~0.38 * 8.7 dB per
  /// order there; the first ones to fold into the audio band at 8x are near order 33).
  int oversampling = 8;
  /// Stopband of every interpolation and decimation stage (dB, 60..200); the passband reaches
  /// 0.91 of the original Nyquist, the stopband of stage 0 starts at 1.0.
  double filter_attenuation_db = 120.0;
};

namespace saturation_detail {
// Float operations that are never contracted into fused multiply-adds (nvcc contracts a * b + c
// by default; the x86-64 host build has no FMA), so host and device round identically.
LATHE_SATURATION_HD inline float mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
LATHE_SATURATION_HD inline float add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
LATHE_SATURATION_HD inline float div(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
}  // namespace saturation_detail

/// tanh(x) in float within 8 ULP of the correctly rounded value (tests/dsp/saturation_test.cpp),
/// exactly odd (f(-x) == -f(x) bit for bit, so the shaper adds no even harmonics), branch-free
/// so loops over it vectorize. |x| is clamped to 9 (tanh(9) is 1 to float precision); y = x/16
/// is small enough for tanh's Taylor series to y^11 (error < 1e-9), and tanh(16 y) follows from
/// four doublings tanh(2a) = 2 tanh(a) / (1 + tanh(a)^2), kept as numerator and denominator so
/// only one division is needed. NaN maps to +-1.
LATHE_SATURATION_HD inline float saturation_tanh(float x) {
  using namespace saturation_detail;
  std::uint32_t bits;
#ifdef __CUDA_ARCH__
  bits = __float_as_uint(x);
#else
  std::memcpy(&bits, &x, sizeof bits);
#endif
  // The clamp on the bit pattern: integer compares vectorize where float ones (which may trap)
  // do not without -fno-trapping-math.
  const std::uint32_t magnitude = bits & 0x7fff'ffffu, nine = 0x4110'0000u;
  const std::uint32_t clamped_bits = (magnitude < nine ? magnitude : nine) | (bits & 0x8000'0000u);
  float xc;
#ifdef __CUDA_ARCH__
  xc = __uint_as_float(clamped_bits);
#else
  std::memcpy(&xc, &clamped_bits, sizeof xc);
#endif
  const float y = mul(xc, 0.0625f);
  const float y2 = mul(y, y);
  float p = -1382.0f / 155'925.0f;
  p = add(mul(p, y2), 62.0f / 2'835.0f);
  p = add(mul(p, y2), -17.0f / 315.0f);
  p = add(mul(p, y2), 2.0f / 15.0f);
  p = add(mul(p, y2), -1.0f / 3.0f);
  float n = add(y, mul(y, mul(y2, p)));
  float d = 1.0f;
  for (int k = 0; k < 4; ++k) {
    const float n2 = mul(2.0f, mul(n, d));
    d = add(mul(n, n), mul(d, d));
    n = n2;
  }
  return div(n, d);
}

/// The shaper: trim * tanh(drive * x).
LATHE_SATURATION_HD inline float saturation_shape(float x, float drive, float trim) {
  using namespace saturation_detail;
  return mul(trim, saturation_tanh(mul(drive, x)));
}

/// Taps of one polyphase branch: sample = sum_t coeff[t] * src[base + pos[t]], accumulated in
/// float from +0 in ascending t, each product rounded before it is added.
struct saturation_taps {
  std::vector<std::int32_t> pos;
  std::vector<float> coeff;
  std::size_t size() const noexcept { return pos.size(); }
  std::int32_t min_pos() const noexcept { return pos.front(); }  ///< pos is ascending
  std::int32_t max_pos() const noexcept { return pos.back(); }
};

/// One 2x stage of the cascade (stage s runs between 2^s fs and 2^(s+1) fs), causal:
///   interpolation  x_{s+1}[2j + r] = sum_t up[r].coeff[t] * x_s[j + up[r].pos[t]]   (r = 0, 1)
///   decimation     u_s[i]          = sum_t down.coeff[t]  * u_{s+1}[2i + down.pos[t]]
/// x_0 is the input, u_S = saturation_shape(x_S) at the top, u_0 the wet output; every signal is
/// 0 at negative indices (the stage starts at rest). up pos lie in [-half_taps, 0], down pos in
/// [-(half_taps + 1 + delay), 1]: each output needs only samples already produced.
struct saturation_oversampling_stage {
  std::size_t half_taps = 0;  ///< c: the float64 prototype h[k], |k| <= c, symmetric, DC gain 1
  bool half_band = false;     ///< h[k] = 0 for even k != 0, h[0] = 1/2 (stages s >= 1)
  saturation_taps up[2];      ///< coefficients 2 h[k]: unity gain after zero stuffing
  saturation_taps down;       ///< coefficients h[k]
};

/// Everything process() computes with, for reports and for the GPU kernel.
struct saturation_design {
  std::size_t factor = 1;          ///< oversampling, a power of two
  std::size_t latency_frames = 0;  ///< out[n] = wet * u_0[n] + dry * x[n - latency_frames]
  float drive = 1.0f, trim = 1.0f, wet = 1.0f, dry = 0.0f;
  std::vector<saturation_oversampling_stage> stages;  ///< log2(factor) stages, stage 0 outermost
};

/// Designs the cascade (float64, then rounded to float) for `p`. The design does not depend on
/// the sample rate (all edges are fractions of it). Throws lathe::logic_error on bad params.
saturation_design design_saturation(const saturation_params& p);

/// Latency: the delay of the causal cascade, design().latency_frames (0 without oversampling;
/// 185 frames at 8x with the default 120 dB filters: 174 from stage 0, 11 from the half-bands).
/// process() may run in place; it never allocates. Not thread-safe.
class saturation_stage {
 public:
  explicit saturation_stage(saturation_params p = {}) : params_(p) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept { return design_.latency_frames; }
  const saturation_params& params() const noexcept { return params_; }
  const saturation_design& design() const noexcept { return design_; }
  /// Taps per interpolation phase and of the decimation filter of the outermost stage, which
  /// dominate the cost (for reports); 1 without oversampling.
  std::size_t up_taps() const noexcept;
  std::size_t down_taps() const noexcept;

 private:
  // Per stage s: x_s (input of interpolation s) and u_{s+1} (input of decimation s) are kept
  // with the history their filters reach back over in front of the new samples.
  struct level {
    std::size_t x_hist = 0, u_hist = 0;
  };
  void process_channel(int c, const float* in, float* out, std::size_t n) noexcept;

  saturation_params params_;
  saturation_design design_;
  int channels_ = 0;
  std::size_t max_block_ = 0;
  std::vector<level> levels_;
  // Per channel and stage: x_[c][s] = [x_hist | new 2^s n], u_[c][s] = [u_hist | new 2^(s+1) n]
  // (u_[c][S-1] receives x_S and shapes it in place).
  std::vector<std::vector<std::vector<float>>> x_, u_;
  std::vector<float> phase_[2];     // interpolation outputs per phase
  std::vector<float> even_, odd_;   // a decimation input split by sample parity
  std::vector<float> wet_;          // u_0 of one block
  std::vector<const float*> srcs_;  // per tap: where its input stream starts
};

}  // namespace lathe
