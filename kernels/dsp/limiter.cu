// GPU limiter: gain law, application and statistics (see lathe_gpu/limiter.hpp for the split,
// lathe_gpu/detail/limiter_law.hpp for the per-thread bodies and the chunked release proof).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cub/device/device_scan.cuh>

#include "lathe_gpu/detail/limiter_law.hpp"
#include "lathe_gpu/error.cuh"
#include "lathe_gpu/limiter.hpp"

namespace lathe::gpu {
namespace {

using detail::law_constants;
using detail::track_desc;

// Tile policy: threads per block for every kernel here; the stats reduction trees assume a
// power of two.
constexpr unsigned block_threads = 256;
static_assert((block_threads & (block_threads - 1)) == 0);

cudaStream_t native(const stream& s) {
  return static_cast<cudaStream_t>(s.get());
}

unsigned grid_for(std::size_t items) {
  const std::size_t blocks = detail::pieces(std::max<std::size_t>(items, 1), block_threads);
  LATHE_EXPECTS(blocks <= 0x7fffffffu, "batch too long for one launch");
  return static_cast<unsigned>(blocks);
}

// ---- kernels (grid.y = track or lane; grid.x covers the longest one; extra threads exit) ----

__global__ void release_local_kernel(const float* peaks, const track_desc* tracks, const double* gain, law_constants k,
                                     double* envelope, double* chunk_final) {
  const track_desc d = tracks[blockIdx.y];
  const std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= detail::pieces(d.stream_frames, k.chunk_frames)) return;
  const std::size_t start = j * k.chunk_frames;
  const std::size_t len = std::min<std::size_t>(k.chunk_frames, d.stream_frames - start);
  chunk_final[d.chunk_offset + j] = detail::release_local_chunk(peaks + d.peak0, peaks + d.peak1, start, len,
                                                                gain[blockIdx.y], k, envelope + d.stream_offset);
}

__global__ void release_carry_kernel(const track_desc* tracks, std::size_t n_tracks, law_constants k,
                                     const double* pow_b, const double* chunk_final, double* chunk_carry) {
  const std::size_t tr = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tr >= n_tracks) return;
  const track_desc d = tracks[tr];
  const std::size_t n_chunks = detail::pieces(d.stream_frames, k.chunk_frames);
  const std::size_t last_len = d.stream_frames - (n_chunks - 1) * k.chunk_frames;
  detail::release_carry_track(chunk_final + d.chunk_offset, n_chunks, last_len, k, pow_b, chunk_carry + d.chunk_offset);
}

__global__ void sliding_min_suffix_kernel(const track_desc* tracks, law_constants k, const double* pow_b,
                                          const double* chunk_carry, double* envelope, double* suffix) {
  const track_desc d = tracks[blockIdx.y];
  const std::size_t b = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= detail::pieces(d.stream_frames, k.window)) return;
  const std::size_t start = b * k.window;
  const std::size_t len = std::min<std::size_t>(k.window, d.stream_frames - start);
  detail::sliding_min_suffix_block(envelope + d.stream_offset, suffix + d.stream_offset, start, len,
                                   chunk_carry + d.chunk_offset, pow_b, k);
}

__global__ void sliding_min_prefix_kernel(const track_desc* tracks, law_constants k, const double* suffix,
                                          double* envelope) {
  const track_desc d = tracks[blockIdx.y];
  const std::size_t b = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= detail::pieces(d.stream_frames, k.window)) return;
  const std::size_t start = b * k.window;
  const std::size_t len = std::min<std::size_t>(k.window, d.stream_frames - start);
  detail::sliding_min_prefix_block(envelope + d.stream_offset, suffix + d.stream_offset, start, len, k);
}

__global__ void apply_kernel(const track_desc* tracks, const double* gain, std::uint32_t window, std::size_t latency,
                             const std::uint64_t* prefix, const float* in, float* out) {
  const unsigned lane = blockIdx.y;
  const track_desc d = tracks[lane / 2];
  const std::size_t m = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= d.frames) return;
  const double g = detail::gain_from_prefix(prefix + d.stream_offset, m + latency, window);
  const double applied = detail::mul_rn(gain[lane / 2], g);
  const std::size_t at = (lane % 2 == 0 ? d.in0 : d.in1) + m;
  out[at] = static_cast<float>(detail::mul_rn(static_cast<double>(in[at]), applied));
}

// Fixed-order tree over the block's shared arrays (sum, min, count), result in slot 0.
__device__ void block_reduce(double* sum, double* mn, unsigned long long* count) {
  for (unsigned s = block_threads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      sum[threadIdx.x] = detail::add_rn(sum[threadIdx.x], sum[threadIdx.x + s]);
      mn[threadIdx.x] = detail::min_d(mn[threadIdx.x], mn[threadIdx.x + s]);
      count[threadIdx.x] += count[threadIdx.x + s];
    }
    __syncthreads();
  }
}

__global__ void stats_partial_kernel(const track_desc* tracks, std::uint32_t window, std::size_t latency,
                                     const std::uint64_t* prefix, std::size_t blocks_per_track, double* part_sum,
                                     double* part_min, std::uint64_t* part_count) {
  __shared__ double sum[block_threads];
  __shared__ double mn[block_threads];
  __shared__ unsigned long long count[block_threads];
  const track_desc d = tracks[blockIdx.y];
  const std::size_t m = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  sum[threadIdx.x] = 0.0;
  mn[threadIdx.x] = 1.0;
  count[threadIdx.x] = 0;
  if (m < d.frames) {
    const double g = detail::gain_from_prefix(prefix + d.stream_offset, m + latency, window);
    if (g < 1.0) {
      sum[threadIdx.x] = -detail::mul_rn(20.0, log10(g));
      mn[threadIdx.x] = g;
      count[threadIdx.x] = 1;
    }
  }
  __syncthreads();
  block_reduce(sum, mn, count);
  if (threadIdx.x == 0) {
    const std::size_t at = static_cast<std::size_t>(blockIdx.y) * blocks_per_track + blockIdx.x;
    part_sum[at] = sum[0];
    part_min[at] = mn[0];
    part_count[at] = count[0];
  }
}

// One block per track: thread i folds partials i, i + 256, ... in order, then the tree.
__global__ void stats_final_kernel(std::size_t blocks_per_track, const double* part_sum, const double* part_min,
                                   const std::uint64_t* part_count, double* track_sum, double* track_min,
                                   std::uint64_t* track_count) {
  __shared__ double sum[block_threads];
  __shared__ double mn[block_threads];
  __shared__ unsigned long long count[block_threads];
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * blocks_per_track;
  double s = 0.0, lo = 1.0;
  unsigned long long c = 0;
  for (std::size_t i = threadIdx.x; i < blocks_per_track; i += block_threads) {
    s = detail::add_rn(s, part_sum[base + i]);
    lo = detail::min_d(lo, part_min[base + i]);
    c += part_count[base + i];
  }
  sum[threadIdx.x] = s;
  mn[threadIdx.x] = lo;
  count[threadIdx.x] = c;
  __syncthreads();
  block_reduce(sum, mn, count);
  if (threadIdx.x == 0) {
    track_sum[blockIdx.x] = sum[0];
    track_min[blockIdx.x] = mn[0];
    track_count[blockIdx.x] = count[0];
  }
}

}  // namespace

// ---- host dispatch ----------------------------------------------------------------------------

std::size_t limiter_latency_frames(const limiter_params& params, double sample_rate_hz) {
  return detail::limiter_latency(params, sample_rate_hz);
}

lane_layout limiter_peak_layout(const lane_layout& audio, std::size_t tail) {
  lane_layout p;
  for (std::size_t l = 0; l < audio.lanes(); ++l) p.add(audio.frames[l] + tail);
  return p;
}

void batch_limiter::prepare(const lane_layout& audio, const limiter_params& params, double sample_rate_hz,
                            const stream& s) {
  LATHE_EXPECTS(audio.lanes() % 2 == 0 && audio.lanes() > 0, "the limiter batch needs two lanes per track");
  LATHE_EXPECTS(audio.lanes() <= 65'535, "at most 65535 lanes (32767 tracks) per limiter batch (grid.y)");
  law_ = detail::make_law_constants(params, sample_rate_hz, release_chunk_frames);  // validates params
  params_ = params;
  sample_rate_hz_ = sample_rate_hz;
  latency_ = detail::limiter_latency(params, sample_rate_hz);
  audio_ = audio;
  peak_layout_ = limiter_peak_layout(audio, latency_);

  const std::size_t n_tracks = audio.lanes() / 2;
  host_tracks_.assign(n_tracks, {});
  frames_.assign(n_tracks, 0);
  std::size_t stream_offset = 0, chunk_offset = 0;
  max_frames_ = max_chunks_ = max_min_blocks_ = 0;
  for (std::size_t t = 0; t < n_tracks; ++t) {
    const std::size_t f = audio.frames[2 * t];
    LATHE_EXPECTS(audio.frames[2 * t + 1] == f, "both lanes of a track must have the same length");
    track_desc& d = host_tracks_[t];
    d.in0 = audio.offset[2 * t];
    d.in1 = audio.offset[2 * t + 1];
    d.peak0 = peak_layout_.offset[2 * t];
    d.peak1 = peak_layout_.offset[2 * t + 1];
    d.frames = f;
    d.stream_frames = f + latency_;
    d.stream_offset = stream_offset;
    d.chunk_offset = chunk_offset;
    const std::size_t chunks = detail::pieces(d.stream_frames, law_.chunk_frames);
    stream_offset += d.stream_frames;
    chunk_offset += chunks;
    frames_[t] = f;
    max_frames_ = std::max(max_frames_, f);
    max_chunks_ = std::max(max_chunks_, chunks);
    max_min_blocks_ = std::max(max_min_blocks_, detail::pieces(d.stream_frames, law_.window));
  }
  total_stream_frames_ = stream_offset;
  stats_blocks_ = detail::pieces(std::max<std::size_t>(max_frames_, 1), block_threads);

  host_pow_b_ = detail::make_release_powers(law_);
  tracks_ = device_vector<track_desc>(n_tracks);
  tracks_.upload_async(host_tracks_, s);
  pow_b_ = device_vector<double>(host_pow_b_.size());
  pow_b_.upload_async(host_pow_b_, s);
  gain_ = device_vector<double>(n_tracks);
  envelope_ = device_vector<double>(total_stream_frames_);
  suffix_ = device_vector<double>(total_stream_frames_);
  chunk_final_ = device_vector<double>(chunk_offset);
  chunk_carry_ = device_vector<double>(chunk_offset);
  part_sum_db_ = device_vector<double>(n_tracks * stats_blocks_);
  part_min_gain_ = device_vector<double>(n_tracks * stats_blocks_);
  part_limited_ = device_vector<std::uint64_t>(n_tracks * stats_blocks_);
  track_sum_db_ = device_vector<double>(n_tracks);
  track_min_gain_ = device_vector<double>(n_tracks);
  track_limited_ = device_vector<std::uint64_t>(n_tracks);

  auto* q = reinterpret_cast<std::uint64_t*>(envelope_.data());
  scan_temp_bytes_ = 0;
  LATHE_CUDA_TRY(cub::DeviceScan::InclusiveSum(nullptr, scan_temp_bytes_, q,
                                               static_cast<std::int64_t>(total_stream_frames_), native(s)));
  scan_temp_ = device_vector<std::byte>(std::max<std::size_t>(scan_temp_bytes_, 1));
  s.synchronize();  // the tables are then valid for render calls on any stream
}

void batch_limiter::launch_gain_law(const float* d_peaks, const stream& s) {
  const unsigned n_tracks = static_cast<unsigned>(tracks());
  const cudaStream_t cs = native(s);
  release_local_kernel<<<dim3(grid_for(max_chunks_), n_tracks), block_threads, 0, cs>>>(
      d_peaks, tracks_.data(), gain_.data(), law_, envelope_.data(), chunk_final_.data());
  LATHE_CUDA_CHECK_LAUNCH();
  release_carry_kernel<<<grid_for(n_tracks), block_threads, 0, cs>>>(tracks_.data(), n_tracks, law_, pow_b_.data(),
                                                                     chunk_final_.data(), chunk_carry_.data());
  LATHE_CUDA_CHECK_LAUNCH();
  sliding_min_suffix_kernel<<<dim3(grid_for(max_min_blocks_), n_tracks), block_threads, 0, cs>>>(
      tracks_.data(), law_, pow_b_.data(), chunk_carry_.data(), envelope_.data(), suffix_.data());
  LATHE_CUDA_CHECK_LAUNCH();
  sliding_min_prefix_kernel<<<dim3(grid_for(max_min_blocks_), n_tracks), block_threads, 0, cs>>>(
      tracks_.data(), law_, suffix_.data(), envelope_.data());
  LATHE_CUDA_CHECK_LAUNCH();
  auto* q = reinterpret_cast<std::uint64_t*>(envelope_.data());
  std::size_t bytes = scan_temp_bytes_;
  LATHE_CUDA_TRY(
      cub::DeviceScan::InclusiveSum(scan_temp_.data(), bytes, q, static_cast<std::int64_t>(total_stream_frames_), cs));
}

void batch_limiter::render_async(const float* d_peaks, const float* d_in, float* d_out,
                                 std::span<const double> gain_db_per_track, const stream& s) {
  LATHE_EXPECTS(tracks() > 0, "batch_limiter::render_async before prepare()");
  LATHE_EXPECTS(gain_db_per_track.size() == tracks(), "one gain per track");
  host_gain_.resize(tracks());
  for (std::size_t t = 0; t < tracks(); ++t) host_gain_[t] = std::pow(10.0, gain_db_per_track[t] / 20.0);
  // A pageable upload returns once the source is staged, so host_gain_ may change afterwards.
  gain_.upload_async(host_gain_, s);
  launch_gain_law(d_peaks, s);
  if (max_frames_ == 0) return;
  apply_kernel<<<dim3(grid_for(max_frames_), static_cast<unsigned>(audio_.lanes())), block_threads, 0, native(s)>>>(
      tracks_.data(), gain_.data(), law_.window, latency_, reinterpret_cast<const std::uint64_t*>(envelope_.data()),
      d_in, d_out);
  LATHE_CUDA_CHECK_LAUNCH();
}

std::vector<limiter_stats> batch_limiter::render(const float* d_peaks, const float* d_in, float* d_out,
                                                 std::span<const double> gain_db_per_track, const stream& s) {
  render_async(d_peaks, d_in, d_out, gain_db_per_track, s);
  return stats(s);
}

std::vector<limiter_stats> batch_limiter::stats(const stream& s) {
  const unsigned n_tracks = static_cast<unsigned>(tracks());
  stats_partial_kernel<<<dim3(static_cast<unsigned>(stats_blocks_), n_tracks), block_threads, 0, native(s)>>>(
      tracks_.data(), law_.window, latency_, reinterpret_cast<const std::uint64_t*>(envelope_.data()), stats_blocks_,
      part_sum_db_.data(), part_min_gain_.data(), part_limited_.data());
  LATHE_CUDA_CHECK_LAUNCH();
  stats_final_kernel<<<n_tracks, block_threads, 0, native(s)>>>(
      stats_blocks_, part_sum_db_.data(), part_min_gain_.data(), part_limited_.data(), track_sum_db_.data(),
      track_min_gain_.data(), track_limited_.data());
  LATHE_CUDA_CHECK_LAUNCH();
  std::vector<double> sum_db(tracks()), min_gain(tracks());
  std::vector<std::uint64_t> limited(tracks());
  track_sum_db_.download_async(sum_db, s);
  track_min_gain_.download_async(min_gain, s);
  track_limited_.download_async(limited, s);
  s.synchronize();
  std::vector<limiter_stats> out(tracks());
  for (std::size_t t = 0; t < tracks(); ++t) {
    // As offline_limiter's stats_accumulator::finish.
    out[t].frames_limited = static_cast<std::size_t>(limited[t]);
    out[t].max_gain_reduction_db = min_gain[t] < 1.0 ? -20.0 * std::log10(min_gain[t]) : 0.0;
    out[t].mean_gain_reduction_db = frames_[t] > 0 ? sum_db[t] / static_cast<double>(frames_[t]) : 0.0;
  }
  return out;
}

}  // namespace lathe::gpu
