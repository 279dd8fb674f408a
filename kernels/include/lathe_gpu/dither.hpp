#pragma once
// GPU final quantization: TPDF dither from lathe::dither_uniform (the counter hash, reproduced
// bit for bit in detail/dither_hash.hpp) and rounding to integers, for a batch of stereo tracks
// (lanes 2t and 2t+1). Host-compilable.
//
// Shaping: only noise_shaping::none runs here. first_order and f_weighted are error-feedback
// recurrences through the rounding nonlinearity (e[n] = rint(w + t) - w feeds w[n+1]): the
// state after a chunk depends on every rounding inside it, so no exact chunk-wise carry exists
// and the only exact device form is one thread walking a whole lane, which the GPU rules
// forbid (and which would be slower than the host). Those run on the host with lathe::quantize
// after the limited float audio is downloaded; the host pipeline picks the path per format.
//
// Exactness: for identical float input the output equals lathe::quantize bit for bit (same
// hash, same double arithmetic in the same order, no contraction, rint = round half to even).
// Determinism: bitwise identical run to run; clip counts are integer sums (per-block
// fixed-order trees, then one integer atomic add per block: integer addition is exact in any
// order, so the count does not depend on scheduling).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lathe/dither.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// Element offset of each track's interleaved output in the batch's int32 array: track t
/// occupies [offset[t], offset[t] + 2 * frames) frame-major (frame 0 ch 0, frame 0 ch 1, ...),
/// tracks in order; offset has tracks() + 1 entries, the last being the array's length.
std::vector<std::size_t> quantize_output_offsets(const lane_layout& audio);

/// Quantizes a batch of stereo tracks; one object per concurrently used stream.
class batch_quantizer {
 public:
  /// Plans for one batch layout (2 lanes per track, equal length per track), allocates and
  /// uploads on `s`, then synchronizes `s`.
  void prepare(const lane_layout& audio, const stream& s);
  std::size_t tracks() const noexcept { return host_tracks_.size() / 4; }
  /// Length of the int32 output array.
  std::size_t output_size() const noexcept { return output_size_; }

  /// d_out (int32, quantize_output_offsets() layout) = lathe::quantize of each track with
  /// params.bit_depth, params.dither and seed_per_track[t]; params.shaping must be none
  /// (throws lathe::error otherwise). Asynchronous on `s`; d_in, d_out stay valid until done.
  void quantize_async(const float* d_in, std::int32_t* d_out, const quantize_params& params,
                      std::span<const std::uint64_t> seed_per_track, const stream& s);

  /// quantize_async(), then the clamp count per track; synchronizes `s`.
  std::vector<quantize_stats> quantize(const float* d_in, std::int32_t* d_out, const quantize_params& params,
                                       std::span<const std::uint64_t> seed_per_track, const stream& s);

 private:
  std::size_t output_size_ = 0, max_frames_ = 0;
  std::vector<std::uint64_t> host_tracks_;  // per track: in0, in1, frames, out offset
  std::vector<std::uint64_t> host_keys_;    // per track: key0 ch0, key1 ch0, key0 ch1, key1 ch1
  device_vector<std::uint64_t> tracks_;
  device_vector<std::uint64_t> keys_;
  device_vector<std::uint64_t> clipped_;
};

}  // namespace lathe::gpu
