#pragma once
// GPU dynamics stages of the pre-chain for a batch of stereo tracks (lanes 2t and 2t+1 of a
// lane_layout, one sample rate): the compressor (src/dsp/dynamics.cpp), the multiband dynamics stage
// (src/dsp/multiband.cpp: linear-phase crossover src/dsp/crossover.cpp + a compressor per band + band
// alignment + dry/wet + output gain) and the de-esser (src/dsp/deesser.cpp). Host-compilable.
//
// Semantics: lane by lane what the CPU chain does in apply_prechain: run_aligned(stage) over the
// whole track with the chain's block size (detail::chain_block_frames): latency compensated,
// length preserved, and statistics over every frame the CPU stage processed (the track plus the
// zero tail run_aligned pushes through it).
//
// Work split (kernels/dsp/dynamics.cu; per-thread bodies and the proof sketch in
// lathe_gpu/detail/dynamics_law.hpp, emulated on the CPU by tests/dsp/gpu_dynamics_layout_test.cpp):
//   compressor pass: detector suffix blocks (one thread per lane x window block), detector prefix
//     blocks + static curve (one thread per track x window block), chunked fixed-point smoothing
//     of the gain in dB (one thread per chunk and iteration; host loop until no chunk start state
//     changes), apply (one thread per output sample).
//   multiband: lanes zero-padded by taps - 1, then per band in band order: the band FIR (designed
//     in float64 by design_crossover_bands, applied by gpu_convolver with delay 0 = the full
//     causal convolution), the compressor pass over the stream the CPU band compressor sees, its
//     output added into d_out; finally the dry/wet mix with the input.
//   de-esser: the band-pass twice (iir_plan, exact chunk carry), the linked detector power, the
//     chunked fixed-point smoothing of (power average, reduction), apply.
//
// Precision: peak detection, static curve, smoothing and gain arithmetic are the CPU's operations
// in the CPU's order (no FMA contraction); the device's log10/exp/pow may differ from glibc's in
// the last bit, the crossover bands come from float32 cuFFT convolution (~1e-7 relative) and the
// de-esser's band-pass carries its state across chunks in float64. Tests bound the output at 1e-5
// relative to the CPU (max |gpu - cpu| / rms(cpu), per lane) and statistics at 1e-3 dB.
//
// Determinism: bitwise identical run to run on one GPU: fixed block and chunk decompositions,
// every frame computed by one thread in a fixed order, statistics summed per chunk in time order
// and then over chunks on the host in chunk order, no atomics on floating-point values (the only
// atomic-free flag is "some start state changed", written as 1 by any thread).
//
// Memory (device, per call, besides d_in/d_out): compressor 8 B per lane-frame (detector
// suffixes) + 8 B per gain-path frame (1 path per track linked, 2 independent); multiband adds
// 2 x 4 B per padded lane-frame (padded input, band) and the convolver's own budget; de-esser
// 2 x 4 B per lane-frame. A batch of 32 lanes x 10 M frames takes ~6 GB for the multiband.
//
// TODO(measure on a GPU): the detector blocks and smoothing chunks are walked by one thread each
// with strided global loads; time them on an H100 (32 lanes x 10 M frames) and stage tiles through
// shared memory (as kernels/dsp/iir.cu does) if they dominate.
#include <cstddef>
#include <vector>

#include "lathe/deesser.hpp"
#include "lathe/dynamics.hpp"
#include "lathe/multiband.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// How the chunked fixed-point gain smoothing went in one call (for tests and benchmarks).
struct smoothing_report {
  int runs = 0;                  ///< smoothing runs (one per compressor pass / band / de-esser)
  int max_iterations = 0;        ///< most fixed-point iterations of any run (each: one pass over the data)
  int total_iterations = 0;      ///< summed over runs
  bool serial_fallback = false;  ///< some run hit the iteration cap and finished serially (same result)
};

/// Every track through compressor_stage(params) with run_aligned, as the CPU chain would run it
/// (lookahead compensated). `layout`: two lanes per track, equal lengths, at most 65535 lanes.
/// d_in, d_out: distinct device arrays of at least layout.total_frames; frames of d_out outside
/// the lanes are untouched. Returns per-track stats; synchronizes `s`. Throws lathe::error for
/// invalid params or layout, cuda_error for CUDA failures. `report` (optional) is filled.
std::vector<dynamics_stats> compressor_batch(const compressor_params& params, double sample_rate_hz,
                                             const lane_layout& layout, const device_vector<float>& d_in,
                                             device_vector<float>& d_out, const stream& s,
                                             smoothing_report* report = nullptr);

/// Every track through deesser_stage(params) with run_aligned (latency 0). Same layout, array and
/// stream rules as compressor_batch; `resources` is unused (the band-pass runs on iir_plan) and
/// taken for the uniform stage signature. Synchronizes `s`.
std::vector<deesser_stats> deesser_batch(const deesser_params& params, double sample_rate_hz, const lane_layout& layout,
                                         const device_vector<float>& d_in, device_vector<float>& d_out,
                                         stage_resources& resources, const stream& s);
/// As above, filling `report`.
std::vector<deesser_stats> deesser_batch(const deesser_params& params, double sample_rate_hz, const lane_layout& layout,
                                         const device_vector<float>& d_in, device_vector<float>& d_out,
                                         stage_resources& resources, const stream& s, smoothing_report& report);

/// Every track through multiband_stage(params) with run_aligned (latency: crossover + largest band
/// lookahead, compensated). Returns stats [track][band]. The crossover bands run on
/// resources.convolver with resources.plans. Same layout, array and stream rules as
/// compressor_batch. Synchronizes `s`.
std::vector<std::vector<dynamics_stats>> multiband_batch(const multiband_params& params, double sample_rate_hz,
                                                         const lane_layout& layout, const device_vector<float>& d_in,
                                                         device_vector<float>& d_out, stage_resources& resources,
                                                         const stream& s);
/// As above, filling `report`.
std::vector<std::vector<dynamics_stats>> multiband_batch(const multiband_params& params, double sample_rate_hz,
                                                         const lane_layout& layout, const device_vector<float>& d_in,
                                                         device_vector<float>& d_out, stage_resources& resources,
                                                         const stream& s, smoothing_report& report);

}  // namespace lathe::gpu
