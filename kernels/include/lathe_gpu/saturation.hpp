#pragma once
// The saturation stage (lathe::saturation_stage, src/dsp/saturation.cpp) over every lane of a batch
// on the GPU. Host-compilable (no CUDA types).
//
// Chunk-parallel: each lane's output is cut into chunks of chunk_frames; every chunk computes
// its own pyramid, from the input lane up through the interpolation stages to the shaped top
// level and back down, over exactly the index ranges its outputs reach (with the halo the filters
// need; lathe_gpu/detail/tone_layout.hpp: sat_chunk_ranges), in per-chunk device scratch. One
// thread per sample, one launch per level; chunks are processed in groups that fit a scratch
// budget. The filters are the CPU stage's own design (design_saturation), so no recurrence
// crosses a chunk boundary and chunks are independent.
//
// Precision: every sample is the CPU stage's float sum in the CPU's order without contraction
// (saturation_detail::mul/add) and the same tanh (saturation_tanh), so the output is expected to
// be bitwise equal to run_aligned(saturation_stage) on an x86-64 host without FMA; the tests
// demand relative error <= 1e-5 and report the bitwise match.
// Determinism: no reductions, no atomics: bitwise identical run to run and independent of the
// other lanes of the batch.
#include <cstddef>

#include "lathe/saturation.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// Output frames per chunk (one chunk's pyramid reaches about 8x this at 8x oversampling).
inline constexpr std::size_t saturation_chunk_frames = 8'192;
/// Device scratch the chunk pyramids may use at once (the group size follows from it).
inline constexpr std::size_t saturation_scratch_budget_bytes = std::size_t{256} << 20;

/// Runs the saturation stage over every lane of `layout` from d_in into d_out (distinct device
/// arrays of at least layout.total_frames floats): lane by lane what the CPU chain computes with
/// run_aligned(saturation_stage(p)) (latency compensated, length preserved). sample_rate_hz is
/// checked (> 0) but the design does not depend on it. Uses no shared resources today (the
/// parameter keeps the stage signature uniform). Synchronizes `s` before returning. Throws
/// logic_error on bad params or arrays, cuda_error on CUDA failures.
void saturation_batch(const saturation_params& p, double sample_rate_hz, const lane_layout& layout,
                      const device_vector<float>& d_in, device_vector<float>& d_out, stage_resources& resources,
                      const stream& s);

}  // namespace lathe::gpu
