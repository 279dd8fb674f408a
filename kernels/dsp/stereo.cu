// The stereo stage over a batch of stereo tracks: device building blocks (mid/side bodies and
// the window sums of lathe_gpu/detail/tone_layout.hpp, shared with the CPU emulation test),
// tiles (one thread per frame for the elementwise passes, one block per meter window for the
// reductions), host dispatch (tables, the side FIR on the shared convolver, meters) and facade
// (CUDA status -> cuda_error). See lathe_gpu/stereo.hpp and src/dsp/stereo.cpp.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/eq.hpp"
#include "lathe_gpu/convolution.hpp"
#include "lathe_gpu/detail/tone_layout.hpp"
#include "lathe_gpu/error.cuh"
#include "lathe_gpu/stereo.hpp"

namespace lathe::gpu {
namespace {

using detail::stereo_sums;
using detail::stereo_window;

struct stereo_policy {
  static constexpr int block_threads = 256;  // frames per elementwise chunk, one per thread
  static constexpr int reduce_threads = detail::stereo_reduce_threads;
};

// Where a track's samples live: its two lanes in the batch arrays and its side lane (frames
// side_frames >= frames: the after meter's tail needs the side FIR's output past the end).
struct stereo_track {
  std::uint64_t left = 0, right = 0, frames = 0;
  std::uint64_t side = 0, side_frames = 0;
};

// A chunk table on the device (one chunk of block_threads frames per thread block).
struct device_chunks {
  std::size_t count = 0;
  device_vector<std::uint64_t> start;
  device_vector<std::uint32_t> lane, length;
  device_chunks(const lane_layout& layout, const stream& s) {
    const chunk_table t = make_chunks(layout, stereo_policy::block_threads);
    LATHE_EXPECTS(t.size() < (std::size_t{1} << 31), "stereo_batch: batch too large for one launch");
    count = t.size();
    start = device_vector<std::uint64_t>(count);
    lane = device_vector<std::uint32_t>(count);
    length = device_vector<std::uint32_t>(count);
    start.upload_async(t.start, s);
    lane.upload_async(t.lane, s);
    length.upload_async(t.length, s);
    s.synchronize();  // t dies at return
  }
};

// Side lane t, frame i of side_frames: the side of the input, zero past the track's end.
__global__ void __launch_bounds__(stereo_policy::block_threads)
    stereo_side_kernel(const float* __restrict__ in, float* __restrict__ side, const stereo_track* __restrict__ tracks,
                       const std::uint64_t* __restrict__ chunk_start, const std::uint32_t* __restrict__ chunk_lane,
                       const std::uint32_t* __restrict__ chunk_length) {
  const unsigned c = blockIdx.x;
  if (threadIdx.x >= chunk_length[c]) return;
  const stereo_track t = tracks[chunk_lane[c]];
  const std::uint64_t i = chunk_start[c] + threadIdx.x;
  side[t.side + i] = i < t.frames ? detail::stereo_side(in[t.left + i], in[t.right + i]) : 0.0f;
}

// Track frame i: left = gm mid + gs side, right = gm mid - gs side; the side filtered (side lane)
// or not (from the input).
__global__ void __launch_bounds__(stereo_policy::block_threads)
    stereo_join_kernel(const float* __restrict__ in, float* __restrict__ out, const float* __restrict__ side_filtered,
                       const stereo_track* __restrict__ tracks, const std::uint64_t* __restrict__ chunk_start,
                       const std::uint32_t* __restrict__ chunk_lane, const std::uint32_t* __restrict__ chunk_length,
                       float gm, float gs) {
  const unsigned c = blockIdx.x;
  if (threadIdx.x >= chunk_length[c]) return;
  const stereo_track t = tracks[chunk_lane[c]];
  const std::uint64_t i = chunk_start[c] + threadIdx.x;
  const float l = in[t.left + i], r = in[t.right + i];
  const float mid = detail::stereo_mid(l, r);
  const float side = side_filtered ? side_filtered[t.side + i] : detail::stereo_side(l, r);
  out[t.left + i] = detail::stereo_left(mid, side, gm, gs);
  out[t.right + i] = detail::stereo_right(mid, side, gm, gs);
}

// One block per meter window: the five float64 sums in detail::stereo_reduce_window's order.
// Before windows read the input (zeros past the end contribute nothing); after windows read the
// output, and past the end the tail: mid 0, side = the filtered side lane.
__global__ void __launch_bounds__(stereo_policy::reduce_threads)
    stereo_window_kernel(const float* __restrict__ in, const float* __restrict__ out,
                         const float* __restrict__ side_filtered, const stereo_track* __restrict__ tracks,
                         const stereo_window* __restrict__ windows, float gm, float gs,
                         stereo_sums* __restrict__ result) {
  __shared__ double sh[5][stereo_policy::reduce_threads];
  const stereo_window w = windows[blockIdx.x];
  const stereo_track t = tracks[w.track];
  const float* x = w.after ? out : in;
  stereo_sums acc;
  for (std::uint64_t f = threadIdx.x; f < w.length; f += stereo_policy::reduce_threads) {
    const std::uint64_t j = w.start + f;
    if (j < t.frames) {
      detail::stereo_sums_add_frame(acc, x[t.left + j], x[t.right + j]);
    } else if (w.after && side_filtered != nullptr && j < t.side_frames) {
      const float sf = side_filtered[t.side + j];
      detail::stereo_sums_add_frame(acc, detail::stereo_left(0.0f, sf, gm, gs), detail::stereo_right(0.0f, sf, gm, gs));
    }
  }
  const unsigned k = threadIdx.x;
  sh[0][k] = acc.l, sh[1][k] = acc.r, sh[2][k] = acc.ll, sh[3][k] = acc.rr, sh[4][k] = acc.lr;
  __syncthreads();
  for (unsigned h = stereo_policy::reduce_threads / 2; h >= 1; h /= 2) {
    if (k < h) {
      for (int q = 0; q < 5; ++q) sh[q][k] = detail::add_rn(sh[q][k], sh[q][k + h]);
    }
    __syncthreads();
  }
  if (k == 0) result[blockIdx.x] = stereo_sums{sh[0][0], sh[1][0], sh[2][0], sh[3][0], sh[4][0]};
}

}  // namespace

std::vector<stereo_stats> stereo_batch(const stereo_params& p, double sample_rate_hz, const lane_layout& layout,
                                       const device_vector<float>& d_in, device_vector<float>& d_out,
                                       stage_resources& resources, const stream& s) {
  LATHE_EXPECTS(layout.lanes() % 2 == 0, "stereo_batch: the layout must hold two lanes per track");
  LATHE_EXPECTS(d_in.size() >= layout.total_frames && d_out.size() >= layout.total_frames,
                "stereo_batch: device arrays shorter than the layout");
  LATHE_EXPECTS(d_in.data() != d_out.data(), "stereo_batch: d_in and d_out must be distinct");
  const std::size_t tracks = layout.lanes() / 2;
  for (std::size_t t = 0; t < tracks; ++t) {
    LATHE_EXPECTS(layout.frames[2 * t] == layout.frames[2 * t + 1],
                  "stereo_batch: track " + std::to_string(t) + " has channels of different lengths");
  }
  // The CPU stage checks the params and reports the latency and FIR length it would use.
  stereo_stage reference(p);
  reference.prepare({sample_rate_hz, 2, detail::chain_block_frames});
  const std::size_t latency = reference.latency_frames();
  const bool bass_mono = p.bass_mono_below_hz > 0.0;
  const bool bypass = p.width == 1.0 && p.mid_gain_db == 0.0 && !bass_mono;
  const auto gm = static_cast<float>(std::pow(10.0, p.mid_gain_db / 20.0));
  const auto gs = static_cast<float>(p.width);
  const cudaStream_t cs = static_cast<cudaStream_t>(s.get());

  // Tracks, their meter streams and side lanes.
  std::vector<stereo_track> table(tracks);
  std::vector<detail::stereo_meter_frames> meter_frames(tracks);
  lane_layout side_layout, track_layout;
  for (std::size_t t = 0; t < tracks; ++t) {
    const std::size_t n = layout.frames[2 * t];
    meter_frames[t] = detail::stereo_meter_frames_of(n, latency);
    const std::size_t side_frames = bass_mono ? std::max(n, meter_frames[t].after) : n;
    table[t] = {layout.offset[2 * t], layout.offset[2 * t + 1], n, side_layout.total_frames, side_frames};
    side_layout.add(side_frames);
    track_layout.add(n);
  }
  device_vector<stereo_track> d_tracks(tracks);
  d_tracks.upload_async(table, s);

  // Output.
  device_vector<float> side, side_filtered;
  if (bypass) {
    if (layout.total_frames > 0)
      detail::copy_async(d_out.data(), d_in.data(), layout.total_frames * sizeof(float), s.get());
  } else {
    const device_chunks track_chunks(track_layout, s);
    if (bass_mono) {
      const device_chunks side_chunks(side_layout, s);
      side = device_vector<float>(side_layout.total_frames);
      side_filtered = device_vector<float>(side_layout.total_frames);
      if (side_chunks.count > 0) {
        stereo_side_kernel<<<static_cast<unsigned>(side_chunks.count), stereo_policy::block_threads, 0, cs>>>(
            d_in.data(), side.data(), d_tracks.data(), side_chunks.start.data(), side_chunks.lane.data(),
            side_chunks.length.data());
        LATHE_CUDA_CHECK_LAUNCH();
      }
      // The stage's own FIR: linear_phase_eq_stage with the bass-mono bands and automatic taps.
      const std::vector<eq_band> bands = stereo_stage::bass_mono_bands(p.bass_mono_below_hz);
      const std::size_t taps = eq_auto_taps(bands, sample_rate_hz);
      LATHE_EXPECTS(taps == reference.side_fir_taps(), "stereo_batch: side FIR length differs from the CPU stage's");
      const std::vector<double> h64 = design_linear_phase_fir(bands, sample_rate_hz, taps);
      const std::vector<float> h(h64.begin(), h64.end());
      const gpu_fir_filter filter(h, conv_auto_block_frames(taps), s);
      resources.convolver.convolve_async(filter, side_layout, side, side_filtered, linear_phase_delay_frames(taps),
                                         resources.plans, s);
      s.synchronize();  // the filter's spectra and the side chunk tables die at the end of this scope
    }
    if (track_chunks.count > 0) {
      stereo_join_kernel<<<static_cast<unsigned>(track_chunks.count), stereo_policy::block_threads, 0, cs>>>(
          d_in.data(), d_out.data(), bass_mono ? side_filtered.data() : nullptr, d_tracks.data(),
          track_chunks.start.data(), track_chunks.lane.data(), track_chunks.length.data(), gm, gs);
      LATHE_CUDA_CHECK_LAUNCH();
    }
    s.synchronize();  // the track chunk tables die at the end of this scope
  }

  // Meters: one reduction per window, combined on the host in window order.
  const std::size_t window = stereo_stage::meter_window_frames(p, sample_rate_hz);
  const std::vector<stereo_window> windows = detail::make_stereo_windows(meter_frames, window);
  std::vector<stereo_sums> sums(windows.size());
  if (!windows.empty()) {
    LATHE_EXPECTS(windows.size() < (std::size_t{1} << 31), "stereo_batch: too many meter windows");
    device_vector<stereo_window> d_windows(windows.size());
    device_vector<stereo_sums> d_sums(windows.size());
    d_windows.upload_async(windows, s);
    stereo_window_kernel<<<static_cast<unsigned>(windows.size()), stereo_policy::reduce_threads, 0, cs>>>(
        d_in.data(), d_out.data(), bass_mono ? side_filtered.data() : nullptr, d_tracks.data(), d_windows.data(), gm,
        gs, d_sums.data());
    LATHE_CUDA_CHECK_LAUNCH();
    d_sums.download_async(sums, s);
    s.synchronize();
  } else {
    s.synchronize();
  }
  std::vector<correlation_meter> before(tracks, correlation_meter(window)), after(tracks, correlation_meter(window));
  for (std::size_t k = 0; k < windows.size(); ++k) {
    correlation_meter& m = windows[k].after ? after[windows[k].track] : before[windows[k].track];
    m.add_sums(windows[k].length, sums[k].l, sums[k].r, sums[k].ll, sums[k].rr, sums[k].lr);
  }
  std::vector<stereo_stats> stats(tracks);
  for (std::size_t t = 0; t < tracks; ++t) stats[t] = stereo_stats_of(before[t], after[t]);
  return stats;
}

}  // namespace lathe::gpu
