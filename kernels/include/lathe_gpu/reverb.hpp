#pragma once
// Convolution reverb over a batch of stereo tracks on the GPU: the CPU chain's reverb stage
// (src/dsp/reverb.cpp through lathe::run_aligned, as apply_prechain runs it) on every track at
// once. The tracks share the IR: it is resampled to the batch rate and transformed once per IR
// channel (gpu_fir_filter), then each routing path is one batched gpu_convolver call over the
// lanes it feeds. Index math: lathe_gpu/detail/reverb_layout.hpp. Host-compilable.
//
// Determinism: bitwise identical run to run on one GPU (gpu_convolver's fixed sums, iir_plan's
// fixed carries, energies reduced per chunk by a fixed shared-memory tree, chunks summed on the
// host in order; no atomics).
//
// Precision: output within relative error 1e-5 of the CPU stage per lane (max |gpu - cpu| /
// rms(cpu)); the convolutions are uniformly partitioned on the GPU and non-uniformly on the
// CPU, so the float roundings differ; the wet filters are the CPU's sections (float between
// sections), the mix is the CPU's expression without FMA. Statistics within 1e-3 dB.
#include <cstddef>
#include <vector>

#include "lathe/reverb.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// The block size apply_prechain runs every stage with (src/chain/master.cpp, spec.max_block_frames):
/// it decides how many zero frames run_aligned flushes through the stage, which the statistics
/// count.
inline constexpr std::size_t reverb_chain_block_frames = 8'192;

/// Applies the reverb of `params` with the impulse response `ir` (as loaded, at any rate; it is
/// resampled to `sample_rate_hz` exactly as reverb_stage::prepare() does) to every track of
/// `layout` (track t = lanes 2t (left) and 2t+1 (right), equal lengths; a mono track is dual
/// mono): d_out = dry * 10^(dry_db/20) + wet * 10^(wet_db/20), latency compensated, length
/// preserved, i.e. lane by lane what run_aligned(reverb_stage) gives the CPU chain. Frames of
/// d_out outside every lane are left untouched. `d_in` and `d_out` hold at least
/// layout.total_frames floats (they may be the same array). Returns one reverb_stats per track,
/// equal to the CPU stage's stats() after that run_aligned (`chain_block_frames`: the block size
/// it ran with). Uses res.convolver and res.plans; allocates work arrays of about 3 x (total
/// frames + per track the latency and one block) floats (4 x for a true-stereo IR). Synchronizes
/// `s` before returning. Throws what reverb_stage::prepare() throws for bad parameters or IRs
/// (logic_error, input_error), logic_error for a bad layout, cuda_error / cufft_error.
/// Not thread-safe (res is used).
std::vector<reverb_stats> reverb_batch(const reverb_params& params, const impulse_response& ir, double sample_rate_hz,
                                       const lane_layout& layout, const device_vector<float>& d_in,
                                       device_vector<float>& d_out, stage_resources& res, const stream& s,
                                       std::size_t chain_block_frames = reverb_chain_block_frames);

}  // namespace lathe::gpu
