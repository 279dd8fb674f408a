#pragma once
// Stage 5b: the final quantization. TPDF dither from a counter-based generator, so the GPU path
// can produce the identical sequence, with selectable noise shaping. Applied once, last, and
// only when the bit depth drops below float.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

enum class noise_shaping {
  none,         ///< plain TPDF, flat noise
  first_order,  ///< error feedback e[n-1]: noise tilted to high frequencies
  f_weighted,   ///< Wannamaker's 9-tap F-weighted shaper (44.1/48 kHz); falls back to first_order elsewhere
};
bool parse_noise_shaping(const std::string& name, noise_shaping& out);
const char* to_string(noise_shaping s) noexcept;

/// The counter-based uniform generator: a stateless hash of (seed, channel, frame) to [0, 1).
/// Both dither draws of frame `frame` use sub-streams 0 and 1. Exact definition (the GPU path
/// reproduces it bit for bit; all arithmetic is unsigned 64-bit, wrapping):
///   mix(z)  = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
///             return z ^ (z >> 31)                                (SplitMix64's finalizer)
///   stream  = (uint64(uint32(channel)) << 32) | uint32(substream)
///   key     = mix(seed ^ mix(stream + 0x9E3779B97F4A7C15))
///   z       = mix(key + (frame + 1) * 0x9E3779B97F4A7C15)      (SplitMix64 output frame+1 of key)
///   result  = double(z >> 11) * 2^-53                             (53 bits, exact)
double dither_uniform(std::uint64_t seed, int channel, std::uint64_t frame, int substream) noexcept;

struct quantize_params {
  int bit_depth = 16;  ///< 8..24
  noise_shaping shaping = noise_shaping::none;
  std::uint64_t seed = 0;  ///< per track and format, so output is reproducible
  bool dither = true;      ///< false: plain rounding (for tests only)
  /// Needed by f_weighted only (its filter is designed for 44.1/48 kHz: SoX's 46 kHz +-5%);
  /// quantize() rejects f_weighted with an unset (0) rate rather than guess.
  double sample_rate_hz = 0.0;
};

/// The error-feedback coefficients c_1..c_N that quantize() uses for `shaping` at this rate:
/// the noise transfer function is 1 - sum_k c_k z^-k. Empty for none.
std::vector<double> noise_shaping_coefficients(noise_shaping shaping, double sample_rate_hz);

struct quantize_stats {
  std::size_t clipped_samples = 0;  ///< samples that had to be clamped to the integer range
};

/// quantize() fed block by block: the error-feedback memory and the dither's frame counter carry
/// across blocks, so the output and the clamp count equal quantize()'s of the concatenated blocks
/// bit for bit, for any block partition. Latency: none. Not thread-safe; one per stream.
class quantizer {
 public:
  /// Checks `params` as quantize() does and resolves the shaping filter and the dither streams
  /// once. Preconditions (checked): 0 <= channels <= max_channels.
  quantizer(const quantize_params& params, int channels);

  /// Starts a new stream: frame 0, no error history, no clamps counted.
  void reset() noexcept;

  /// Quantizes the next in.frames frames into out[0, in.frames * channels), interleaved
  /// frame-major, as quantize() describes. Preconditions (not checked): in.channels is the
  /// constructor's count, out.size() >= in.frames * channels. No allocation.
  void process(const_block_view in, std::span<std::int32_t> out) noexcept;

  /// Clamps counted since construction or reset().
  quantize_stats stats() const noexcept { return stats_; }

 private:
  static constexpr std::size_t max_order = 9;  // the F-weighted shaper's length
  int channels_;
  bool dither_;
  std::vector<double> coeffs_;
  double scale_;  // 2^(b-1)
  std::array<std::array<std::uint64_t, 2>, max_channels> keys_{};
  std::array<std::array<double, max_order>, max_channels> err_{};  // err[c][k] = e[n-1-k]
  std::uint64_t frame_ = 0;                                        // the next frame's index
  quantize_stats stats_;
};

/// Quantizes to signed integers in [-2^(b-1), 2^(b-1) - 1], interleaved frame-major
/// (frame 0 ch 0, frame 0 ch 1, ...). full scale 1.0 maps to 2^(b-1).
/// Per channel c and frame n, in float64 and in this order (the GPU path does the same):
///   v = x * 2^(b-1);  w = v - c_1 e[n-1] - c_2 e[n-2] - ... (k ascending; e[<0] = 0)
///   t = (dither_uniform(seed, c, n, 0) - 0.5) + (dither_uniform(seed, c, n, 1) - 0.5)  (0 without dither)
///   q = rint(w + t) (round half to even);  e[n] = q - w;  out = clamp(q), counting clamps.
/// The feedback uses the unclamped q so a clipped sample cannot destabilize the shaper.
/// A quantizer fed the whole buffer. Allocates out; thread-safe.
quantize_stats quantize(const audio_buffer& in, const quantize_params& params, std::vector<std::int32_t>& out);

}  // namespace lathe
