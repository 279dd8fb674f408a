#include <cuda_runtime.h>

#include "lathe_gpu/elementwise.hpp"
#include "lathe_gpu/error.cuh"

namespace lathe::gpu {
namespace {

constexpr int block_threads = 256;

__global__ void max_into_kernel(float* a, const float* b, std::size_t n) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) a[i] = fmaxf(a[i], b[i]);
}

// One thread per (track, frame) of the longest track: grid.y is the track.
__global__ void dequantize_stereo_kernel(const std::int32_t* in, const std::uint64_t* offsets,
                                         const std::uint64_t* lane_offsets, const std::uint64_t* lane_frames,
                                         float scale, float* out) {
  const std::size_t t = blockIdx.y;
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::uint64_t frames = lane_frames[2 * t];
  if (i >= frames) return;
  const std::int32_t* src = in + offsets[t] + 2 * i;
  out[lane_offsets[2 * t] + i] = static_cast<float>(src[0]) * scale;
  out[lane_offsets[2 * t + 1] + i] = static_cast<float>(src[1]) * scale;
}

unsigned blocks_for(std::size_t n) {
  return static_cast<unsigned>((n + block_threads - 1) / block_threads);
}

}  // namespace

void max_into_async(float* d_a, const float* d_b, std::size_t n, const stream& s) {
  if (n == 0) return;
  max_into_kernel<<<blocks_for(n), block_threads, 0, static_cast<cudaStream_t>(s.get())>>>(d_a, d_b, n);
  LATHE_CUDA_CHECK_LAUNCH();
}

void dequantize_stereo_async(const std::int32_t* d_in, const std::uint64_t* d_offsets, std::size_t tracks,
                             const lane_layout& layout, const std::uint64_t* d_lane_offsets,
                             const std::uint64_t* d_lane_frames, int bit_depth, float* d_out, const stream& s) {
  LATHE_EXPECTS(layout.lanes() == 2 * tracks, "dequantize_stereo_async: two lanes per track");
  LATHE_EXPECTS(tracks <= 65'535, "dequantize_stereo_async: at most 65535 tracks per launch");
  std::size_t longest = 0;
  for (std::size_t f : layout.frames) longest = std::max(longest, f);
  if (tracks == 0 || longest == 0) return;
  // 2^-(bits-1) is a power of two: the product is exact, as on the CPU (deliver() in master.cpp).
  const float scale = std::ldexp(1.0f, -(bit_depth - 1));
  const dim3 grid(blocks_for(longest), static_cast<unsigned>(tracks));
  dequantize_stereo_kernel<<<grid, block_threads, 0, static_cast<cudaStream_t>(s.get())>>>(
      d_in, d_offsets, d_lane_offsets, d_lane_frames, scale, d_out);
  LATHE_CUDA_CHECK_LAUNCH();
}

}  // namespace lathe::gpu
