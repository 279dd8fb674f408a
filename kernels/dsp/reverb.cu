// Batched convolution reverb. Layers: element expressions (detail/reverb_layout.hpp, shared with
// the CPU layout test) -> chunk kernels with a constexpr policy (pad, true-stereo combine, mix
// with energy sums) -> dispatch in reverb_batch, which reuses gpu_fir_filter / gpu_convolver for
// the convolutions and iir_plan for the wet filters.
#include <cuda_runtime_api.h>

#include <memory>
#include <span>
#include <vector>

#include "lathe_gpu/convolution.hpp"
#include "lathe_gpu/detail/reverb_layout.hpp"
#include "lathe_gpu/error.cuh"
#include "lathe_gpu/iir.hpp"
#include "lathe_gpu/reverb.hpp"

namespace lathe::gpu {
namespace {

// One CUDA block per chunk of a wet lane; consecutive threads take consecutive frames
// (coalesced). 4096-frame chunks: 16 frames per thread, and the per-chunk energy partials that go
// back to the host are 1/4096 of the audio.
struct reverb_policy {
  static constexpr unsigned threads = 256;
  static constexpr std::size_t chunk_frames = 4'096;
};

cudaStream_t raw(const stream& s) {
  return static_cast<cudaStream_t>(s.get());
}

// padded[wet lane frame j] = the input delayed by the pre-delay (zeros around it).
__global__ void pad_input_kernel(const detail::reverb_chunk* __restrict__ chunks,
                                 const detail::reverb_lane* __restrict__ lanes, const float* __restrict__ in,
                                 float* __restrict__ padded, std::uint64_t pre_delay_frames) {
  const detail::reverb_chunk c = chunks[blockIdx.x];
  const detail::reverb_lane l = lanes[c.lane];
  for (std::uint32_t t = threadIdx.x; t < c.length; t += blockDim.x) {
    const std::uint64_t j = c.start + t;
    padded[l.wet_offset + j] = detail::reverb_padded_input(l, in, j, pre_delay_frames);
  }
}

// True stereo: w0[j] += w1[partner lane's j]. In place is safe: each thread reads and writes only
// its own w0 element, and w1 is read-only here.
__global__ void combine_true_stereo_kernel(const detail::reverb_chunk* __restrict__ chunks,
                                           const detail::reverb_lane* __restrict__ lanes, float* w0,
                                           const float* __restrict__ w1) {
  const detail::reverb_chunk c = chunks[blockIdx.x];
  const detail::reverb_lane l = lanes[c.lane];
  for (std::uint32_t t = threadIdx.x; t < c.length; t += blockDim.x) {
    const std::uint64_t j = c.start + t;
    w0[l.wet_offset + j] = detail::reverb_combined(l, w0, w1, j);
  }
}

// out = dry * dry_gain + wet * wet_gain on the lane's N frames; per chunk the float64 sums of
// dry^2 (frames < N) and of (wet * wet_gain)^2 (all E frames), each thread in time order, then a
// fixed shared-memory tree: the same sums on every run. `in` and `out` may alias (each thread
// reads its input element before writing the same element).
__global__ void __launch_bounds__(reverb_policy::threads)
    mix_kernel(const detail::reverb_chunk* __restrict__ chunks, const detail::reverb_lane* __restrict__ lanes,
               const float* in, const float* __restrict__ wet, float* out, float dry_gain, float wet_gain,
               double* __restrict__ dry_sums, double* __restrict__ wet_sums) {
  __shared__ double dry_part[reverb_policy::threads];
  __shared__ double wet_part[reverb_policy::threads];
  const detail::reverb_chunk c = chunks[blockIdx.x];
  const detail::reverb_lane l = lanes[c.lane];
  double dry_e = 0.0, wet_e = 0.0;
  for (std::uint32_t t = threadIdx.x; t < c.length; t += blockDim.x) {
    const std::uint64_t j = c.start + t;
    const float ws = detail::reverb_wet_scaled(wet[l.wet_offset + j], wet_gain);
    wet_e = detail::add_rn(wet_e, detail::mul_rn(ws, ws));
    if (j < l.frames) {
      const float x = in[l.in_offset + j];
      dry_e = detail::add_rn(dry_e, detail::mul_rn(x, x));
      out[l.in_offset + j] = detail::reverb_mix(x, dry_gain, ws);
    }
  }
  dry_part[threadIdx.x] = dry_e;
  wet_part[threadIdx.x] = wet_e;
  __syncthreads();
  for (unsigned half = reverb_policy::threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      dry_part[threadIdx.x] += dry_part[threadIdx.x + half];
      wet_part[threadIdx.x] += wet_part[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    dry_sums[blockIdx.x] = dry_part[0];
    wet_sums[blockIdx.x] = wet_part[0];
  }
}

// The grid of a chunk kernel: one block per chunk (chunk counts stay far below 2^31 - 1).
dim3 chunk_grid(std::size_t chunks) {
  LATHE_EXPECTS(chunks < (std::size_t{1} << 31), "GPU reverb: too many chunks for one launch");
  return dim3(static_cast<unsigned>(chunks));
}

}  // namespace

std::vector<reverb_stats> reverb_batch(const reverb_params& params, const impulse_response& ir, double sample_rate_hz,
                                       const lane_layout& layout, const device_vector<float>& d_in,
                                       device_vector<float>& d_out, stage_resources& res, const stream& s,
                                       std::size_t chain_block_frames) {
  LATHE_EXPECTS(d_in.size() >= layout.total_frames && d_out.size() >= layout.total_frames,
                "GPU reverb: input and output must hold layout.total_frames floats");
  // The CPU stage validates the parameters and the IR, resamples the IR, rounds the pre-delay and
  // designs the wet filters: the GPU uses its very results. (Its prepare() also transforms the IR
  // for its own convolvers, a one-off cost per batch.) The IR is borrowed, not copied.
  reverb_stage cpu(params, std::shared_ptr<const impulse_response>(std::shared_ptr<const void>(), &ir));
  cpu.prepare(stream_spec{sample_rate_hz, 2, 1});
  const detail::reverb_geometry g =
      detail::make_reverb_geometry(layout, cpu.latency_frames(), chain_block_frames, reverb_policy::chunk_frames);
  const std::size_t tracks = layout.lanes() / 2;
  std::vector<reverb_stats> stats(tracks);
  if (g.chunks.empty()) {  // only empty tracks
    for (std::size_t t = 0; t < tracks; ++t) stats[t] = make_reverb_stats(0.0, 0.0, g.processed_frames[t], 2);
    return stats;
  }

  // One filter per IR channel, shared by every track (each constructor synchronizes `s`).
  const audio_buffer& h = cpu.resampled_ir();
  std::vector<std::unique_ptr<gpu_fir_filter>> filters;
  for (int c = 0; c < h.channels(); ++c) {
    filters.push_back(std::make_unique<gpu_fir_filter>(h.span(c), conv_auto_block_frames(h.frames()), s));
  }

  const bool true_stereo = cpu.routing() == reverb_routing::true_stereo;
  device_vector<detail::reverb_lane> d_lanes(g.lanes.size());
  device_vector<detail::reverb_chunk> d_chunks(g.chunks.size());
  d_lanes.upload_async(g.lanes, s);
  d_chunks.upload_async(g.chunks, s);
  device_vector<float> padded(g.wet.total_frames), w0(g.wet.total_frames);
  device_vector<float> w1(true_stereo ? g.wet.total_frames : 0);
  device_vector<double> d_dry_sums(g.chunks.size()), d_wet_sums(g.chunks.size());

  const dim3 grid = chunk_grid(g.chunks.size());
  const dim3 threads(reverb_policy::threads);
  pad_input_kernel<<<grid, threads, 0, raw(s)>>>(d_chunks.data(), d_lanes.data(), d_in.data(), padded.data(),
                                                 cpu.pre_delay_frames());
  LATHE_CUDA_CHECK_LAUNCH();

  for (const detail::reverb_conv_pass& pass : detail::reverb_conv_passes(cpu.routing())) {
    const lane_layout& lanes = pass.lanes == detail::reverb_lanes::all    ? g.wet
                               : pass.lanes == detail::reverb_lanes::left ? g.wet_left
                                                                          : g.wet_right;
    device_vector<float>& target = pass.target == detail::reverb_target::w0 ? w0 : w1;
    res.convolver.convolve_async(*filters[static_cast<std::size_t>(pass.ir_channel)], lanes, padded, target, 0,
                                 res.plans, s);
  }
  if (true_stereo) {
    combine_true_stereo_kernel<<<grid, threads, 0, raw(s)>>>(d_chunks.data(), d_lanes.data(), w0.data(), w1.data());
    LATHE_CUDA_CHECK_LAUNCH();
  }

  // Wet filters one section at a time, float between sections, as the CPU runs them.
  std::vector<std::unique_ptr<iir_plan>> wet_filters;
  for (const biquad_coeffs& section : cpu.wet_filter_sections()) {
    wet_filters.push_back(std::make_unique<iir_plan>(std::span<const biquad_coeffs>(&section, 1), g.wet, s));
    wet_filters.back()->process_async(w0.data(), w0.data(), s);
  }

  mix_kernel<<<grid, threads, 0, raw(s)>>>(d_chunks.data(), d_lanes.data(), d_in.data(), w0.data(), d_out.data(),
                                           cpu.dry_gain(), cpu.wet_gain(), d_dry_sums.data(), d_wet_sums.data());
  LATHE_CUDA_CHECK_LAUNCH();

  std::vector<double> dry_sums(g.chunks.size()), wet_sums(g.chunks.size());
  d_dry_sums.download_async(dry_sums, s);
  d_wet_sums.download_async(wet_sums, s);
  s.synchronize();  // the work arrays, filters and plans are released after this

  // Chunks are in lane order, lanes 2t and 2t+1 belong to track t: sum them in that order.
  std::vector<double> dry(tracks, 0.0), wet(tracks, 0.0);
  for (std::size_t c = 0; c < g.chunks.size(); ++c) {
    const std::size_t t = g.chunks[c].lane / 2;
    dry[t] += dry_sums[c];
    wet[t] += wet_sums[c];
  }
  for (std::size_t t = 0; t < tracks; ++t) stats[t] = make_reverb_stats(dry[t], wet[t], g.processed_frames[t], 2);
  return stats;
}

}  // namespace lathe::gpu
