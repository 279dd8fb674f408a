// The saturation stage on the GPU (kernels/dsp/saturation.cu) against the CPU chain
// (run_aligned(saturation_stage)), on batches whose lanes straddle warp (32), thread-block (256)
// and chunk (saturation_chunk_frames) sizes, with lengths 1 and primes, white noise and
// music-like audio, at 1x, 2x, 8x and 16x; and bitwise repeatability. Every test starts with
// LATHE_REQUIRE_GPU(): without a GPU they skip, saying why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gpu/gpu_test_support.hpp"
#include "gpu/tone_support.hpp"
#include "lathe/saturation.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/saturation.hpp"

namespace {

using lathe::gpu::lane_layout;
using lathe::gpu::test::host_batch;

// The GPU precision target (-100 dB): max |gpu - cpu| / rms(cpu), per lane. The kernels repeat
// the CPU's float operations in its order, so the match is expected to be bitwise (reported).
constexpr double gpu_rel_tolerance = 1e-5;
constexpr double fs_hz = 44'100.0;
constexpr std::size_t block = 8'192;  // the CPU chain's block size (apply_prechain)

// Noise lanes of the given lengths (-12 dBFS RMS, so the shaper compresses), then the two
// channels of a music-like song.
host_batch make_batch(const std::vector<std::size_t>& lengths, unsigned seed) {
  host_batch b;
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 0.25);
  for (std::size_t n : lengths) {
    std::vector<float> x(n);
    for (float& v : x) v = static_cast<float>(g(rng));
    b.add(x.data(), n);
  }
  lathe::gpu::test::add_song(b, 2.0, fs_hz);
  return b;
}

std::vector<std::size_t> straddling_lengths() {
  const std::size_t C = lathe::gpu::saturation_chunk_frames;
  return {1, 2, 31, 32, 33, 255, 256, 257, C - 1, C, C + 1, 3 * C + 17, 7'919, 65'521};
}

std::vector<float> run_gpu(const lathe::saturation_params& p, const host_batch& batch, const lathe::gpu::stream& s) {
  lathe::gpu::test::owned_resources r;
  lathe::gpu::device_vector<float> in(batch.samples.size()), out(batch.samples.size());
  in.upload_async(batch.samples, s);
  out.zero_async(s);
  lathe::gpu::saturation_batch(p, fs_hz, batch.layout, in, out, r.res, s);
  std::vector<float> result(batch.samples.size());
  out.download_async(result, s);
  s.synchronize();
  return result;
}

std::vector<float> run_cpu(const lathe::saturation_params& p, const float* x, std::size_t n) {
  lathe::audio_buffer b(1, n);
  std::copy(x, x + n, b.channel(0));
  lathe::saturation_stage st(p);
  st.prepare({fs_hz, 1, block});
  lathe::run_aligned(st, b, block);
  return {b.channel(0), b.channel(0) + n};
}

std::vector<lathe::saturation_params> cases() {
  std::vector<lathe::saturation_params> c(4);
  c[0].drive_db = 6.0, c[0].output_db = -6.0, c[0].mix = 0.3;  // 8x, the bench's settings
  c[1].drive_db = 12.0, c[1].oversampling = 16;
  c[2].drive_db = 3.0, c[2].oversampling = 2, c[2].mix = 0.5;
  c[3].drive_db = 18.0, c[3].oversampling = 1;
  return c;
}

TEST(GpuSaturation, MatchesCpuChainAcrossLaneLengthsAndFactors) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  const host_batch batch = make_batch(straddling_lengths(), 3);
  for (const lathe::saturation_params& p : cases()) {
    const std::vector<float> got = run_gpu(p, batch, s);
    std::size_t bitwise_lanes = 0;
    double worst = 0.0;
    for (std::size_t l = 0; l < batch.layout.lanes(); ++l) {
      const std::size_t off = batch.layout.offset[l], n = batch.layout.frames[l];
      const std::vector<float> want = run_cpu(p, batch.samples.data() + off, n);
      const double rel = lathe::gpu::test::relative_error(got.data() + off, want.data(), n);
      worst = std::max(worst, rel);
      EXPECT_LE(rel, gpu_rel_tolerance) << "oversampling " << p.oversampling << ", lane " << l << " (" << n
                                        << " frames)";
      if (std::memcmp(got.data() + off, want.data(), n * sizeof(float)) == 0) ++bitwise_lanes;
    }
    std::printf("saturation %dx: worst relative error %.3g, %zu of %zu lanes bitwise equal to the CPU\n",
                p.oversampling, worst, bitwise_lanes, batch.layout.lanes());
  }
}

TEST(GpuSaturation, BitwiseIdenticalAcrossRuns) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  const host_batch batch = make_batch({1, 257, 8'193, 40'009}, 9);
  for (const lathe::saturation_params& p : cases()) {
    const std::vector<float> a = run_gpu(p, batch, s);
    const std::vector<float> b = run_gpu(p, batch, s);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "oversampling " << p.oversampling;
  }
}

TEST(GpuSaturation, RejectsBadArguments) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  lathe::gpu::test::owned_resources r;
  lane_layout layout;
  layout.add(100);
  lathe::gpu::device_vector<float> in(100), out(100), short_out(50);
  lathe::saturation_params bad;
  bad.oversampling = 6;
  EXPECT_THROW(lathe::gpu::saturation_batch(bad, fs_hz, layout, in, out, r.res, s), lathe::logic_error);
  EXPECT_THROW(lathe::gpu::saturation_batch({}, fs_hz, layout, in, short_out, r.res, s), lathe::logic_error);
}

}  // namespace
