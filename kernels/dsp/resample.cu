// Rational polyphase resampling of a batch of lanes: device building block (one output's dot
// product), tile (one block = one chunk of one lane's output, policy below), host dispatch and
// facade (CUDA status -> cuda_error). See lathe_gpu/resample.hpp and src/dsp/polyphase.cpp.
#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lathe_gpu/error.cuh"
#include "lathe_gpu/resample.hpp"

namespace lathe::gpu {
namespace {

// One thread per output sample; a block covers one chunk of block_threads outputs of a lane.
struct resample_policy {
  static constexpr int block_threads = 256;
};

// The input sample at `i`, zero outside [0, n): the lane is zero-padded, as on the CPU.
template <bool Checked>
__device__ __forceinline__ double input_at(const float* __restrict__ x, long long i, long long n) {
  if constexpr (Checked) return (i >= 0 && i < n) ? static_cast<double>(__ldg(x + i)) : 0.0;
  return static_cast<double>(__ldg(x + i));
}

// Output = sum_t c[t] x[start + t], taps odd, as four float64 partial sums over t mod 4 combined
// (s0 + s1) + (s2 + s3): polyphase_resampler::process's exact operations and order. Each product
// of two floats is exact in float64, so contraction into FMA gives the same sums. Tap t of the
// phase is c[t * up]: the table is tap-major, so the threads of a warp (neighbouring outputs,
// different phases) read one row of it together instead of one strided column each. The taps are
// stored as double (each float widened exactly), so no tap is converted in the loop.
template <bool Checked>
__device__ float phase_dot(const double* __restrict__ c, std::uint32_t up, const float* __restrict__ x, long long start,
                           long long n, int taps) {
  auto tap = [&](int t) { return __ldg(c + static_cast<std::uint64_t>(t) * up); };
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  int t = 0;
  for (; t + 4 <= taps; t += 4) {
    s0 += tap(t) * input_at<Checked>(x, start + t, n);
    s1 += tap(t + 1) * input_at<Checked>(x, start + t + 1, n);
    s2 += tap(t + 2) * input_at<Checked>(x, start + t + 2, n);
    s3 += tap(t + 3) * input_at<Checked>(x, start + t + 3, n);
  }
  // The tail starts at a multiple of 4, so its taps go to s0, s1, s2 in turn (as s[t & 3]).
  if (t < taps) s0 += tap(t) * input_at<Checked>(x, start + t, n);
  if (t + 1 < taps) s1 += tap(t + 1) * input_at<Checked>(x, start + t + 1, n);
  if (t + 2 < taps) s2 += tap(t + 2) * input_at<Checked>(x, start + t + 2, n);
  return __double2float_rn((s0 + s1) + (s2 + s3));
}

// Block b computes outputs [chunk_start[b], + chunk_length[b]) of lane chunk_lane[b].
// lane_tables holds, per lane, {input offset, input frames, output offset}.
__global__ void __launch_bounds__(resample_policy::block_threads)
    resample_kernel(const float* __restrict__ in, float* __restrict__ out, const double* __restrict__ coeffs,
                    const std::uint64_t* __restrict__ lane_tables, const std::uint64_t* __restrict__ chunk_start,
                    const std::uint32_t* __restrict__ chunk_lane, const std::uint32_t* __restrict__ chunk_length,
                    std::uint32_t up, std::uint32_t down, std::uint32_t half_taps) {
  const unsigned b = blockIdx.x;
  const unsigned tid = threadIdx.x;
  if (tid >= chunk_length[b]) return;  // the lane's last chunk may be short
  const std::uint64_t lane = chunk_lane[b];
  const std::uint64_t in_offset = lane_tables[3 * lane];
  const auto n = static_cast<long long>(lane_tables[3 * lane + 1]);
  const std::uint64_t out_offset = lane_tables[3 * lane + 2];
  const std::uint64_t j = chunk_start[b] + tid;
  const std::uint64_t jm = j * down;  // < 2^64 for any lane the host accepts (checked there)
  const std::uint64_t q = jm / up, r = jm % up;
  const int taps = static_cast<int>(2 * half_taps + 1);
  const double* c = coeffs + r;  // tap-major: tap t of phase r at t * up + r
  const float* x = in + in_offset;
  const long long start = static_cast<long long>(q) - static_cast<long long>(half_taps);
  out[out_offset + j] = (start >= 0 && start + taps <= n) ? phase_dot<false>(c, up, x, start, n, taps)
                                                          : phase_dot<true>(c, up, x, start, n, taps);
}

}  // namespace

lane_layout resampled_layout(const lane_layout& in, const polyphase_resampler& design) {
  lane_layout out;
  for (std::size_t l = 0; l < in.lanes(); ++l) out.add(design.output_frames(in.frames[l]));
  return out;
}

resample_filter::resample_filter(const polyphase_resampler& design, const stream& s)
    : up_(design.up()),
      down_(design.down()),
      half_taps_(static_cast<std::uint32_t>(design.half_taps())),
      coeffs_(design.coefficients().size()) {
  LATHE_EXPECTS(design.half_taps() < (std::size_t{1} << 30), "polyphase filter too long for the GPU kernel");
  LATHE_EXPECTS(design.coefficients().size() == std::size_t{up_} * taps_per_phase(),
                "polyphase design not prepared (coefficient table of the wrong size)");
  // design.coefficients() is phase-major (phase r's taps contiguous); the kernel reads it tap-major.
  const std::span<const float> phase_major = design.coefficients();
  const std::size_t taps = taps_per_phase();
  std::vector<double> tap_major(phase_major.size());
  for (std::size_t r = 0; r < up_; ++r)
    for (std::size_t t = 0; t < taps; ++t) tap_major[t * up_ + r] = static_cast<double>(phase_major[r * taps + t]);
  coeffs_.upload_async(tap_major, s);
  s.synchronize();  // tap_major dies at return
}

resample_batch::resample_batch(const polyphase_resampler& design, const lane_layout& in, const stream& s)
    : in_(in), out_(resampled_layout(in, design)), up_(design.up()), down_(design.down()) {
  LATHE_EXPECTS(in.lanes() < (std::size_t{1} << 32), "too many lanes for the resampling kernel");
  std::vector<std::uint64_t> lanes(3 * in.lanes());
  for (std::size_t l = 0; l < in.lanes(); ++l) {
    // j * M for the lane's last output must fit 64 bits, and the lane in a signed 64-bit index.
    LATHE_EXPECTS(in.frames[l] < (std::uint64_t{1} << 62) / (std::uint64_t{up_} + down_),
                  "lane " + std::to_string(l) + " too long for the resampling kernel's 64-bit index math");
    lanes[3 * l] = in.offset[l];
    lanes[3 * l + 1] = in.frames[l];
    lanes[3 * l + 2] = out_.offset[l];
  }
  const chunk_table chunks = make_chunks(out_, resample_policy::block_threads);
  LATHE_EXPECTS(chunks.size() <= static_cast<std::size_t>(INT_MAX), "batch too large for one launch");
  chunks_ = chunks.size();
  lane_tables_ = device_vector<std::uint64_t>(lanes.size());
  chunk_start_ = device_vector<std::uint64_t>(chunks_);
  chunk_lane_ = device_vector<std::uint32_t>(chunks_);
  chunk_length_ = device_vector<std::uint32_t>(chunks_);
  lane_tables_.upload_async(lanes, s);
  chunk_start_.upload_async(chunks.start, s);
  chunk_lane_.upload_async(chunks.lane, s);
  chunk_length_.upload_async(chunks.length, s);
  s.synchronize();  // the host vectors die at return
}

void resample_batch::run_async(const resample_filter& filter, const float* d_in, float* d_out, const stream& s) const {
  LATHE_EXPECTS(filter.up() == up_ && filter.down() == down_,
                "resample_batch::run_async: the filter is for another rate pair than the batch");
  if (chunks_ == 0) return;
  resample_kernel<<<static_cast<unsigned>(chunks_), resample_policy::block_threads, 0,
                    static_cast<cudaStream_t>(s.get())>>>(d_in, d_out, filter.coefficients(), lane_tables_.data(),
                                                          chunk_start_.data(), chunk_lane_.data(), chunk_length_.data(),
                                                          filter.up(), filter.down(), filter.half_taps());
  LATHE_CUDA_CHECK_LAUNCH();
}

std::vector<float> resample(const polyphase_resampler& design, const lane_layout& in, std::span<const float> host_in,
                            const stream& s) {
  LATHE_EXPECTS(host_in.size() == in.total_frames, "resample: host input size differs from the layout's total");
  const resample_filter filter(design, s);
  const resample_batch batch(design, in, s);
  device_vector<float> d_in(in.total_frames);
  device_vector<float> d_out(batch.output_layout().total_frames);
  d_in.upload_async(host_in, s);
  batch.run_async(filter, d_in.data(), d_out.data(), s);
  std::vector<float> host_out(d_out.size());
  d_out.download_async(host_out, s);
  s.synchronize();
  return host_out;
}

}  // namespace lathe::gpu
