// Loudness of stereo tracks: the chunked K-weighting cascade with one chunk per 100 ms sub-block,
// whose final pass writes each sub-block's sum of squares; blocks are formed on the host.
#include <cuda_runtime_api.h>

#include "lathe_gpu/error.cuh"
#include "lathe_gpu/loudness.hpp"

namespace lathe::gpu {

namespace {

// The constructor's checks, before the cascade member is built from the layout.
const lane_layout& checked_stereo(const lane_layout& layout) {
  LATHE_EXPECTS(layout.lanes() % 2 == 0, "loudness batch needs two lanes (left, right) per track");
  for (std::size_t l = 0; l < layout.lanes(); l += 2)
    LATHE_EXPECTS(layout.frames[l] == layout.frames[l + 1], "a track's two lanes must have equal lengths");
  return layout;
}

}  // namespace

loudness_plan::loudness_plan(const lane_layout& layout, double sample_rate_hz, const stream& s)
    : tracks_(checked_stereo(layout).lanes() / 2),
      sub_block_frames_(loudness_sub_block_frames(sample_rate_hz)),
      // design_k_weighting checks the rate; one chunk per whole sub-block.
      cascade_(k_weighting_sections(sample_rate_hz), whole_sub_block_layout(layout, sub_block_frames_),
               sub_block_frames_, s),
      d_sums_(cascade_.chunks().size()),
      h_sums_(cascade_.chunks().size()) {}

void loudness_plan::measure_async(const float* d_batch, const stream& s) {
  cascade_.run_async(d_batch, nullptr, d_sums_.data(), detail::cascade_output::sum_of_squares, s);
  d_sums_.download_async(std::span<double>(h_sums_), s);
}

std::vector<loudness_blocks> loudness_plan::collect() const {
  std::vector<loudness_blocks> out;
  out.reserve(tracks_);
  const double* sums = h_sums_.data();
  for (std::size_t t = 0; t < tracks_; ++t) {
    const std::uint32_t l0 = cascade_.chunks().first_chunk_of_lane[2 * t],
                        l1 = cascade_.chunks().first_chunk_of_lane[2 * t + 1],
                        l2 = cascade_.chunks().first_chunk_of_lane[2 * t + 2];
    // No sub-blocks at all leaves the pinned buffer empty (null): take empty spans then.
    const std::span<const double> left = sums ? std::span<const double>(sums + l0, l1 - l0) : std::span<const double>{};
    const std::span<const double> right =
        sums ? std::span<const double>(sums + l1, l2 - l1) : std::span<const double>{};
    out.push_back(loudness_blocks_from_sub_blocks(left, right, sub_block_frames_));
  }
  return out;
}

std::vector<loudness_blocks> loudness_plan::measure(const float* d_batch, const stream& s) {
  measure_async(d_batch, s);
  s.synchronize();
  return collect();
}

std::vector<loudness_blocks> measure_loudness(const float* d_batch, const lane_layout& layout, double sample_rate_hz,
                                              const stream& s) {
  loudness_plan plan(layout, sample_rate_hz, s);
  return plan.measure(d_batch, s);
}

}  // namespace lathe::gpu
