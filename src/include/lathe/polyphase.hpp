#pragma once
// Rational polyphase sample-rate conversion with a Kaiser-windowed sinc designed in float64.
// The plain CPU implementation here is the reference of the GPU kernel (kernels/dsp/resample.cu):
// both compute every output sample as the same fixed-order dot product.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

/// Filter specification. Frequencies are fractions of the LOWER of the two Nyquist rates.
/// The defaults give a passband flat to well under 0.001 dB up to 0.91 (the Kaiser ripple is
/// about 1e-8), a stopband from 1.0 (nothing above the output Nyquist survives when
/// downsampling; no image below the input Nyquist's mirror when upsampling) at least 160 dB
/// down in float64 design (the float32 coefficients and data leave a floor near -145 dB), and
/// a transition of 0.09: about 235 * max(L, M) prototype taps, 2K+1 taps per output sample
/// (237 for 44.1 <-> 48 kHz upsampling, 259 downsampling, 1883 for 384 -> 48 kHz).
struct polyphase_params {
  double passband_end = 0.91;
  double stopband_begin = 1.0;
  double stopband_attenuation_db = 160.0;
};

/// Converts between two integer sample rates by L/M = out/in (reduced): conceptually zero-stuff
/// by L, low-pass with a symmetric (linear-phase) FIR centred on zero, keep every M-th sample.
/// Zero-phase alignment: output j is the band-limited input at input time j * M / L (no delay),
/// the input being zero outside [0, frames). Output length round(frames * L / M) (like
/// lathe::resample). Equal rates copy (L = M = 1, one tap of 1.0; bit-exact except -0 -> +0).
///
/// Output j: with j*M = q*L + r (0 <= r < L),
///   y[j] = float( sum_{t=0}^{T-1} double(c[r*T + t]) * double(x[q - K + t]) ),
/// T = 2K+1, x = 0 outside the lane, the sum taken as four float64 partial sums over
/// t mod 4 combined as (s0 + s1) + (s2 + s3). Each float32 x float32 product is exact in float64,
/// so the result does not depend on FMA contraction; the GPU kernel uses the same order and
/// gives the same bits up to the final float rounding.
///
/// prepare() allocates and designs (float64); process() is allocation-free, noexcept, const and
/// thread-safe (no state: every output depends only on the input lane).
class polyphase_resampler {
 public:
  /// Designs the filter for integer rates in_rate_hz -> out_rate_hz (each in [1, 10'000'000]).
  /// Throws lathe::logic_error for non-integer rates or a table over max_coefficients.
  void prepare(double in_rate_hz, double out_rate_hz, const polyphase_params& params = {});

  /// Coefficient tables above this size are refused (512 MiB of float); every pair of integer
  /// rates from 8 to 384 kHz fits (the worst, coprime pairs near 384 kHz, needs ~90 M).
  static constexpr std::size_t max_coefficients = std::size_t{1} << 27;

  std::uint32_t up() const noexcept { return up_; }                           ///< L
  std::uint32_t down() const noexcept { return down_; }                       ///< M
  std::size_t half_taps() const noexcept { return half_taps_; }               ///< K
  std::size_t taps_per_phase() const noexcept { return 2 * half_taps_ + 1; }  ///< T
  /// Phase-major float32 table: phase r occupies [r*T, (r+1)*T). Shared by all lanes.
  std::span<const float> coefficients() const noexcept { return coeffs_; }
  const polyphase_params& params() const noexcept { return params_; }
  double in_rate_hz() const noexcept { return in_rate_hz_; }
  double out_rate_hz() const noexcept { return out_rate_hz_; }
  /// Kaiser window beta and cutoff (fraction of the lower Nyquist) actually used.
  double kaiser_beta() const noexcept { return beta_; }
  double cutoff() const noexcept { return cutoff_; }

  /// round(in_frames * L / M), halves up.
  std::size_t output_frames(std::size_t in_frames) const noexcept;

  /// Output frames [first_out, first_out + out.size()) of the lane `in`. Allocation-free.
  void process(std::span<const float> in, std::size_t first_out, std::span<float> out) const noexcept;
  /// Whole lane; out.size() must be output_frames(in.size()).
  void process(std::span<const float> in, std::span<float> out) const noexcept { process(in, 0, out); }
  /// Whole buffer, every channel. Allocates the result.
  audio_buffer process(const audio_buffer& in) const;

  /// Magnitude (linear, 1 = unity) of the float32 table at freq_hz of the input when
  /// upsampling, i.e. the response of the prototype at rate L * in_rate divided by L, evaluated
  /// from the coefficients actually used (float64 sum). For design measurements and tests.
  double magnitude(double freq_hz) const;

 private:
  std::uint32_t up_ = 1, down_ = 1;
  std::size_t half_taps_ = 0;
  double in_rate_hz_ = 0.0, out_rate_hz_ = 0.0, beta_ = 0.0, cutoff_ = 0.0;
  polyphase_params params_;
  std::vector<float> coeffs_{1.0f};
};

}  // namespace lathe
