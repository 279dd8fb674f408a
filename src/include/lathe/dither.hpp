#pragma once
// Stage 5b: the final quantization. TPDF dither from a counter-based generator, so the GPU path
// can produce the identical sequence, with selectable noise shaping. Applied once, last, and
// only when the bit depth drops below float.
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

enum class noise_shaping {
  none,      ///< plain TPDF, flat noise
  first_order,  ///< error feedback e[n-1]: noise tilted to high frequencies
  f_weighted,   ///< Wannamaker's 9-tap F-weighted shaper (44.1/48 kHz); falls back to first_order elsewhere
};
bool parse_noise_shaping(const std::string& name, noise_shaping& out);
const char* to_string(noise_shaping s) noexcept;

/// The counter-based uniform generator: a stateless hash of (seed, channel, frame) to [0, 1).
/// Both dither draws of frame `frame` use sub-streams 0 and 1.
double dither_uniform(std::uint64_t seed, int channel, std::uint64_t frame, int substream) noexcept;

struct quantize_params {
  int bit_depth = 16;  ///< 8..24
  noise_shaping shaping = noise_shaping::none;
  std::uint64_t seed = 0;  ///< per track and format, so output is reproducible
  bool dither = true;      ///< false: plain rounding (for tests only)
};

struct quantize_stats {
  std::size_t clipped_samples = 0;  ///< samples that had to be clamped to the integer range
};

/// Quantizes to signed integers in [-2^(b-1), 2^(b-1) - 1], interleaved frame-major
/// (frame 0 ch 0, frame 0 ch 1, ...). full scale 1.0 maps to 2^(b-1).
quantize_stats quantize(const audio_buffer& in, const quantize_params& params, std::vector<std::int32_t>& out);

}  // namespace lathe
