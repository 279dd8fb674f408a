#pragma once
// The stereo image stage (lathe::stereo_stage, src/dsp/stereo.cpp) over a batch of stereo tracks on
// the GPU: mid/side width and mid gain elementwise, bass mono as the side channel through the
// stage's linear-phase FIR on the shared batched convolver (gpu_convolver over one side lane
// per track), and the correlation meters as per-window float64 reductions. Host-compilable.
//
// Tracks: lanes 2t and 2t+1 of the layout are track t's left and right (equal lengths).
// Precision: the elementwise parts are the CPU's float operations without contraction; the
// side FIR differs from the CPU's partitioned FFT convolution by float rounding (the
// convolver's bound, relative 1e-5). Statistics: the meters see exactly the frames the CPU
// stage's meters see under run_aligned (detail::stereo_meter_frames_of), summed per window in
// float64 in a fixed order (detail::stereo_reduce_window) and combined on the host by
// lathe::correlation_meter in window order.
// Determinism: no atomics; every sum has a fixed order: bitwise identical run to run on one GPU
// with the same convolver work budget (see lathe_gpu/convolution.hpp).
#include <vector>

#include "lathe/stereo.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// Runs the stereo stage over every track of `layout` (2 lanes per track) from d_in into d_out
/// (distinct device arrays of at least layout.total_frames floats): lane by lane what the CPU
/// chain computes with run_aligned(stereo_stage(p)) at sample_rate_hz (latency compensated,
/// length preserved); returns per track what that stage's stats() reports. Uses
/// resources.convolver and resources.plans when bass mono is on. Synchronizes `s` before
/// returning. Throws logic_error on bad params or layouts, cuda_error / cufft_error on CUDA
/// failures.
std::vector<stereo_stats> stereo_batch(const stereo_params& p, double sample_rate_hz, const lane_layout& layout,
                                       const device_vector<float>& d_in, device_vector<float>& d_out,
                                       stage_resources& resources, const stream& s);

}  // namespace lathe::gpu
