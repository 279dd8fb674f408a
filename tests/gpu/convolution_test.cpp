// Batched cuFFT convolution (kernels/dsp/convolution.cu) against the CPU chain
// (run_aligned(linear_phase_eq_stage)) and against direct float64 convolution, on batches whose
// lanes straddle warp (32), thread-block (256) and partition (B) sizes, primes and several
// blocks; at the default and at a tiny work budget (many slices); bitwise repeatability.
// Every test starts with LATHE_REQUIRE_GPU(): without a GPU they skip, saying why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu/gpu_test_support.hpp"
#include "lathe/audio_buffer.hpp"
#include "lathe/eq.hpp"
#include "lathe/error.hpp"
#include "lathe_gpu/convolution.hpp"

namespace {

using lathe::gpu::lane_layout;

// The GPU precision target (-100 dB): max |gpu - ref| / rms(ref), per lane.
constexpr double gpu_rel_tolerance = 1e-5;
constexpr double fs_hz = 48'000.0;

struct host_batch {
  lane_layout layout;
  std::vector<float> samples;
};

// Lanes of the given lengths filled with independent white noise (-20 dBFS RMS), plus one
// music-like lane (the demo song) when `with_music`.
host_batch make_batch(const std::vector<std::size_t>& lengths, bool with_music, unsigned seed) {
  host_batch b;
  std::mt19937 rng(seed);
  std::normal_distribution<double> gauss(0.0, 0.1);
  for (std::size_t n : lengths) {
    b.layout.add(n);
    for (std::size_t i = 0; i < n; ++i) b.samples.push_back(static_cast<float>(gauss(rng)));
  }
  if (with_music) {
    lathe::demo_track_spec spec;
    spec.seconds = 2.0;
    spec.sample_rate_hz = fs_hz;
    spec.mono = true;
    const lathe::audio_buffer song = lathe::synthesize_song(spec);
    b.layout.add(song.frames());
    b.samples.insert(b.samples.end(), song.channel(0), song.channel(0) + song.frames());
  }
  return b;
}

std::vector<std::size_t> straddling_lengths(std::size_t block_frames) {
  const std::size_t B = block_frames;
  return {1, 31, 32, 33, 255, 256, 257, B - 1, B, B + 1, 3 * B + 17, 7'919, 2, 65'521};
}

std::vector<float> run_gpu(const std::vector<float>& h, std::size_t block_frames, const host_batch& batch,
                           std::size_t delay_frames, std::size_t budget_bytes, lathe::gpu::cufft_plan_cache& plans,
                           const lathe::gpu::stream& s) {
  const lathe::gpu::gpu_fir_filter filter(h, block_frames, s);
  lathe::gpu::gpu_convolver conv(budget_bytes);
  lathe::gpu::device_vector<float> in(batch.samples.size()), out(batch.samples.size());
  in.upload_async(batch.samples, s);
  out.zero_async(s);
  conv.convolve(filter, batch.layout, in, out, delay_frames, plans, s);
  std::vector<float> result(batch.samples.size());
  out.download_async(result, s);
  s.synchronize();
  return result;
}

// y[i] = sum_k h[k] x[i + D - k] in float64, zeros outside the lane.
std::vector<double> direct(const std::vector<float>& h, const float* x, std::size_t n, std::size_t delay) {
  std::vector<double> y(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t base = std::int64_t(i) + std::int64_t(delay);
    const std::int64_t k_lo = std::max<std::int64_t>(0, base - std::int64_t(n) + 1);
    const std::int64_t k_hi = std::min<std::int64_t>(std::int64_t(h.size()) - 1, base);
    double acc = 0.0;
    for (std::int64_t k = k_lo; k <= k_hi; ++k) acc += double(h[std::size_t(k)]) * double(x[base - k]);
    y[i] = acc;
  }
  return y;
}

// Per lane: max |gpu - ref| / rms(ref), ref in float64.
void expect_close_per_lane(const host_batch& batch, const std::vector<float>& gpu,
                           const std::vector<std::vector<double>>& ref, const std::string& what) {
  for (std::size_t l = 0; l < batch.layout.lanes(); ++l) {
    const std::size_t off = batch.layout.offset[l], n = batch.layout.frames[l];
    double err = 0.0, sq = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      err = std::max(err, std::abs(double(gpu[off + i]) - ref[l][i]));
      sq += ref[l][i] * ref[l][i];
    }
    const double rms = std::sqrt(sq / double(n));
    EXPECT_LE(err / std::max(rms, 1e-30), gpu_rel_tolerance) << what << ": lane " << l << " of " << n << " frames";
  }
}

lathe::eq_params test_eq(std::size_t taps) {
  lathe::eq_params p;
  p.bands = {{lathe::eq_band_type::low_shelf, 120.0, 3.0, 0.707},
             {lathe::eq_band_type::bell, 2'500.0, -4.5, 1.4},
             {lathe::eq_band_type::high_shelf, 9'000.0, 2.0, 0.707}};
  p.fir_taps = taps;
  p.partition_frames = 4096;
  return p;
}

TEST(GpuConvolution, MatchesCpuEqChainAcrossLaneLengthsAndBudgets) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  lathe::gpu::cufft_plan_cache plans;
  for (std::size_t taps : {std::size_t{8'193}, std::size_t{16'385}, std::size_t{65'537}}) {
    const lathe::eq_params p = test_eq(taps);
    const std::vector<double> hd = lathe::design_linear_phase_fir(p.bands, fs_hz, taps);
    const std::vector<float> h(hd.begin(), hd.end());
    const std::size_t B = lathe::gpu::conv_auto_block_frames(taps);
    const host_batch batch = make_batch(straddling_lengths(B), true, 11);

    // CPU chain, lane by lane (mono), in blocks of a prime size.
    std::vector<std::vector<double>> ref;
    for (std::size_t l = 0; l < batch.layout.lanes(); ++l) {
      const std::size_t n = batch.layout.frames[l];
      lathe::audio_buffer buf(1, n);
      std::copy_n(batch.samples.data() + batch.layout.offset[l], n, buf.channel(0));
      lathe::linear_phase_eq_stage stage(p);
      stage.prepare({fs_hz, 1, 1'021});
      lathe::run_aligned(stage, buf, 1'021);
      ref.emplace_back(buf.channel(0), buf.channel(0) + n);
    }
    const lathe::gpu::conv_geometry g =
        lathe::gpu::make_conv_geometry(taps, B, lathe::gpu::linear_phase_delay_frames(taps));
    // Default budget (one slice here) and the smallest budget (one output block's windows per
    // slice: every lane is split, history windows repeat across slices).
    for (std::size_t budget : {lathe::gpu::gpu_convolver::default_work_budget_bytes,
                               lathe::gpu::conv_work_bytes(g, g.partitions, g.partitions)}) {
      const auto gpu = run_gpu(h, B, batch, lathe::gpu::linear_phase_delay_frames(taps), budget, plans, s);
      expect_close_per_lane(batch, gpu, ref, "taps " + std::to_string(taps) + " budget " + std::to_string(budget));
    }
  }
}

TEST(GpuConvolution, MatchesDirectFloat64Convolution) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  lathe::gpu::cufft_plan_cache plans;
  // A reverb-like IR: a unit direct path at `peak`, then a decaying noise tail.
  const std::size_t taps = 8'193;
  for (std::size_t peak : {std::size_t{0}, (taps - 1) / 2}) {
    std::vector<float> h(taps, 0.0f);
    std::mt19937 rng(5);
    std::normal_distribution<double> gauss(0.0, 0.05);
    for (std::size_t k = 0; k < taps; ++k) h[k] = float(gauss(rng) * std::exp(-double(k) / 2'000.0));
    h[peak] = 1.0f;
    for (std::size_t B : {std::size_t{1'024}, lathe::gpu::conv_auto_block_frames(taps)}) {
      const host_batch batch = make_batch(straddling_lengths(B), false, 23);
      std::vector<std::vector<double>> ref;
      for (std::size_t l = 0; l < batch.layout.lanes(); ++l) {
        ref.push_back(direct(h, batch.samples.data() + batch.layout.offset[l], batch.layout.frames[l], peak));
      }
      const auto gpu = run_gpu(h, B, batch, peak, lathe::gpu::gpu_convolver::default_work_budget_bytes, plans, s);
      expect_close_per_lane(batch, gpu, ref, "delay " + std::to_string(peak) + " B " + std::to_string(B));
    }
  }
}

TEST(GpuConvolution, BitwiseIdenticalAcrossRunsAndLeavesGapsUntouched) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  const std::size_t taps = 16'385;
  const lathe::eq_params p = test_eq(taps);
  const std::vector<double> hd = lathe::design_linear_phase_fir(p.bands, fs_hz, taps);
  const std::vector<float> h(hd.begin(), hd.end());
  const std::size_t B = lathe::gpu::conv_auto_block_frames(taps);
  const host_batch batch = make_batch(straddling_lengths(B), true, 31);
  const std::size_t D = lathe::gpu::linear_phase_delay_frames(taps);

  lathe::gpu::cufft_plan_cache plans;
  const auto first = run_gpu(h, B, batch, D, std::size_t{64} << 20, plans, s);
  const std::size_t plans_after_first = plans.size();
  const auto second = run_gpu(h, B, batch, D, std::size_t{64} << 20, plans, s);
  EXPECT_EQ(plans.size(), plans_after_first) << "the same batch shape must reuse the cached plans";
  EXPECT_EQ(plans.size(), 2u) << "one slice: one R2C and one C2R plan";
  lathe::gpu::cufft_plan_cache fresh;
  const auto third = run_gpu(h, B, batch, D, std::size_t{64} << 20, fresh, s);
  ASSERT_EQ(first.size(), second.size());
  EXPECT_EQ(0, std::memcmp(first.data(), second.data(), first.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(first.data(), third.data(), first.size() * sizeof(float)));

  // Samples outside every lane keep what was there.
  lane_layout gapped;
  gapped.add(1'000);
  gapped.offset.push_back(1'000 + 7);
  gapped.frames.push_back(3'000);
  gapped.total_frames = 4'007;
  const lathe::gpu::gpu_fir_filter filter(h, B, s);
  lathe::gpu::gpu_convolver conv;
  std::vector<float> x(gapped.total_frames, 0.25f), sentinel(gapped.total_frames, 777.0f);
  lathe::gpu::device_vector<float> in(x.size()), out(x.size());
  in.upload_async(x, s);
  out.upload_async(sentinel, s);
  conv.convolve(filter, gapped, in, out, D, plans, s);
  std::vector<float> y(x.size());
  out.download_async(y, s);
  s.synchronize();
  for (std::size_t i = 1'000; i < 1'007; ++i) EXPECT_EQ(y[i], 777.0f) << "gap sample " << i << " written";
  for (std::size_t i = 0; i < 1'000; ++i) ASSERT_NE(y[i], 777.0f) << "lane sample " << i << " not written";
}

TEST(GpuConvolution, RejectsBadArgumentsBeforeQueueingWork) {
  LATHE_REQUIRE_GPU();
  lathe::gpu::stream s;
  lathe::gpu::cufft_plan_cache plans;
  const std::vector<float> h(4'097, 0.001f);
  EXPECT_THROW(lathe::gpu::gpu_fir_filter(h, 1'000, s), lathe::logic_error);  // not a power of two
  const lathe::gpu::gpu_fir_filter filter(h, 1'024, s);
  lane_layout layout;
  layout.add(5'000);
  lathe::gpu::device_vector<float> a(5'000), b(5'000), small(4'999);
  lathe::gpu::gpu_convolver conv;
  EXPECT_THROW(conv.convolve(filter, layout, a, a, 0, plans, s), lathe::logic_error);      // in place
  EXPECT_THROW(conv.convolve(filter, layout, a, small, 0, plans, s), lathe::logic_error);  // too short
  lathe::gpu::gpu_convolver starved(1'000);  // below one output block's windows
  EXPECT_THROW(starved.convolve(filter, layout, a, b, 0, plans, s), lathe::logic_error);
}

}  // namespace
