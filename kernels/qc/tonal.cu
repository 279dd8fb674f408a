// GPU Welch power spectrum (lathe_gpu/tonal.hpp). Layers: per-thread bodies and the slice plan
// (lathe_gpu/detail/welch_layout.hpp, shared with the CPU test) -> kernels with a constexpr tile
// policy -> per-slice dispatch (gather, batched R2C, accumulate) -> facade (welch_power_batch)
// that checks arguments and turns CUDA/cuFFT statuses into exceptions.
#include <cuda_runtime_api.h>
#include <cufft.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "lathe_gpu/cufft_error.hpp"
#include "lathe_gpu/detail/welch_layout.hpp"
#include "lathe_gpu/error.cuh"
#include "lathe_gpu/tonal.hpp"

namespace lathe::gpu {
namespace {

// One CUDA block per (frame or segment, tile of threads_per_tile consecutive samples or bins):
// consecutive threads touch consecutive floats, so global accesses coalesce.
struct welch_policy {
  static constexpr unsigned threads_per_tile = 256;
  static constexpr unsigned max_grid_y = 65'535;
};

cudaStream_t raw(const stream& s) {
  return static_cast<cudaStream_t>(s.get());
}

unsigned tiles_for(std::size_t n) {
  const std::size_t t = (n + welch_policy::threads_per_tile - 1) / welch_policy::threads_per_tile;
  return static_cast<unsigned>(std::min<std::size_t>(t, welch_policy::max_grid_y));
}

// time[2i + p][j] = sample j of slice-local frame i's windowed mid (p = 0) or side (p = 1);
// zeros for the padding frames i >= count, so the padded transforms read defined memory.
__global__ void gather_frames(const detail::welch_frame* __restrict__ frames, std::size_t count,
                              const float* __restrict__ in, const double* __restrict__ window, float* __restrict__ time,
                              std::size_t n) {
  const std::size_t i = blockIdx.x;
  float* mid_out = time + 2 * i * n;
  float* side_out = mid_out + n;
  const bool real = i < count;
  const detail::welch_frame fr = real ? frames[i] : detail::welch_frame{};
  for (std::size_t j = std::size_t{blockIdx.y} * blockDim.x + threadIdx.x; j < n;
       j += std::size_t{gridDim.y} * blockDim.x) {
    float mid = 0.0f, side = 0.0f;
    if (real) detail::welch_mid_side(in, fr, window, static_cast<std::uint32_t>(j), mid, side);
    mid_out[j] = mid;
    side_out[j] = side;
  }
}

// sums[(track * 2 + p) * bins + k] += |X_k|^2 over the segment's frames in frame order; one
// thread per (segment, part, bin), and a track has at most one segment per slice, so no two
// threads of a launch touch one sum.
__global__ void accumulate_segments(const detail::welch_segment* __restrict__ segments,
                                    const float* __restrict__ spectra, double* __restrict__ sums, std::size_t bins) {
  const detail::welch_segment seg = segments[blockIdx.x];
  const std::uint32_t part = blockIdx.z;
  double* row = sums + (std::size_t{seg.track} * 2 + part) * bins;
  for (std::size_t k = std::size_t{blockIdx.y} * blockDim.x + threadIdx.x; k < bins;
       k += std::size_t{gridDim.y} * blockDim.x) {
    row[k] = detail::welch_accumulate(row[k], spectra, bins, seg, part, k);
  }
}

}  // namespace

std::vector<welch_power> welch_power_batch(const lane_layout& layout, double sample_rate_hz,
                                           const device_vector<float>& d_in, cufft_plan_cache& plans, const stream& s,
                                           std::size_t work_budget_bytes) {
  const std::size_t n = tonal_fft_size(sample_rate_hz);  // checks the rate
  LATHE_EXPECTS(layout.frames.size() == layout.offset.size(), "lane_layout: offset and frames differ in size");
  LATHE_EXPECTS(d_in.size() >= layout.total_frames, "welch_power_batch: d_in must hold layout.total_frames floats");
  const detail::welch_plan plan = detail::make_welch_plan(layout, n, work_budget_bytes);
  const std::size_t bins = plan.bins;

  std::vector<welch_power> out(plan.tracks);
  for (std::size_t t = 0; t < plan.tracks; ++t) {
    out[t].fft_size = n;
    out[t].sample_rate_hz = sample_rate_hz;
    out[t].frames_analyzed = plan.track_frames[t];
    out[t].samples = layout.frames[2 * t];
  }
  std::vector<double> sums(plan.tracks * 2 * bins, 0.0);
  if (!plan.frames.empty()) {
    const std::vector<double> window = detail::welch_window(n);
    device_vector<double> d_window(n);
    device_vector<detail::welch_frame> d_frames(plan.frames.size());
    device_vector<detail::welch_segment> d_segments(plan.segments.size());
    device_vector<double> d_sums(sums.size());
    const std::size_t cap = plan.slice_capacity;
    device_vector<float> d_time(2 * cap * n);
    device_vector<float> d_spectra(2 * cap * bins * 2);
    d_window.upload_async(window, s);
    d_frames.upload_async(plan.frames, s);
    d_segments.upload_async(plan.segments, s);
    d_sums.zero_async(s);
    const cufftHandle r2c =
        plans.real_plan_handle(n, 2 * cap, cufft_plan_cache::real_fft::forward_r2c, s);  // bound to s
    const dim3 block(welch_policy::threads_per_tile);
    for (const detail::welch_slice& sl : plan.slices) {
      const std::size_t count = sl.frame_end - sl.frame_begin;
      gather_frames<<<dim3(static_cast<unsigned>(cap), tiles_for(n)), block, 0, raw(s)>>>(
          d_frames.data() + sl.frame_begin, count, d_in.data(), d_window.data(), d_time.data(), n);
      LATHE_CUDA_CHECK_LAUNCH();
      LATHE_CUFFT_TRY(cufftExecR2C(r2c, d_time.data(), reinterpret_cast<cufftComplex*>(d_spectra.data())));
      const auto segs = static_cast<unsigned>(sl.segment_end - sl.segment_begin);
      accumulate_segments<<<dim3(segs, tiles_for(bins), 2), block, 0, raw(s)>>>(d_segments.data() + sl.segment_begin,
                                                                                d_spectra.data(), d_sums.data(), bins);
      LATHE_CUDA_CHECK_LAUNCH();
    }
    d_sums.download_async(sums, s);
    s.synchronize();  // the host tables above and the device buffers die at the end of this scope
  }
  for (std::size_t t = 0; t < plan.tracks; ++t) {
    const double* mid = sums.data() + 2 * t * bins;
    out[t].mid.assign(mid, mid + bins);
    out[t].side.assign(mid + bins, mid + 2 * bins);
  }
  return out;
}

}  // namespace lathe::gpu
