#pragma once
// Small elementwise kernels the engine chains between stages. Host-compilable.
// Deterministic: every output element is computed by one thread from its inputs alone.
#include <cstddef>
#include <cstdint>
#include <span>

#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// a[i] = max(a[i], b[i]) for i < n (the limiter detects with the larger of its two detectors).
/// Enqueues on `s`; does not synchronize.
void max_into_async(float* d_a, const float* d_b, std::size_t n, const stream& s);

/// Deinterleaves quantized stereo tracks back to float lanes (value * 2^-(bits-1)), so the
/// delivered samples can be measured on the device. Track t's frames start at
/// `interleaved_offset[t]` (in int32 elements) of `d_in`; its channels go to lanes 2t and 2t+1
/// of `layout` in `d_out`. `d_offsets` is a device copy of interleaved_offset. Enqueues on `s`.
void dequantize_stereo_async(const std::int32_t* d_in, const std::uint64_t* d_offsets, std::size_t tracks,
                             const lane_layout& layout, const std::uint64_t* d_lane_offsets,
                             const std::uint64_t* d_lane_frames, int bit_depth, float* d_out, const stream& s);

}  // namespace lathe::gpu
