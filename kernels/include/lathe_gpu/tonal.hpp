#pragma once
// GPU Welch power spectrum of a batch of stereo tracks: the heavy part of the tonal analysis
// (src/qc/tonal.cpp measure_welch_power), the rest (summarize) stays on the host. Host-compilable.
//
// Framing is the CPU's: fft_size = tonal_fft_size(rate), periodic Hann window (the float64 table
// the CPU computes, uploaded), hop fft_size / 2, frames from 0 until one reaches the end, the last
// partial frame zero padded; mid = (L + R) / 2, side = (L - R) / 2 windowed in float64 and rounded
// once to float; |X_k|^2 summed per bin in float64.
//
// Work split (kernels/qc/tonal.cu; index math and per-thread bodies in
// lathe_gpu/detail/welch_layout.hpp, emulated on the CPU by tests/qc/gpu_tonal_layout_test.cpp):
// the batch's frames (track-major, time order) are cut into slices bounded by the work budget;
// per slice one gather launch (thread per frame sample: windowed mid and side), one batched
// cuFFT R2C over (frame, mid/side), one accumulate launch (thread per track segment x part x
// bin, adding the segment's frames in frame order onto the track's float64 sum).
//
// Precision: the transform input is bitwise the CPU's; cuFFT and FFTW round the float transform
// differently (~1e-7 of the frame's rms per bin), so bins agree with the CPU within 1e-4
// relative wherever the bin holds more than ~1e-5 of the strongest bin's power, and 1/3-octave
// levels within 0.01 dB (tests/gpu/tonal_test.cpp).
//
// Determinism: bitwise identical run to run on one GPU for the same batch and work budget: each
// bin's sum is added in frame order by one thread (the CPU's order), slices in stream order, no
// atomics. Not promised bitwise across GPU architectures or work budgets (cuFFT may pick other
// kernels for other batch sizes).
//
// TODO(measure on a GPU): the accumulate launch has tracks x 2 x bins threads per slice (8k
// per track at 48 kHz), each walking up to slice_capacity frames; time it against the R2C on an
// H100 (64 tracks x 3 min) and split the frame walk into fixed partial sums if it dominates.
#include <cstddef>
#include <vector>

#include "lathe/tonal.hpp"
#include "lathe_gpu/convolution.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// Default device work budget of welch_power_batch (slice buffers; cuFFT's work area is the plan
/// cache's and not counted): 128 KiB per frame at 44.1/48 kHz, so slices of 512 frames.
inline constexpr std::size_t welch_default_work_budget_bytes = std::size_t{128} << 20;

/// Welch power of every track of a batch: lanes 2t, 2t + 1 are track t's left and right (equal
/// lengths; a track of 0 frames gets zero sums and frames_analyzed 0). `d_in` holds at least
/// layout.total_frames floats. Returns one welch_power per track, equal to measure_welch_power
/// of that track within the precision above. Allocates device buffers for the call (window,
/// frame tables, about work_budget_bytes of slice buffers, the sums). Synchronizes `s` (returns
/// host values). Throws logic_error on bad arguments (before any work is queued), cuda_error /
/// cufft_error on CUDA failures. Thread-safety: `plans` is used from this thread and stream only.
std::vector<welch_power> welch_power_batch(const lane_layout& layout, double sample_rate_hz,
                                           const device_vector<float>& d_in, cufft_plan_cache& plans, const stream& s,
                                           std::size_t work_budget_bytes = welch_default_work_budget_bytes);

}  // namespace lathe::gpu
