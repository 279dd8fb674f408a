// Per-frame polyphase peaks: one block per tile of output frames; the tile's input span (with
// zeros outside the lane) and the coefficients are staged in shared memory.
#include <cuda_runtime_api.h>

#include <algorithm>

#include "lathe_gpu/error.cuh"
#include "lathe_gpu/true_peak.hpp"

namespace lathe::gpu {
namespace {

struct peak_policy {
  static constexpr int threads = 256;
  static constexpr int tile_frames = static_cast<int>(peak_plan::tile_frames);
};

struct filter_args {
  int factor;
  int taps;
  int delay_frames;
  int centre_tap;  // phase 0's sample when phase0_is_sample, else -1
  float c[max_peak_coeffs];
};

__device__ __forceinline__ float max_as_std(float a, float b) {
  return a < b ? b : a;
}

__global__ void __launch_bounds__(peak_policy::threads)
    peak_kernel(const float* __restrict__ in, float* __restrict__ out, float* __restrict__ tile_max,
                const std::uint64_t* __restrict__ in_offset, const std::uint64_t* __restrict__ in_frames,
                const std::uint64_t* __restrict__ frame, const std::uint64_t* __restrict__ out_index,
                const std::uint32_t* __restrict__ length, filter_args f) {
  using P = peak_policy;
  __shared__ float coeff[max_peak_coeffs];
  __shared__ float xs[P::tile_frames + max_peak_taps - 1];
  __shared__ float warp_max[P::threads / 32];

  const std::uint32_t tile = blockIdx.x;
  const std::uint64_t base = in_offset[tile];
  const auto lane_frames = static_cast<std::int64_t>(in_frames[tile]);
  const auto first = static_cast<std::int64_t>(frame[tile]) - f.delay_frames;  // input frame of xs[0]
  const std::uint64_t dst = out_index[tile];
  const int len = static_cast<int>(length[tile]);
  const int span = len + f.taps - 1;

  for (int i = static_cast<int>(threadIdx.x); i < f.factor * f.taps; i += P::threads) coeff[i] = f.c[i];
  for (int j = static_cast<int>(threadIdx.x); j < span; j += P::threads) {
    const std::int64_t at = first + j;
    xs[j] = at >= 0 && at < lane_frames ? in[base + static_cast<std::uint64_t>(at)] : 0.0f;
  }
  __syncthreads();

  float local = 0.0f;
  // Consecutive threads take consecutive frames: shared reads of xs are conflict-free and each
  // coefficient read is a broadcast. Each input sample is read once for every phase: the phases'
  // dot products run side by side in registers, each tap by tap in the CPU's order, as float
  // products and sums with contraction into FMA ruled out (the CPU build does not contract), so
  // each rounds exactly as the CPU's.
  const int first_phase = f.centre_tap >= 0 ? 1 : 0;
  for (int i = static_cast<int>(threadIdx.x); i < len; i += P::threads) {
    float acc[max_peak_phases];
#pragma unroll
    for (int p = 0; p < static_cast<int>(max_peak_phases); ++p) acc[p] = 0.0f;
    for (int k = 0; k < f.taps; ++k) {
      const float x = xs[i + k];
#pragma unroll
      for (int p = 0; p < static_cast<int>(max_peak_phases); ++p)
        if (p >= first_phase && p < f.factor) acc[p] = __fadd_rn(acc[p], __fmul_rn(coeff[p * f.taps + k], x));
    }
    float peak = f.centre_tap >= 0 ? fabsf(xs[i + f.centre_tap]) : 0.0f;
#pragma unroll
    for (int p = 0; p < static_cast<int>(max_peak_phases); ++p)
      if (p >= first_phase && p < f.factor) peak = max_as_std(peak, fabsf(acc[p]));
    out[dst + static_cast<std::uint64_t>(i)] = peak;
    local = max_as_std(local, peak);
  }

  // Block maximum in a fixed tree (max is exact, so any order would do).
  for (int o = 16; o > 0; o /= 2) local = max_as_std(local, __shfl_down_sync(0xffffffffu, local, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = local;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = warp_max[0];
    for (int w = 1; w < P::threads / 32; ++w) m = max_as_std(m, warp_max[w]);
    tile_max[tile] = m;
  }
}

}  // namespace

peak_plan::peak_plan(const peak_filter& filter, const lane_layout& in, std::size_t extra_tail_frames, const stream& s)
    : filter_(filter),
      out_layout_(peak_output_layout(in, extra_tail_frames)),
      tiles_(make_peak_tiles(in, extra_tail_frames, tile_frames)),
      lanes_(in.lanes()) {
  LATHE_EXPECTS(filter_.factor >= 1 && filter_.factor <= static_cast<int>(max_peak_phases) && filter_.taps >= 1 &&
                    filter_.taps <= max_peak_taps,
                "peak filter needs 1..8 phases of 1..64 taps");
  LATHE_EXPECTS(static_cast<std::size_t>(filter_.factor) * filter_.taps <= max_peak_coeffs &&
                    filter_.coeffs.size() == static_cast<std::size_t>(filter_.factor) * filter_.taps,
                "peak filter coefficients must be factor x taps, at most 320");
  LATHE_EXPECTS(filter_.delay_frames < (std::size_t{1} << 30), "peak filter delay too long");
  LATHE_EXPECTS(!filter_.phase0_is_sample || (filter_.latency_frames <= filter_.delay_frames &&
                                              filter_.delay_frames - filter_.latency_frames < filter_.taps),
                "phase 0's sample must lie within the filter's taps");
  LATHE_EXPECTS(tiles_.size() < (std::size_t{1} << 31), "batch has too many peak tiles");
  const std::size_t n = tiles_.size();
  d_in_offset_ = device_vector<std::uint64_t>(n);
  d_in_frames_ = device_vector<std::uint64_t>(n);
  d_frame_ = device_vector<std::uint64_t>(n);
  d_out_index_ = device_vector<std::uint64_t>(n);
  d_length_ = device_vector<std::uint32_t>(n);
  d_tile_max_ = device_vector<float>(n);
  h_tile_max_.assign(n, 0.0f);
  d_in_offset_.upload_async(tiles_.in_offset, s);
  d_in_frames_.upload_async(tiles_.in_frames, s);
  d_frame_.upload_async(tiles_.frame, s);
  d_out_index_.upload_async(tiles_.out_index, s);
  d_length_.upload_async(tiles_.length, s);
}

void peak_plan::run_async(const float* d_in, float* d_peaks, const stream& s) {
  if (tiles_.size() == 0) return;
  filter_args f{};
  f.factor = filter_.factor;
  f.taps = static_cast<int>(filter_.taps);
  f.delay_frames = static_cast<int>(filter_.delay_frames);
  f.centre_tap = filter_.phase0_is_sample ? static_cast<int>(filter_.delay_frames - filter_.latency_frames) : -1;
  std::copy(filter_.coeffs.begin(), filter_.coeffs.end(), f.c);
  peak_kernel<<<static_cast<unsigned>(tiles_.size()), peak_policy::threads, 0, static_cast<cudaStream_t>(s.get())>>>(
      d_in, d_peaks, d_tile_max_.data(), d_in_offset_.data(), d_in_frames_.data(), d_frame_.data(), d_out_index_.data(),
      d_length_.data(), f);
  LATHE_CUDA_CHECK_LAUNCH();
}

std::vector<float> peak_plan::lane_max(const stream& s) {
  d_tile_max_.download_async(std::span<float>(h_tile_max_), s);
  s.synchronize();
  std::vector<float> out(lanes_, 0.0f);
  for (std::size_t j = 0; j < tiles_.size(); ++j) out[tiles_.lane[j]] = std::max(out[tiles_.lane[j]], h_tile_max_[j]);
  return out;
}

}  // namespace lathe::gpu
