// GPU quantization with TPDF dither, shaping none (see lathe_gpu/dither.hpp).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "lathe_gpu/detail/dither_hash.hpp"
#include "lathe_gpu/dither.hpp"
#include "lathe_gpu/error.cuh"

namespace lathe::gpu {
namespace {

constexpr unsigned block_threads = 256;  // power of two (reduction tree)
static_assert((block_threads & (block_threads - 1)) == 0);

// One thread per output sample of a track (grid.y = track), in interleaved order, so the int32
// stores are coalesced; the two lanes' reads are each coalesced at half density.
template <bool Dither>
__global__ void quantize_kernel(const std::uint64_t* tracks, const std::uint64_t* keys, double scale, const float* in,
                                std::int32_t* out, unsigned long long* clipped) {
  __shared__ unsigned count[block_threads];
  const std::uint64_t* d = tracks + 4 * static_cast<std::size_t>(blockIdx.y);
  const std::uint64_t frames = d[2];
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned c = 0;
  if (i < 2 * frames) {
    const std::size_t n = i / 2;
    const unsigned ch = static_cast<unsigned>(i % 2);
    const std::uint64_t* k = keys + 4 * static_cast<std::size_t>(blockIdx.y) + 2 * ch;
    const detail::quantized_sample q = detail::quantize_sample(in[d[ch] + n], scale, k[0], k[1], n, Dither);
    out[d[3] + i] = q.value;
    c = q.clipped ? 1u : 0u;
  }
  count[threadIdx.x] = c;
  __syncthreads();
  for (unsigned s = block_threads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) count[threadIdx.x] += count[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0 && count[0] != 0) atomicAdd(clipped + blockIdx.y, static_cast<unsigned long long>(count[0]));
}

}  // namespace

std::vector<std::size_t> quantize_output_offsets(const lane_layout& audio) {
  LATHE_EXPECTS(audio.lanes() % 2 == 0, "the quantizer batch needs two lanes per track");
  std::vector<std::size_t> off(audio.lanes() / 2 + 1, 0);
  for (std::size_t t = 0; t + 1 < off.size(); ++t) off[t + 1] = off[t] + 2 * audio.frames[2 * t];
  return off;
}

void batch_quantizer::prepare(const lane_layout& audio, const stream& s) {
  LATHE_EXPECTS(audio.lanes() % 2 == 0 && audio.lanes() > 0, "the quantizer batch needs two lanes per track");
  LATHE_EXPECTS(audio.lanes() / 2 <= 65'535, "at most 65535 tracks per quantizer batch (grid.y)");
  const std::vector<std::size_t> off = quantize_output_offsets(audio);
  const std::size_t n_tracks = audio.lanes() / 2;
  host_tracks_.assign(4 * n_tracks, 0);
  max_frames_ = 0;
  for (std::size_t t = 0; t < n_tracks; ++t) {
    LATHE_EXPECTS(audio.frames[2 * t] == audio.frames[2 * t + 1], "both lanes of a track must have the same length");
    host_tracks_[4 * t + 0] = audio.offset[2 * t];
    host_tracks_[4 * t + 1] = audio.offset[2 * t + 1];
    host_tracks_[4 * t + 2] = audio.frames[2 * t];
    host_tracks_[4 * t + 3] = off[t];
    max_frames_ = std::max(max_frames_, audio.frames[2 * t]);
  }
  LATHE_EXPECTS((2 * max_frames_ + block_threads - 1) / block_threads <= 0x7fffffffu, "track too long for one launch");
  output_size_ = off.back();
  tracks_ = device_vector<std::uint64_t>(host_tracks_.size());
  tracks_.upload_async(host_tracks_, s);
  keys_ = device_vector<std::uint64_t>(4 * n_tracks);
  clipped_ = device_vector<std::uint64_t>(n_tracks);
  host_keys_.assign(4 * n_tracks, 0);
  s.synchronize();  // the table is then valid for calls on any stream
}

void batch_quantizer::quantize_async(const float* d_in, std::int32_t* d_out, const quantize_params& params,
                                     std::span<const std::uint64_t> seed_per_track, const stream& s) {
  LATHE_EXPECTS(tracks() > 0, "batch_quantizer::quantize_async before prepare()");
  LATHE_EXPECTS(params.bit_depth >= 8 && params.bit_depth <= 24, "bit_depth must lie in [8, 24]");
  LATHE_EXPECTS(params.shaping == noise_shaping::none,
                "the GPU quantizer does shaping none only; run noise-shaped formats with lathe::quantize on the host");
  LATHE_EXPECTS(seed_per_track.size() == tracks(), "one seed per track");
  for (std::size_t t = 0; t < tracks(); ++t) {
    for (int ch = 0; ch < 2; ++ch) {
      for (int sub = 0; sub < 2; ++sub)
        host_keys_[4 * t + 2 * ch + sub] = detail::dither_key(seed_per_track[t], ch, sub);
    }
  }
  // A pageable upload returns once the source is staged, so host_keys_ may change afterwards.
  keys_.upload_async(host_keys_, s);
  clipped_.zero_async(s);
  if (max_frames_ == 0) return;
  const double scale = std::ldexp(1.0, params.bit_depth - 1);
  const dim3 grid(static_cast<unsigned>((2 * max_frames_ + block_threads - 1) / block_threads),
                  static_cast<unsigned>(tracks()));
  auto* clipped = reinterpret_cast<unsigned long long*>(clipped_.data());
  const cudaStream_t cs = static_cast<cudaStream_t>(s.get());
  if (params.dither) {
    quantize_kernel<true><<<grid, block_threads, 0, cs>>>(tracks_.data(), keys_.data(), scale, d_in, d_out, clipped);
  } else {
    quantize_kernel<false><<<grid, block_threads, 0, cs>>>(tracks_.data(), keys_.data(), scale, d_in, d_out, clipped);
  }
  LATHE_CUDA_CHECK_LAUNCH();
}

std::vector<quantize_stats> batch_quantizer::quantize(const float* d_in, std::int32_t* d_out,
                                                      const quantize_params& params,
                                                      std::span<const std::uint64_t> seed_per_track, const stream& s) {
  quantize_async(d_in, d_out, params, seed_per_track, s);
  std::vector<std::uint64_t> clipped(tracks());
  clipped_.download_async(clipped, s);
  s.synchronize();
  std::vector<quantize_stats> out(tracks());
  for (std::size_t t = 0; t < tracks(); ++t) out[t].clipped_samples = static_cast<std::size_t>(clipped[t]);
  return out;
}

}  // namespace lathe::gpu
