#pragma once
// GPU true-peak limiter: the gain law of lathe::offline_limiter (src/dsp/limiter.cpp) and its
// application, for a batch of stereo tracks (lanes 2t and 2t+1 of a lane_layout). Detection
// (the oversampled per-lane peaks) is an input: another kernel module computes it.
// Host-compilable.
//
// Work split (kernels/dsp/limiter.cu; per-thread bodies in detail/limiter_law.hpp):
//   1. release, local: one thread per chunk of release_chunk_frames stream frames links the two
//      lanes' peaks, applies the 3-frame window and the gain, and runs the CPU's recurrence
//      from e = 1.
//   2. release, carry: one thread per track walks its chunks (T / 512 steps) carrying the
//      envelope exactly (see limiter_law.hpp: the max-times recurrence composes chunk-wise).
//   3. sliding minimum (van Herk / Gil-Werman, blocks of L+1 frames, one thread per block and
//      pass), quantized down to 2^-32 as uint64.
//   4. inclusive prefix sum of the quantized minima over the whole batch (CUB, integer:
//      exact in any order, so deterministic); the moving average is a difference of prefixes.
//   5. apply: one thread per output sample, y = x * (gain * g) in double, as the CPU does.
//   stats: per-block fixed-order tree reductions, then one fixed-order reduction per track.
//
// Accuracy vs the CPU: g equals offline_limiter's gain bit for bit except where the carried
// release term (b^k from std::pow instead of k serial steps) moves an envelope by an ulp
// across a 2^-32 quantum of the held minimum; then g differs by <= 2^-32 / (L+1) per crossing.
// Output relative error is therefore <= ~1e-9 (tests bound it at 1e-5); stats differ only by
// the reduction order of the dB sum and device log10's last bit (tests: 1e-4 dB).
// Determinism: bitwise identical run to run on one GPU (fixed reduction trees, integer scan,
// no atomics on floating-point values).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lathe/limiter.hpp"
#include "lathe_gpu/detail/limiter_law.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe::gpu {

/// offline_limiter's latency for these params at this rate (detector delay + 1 + lookahead):
/// the number of extra tail frames each lane's peak array carries. Throws lathe::error for
/// invalid params.
std::size_t limiter_latency_frames(const limiter_params& params, double sample_rate_hz);

/// Layout of the per-lane peak arrays the limiter reads: lane l holds audio.frames[l] + tail
/// frames (the detector run over the lane followed by `tail` zeros, exactly as
/// offline_limiter::analyze feeds its detectors), lanes concatenated in lane order.
lane_layout limiter_peak_layout(const lane_layout& audio, std::size_t tail);

/// Limits a batch of stereo tracks on the device. prepare() plans and allocates for one batch
/// layout; render_async() may then run any number of times (different gains, inputs) on it.
/// Not thread-safe: one object per concurrently used stream.
class batch_limiter {
 public:
  static constexpr std::size_t release_chunk_frames = 512;

  /// Allocates device workspace (~16 bytes per stream frame of the batch) and uploads the
  /// tables on `s`, then synchronizes `s` (so later calls may use any stream). `audio` must
  /// hold 2 lanes per track with equal frames per track, at most 65535 lanes.
  /// Throws lathe::error for invalid params or layout, cuda_error for CUDA failures.
  void prepare(const lane_layout& audio, const limiter_params& params, double sample_rate_hz, const stream& s);

  std::size_t tracks() const noexcept { return frames_.size(); }
  std::size_t latency_frames() const noexcept { return latency_; }
  /// The layout render_async() expects for d_peaks (limiter_peak_layout(audio, latency)).
  const lane_layout& peak_layout() const noexcept { return peak_layout_; }

  /// d_out = limit(d_in * 10^(gain_db/20)) per track, sample-aligned with d_in, as
  /// offline_limiter::render. d_peaks: per-lane detector peaks (max of true_peak_interpolator
  /// and meter_peak_interpolator, linear, before the input gain) in peak_layout(). d_in and
  /// d_out are batch arrays in the prepared layout; d_out may equal d_in. Asynchronous on `s`:
  /// returns after queuing; the inputs must stay valid until `s` passes this work.
  void render_async(const float* d_peaks, const float* d_in, float* d_out, std::span<const double> gain_db_per_track,
                    const stream& s);

  /// The statistics per track (offline_limiter::render's) of the last render_async() on `s`;
  /// blocks until `s` has finished (synchronizes the stream). A gain search renders without
  /// them and asks once, after its last render.
  std::vector<limiter_stats> stats(const stream& s);

  /// render_async() followed by stats().
  std::vector<limiter_stats> render(const float* d_peaks, const float* d_in, float* d_out,
                                    std::span<const double> gain_db_per_track, const stream& s);

 private:
  void launch_gain_law(const float* d_peaks, const stream& s);

  lane_layout audio_, peak_layout_;
  limiter_params params_;
  double sample_rate_hz_ = 0.0;
  std::size_t latency_ = 0;
  std::size_t max_frames_ = 0, max_chunks_ = 0, max_min_blocks_ = 0, total_stream_frames_ = 0;
  std::size_t stats_blocks_ = 0;                 // per track
  std::vector<std::size_t> frames_;              // per track
  std::vector<detail::track_desc> host_tracks_;  // kept alive for the upload
  std::vector<double> host_pow_b_;
  std::vector<double> host_gain_;  // linear gains of the current call
  detail::law_constants law_;
  device_vector<detail::track_desc> tracks_;
  device_vector<double> pow_b_;     // b^0 .. b^C
  device_vector<double> gain_;      // per track, linear
  device_vector<double> envelope_;  // e, then q's bits, then prefix sums Q
  device_vector<double> suffix_;    // van Herk suffix minima
  device_vector<double> chunk_final_, chunk_carry_;
  device_vector<std::byte> scan_temp_;
  device_vector<double> part_sum_db_, part_min_gain_;  // per track x stats block
  device_vector<std::uint64_t> part_limited_;
  device_vector<double> track_sum_db_, track_min_gain_;  // per track
  device_vector<std::uint64_t> track_limited_;
  std::size_t scan_temp_bytes_ = 0;
};

}  // namespace lathe::gpu
