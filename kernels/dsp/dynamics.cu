// GPU compressor, multiband dynamics and de-esser (see lathe_gpu/dynamics.hpp for the work split,
// lathe_gpu/detail/dynamics_law.hpp for the per-thread bodies and the chunked fixed-point
// smoothing).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "lathe_gpu/detail/dynamics_law.hpp"
#include "lathe_gpu/dynamics.hpp"
#include "lathe_gpu/error.cuh"
#include "lathe_gpu/iir.hpp"

namespace lathe::gpu {
namespace {

using detail::comp_chunk_stats;
using detail::comp_constants;
using detail::comp_track;
using detail::deesser_chunk_stats;
using detail::deesser_constants;
using detail::deesser_state;
using detail::smooth_chunk;

// Tile policy: threads per block of every kernel here.
constexpr unsigned block_threads = 256;
constexpr std::size_t max_grid_y = 65'535;

cudaStream_t native(const stream& s) {
  return static_cast<cudaStream_t>(s.get());
}

unsigned grid_for(std::size_t items) {
  const std::size_t blocks = detail::dyn_pieces(std::max<std::size_t>(items, 1), block_threads);
  LATHE_EXPECTS(blocks <= 0x7fffffffu, "batch too long for one launch");
  return static_cast<unsigned>(blocks);
}

__device__ std::size_t global_x() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

template <class T>
device_vector<T> upload(const std::vector<T>& host, const stream& s) {
  device_vector<T> d(std::max<std::size_t>(host.size(), 1));
  // Pageable upload: staged before return, so `host` may die afterwards.
  if (!host.empty()) d.upload_async(std::span<const T>(host), s);
  return d;
}

void check_stereo_layout(const lane_layout& layout, const device_vector<float>& d_in,
                         const device_vector<float>& d_out) {
  LATHE_EXPECTS(layout.offset.size() == layout.frames.size(), "lane_layout offset/frames size mismatch");
  LATHE_EXPECTS(layout.lanes() % 2 == 0, "a dynamics batch needs two lanes (left, right) per track");
  LATHE_EXPECTS(layout.lanes() <= max_grid_y, "at most 65535 lanes per dynamics batch (grid.y)");
  LATHE_EXPECTS(d_in.size() >= layout.total_frames && d_out.size() >= layout.total_frames,
                "d_in and d_out must hold layout.total_frames samples");
  LATHE_EXPECTS(d_in.data() != d_out.data() || layout.total_frames == 0, "d_in and d_out must be distinct arrays");
  for (std::size_t l = 0; l < layout.lanes(); ++l) {
    LATHE_EXPECTS(layout.offset[l] + layout.frames[l] <= layout.total_frames, "a lane ends past the batch");
    if (l % 2 == 1)
      LATHE_EXPECTS(layout.frames[l] == layout.frames[l - 1], "both lanes of a track must be equally long");
  }
}

std::vector<std::uint64_t> to_u64(const std::vector<std::size_t>& v) {
  return {v.begin(), v.end()};
}

void note_run(smoothing_report* report, int iterations, bool fallback) {
  if (report == nullptr) return;
  ++report->runs;
  report->max_iterations = std::max(report->max_iterations, iterations);
  report->total_iterations += iterations;
  report->serial_fallback = report->serial_fallback || fallback;
}

// ---- chunked fixed-point smoothing (generic over the law) --------------------------------------

struct comp_law {
  using state = double;
  comp_constants k;
  double* g;  // targets in, smoothed gains (dB) out
  comp_chunk_stats* stats;
  __device__ state guess(const smooth_chunk& c) const { return detail::comp_start_guess(g, c); }
  __device__ state run(const smooth_chunk& c, state s) const { return detail::comp_smooth_chunk(k, g, c, s, nullptr); }
  __device__ void finish(const smooth_chunk& c, state s, std::size_t i) const {
    (void)detail::comp_smooth_chunk(k, g, c, s, stats + i);
  }
};

struct deesser_law {
  using state = deesser_state;
  deesser_constants k;
  float* det;  // linked detector power in, band gain out
  deesser_chunk_stats* stats;
  __device__ state guess(const smooth_chunk& c) const { return detail::deesser_start_guess(det, c); }
  __device__ state run(const smooth_chunk& c, state s) const {
    return detail::deesser_smooth_chunk(k, det, c, s, nullptr);
  }
  __device__ void finish(const smooth_chunk& c, state s, std::size_t i) const {
    (void)detail::deesser_smooth_chunk(k, det, c, s, stats + i);
  }
};

template <class Law>
__global__ void smooth_guess_kernel(Law law, const smooth_chunk* chunks, std::size_t n, typename Law::state* start) {
  const std::size_t c = global_x();
  if (c < n) start[c] = law.guess(chunks[c]);
}

template <class Law>
__global__ void smooth_run_kernel(Law law, const smooth_chunk* chunks, std::size_t n, const typename Law::state* start,
                                  typename Law::state* end) {
  const std::size_t c = global_x();
  if (c < n) end[c] = law.run(chunks[c], start[c]);
}

template <class State>
__global__ void smooth_propagate_kernel(const smooth_chunk* chunks, std::size_t n, const State* end, State* start,
                                        unsigned* changed) {
  const std::size_t c = global_x();
  if (c < n && detail::propagate_start(chunks, c, end, start)) *changed = 1u;  // same value from any thread
}

// One thread per group of paths (a track's chunks): after `done` iterations every path's chunks
// 0..done start exactly; the rest are finished here in time order, as the CPU emulation does.
template <class Law>
__global__ void smooth_serial_kernel(Law law, const smooth_chunk* chunks, const std::uint64_t* group_begin,
                                     const std::uint64_t* group_count, std::size_t groups, std::uint64_t done,
                                     typename Law::state* start) {
  const std::size_t g = global_x();
  if (g >= groups) return;
  std::uint64_t rel = 0;
  for (std::uint64_t c = group_begin[g]; c < group_begin[g] + group_count[g]; ++c) {
    rel = chunks[c].first != 0 ? 0 : rel + 1;
    if (rel > done) start[c] = law.run(chunks[c - 1], start[c - 1]);
  }
}

template <class Law>
__global__ void smooth_finish_kernel(Law law, const smooth_chunk* chunks, std::size_t n,
                                     const typename Law::state* start) {
  const std::size_t c = global_x();
  if (c < n) law.finish(chunks[c], start[c], c);
}

/// Runs the fixed-point smoothing of `law` over `chunks` to the serial result, then the finish
/// pass (outputs and chunk stats). Queues iterations four at a time, each with its own change
/// flag, and synchronizes `s` once per four to read them: an iteration after the fixed point
/// changes nothing, so the state and the iteration count (the first without a change) are those
/// of stopping at once.
template <class Law>
void smooth_fixed_point(const Law& law, const std::vector<smooth_chunk>& chunks,
                        const std::vector<std::uint64_t>& group_begin, const std::vector<std::uint64_t>& group_count,
                        const stream& s, smoothing_report* report) {
  using state = typename Law::state;
  const std::size_t n = chunks.size();
  if (n == 0) return;
  const cudaStream_t cs = native(s);
  const device_vector<smooth_chunk> d_chunks = upload(chunks, s);
  const device_vector<std::uint64_t> d_begin = upload(group_begin, s), d_count = upload(group_count, s);
  device_vector<state> start(n), end(n);
  constexpr int per_sync = 4;
  device_vector<unsigned> changed(per_sync);
  std::vector<unsigned> flag(per_sync);  // pageable: cudaFreeHost would synchronize the device
  smooth_guess_kernel<<<grid_for(n), block_threads, 0, cs>>>(law, d_chunks.data(), n, start.data());
  LATHE_CUDA_CHECK_LAUNCH();
  int iterations = 0;
  bool fallback = false;
  for (;;) {
    if (iterations == detail::max_smoothing_iterations) {
      smooth_serial_kernel<<<grid_for(group_begin.size()), block_threads, 0, cs>>>(
          law, d_chunks.data(), d_begin.data(), d_count.data(), group_begin.size(),
          static_cast<std::uint64_t>(iterations), start.data());
      LATHE_CUDA_CHECK_LAUNCH();
      fallback = true;
      break;
    }
    const int queued = std::min(per_sync, detail::max_smoothing_iterations - iterations);
    changed.zero_async(s);
    for (int j = 0; j < queued; ++j) {
      smooth_run_kernel<<<grid_for(n), block_threads, 0, cs>>>(law, d_chunks.data(), n, start.data(), end.data());
      LATHE_CUDA_CHECK_LAUNCH();
      smooth_propagate_kernel<<<grid_for(n), block_threads, 0, cs>>>(d_chunks.data(), n, end.data(), start.data(),
                                                                     changed.data() + j);
      LATHE_CUDA_CHECK_LAUNCH();
    }
    changed.download_async(std::span<unsigned>(flag), s);
    s.synchronize();
    const auto settled = std::find(flag.begin(), flag.begin() + queued, 0u);
    iterations += static_cast<int>(settled - flag.begin()) + (settled != flag.begin() + queued ? 1 : 0);
    if (settled != flag.begin() + queued) break;
  }
  smooth_finish_kernel<<<grid_for(n), block_threads, 0, cs>>>(law, d_chunks.data(), n, start.data());
  LATHE_CUDA_CHECK_LAUNCH();
  note_run(report, iterations, fallback);
}

// ---- compressor pass ---------------------------------------------------------------------------

enum class output_mode { assign, accumulate };

__global__ void detector_suffix_kernel(comp_constants k, const float* src, const comp_track* tracks, double* suffix) {
  const comp_track d = tracks[blockIdx.y / 2];
  const int c = static_cast<int>(blockIdx.y % 2);
  const std::uint64_t b = global_x();
  if (b >= detail::dyn_pieces(d.stream_frames, k.window)) return;
  const std::uint64_t start = b * k.window;
  const std::uint64_t len = std::min<std::uint64_t>(k.window, d.stream_frames - start);
  detail::detector_suffix_block(k, src, d, c, start, len, suffix + d.detect[c]);
}

__global__ void detector_target_kernel(comp_constants k, const float* src, const comp_track* tracks,
                                       const double* suffix, double* g) {
  const comp_track d = tracks[blockIdx.y];
  const std::uint64_t b = global_x();
  if (b >= detail::dyn_pieces(d.stream_frames, k.window)) return;
  const std::uint64_t start = b * k.window;
  const std::uint64_t len = std::min<std::uint64_t>(k.window, d.stream_frames - start);
  detail::detector_target_block(k, src, d, start, len, suffix + d.detect[0], suffix + d.detect[1], g + d.path[0],
                                g + d.path[1]);
}

template <output_mode Mode>
__global__ void comp_apply_kernel(comp_constants k, const float* src, const comp_track* tracks, const double* g,
                                  float* out) {
  const comp_track d = tracks[blockIdx.y / 2];
  const int c = static_cast<int>(blockIdx.y % 2);
  const std::uint64_t i = global_x();
  if (i >= d.out_frames) return;
  const float v = detail::comp_output(k, src, g, d, c, i);
  float& o = out[d.out[c] + i];
  o = Mode == output_mode::assign ? v : detail::add_f(o, v);
}

/// One compressor over the tracks of `plan`, reading streams from `src`, writing (or adding)
/// outputs to `out`. Synchronizes `s` (returns host stats).
std::vector<dynamics_stats> run_comp_pass(const comp_constants& k, const detail::comp_pass_plan& plan, const float* src,
                                          float* out, output_mode mode, const stream& s, smoothing_report* report) {
  const std::size_t n_tracks = plan.tracks.size();
  if (n_tracks == 0) return {};
  LATHE_EXPECTS(2 * n_tracks <= max_grid_y, "at most 65535 lanes per dynamics batch (grid.y)");
  const cudaStream_t cs = native(s);
  const device_vector<comp_track> d_tracks = upload(plan.tracks, s);
  device_vector<double> suffix(std::max<std::uint64_t>(plan.detect_frames, 1));
  device_vector<double> g(std::max<std::uint64_t>(plan.gain_frames, 1));
  device_vector<comp_chunk_stats> chunk_stats(std::max<std::size_t>(plan.chunks.size(), 1));
  if (plan.max_stream_frames > 0) {
    const unsigned blocks_x = grid_for(detail::dyn_pieces(plan.max_stream_frames, k.window));
    detector_suffix_kernel<<<dim3(blocks_x, static_cast<unsigned>(2 * n_tracks)), block_threads, 0, cs>>>(
        k, src, d_tracks.data(), suffix.data());
    LATHE_CUDA_CHECK_LAUNCH();
    detector_target_kernel<<<dim3(blocks_x, static_cast<unsigned>(n_tracks)), block_threads, 0, cs>>>(
        k, src, d_tracks.data(), suffix.data(), g.data());
    LATHE_CUDA_CHECK_LAUNCH();
  }
  std::vector<std::uint64_t> group_begin, group_count;
  for (const comp_track& d : plan.tracks) {
    if (d.chunk_count == 0) continue;
    group_begin.push_back(d.chunk_begin);
    group_count.push_back(d.chunk_count);
  }
  smooth_fixed_point(comp_law{k, g.data(), chunk_stats.data()}, plan.chunks, group_begin, group_count, s, report);
  if (plan.max_out_frames > 0) {
    const dim3 grid(grid_for(plan.max_out_frames), static_cast<unsigned>(2 * n_tracks));
    if (mode == output_mode::assign) {
      comp_apply_kernel<output_mode::assign><<<grid, block_threads, 0, cs>>>(k, src, d_tracks.data(), g.data(), out);
    } else {
      comp_apply_kernel<output_mode::accumulate>
          <<<grid, block_threads, 0, cs>>>(k, src, d_tracks.data(), g.data(), out);
    }
    LATHE_CUDA_CHECK_LAUNCH();
  }
  std::vector<comp_chunk_stats> host_stats(plan.chunks.size());
  if (!host_stats.empty()) chunk_stats.download_async(std::span<comp_chunk_stats>(host_stats), s);
  s.synchronize();  // also keeps the work arrays alive until the kernels that use them are done
  return detail::comp_pass_stats(plan, k, host_stats);
}

std::size_t comp_chunk_frames(const comp_constants& k) {
  return detail::smoothing_chunk_frames(std::max(k.attack_coeff, k.release_coeff));
}

// ---- multiband ---------------------------------------------------------------------------------

struct lane_map {
  const std::uint64_t* offset;
  const std::uint64_t* frames;
};

// dst lane l (frames dst_frames[l]) = src lane l followed by zeros.
__global__ void pad_lanes_kernel(const float* src, lane_map src_map, float* dst, lane_map dst_map) {
  const unsigned l = blockIdx.y;
  const std::uint64_t i = global_x();
  if (i >= dst_map.frames[l]) return;
  dst[dst_map.offset[l] + i] = i < src_map.frames[l] ? src[src_map.offset[l] + i] : 0.0f;
}

__global__ void multiband_mix_kernel(lane_map map, float wet, float dry, const float* in, float* out) {
  const unsigned l = blockIdx.y;
  const std::uint64_t i = global_x();
  if (i >= map.frames[l]) return;
  const std::uint64_t at = map.offset[l] + i;
  out[at] = detail::multiband_mix(wet, out[at], dry, in[at]);
}

std::size_t max_of(const std::vector<std::uint64_t>& v) {
  return v.empty() ? 0 : static_cast<std::size_t>(*std::max_element(v.begin(), v.end()));
}

// ---- de-esser ----------------------------------------------------------------------------------

// Lane 2t's slot of `det` becomes the track's linked detector power (in place: each thread reads
// and writes only frame i of the track).
__global__ void deesser_link_kernel(lane_map map, float* det) {
  const unsigned t = blockIdx.y;
  const std::uint64_t i = global_x();
  if (i >= map.frames[2 * t]) return;
  float& p0 = det[map.offset[2 * t] + i];
  p0 = detail::deesser_linked_power(p0, det[map.offset[2 * t + 1] + i]);
}

__global__ void deesser_apply_kernel(lane_map map, const float* in, const float* band, const float* gain, float* out) {
  const unsigned l = blockIdx.y;
  const std::uint64_t i = global_x();
  if (i >= map.frames[l]) return;
  const std::uint64_t at = map.offset[l] + i;
  out[at] = detail::deesser_output(in[at], band[at], gain[map.offset[l & ~1u] + i]);
}

}  // namespace

// ---- facade ------------------------------------------------------------------------------------

std::vector<dynamics_stats> compressor_batch(const compressor_params& params, double sample_rate_hz,
                                             const lane_layout& layout, const device_vector<float>& d_in,
                                             device_vector<float>& d_out, const stream& s, smoothing_report* report) {
  check_stereo_layout(layout, d_in, d_out);
  const comp_constants k = detail::make_comp_constants(params, sample_rate_hz);
  const std::uint64_t lookahead = detail::comp_lookahead_frames(params, sample_rate_hz);
  const detail::comp_pass_plan plan = detail::make_comp_pass_plan(
      detail::compressor_geometry(to_u64(layout.offset), to_u64(layout.frames), lookahead, detail::chain_block_frames),
      k, comp_chunk_frames(k));
  return run_comp_pass(k, plan, d_in.data(), d_out.data(), output_mode::assign, s, report);
}

std::vector<std::vector<dynamics_stats>> multiband_batch(const multiband_params& params, double sample_rate_hz,
                                                         const lane_layout& layout, const device_vector<float>& d_in,
                                                         device_vector<float>& d_out, stage_resources& resources,
                                                         const stream& s, smoothing_report& report) {
  check_stereo_layout(layout, d_in, d_out);
  const detail::multiband_geometry mb = detail::make_multiband_geometry(params, sample_rate_hz);
  const std::size_t n_tracks = layout.lanes() / 2;
  std::vector<std::vector<dynamics_stats>> out(n_tracks);
  if (layout.total_frames == 0) {  // only empty tracks: nothing processed, zero stats per band
    for (auto& bands : out) bands.assign(mb.bands.size(), dynamics_stats{});
    return out;
  }
  const cudaStream_t cs = native(s);

  // Extended lanes: the input followed by taps - 1 zeros, so the delay-0 convolution holds the
  // whole causal band signal the CPU band compressor sees (pre-ringing and tail included).
  lane_layout ext;
  for (std::size_t l = 0; l < layout.lanes(); ++l) ext.add(layout.frames[l] == 0 ? 0 : layout.frames[l] + mb.taps - 1);
  const std::vector<std::uint64_t> in_offset = to_u64(layout.offset), in_frames = to_u64(layout.frames);
  const std::vector<std::uint64_t> ext_offset = to_u64(ext.offset), ext_frames = to_u64(ext.frames);
  const device_vector<std::uint64_t> d_in_offset = upload(in_offset, s), d_in_frames = upload(in_frames, s);
  const device_vector<std::uint64_t> d_ext_offset = upload(ext_offset, s), d_ext_frames = upload(ext_frames, s);
  const lane_map in_map{d_in_offset.data(), d_in_frames.data()};
  const lane_map ext_map{d_ext_offset.data(), d_ext_frames.data()};
  const unsigned lanes = static_cast<unsigned>(layout.lanes());

  device_vector<float> padded(std::max<std::size_t>(ext.total_frames, 1));
  device_vector<float> band(std::max<std::size_t>(ext.total_frames, 1));
  if (max_of(ext_frames) > 0) {
    pad_lanes_kernel<<<dim3(grid_for(max_of(ext_frames)), lanes), block_threads, 0, cs>>>(d_in.data(), in_map,
                                                                                          padded.data(), ext_map);
    LATHE_CUDA_CHECK_LAUNCH();
  }

  // Bands one after another in band order (deterministic sum), each added into d_out.
  for (std::size_t k = 0; k < mb.bands.size(); ++k) {
    const std::vector<float> taps(mb.bands[k].begin(), mb.bands[k].end());  // float, as the CPU crossover
    const gpu_fir_filter filter(taps, conv_auto_block_frames(taps.size()), s);
    resources.convolver.convolve_async(filter, ext, padded, band, 0, resources.plans, s);
    const comp_constants kc = detail::make_comp_constants(params.bands[k], sample_rate_hz);
    const detail::comp_pass_plan plan = detail::make_comp_pass_plan(
        detail::multiband_band_geometry(mb, k, ext_offset, in_offset, in_frames, detail::chain_block_frames), kc,
        comp_chunk_frames(kc));
    // run_comp_pass synchronizes, so `filter` outlives the convolution that reads it.
    const std::vector<dynamics_stats> st = run_comp_pass(
        kc, plan, band.data(), d_out.data(), k == 0 ? output_mode::assign : output_mode::accumulate, s, &report);
    for (std::size_t t = 0; t < n_tracks; ++t) out[t].push_back(st[t]);
  }

  const double out_gain = std::pow(10.0, params.output_gain_db / 20.0);  // as multiband_stage::prepare
  const auto wet = static_cast<float>(params.dry_wet * out_gain);
  const auto dry = static_cast<float>((1.0 - params.dry_wet) * out_gain);
  if (max_of(in_frames) > 0) {
    multiband_mix_kernel<<<dim3(grid_for(max_of(in_frames)), lanes), block_threads, 0, cs>>>(in_map, wet, dry,
                                                                                             d_in.data(), d_out.data());
    LATHE_CUDA_CHECK_LAUNCH();
  }
  s.synchronize();
  return out;
}

std::vector<std::vector<dynamics_stats>> multiband_batch(const multiband_params& params, double sample_rate_hz,
                                                         const lane_layout& layout, const device_vector<float>& d_in,
                                                         device_vector<float>& d_out, stage_resources& resources,
                                                         const stream& s) {
  smoothing_report ignored;
  return multiband_batch(params, sample_rate_hz, layout, d_in, d_out, resources, s, ignored);
}

std::vector<deesser_stats> deesser_batch(const deesser_params& params, double sample_rate_hz, const lane_layout& layout,
                                         const device_vector<float>& d_in, device_vector<float>& d_out,
                                         stage_resources& /*resources*/, const stream& s, smoothing_report& report) {
  check_stereo_layout(layout, d_in, d_out);
  const deesser_constants k = detail::make_deesser_constants(params, sample_rate_hz);
  const biquad_coeffs band_coeffs = deesser_stage::design_band(params, sample_rate_hz);
  const std::size_t n_tracks = layout.lanes() / 2;
  std::vector<deesser_stats> out(n_tracks);
  if (n_tracks == 0 || layout.total_frames == 0) return out;
  const cudaStream_t cs = native(s);
  const std::vector<std::uint64_t> offset = to_u64(layout.offset), frames = to_u64(layout.frames);
  const device_vector<std::uint64_t> d_offset = upload(offset, s), d_frames = upload(frames, s);
  const lane_map map{d_offset.data(), d_frames.data()};
  const std::size_t max_frames = max_of(frames);

  // band = BP(x), det = BP(band): deesser_stage's split_ and detect_ biquads.
  device_vector<float> band(layout.total_frames), det(layout.total_frames);
  iir_plan bandpass(std::span<const biquad_coeffs>(&band_coeffs, 1), layout, s);
  bandpass.process_async(d_in.data(), band.data(), s);
  bandpass.process_async(band.data(), det.data(), s);
  deesser_link_kernel<<<dim3(grid_for(max_frames), static_cast<unsigned>(n_tracks)), block_threads, 0, cs>>>(
      map, det.data());
  LATHE_CUDA_CHECK_LAUNCH();

  // Smoothing over each track's frames (run_aligned with latency 0 processes exactly the track).
  const std::size_t chunk_frames =
      detail::smoothing_chunk_frames(std::max({k.power_coeff, k.attack_coeff, k.release_coeff}));
  std::vector<smooth_chunk> chunks;
  std::vector<std::uint64_t> group_begin, group_count, track_chunk_begin(n_tracks + 1, 0);
  for (std::size_t t = 0; t < n_tracks; ++t) {
    track_chunk_begin[t] = chunks.size();
    detail::add_path_chunks(chunks, offset[2 * t], frames[2 * t], chunk_frames);
    if (chunks.size() > track_chunk_begin[t]) {
      group_begin.push_back(track_chunk_begin[t]);
      group_count.push_back(chunks.size() - track_chunk_begin[t]);
    }
  }
  track_chunk_begin[n_tracks] = chunks.size();
  device_vector<deesser_chunk_stats> chunk_stats(std::max<std::size_t>(chunks.size(), 1));
  smooth_fixed_point(deesser_law{k, det.data(), chunk_stats.data()}, chunks, group_begin, group_count, s, &report);

  deesser_apply_kernel<<<dim3(grid_for(max_frames), static_cast<unsigned>(layout.lanes())), block_threads, 0, cs>>>(
      map, d_in.data(), band.data(), det.data(), d_out.data());
  LATHE_CUDA_CHECK_LAUNCH();
  std::vector<deesser_chunk_stats> host_stats(chunks.size());
  if (!host_stats.empty()) chunk_stats.download_async(std::span<deesser_chunk_stats>(host_stats), s);
  s.synchronize();
  for (std::size_t t = 0; t < n_tracks; ++t) {
    deesser_stats& st = out[t];  // as deesser_stage accumulates, chunk by chunk in time order
    for (std::uint64_t c = track_chunk_begin[t]; c < track_chunk_begin[t + 1]; ++c) {
      st.max_reduction_db = std::max(st.max_reduction_db, host_stats[c].max_reduction_db);
      st.sum_reduction_db += host_stats[c].sum_reduction_db;
      st.active_frames += static_cast<std::size_t>(host_stats[c].active_frames);
    }
    st.frames = static_cast<std::size_t>(frames[2 * t]);
  }
  return out;
}

std::vector<deesser_stats> deesser_batch(const deesser_params& params, double sample_rate_hz, const lane_layout& layout,
                                         const device_vector<float>& d_in, device_vector<float>& d_out,
                                         stage_resources& resources, const stream& s) {
  smoothing_report ignored;
  return deesser_batch(params, sample_rate_hz, layout, d_in, d_out, resources, s, ignored);
}

}  // namespace lathe::gpu
