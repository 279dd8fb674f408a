// The saturation stage over a batch of lanes: device building blocks (one interpolated pair, one
// decimated sample: lathe_gpu/detail/tone_layout.hpp, shared with the CPU emulation test), tiles
// (one thread per sample of one level of one chunk, policy below), host dispatch (chunk groups
// within a scratch budget, 2 S launches per group) and facade (CUDA status -> cuda_error).
// See lathe_gpu/saturation.hpp and src/dsp/saturation.cpp.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "lathe_gpu/detail/tone_layout.hpp"
#include "lathe_gpu/error.cuh"
#include "lathe_gpu/saturation.hpp"

namespace lathe::gpu {
namespace {

using detail::sat_geometry;
using detail::sat_ranges;
using detail::sat_taps_view;

struct saturation_policy {
  static constexpr int block_threads = 256;
  static constexpr unsigned max_group_chunks = 65'535;  // gridDim.y
};

// Where a chunk lives: its lane and its output frames [a, b).
struct sat_chunk_tables {
  const std::uint64_t* lane_offset;
  const std::uint64_t* lane_frames;
  const std::uint64_t* chunk_start;
  const std::uint32_t* chunk_lane;
  const std::uint32_t* chunk_length;
};

struct sat_chunk {
  std::int64_t a, b, n;
  std::uint64_t offset;
};

__device__ __forceinline__ sat_chunk chunk_at(const sat_chunk_tables& t, std::uint32_t c) {
  const std::uint32_t lane = t.chunk_lane[c];
  const auto a = static_cast<std::int64_t>(t.chunk_start[c]);
  return {a, a + static_cast<std::int64_t>(t.chunk_length[c]), static_cast<std::int64_t>(t.lane_frames[lane]),
          t.lane_offset[lane]};
}

// Interpolation stage s of chunk first_chunk + blockIdx.y: thread j of [x_lo[s+1] / 2, x_hi[s+1] / 2)
// writes x_{s+1}[2j] and x_{s+1}[2j + 1] (shaped when s is the last stage).
__global__ void __launch_bounds__(saturation_policy::block_threads)
    sat_up_kernel(int s, sat_geometry g, sat_taps_view up0, sat_taps_view up1, int shape, float drive, float trim,
                  const float* __restrict__ in, sat_chunk_tables tables, std::uint32_t first_chunk,
                  float* __restrict__ scratch, std::uint64_t floats_per_chunk, std::uint64_t src_off,
                  std::uint64_t dst_off) {
  const sat_chunk ch = chunk_at(tables, first_chunk + blockIdx.y);
  const sat_ranges r = detail::sat_chunk_ranges(g, ch.a, ch.b);
  const std::int64_t jlo = r.x_lo[s + 1] / 2, jhi = r.x_hi[s + 1] / 2;  // even-aligned
  const std::int64_t j = jlo + static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= jhi) return;
  float* chunk_scratch = scratch + static_cast<std::uint64_t>(blockIdx.y) * floats_per_chunk;
  float v0, v1;
  if (s == 0) {
    const float* lane = in + ch.offset;
    v0 = detail::sat_tap_sum_padded(up0, lane, ch.n, j);
    v1 = detail::sat_tap_sum_padded(up1, lane, ch.n, j);
  } else {
    const float* src = chunk_scratch + src_off;
    const std::int64_t base = j - r.x_lo[s];
    v0 = detail::sat_tap_sum(up0, src, base);
    v1 = detail::sat_tap_sum(up1, src, base);
  }
  if (shape) {
    v0 = saturation_shape(v0, drive, trim);
    v1 = saturation_shape(v1, drive, trim);
  }
  float* dst = chunk_scratch + dst_off + (2 * j - r.x_lo[s + 1]);
  dst[0] = v0;
  dst[1] = v1;
}

// Decimation stage s of chunk first_chunk + blockIdx.y: thread i of [u_lo[s], u_hi[s]). Reads the
// shaped top level (s = S - 1) or u_{s+1}; stage 0 mixes with the dry input and writes the lane.
__global__ void __launch_bounds__(saturation_policy::block_threads)
    sat_down_kernel(int s, sat_geometry g, sat_taps_view down, float wet, float dry, const float* __restrict__ in,
                    float* __restrict__ out, sat_chunk_tables tables, std::uint32_t first_chunk,
                    float* __restrict__ scratch, std::uint64_t floats_per_chunk, std::uint64_t src_off,
                    std::uint64_t dst_off) {
  const sat_chunk ch = chunk_at(tables, first_chunk + blockIdx.y);
  const sat_ranges r = detail::sat_chunk_ranges(g, ch.a, ch.b);
  const std::int64_t i = r.u_lo[s] + static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= r.u_hi[s]) return;
  float* chunk_scratch = scratch + static_cast<std::uint64_t>(blockIdx.y) * floats_per_chunk;
  const std::int64_t src_lo = s == g.stages - 1 ? r.x_lo[g.stages] : r.u_lo[s + 1];
  const float v = detail::sat_tap_sum(down, chunk_scratch + src_off, 2 * i - src_lo);
  if (s == 0) {
    const std::uint64_t y = ch.offset + static_cast<std::uint64_t>(i - g.latency);  // in [a, b)
    out[y] = detail::sat_mix(v, in[y], wet, dry);
  } else {
    chunk_scratch[dst_off + static_cast<std::uint64_t>(i - r.u_lo[s])] = v;
  }
}

// No oversampling: the shaper and the mix per sample.
__global__ void __launch_bounds__(saturation_policy::block_threads)
    sat_direct_kernel(float drive, float trim, float wet, float dry, const float* __restrict__ in,
                      float* __restrict__ out, sat_chunk_tables tables, std::uint32_t first_chunk) {
  const sat_chunk ch = chunk_at(tables, first_chunk + blockIdx.y);
  const std::int64_t i = ch.a + static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= ch.b) return;
  const std::uint64_t k = ch.offset + static_cast<std::uint64_t>(i);
  const float x = in[k];
  out[k] = detail::sat_mix(saturation_shape(x, drive, trim), x, wet, dry);
}

unsigned blocks_for(std::size_t threads) {
  return static_cast<unsigned>((threads + saturation_policy::block_threads - 1) / saturation_policy::block_threads);
}

}  // namespace

void saturation_batch(const saturation_params& p, double sample_rate_hz, const lane_layout& layout,
                      const device_vector<float>& d_in, device_vector<float>& d_out, stage_resources& /*resources*/,
                      const stream& s) {
  LATHE_EXPECTS(sample_rate_hz > 0.0, "saturation_batch: sample rate must be positive");
  LATHE_EXPECTS(d_in.size() >= layout.total_frames && d_out.size() >= layout.total_frames,
                "saturation_batch: device arrays shorter than the layout");
  LATHE_EXPECTS(d_in.data() != d_out.data(), "saturation_batch: d_in and d_out must be distinct");
  const saturation_design design = design_saturation(p);
  const detail::sat_plan plan = detail::make_sat_plan(design, saturation_chunk_frames);
  const chunk_table chunks = make_chunks(layout, saturation_chunk_frames);
  if (chunks.size() == 0) {
    s.synchronize();
    return;
  }
  LATHE_EXPECTS(chunks.size() < (std::size_t{1} << 32), "saturation_batch: too many chunks");
  for (std::size_t l = 0; l < layout.lanes(); ++l) {
    LATHE_EXPECTS(layout.frames[l] < (std::uint64_t{1} << 40), "saturation_batch: lane too long");
  }
  const cudaStream_t cs = static_cast<cudaStream_t>(s.get());

  device_vector<std::uint64_t> lane_offset(layout.lanes()), lane_frames(layout.lanes());
  device_vector<std::uint64_t> chunk_start(chunks.size());
  device_vector<std::uint32_t> chunk_lane(chunks.size()), chunk_length(chunks.size());
  const std::vector<std::uint64_t> offsets(layout.offset.begin(), layout.offset.end());
  const std::vector<std::uint64_t> frames(layout.frames.begin(), layout.frames.end());
  lane_offset.upload_async(offsets, s);
  lane_frames.upload_async(frames, s);
  chunk_start.upload_async(chunks.start, s);
  chunk_lane.upload_async(chunks.lane, s);
  chunk_length.upload_async(chunks.length, s);
  const sat_chunk_tables tables{lane_offset.data(), lane_frames.data(), chunk_start.data(), chunk_lane.data(),
                                chunk_length.data()};

  if (design.stages.empty()) {
    for (std::size_t first = 0; first < chunks.size(); first += saturation_policy::max_group_chunks) {
      const auto count =
          static_cast<unsigned>(std::min<std::size_t>(saturation_policy::max_group_chunks, chunks.size() - first));
      const dim3 grid(blocks_for(saturation_chunk_frames), count);
      sat_direct_kernel<<<grid, saturation_policy::block_threads, 0, cs>>>(design.drive, design.trim, design.wet,
                                                                           design.dry, d_in.data(), d_out.data(),
                                                                           tables, static_cast<std::uint32_t>(first));
      LATHE_CUDA_CHECK_LAUNCH();
    }
    s.synchronize();  // the tables die at return
    return;
  }

  // Every tap list packed into one table; the views point into its device copy.
  std::vector<std::int32_t> pos;
  std::vector<float> coeff;
  std::vector<std::size_t> begin;
  for (const saturation_oversampling_stage& st : design.stages) {
    for (const saturation_taps* t : {&st.up[0], &st.up[1], &st.down}) {
      begin.push_back(pos.size());
      pos.insert(pos.end(), t->pos.begin(), t->pos.end());
      coeff.insert(coeff.end(), t->coeff.begin(), t->coeff.end());
    }
  }
  device_vector<std::int32_t> d_pos(pos.size());
  device_vector<float> d_coeff(coeff.size());
  d_pos.upload_async(pos, s);
  d_coeff.upload_async(coeff, s);
  auto view = [&](std::size_t stage, int which) {
    const std::size_t k = 3 * stage + static_cast<std::size_t>(which);
    const std::size_t end = k + 1 < begin.size() ? begin[k + 1] : pos.size();
    return sat_taps_view{d_pos.data() + begin[k], d_coeff.data() + begin[k],
                         static_cast<std::uint32_t>(end - begin[k])};
  };

  const int S = plan.geometry.stages;
  const std::size_t by_budget = saturation_scratch_budget_bytes / (plan.floats_per_chunk * sizeof(float));
  const std::size_t group =
      std::clamp<std::size_t>(std::min<std::size_t>(by_budget, saturation_policy::max_group_chunks), 1, chunks.size());
  device_vector<float> scratch(group * plan.floats_per_chunk);
  for (std::size_t first = 0; first < chunks.size(); first += group) {
    const auto count = static_cast<unsigned>(std::min(group, chunks.size() - first));
    const auto first32 = static_cast<std::uint32_t>(first);
    for (int st = 0; st < S; ++st) {
      const std::size_t pairs = plan.x_cap[st + 1] / 2;
      const dim3 grid(blocks_for(pairs), count);
      sat_up_kernel<<<grid, saturation_policy::block_threads, 0, cs>>>(
          st, plan.geometry, view(static_cast<std::size_t>(st), 0), view(static_cast<std::size_t>(st), 1),
          st == S - 1 ? 1 : 0, design.drive, design.trim, d_in.data(), tables, first32, scratch.data(),
          plan.floats_per_chunk, st >= 1 ? plan.x_off[st] : 0, plan.x_off[st + 1]);
      LATHE_CUDA_CHECK_LAUNCH();
    }
    for (int st = S - 1; st >= 0; --st) {
      const std::size_t outputs = st >= 1 ? plan.u_cap[st] : saturation_chunk_frames;
      const dim3 grid(blocks_for(outputs), count);
      const std::uint64_t src_off = st == S - 1 ? plan.x_off[S] : plan.u_off[st + 1];
      sat_down_kernel<<<grid, saturation_policy::block_threads, 0, cs>>>(
          st, plan.geometry, view(static_cast<std::size_t>(st), 2), design.wet, design.dry, d_in.data(), d_out.data(),
          tables, first32, scratch.data(), plan.floats_per_chunk, src_off, st >= 1 ? plan.u_off[st] : 0);
      LATHE_CUDA_CHECK_LAUNCH();
    }
  }
  s.synchronize();  // returns with the output ready; the tables and scratch die here
}

}  // namespace lathe::gpu
