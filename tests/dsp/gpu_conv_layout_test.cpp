// Host-side index math of the GPU convolution (kernels/include/lathe_gpu/convolution_layout.hpp),
// checked on the CPU: the whole algorithm (gather windows, R2C, per-bin partition sums, C2R,
// scatter of the valid half) is emulated here with a naive float64 DFT, driven by the same plan
// tables and element helpers the kernels use, and compared with direct convolution and with the
// CPU chain's run_aligned(linear_phase_eq_stage). Runs without a GPU and without CUDA.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/eq.hpp"
#include "lathe_gpu/convolution_layout.hpp"

namespace {

using lathe::gpu::conv_geometry;
using lathe::gpu::conv_plan;
using lathe::gpu::lane_layout;
using cd = std::complex<double>;

// Naive float64 DFTs of size <= 32 agree with direct convolution to ~1e-15 of the signal.
constexpr double emulation_rel_tolerance = 1e-10;
// The CPU chain runs float32 FFTs: -100 dB, the GPU precision target.
constexpr double chain_rel_tolerance = 1e-5;

std::vector<cd> dft(const std::vector<double>& x) {
  const std::size_t n = x.size();
  std::vector<cd> out(n / 2 + 1);
  for (std::size_t k = 0; k <= n / 2; ++k) {
    cd acc = 0.0;
    for (std::size_t t = 0; t < n; ++t) acc += x[t] * std::polar(1.0, -2.0 * M_PI * double(k * t % n) / double(n));
    out[k] = acc;
  }
  return out;
}

// Unnormalized inverse of a half spectrum of a real signal of n samples (like cuFFT's C2R).
std::vector<double> idft(const std::vector<cd>& X, std::size_t n) {
  std::vector<double> out(n);
  for (std::size_t t = 0; t < n; ++t) {
    double acc = 0.0;
    for (std::size_t k = 0; k <= n / 2; ++k) {
      const double w = (k == 0 || k == n / 2) ? 1.0 : 2.0;
      acc += w * (X[k] * std::polar(1.0, 2.0 * M_PI * double(k * t % n) / double(n))).real();
    }
    out[t] = acc;
  }
  return out;
}

// The filter as gpu_fir_filter stores it: H_p = DFT_2B(h_p zero-padded) / 2B.
std::vector<std::vector<cd>> filter_spectra(const std::vector<float>& h, const conv_geometry& g) {
  std::vector<std::vector<cd>> H;
  for (std::size_t p = 0; p < g.partitions; ++p) {
    std::vector<double> t(g.fft_frames(), 0.0);
    for (std::size_t j = 0; j < g.block_frames && p * g.block_frames + j < h.size(); ++j) {
      t[j] = h[p * g.block_frames + j] / double(g.fft_frames());
    }
    H.push_back(dft(t));
  }
  return H;
}

// Emulates gpu_convolver::convolve_async slice by slice; `out` is pre-filled by the caller.
// Counts writes per batch sample in `writes`.
void emulate(const conv_plan& plan, const std::vector<std::vector<cd>>& H, const std::vector<float>& in,
             std::vector<double>& out, std::vector<int>& writes) {
  const conv_geometry& g = plan.geometry;
  for (const auto& sl : plan.slices) {
    ASSERT_LE(sl.in_count, sl.in_batch);
    ASSERT_LE(sl.out_count, sl.out_batch);
    ASSERT_LE(sl.in_batch, plan.in_capacity);
    ASSERT_LE(sl.out_batch, plan.out_capacity);
    std::vector<std::vector<cd>> X(sl.in_count);
    for (std::size_t e = 0; e < sl.in_count; ++e) {  // gather + R2C
      std::vector<double> t(g.fft_frames());
      for (std::size_t i = 0; i < t.size(); ++i)
        t[i] = lathe::gpu::conv_gather(plan.in_blocks[sl.in_begin + e], in.data(), i);
      X[e] = dft(t);
    }
    for (std::size_t e = 0; e < sl.out_count; ++e) {  // accumulate + C2R + scatter
      const auto& b = plan.out_blocks[sl.out_begin + e];
      ASSERT_LT(b.p_begin, b.p_end);
      ASSERT_LE(b.p_end, g.partitions);
      std::vector<cd> Y(g.bins(), 0.0);
      for (std::uint32_t p = b.p_begin; p < b.p_end; ++p) {
        const std::uint64_t xi = b.x_of_q - p;
        ASSERT_LT(xi, sl.in_count) << "term reads outside the slice's windows";
        const auto& w = plan.in_blocks[sl.in_begin + xi];
        // The term must be window q - p of the same lane: start (q - p - 1) B.
        const std::int64_t q = (b.out_start + std::int64_t(g.delay_frames)) / std::int64_t(g.block_frames);
        ASSERT_EQ(w.lane, b.lane);
        ASSERT_EQ(w.start_frame, (q - std::int64_t(p) - 1) * std::int64_t(g.block_frames));
        for (std::size_t j = 0; j < g.bins(); ++j) Y[j] += X[xi][j] * H[p][j];
      }
      const std::vector<double> y = idft(Y, g.fft_frames());
      for (std::size_t t = 0; t < g.block_frames; ++t) {
        std::uint64_t dst = 0;
        if (lathe::gpu::conv_scatter_index(b, t, dst)) {
          out[dst] = y[g.block_frames + t];
          ++writes[dst];
        }
      }
    }
  }
}

// y[i] = sum_k h[k] x[i + D - k], float64, zeros outside the lane.
std::vector<double> direct(const std::vector<float>& h, const float* x, std::size_t n, std::size_t delay) {
  std::vector<double> y(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    double acc = 0.0;
    for (std::size_t k = 0; k < h.size(); ++k) {
      const std::int64_t s = std::int64_t(i) + std::int64_t(delay) - std::int64_t(k);
      if (s >= 0 && s < std::int64_t(n)) acc += double(h[k]) * double(x[s]);
    }
    y[i] = acc;
  }
  return y;
}

double rms(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

TEST(GpuConvLayout, AutoBlockFramesFollowsTheRule) {
  EXPECT_EQ(lathe::gpu::conv_auto_block_frames(1), 1024u);
  EXPECT_EQ(lathe::gpu::conv_auto_block_frames(4097), 1024u);
  EXPECT_EQ(lathe::gpu::conv_auto_block_frames(8193), 2048u);
  EXPECT_EQ(lathe::gpu::conv_auto_block_frames(8194), 4096u);
  EXPECT_EQ(lathe::gpu::conv_auto_block_frames(65537), 16384u);
  EXPECT_EQ(lathe::gpu::conv_auto_block_frames(1'000'001), 16384u);
}

TEST(GpuConvLayout, BatchBucketsAreFewHoldTheCountAndWasteUnderAnEighth) {
  constexpr double max_padding_fraction = 1.0 / 8.0;
  for (std::size_t cap : {1u, 5u, 8u, 9u, 100u, 5000u}) {
    std::set<std::size_t> shapes_in_octave;
    std::size_t octave = 1;
    for (std::size_t c = 1; c <= cap; ++c) {
      if (c == 2 * octave) {
        EXPECT_LE(shapes_in_octave.size(), 9u) << "counts " << octave << ".." << c - 1;  // 8 + the capacity
        shapes_in_octave.clear();
        octave = c;
      }
      const std::size_t b = lathe::gpu::conv_batch_bucket(c, cap);
      EXPECT_GE(b, c);
      EXPECT_LE(b, cap);
      EXPECT_LT(double(b - c), max_padding_fraction * double(c)) << "count " << c;
      shapes_in_octave.insert(b);
    }
  }
  EXPECT_EQ(lathe::gpu::conv_batch_bucket(0, 10), 0u);
}

TEST(GpuConvLayout, LaneBlocksCoverEveryFrameOnceAndSkipOnlyZeroOrUnusedWindows) {
  for (std::size_t B : {4u, 16u, 1024u}) {
    for (std::size_t taps : {std::size_t{1}, B - 1, B, B + 1, 4 * B + 1, 9 * B + 7}) {
      for (std::size_t D : {std::size_t{0}, (taps - 1) / 2, taps - 1}) {
        const conv_geometry g = lathe::gpu::make_conv_geometry(taps, B, D);
        for (std::size_t n : {std::size_t{1}, B - 1, B, B + 1, 3 * B + 2, 17 * B + 5}) {
          const auto lb = lathe::gpu::conv_blocks_of_lane(n, g);
          const auto Bi = std::int64_t(B), Di = std::int64_t(D), Pi = std::int64_t(g.partitions);
          const auto Ni = std::int64_t(n);
          // Brute force: output block q is needed iff one of its frames qB + t - D is in [0, N);
          // every frame lies in exactly one block.
          std::vector<int> cover(n, 0);
          for (std::int64_t q = -Pi - 2; q <= (Ni + Di) / Bi + 2; ++q) {
            bool needed = false;
            for (std::int64_t t = 0; t < Bi; ++t) {
              const std::int64_t i = q * Bi + t - Di;
              if (i >= 0 && i < Ni) {
                needed = true;
                ++cover[std::size_t(i)];
              }
            }
            EXPECT_EQ(needed, q >= lb.first_out && q <= lb.last_out) << "output block " << q;
          }
          for (int c : cover) ASSERT_EQ(c, 1);
          // Window k is formed iff some needed block uses it (k = q - p, 0 <= p < P) and it
          // overlaps the lane ((k-1)B < N and (k+1)B > 0).
          for (std::int64_t k = -Pi - 2; k <= lb.last_out + 2; ++k) {
            const bool used = k <= lb.last_out && k >= lb.first_out - (Pi - 1);
            const bool nonzero = (k - 1) * Bi < Ni && (k + 1) * Bi > 0;
            EXPECT_EQ(used && nonzero, k >= lb.first_in && k <= lb.last_in) << "window " << k;
          }
        }
      }
    }
  }
}

struct emulation_case {
  std::size_t block_frames, taps, delay;
};

// A batch whose lanes straddle the block size, with an empty lane and a gap between lanes
// (a sentinel there must survive), convolved by the emulated GPU algorithm at several budgets.
TEST(GpuConvLayout, EmulatedAlgorithmEqualsDirectConvolutionAtEveryBudget) {
  std::mt19937 rng(7);
  std::normal_distribution<double> gauss(0.0, 1.0);
  const std::vector<emulation_case> cases = {{4, 1, 0},    {4, 3, 1},   {4, 4, 0},   {4, 5, 2},
                                             {8, 17, 8},   {8, 17, 0},  {8, 17, 16}, {8, 41, 20},
                                             {16, 33, 16}, {16, 15, 3}, {4, 23, 11}};
  for (const auto& c : cases) {
    const std::size_t B = c.block_frames;
    lane_layout layout;
    for (std::size_t n :
         {std::size_t{1}, std::size_t{2}, B - 1, B, B + 1, std::size_t{0}, 3 * B + 5, std::size_t{13}, 7 * B + 3}) {
      layout.add(n);
    }
    // A gap of 5 samples before the last lane: offsets need not be dense.
    layout.offset.back() += 5;
    layout.total_frames += 5;
    std::vector<float> in(layout.total_frames), h(c.taps);
    for (float& v : in) v = float(gauss(rng));
    for (float& v : h) v = float(gauss(rng));
    const conv_geometry g = lathe::gpu::make_conv_geometry(c.taps, B, c.delay);
    const auto H = filter_spectra(h, g);

    std::vector<std::vector<double>> results;
    for (std::size_t capacity : {g.partitions, g.partitions + 1, 2 * g.partitions + 3, std::size_t{1000}}) {
      SCOPED_TRACE(testing::Message() << "B " << B << " taps " << c.taps << " delay " << c.delay << " capacity "
                                      << capacity);
      const conv_plan plan = lathe::gpu::make_conv_plan(layout, g, capacity);
      EXPECT_LE(plan.in_capacity, capacity);
      EXPECT_LE(plan.out_capacity, capacity);
      if (capacity == g.partitions) {
        EXPECT_GT(plan.slices.size(), 3u) << "small budgets must split the batch";
      }
      const double sentinel = 12345.0;
      std::vector<double> out(layout.total_frames, sentinel);
      std::vector<int> writes(layout.total_frames, 0);
      emulate(plan, H, in, out, writes);
      if (HasFatalFailure()) return;
      for (std::size_t l = 0; l < layout.lanes(); ++l) {
        const std::size_t n = layout.frames[l], off = layout.offset[l];
        const auto ref = direct(h, in.data() + off, n, c.delay);
        double err = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
          EXPECT_EQ(writes[off + i], 1) << "lane " << l << " frame " << i;
          err = std::max(err, std::abs(out[off + i] - ref[i]));
        }
        EXPECT_LE(err / std::max(rms(ref), 1e-300), emulation_rel_tolerance) << "lane " << l << " frames " << n;
      }
      const std::size_t gap = layout.offset.back() - 5;
      for (std::size_t i = gap; i < gap + 5; ++i) EXPECT_EQ(out[i], sentinel) << "gap sample overwritten";
      results.push_back(out);
    }
    // Each output bin sums the same terms in the same order whatever the slicing: bitwise equal.
    for (std::size_t r = 1; r < results.size(); ++r) EXPECT_EQ(results[r], results[0]);
  }
}

TEST(GpuConvLayout, BudgetBelowOneOutputBlockIsRejected) {
  lane_layout layout;
  layout.add(100);
  const conv_geometry g = lathe::gpu::make_conv_geometry(40, 8, 0);  // P = 5
  EXPECT_THROW(lathe::gpu::make_conv_plan(layout, g, g.partitions - 1), lathe::logic_error);
  EXPECT_NO_THROW(lathe::gpu::make_conv_plan(layout, g, g.partitions));
  EXPECT_EQ(lathe::gpu::conv_slice_capacity(g, lathe::gpu::conv_work_bytes(g, 7, 7)), 7u);
  EXPECT_EQ(lathe::gpu::conv_slice_capacity(g, lathe::gpu::conv_work_bytes(g, 7, 7) - 1), 6u);
}

// The semantics the GPU must reproduce: run_aligned(linear_phase_eq_stage) equals direct
// convolution with D = (taps - 1) / 2 and equals the emulated GPU algorithm (B = 64).
TEST(GpuConvLayout, EmulationMatchesTheCpuEqChain) {
  const double fs = 48'000.0;
  lathe::eq_params p;
  p.bands = {{lathe::eq_band_type::bell, 3'000.0, 6.0, 1.0}, {lathe::eq_band_type::low_shelf, 200.0, -4.0, 0.707}};
  p.fir_taps = 257;
  p.partition_frames = 64;
  const std::vector<double> hd = lathe::design_linear_phase_fir(p.bands, fs, p.fir_taps);
  const std::vector<float> h(hd.begin(), hd.end());
  std::mt19937 rng(3);
  std::normal_distribution<double> gauss(0.0, 0.1);
  for (std::size_t n : {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{701}}) {
    lathe::audio_buffer buf(1, n);
    for (std::size_t i = 0; i < n; ++i) buf.channel(0)[i] = float(gauss(rng));
    const std::vector<float> x(buf.channel(0), buf.channel(0) + n);
    lathe::linear_phase_eq_stage stage(p);
    stage.prepare({fs, 1, 37});
    lathe::run_aligned(stage, buf, 37);

    lane_layout layout;
    layout.add(n);
    const conv_geometry g = lathe::gpu::make_conv_geometry(h.size(), 64, (h.size() - 1) / 2);
    const conv_plan plan = lathe::gpu::make_conv_plan(layout, g, 3 * g.partitions);
    std::vector<double> out(n, 0.0);
    std::vector<int> writes(n, 0);
    emulate(plan, filter_spectra(h, g), x, out, writes);
    if (HasFatalFailure()) return;
    const auto ref = direct(h, x.data(), n, (h.size() - 1) / 2);
    double err_chain = 0.0, err_emul = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      err_chain = std::max(err_chain, std::abs(double(buf.channel(0)[i]) - ref[i]));
      err_emul = std::max(err_emul, std::abs(out[i] - ref[i]));
    }
    EXPECT_LE(err_chain / rms(ref), chain_rel_tolerance) << n << " frames: CPU chain vs direct";
    EXPECT_LE(err_emul / rms(ref), emulation_rel_tolerance) << n << " frames: emulated GPU vs direct";
  }
}

}  // namespace
