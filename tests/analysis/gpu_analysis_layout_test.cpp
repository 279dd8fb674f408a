// Host-side parts of the GPU analysis kernels (iir, loudness, true peak), run on the CPU: chunk
// index maps, the cascade's chunk transition and carry, the loudness block assembly and the peak
// detectors' index conventions, each against the CPU reference classes. Runs without a GPU; the
// device tests (tests/gpu/) compare the kernels themselves.
#include <gtest/gtest.h>

#if __has_include("lathe_gpu/iir.hpp")
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gpu/analysis_support.hpp"
#include "lathe/highpass.hpp"
#include "lathe/limiter.hpp"
#include "lathe/loudness.hpp"
#include "lathe/true_peak.hpp"
#include "lathe_gpu/iir.hpp"
#include "lathe_gpu/loudness.hpp"
#include "lathe_gpu/true_peak.hpp"
#include "support/signals.hpp"

namespace {

using namespace lathe;
using namespace lathe::gpu;

// The GPU's contract: max |gpu - cpu| / rms(cpu).
constexpr double kernel_rel_tolerance = 1e-5;
// float64 state algebra (transition powers, carried states) against direct stepping.
constexpr double state_rel_tolerance = 1e-10;
// Block energies: float64 sums grouped differently from the meter's 10 ms ticks.
constexpr double energy_rel_tolerance = 1e-12;
constexpr double loudness_tolerance_lu = 1e-9;

double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  return test::relative_error(got.data(), ref.data(), ref.size());
}

std::vector<float> noise(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.25f);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

lane_layout layout_of(const std::vector<std::size_t>& frames) {
  lane_layout l;
  for (std::size_t f : frames) l.add(f);
  return l;
}

// The device algorithm of iir.cu, emulated on the host with the same shared functions: zero-state
// pass, carry in time order per lane, final pass.
std::vector<float> chunked_cascade(const cascade_coeffs& c, const lane_layout& layout, std::size_t chunk_frames,
                                   const std::vector<float>& batch, std::vector<double>* init_out = nullptr) {
  const chunk_table ct = make_chunks(layout, chunk_frames);
  const auto starts = chunk_batch_starts(layout, ct);
  const auto n = static_cast<std::size_t>(2 * c.sections);
  std::vector<double> zero(ct.size() * n, 0.0), init(ct.size() * n, 0.0);
  for (std::size_t k = 0; k < ct.size(); ++k) {
    double s[max_cascade_states]{};
    for (std::size_t i = 0; i < ct.length[k]; ++i) (void)cascade_tick(c, s, batch[starts[k] + i]);
    std::copy(s, s + n, zero.begin() + static_cast<std::ptrdiff_t>(k * n));
  }
  const std::vector<double> t = cascade_transition(c, chunk_frames);
  for (std::size_t l = 0; l < layout.lanes(); ++l) {
    double s[max_cascade_states]{};
    for (std::size_t k = ct.first_chunk_of_lane[l]; k < ct.first_chunk_of_lane[l + 1]; ++k) {
      std::copy(s, s + n, init.begin() + static_cast<std::ptrdiff_t>(k * n));
      const double* z = zero.data() + k * n;
      switch (c.sections) {
        case 1:
          affine_step<2>(t.data(), s, z);
          break;
        case 2:
          affine_step<4>(t.data(), s, z);
          break;
        case 3:
          affine_step<6>(t.data(), s, z);
          break;
        default:
          affine_step<8>(t.data(), s, z);
          break;
      }
    }
  }
  std::vector<float> out(batch.size(), -7.0f);  // sentinel: every sample must be written
  for (std::size_t k = 0; k < ct.size(); ++k) {
    double s[max_cascade_states]{};
    std::copy(init.begin() + static_cast<std::ptrdiff_t>(k * n), init.begin() + static_cast<std::ptrdiff_t>(k * n + n),
              s);
    for (std::size_t i = 0; i < ct.length[k]; ++i)
      out[starts[k] + i] = static_cast<float>(cascade_tick(c, s, batch[starts[k] + i]));
  }
  if (init_out) *init_out = init;
  return out;
}

TEST(GpuAnalysisLayout, ChunkBatchStartsFollowLaneOffsets) {
  const lane_layout layout = layout_of({5, 0, 9, 4});
  const chunk_table ct = make_chunks(layout, 4);
  // Lane 0: [0,4) [4,5); lane 1 empty; lane 2 at 5: [5,9) [9,13) [13,14); lane 3 at 14: [14,18).
  const std::vector<std::uint64_t> expected = {0, 4, 5, 9, 13, 14};
  EXPECT_EQ(chunk_batch_starts(layout, ct), expected);
  const std::vector<std::uint32_t> first = {0, 2, 2, 5, 6};
  EXPECT_EQ(ct.first_chunk_of_lane, first);
}

TEST(GpuAnalysisLayout, TransitionEqualsSteppingWithZeroInput) {
  for (double fs : {44'100.0, 192'000.0}) {
    const cascade_coeffs c = pack_cascade(highpass_sections(highpass_params{20.0, 8, 2.0}, fs));
    for (std::uint64_t frames : {1ull, 2ull, 3ull, 255ull, 4096ull, 4410ull}) {
      const std::vector<double> t = cascade_transition(c, frames);
      // Reference in long double: the float64 stepping of T itself is what is under test.
      const double s0[max_cascade_states] = {0.3, -0.2, 0.7, 0.1, -0.5, 0.9, 0.05, -0.4};
      long double sl[max_cascade_states];
      std::copy(s0, s0 + 8, sl);
      for (std::uint64_t i = 0; i < frames; ++i) {
        long double x = 0.0L;
        for (int k = 0; k < 4; ++k) {
          const long double y = c.b0[k] * x + sl[2 * k];
          sl[2 * k] = c.b1[k] * x - c.a1[k] * y + sl[2 * k + 1];
          sl[2 * k + 1] = c.b2[k] * x - c.a2[k] * y;
          x = y;
        }
      }
      double stepped[max_cascade_states];
      for (int i = 0; i < 8; ++i) stepped[i] = static_cast<double>(sl[i]);
      // The states grow (up to ~300x at 192 kHz) before they decay: scale by the largest seen.
      double scale = 0.0;
      for (double v : s0) scale = std::max(scale, std::abs(v));
      for (double v : stepped) scale = std::max(scale, std::abs(v));
      for (int i = 0; i < 8; ++i) {
        double via_t = 0.0;
        for (int j = 0; j < 8; ++j) via_t += t[static_cast<std::size_t>(i * 8 + j)] * s0[j];
        EXPECT_NEAR(via_t, stepped[i], state_rel_tolerance * scale) << "fs " << fs << " frames " << frames;
      }
    }
  }
}

TEST(GpuAnalysisLayout, ChunkedCascadeMatchesHighpassStage) {
  const std::vector<std::size_t> frames = {1, 31, 32, 33, 255, 256, 257, 4095, 4096, 4097, 3 * 4096 + 17, 10'007};
  const lane_layout layout = layout_of(frames);
  std::vector<float> batch = noise(layout.total_frames, 3);
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i] += 0.3f;  // DC: the high-pass's long tail
  for (const highpass_params p :
       {highpass_params{20.0, 8, 2.0}, highpass_params{30.0, 3, 2.0}, highpass_params{0.0, 4, 2.0}}) {
    for (double fs : {44'100.0, 192'000.0}) {
      const cascade_coeffs c = pack_cascade(highpass_sections(p, fs));
      for (std::size_t chunk : {32, 256, 4096}) {
        const std::vector<float> got = chunked_cascade(c, layout, chunk, batch);
        for (std::size_t l = 0; l < layout.lanes(); ++l) {
          highpass_stage hp(p);
          hp.prepare(stream_spec{fs, 1, frames[l]});
          std::vector<float> ref(frames[l]);
          const float* x = batch.data() + layout.offset[l];
          hp.process(const_block_view{{x}, 1, frames[l]}, block_view{{ref.data()}, 1, frames[l]});
          const std::vector<float> lane(got.begin() + static_cast<std::ptrdiff_t>(layout.offset[l]),
                                        got.begin() + static_cast<std::ptrdiff_t>(layout.offset[l] + frames[l]));
          EXPECT_LE(rel_error(lane, ref), kernel_rel_tolerance)
              << fs << " Hz, order " << p.order << " chunk " << chunk << " lane frames " << frames[l];
        }
      }
    }
  }
}

TEST(GpuAnalysisLayout, CarriedStatesEqualSequentialStates) {
  const std::vector<std::size_t> frames = {5 * 4800 + 3, 4800, 77};
  const lane_layout layout = layout_of(frames);
  const std::vector<float> batch = noise(layout.total_frames, 5);
  const cascade_coeffs c = pack_cascade(k_weighting_sections(48'000.0));
  std::vector<double> init;
  (void)chunked_cascade(c, layout, 4800, batch, &init);
  const chunk_table ct = make_chunks(layout, 4800);
  for (std::size_t l = 0; l < layout.lanes(); ++l) {
    double s[max_cascade_states]{};
    std::size_t k = ct.first_chunk_of_lane[l];
    for (std::size_t i = 0; i <= frames[l] && k < ct.first_chunk_of_lane[l + 1]; ++i) {
      if (i == ct.start[k]) {  // the state entering chunk k, stepped sequentially
        for (int j = 0; j < 4; ++j) {
          const double carried = init[k * 4 + static_cast<std::size_t>(j)];
          EXPECT_NEAR(carried, s[j], state_rel_tolerance * std::max(1.0, std::abs(s[j]))) << "chunk " << k;
        }
        ++k;
      }
      if (i < frames[l]) (void)cascade_tick(c, s, batch[layout.offset[l] + i]);
    }
    EXPECT_EQ(k, ct.first_chunk_of_lane[l + 1]) << "every chunk of lane " << l << " checked";
  }
}

// Sub-block sums of squares as the device forms them (one chunk per whole sub-block, K-weighted
// through the chunked cascade emulation in float64), then the blocks; against loudness_meter.
TEST(GpuAnalysisLayout, LoudnessBlocksMatchTheMeter) {
  for (double fs : {44'100.0, 48'000.0, 22'050.0}) {
    const std::size_t sbf = loudness_sub_block_frames(fs);
    // Below one gating block, exactly 3 s, and lengths with a partial final sub-block.
    const std::vector<double> seconds = {0.35, 3.0, 3.05, 7.3};
    for (double sec : seconds) {
      const audio_buffer part1 = test::white_noise(-20.0, sec * 0.5, fs, 2, 9);
      const audio_buffer part2 = test::sine(997.0, -6.0, sec - std::round(sec * 0.5 * fs) / fs, fs, 2);
      const audio_buffer song = test::concat({&part1, &part2});
      const std::size_t n = song.frames();
      loudness_meter meter;
      meter.prepare(fs, 2);
      meter.process(const_block_view{{song.channel(0), song.channel(1)}, 2, n});

      lane_layout layout = layout_of({n, n});
      const lane_layout whole = whole_sub_block_layout(layout, sbf);
      EXPECT_EQ(whole.frames[0], n / sbf * sbf);
      const chunk_table ct = make_chunks(whole, sbf);
      const auto starts = chunk_batch_starts(layout, ct);
      const cascade_coeffs c = pack_cascade(k_weighting_sections(fs));
      std::vector<float> batch(song.channel(0), song.channel(0) + n);
      batch.insert(batch.end(), song.channel(1), song.channel(1) + n);
      // The device's final pass: carried initial state, then sum y^2 in time order (float64 y).
      std::vector<double> init;
      (void)chunked_cascade(c, whole, sbf, batch, &init);
      std::vector<double> sums(ct.size());
      for (std::size_t k = 0; k < ct.size(); ++k) {
        ASSERT_EQ(ct.length[k], sbf);
        double s[max_cascade_states]{};
        std::copy(init.begin() + static_cast<std::ptrdiff_t>(k * 4),
                  init.begin() + static_cast<std::ptrdiff_t>(k * 4 + 4), s);
        double sum = 0.0;
        for (std::size_t i = 0; i < sbf; ++i) {
          const double y = cascade_tick(c, s, batch[starts[k] + i]);
          sum += y * y;
        }
        sums[k] = sum;
      }
      const std::span<const double> left(sums.data() + ct.first_chunk_of_lane[0],
                                         ct.first_chunk_of_lane[1] - ct.first_chunk_of_lane[0]);
      const std::span<const double> right(sums.data() + ct.first_chunk_of_lane[1],
                                          ct.first_chunk_of_lane[2] - ct.first_chunk_of_lane[1]);
      const loudness_blocks got = loudness_blocks_from_sub_blocks(left, right, sbf);
      const loudness_blocks& ref = meter.blocks();
      ASSERT_EQ(got.momentary_energy.size(), ref.momentary_energy.size()) << fs << " Hz, " << sec << " s";
      ASSERT_EQ(got.short_term_energy.size(), ref.short_term_energy.size()) << fs << " Hz, " << sec << " s";
      for (std::size_t b = 0; b < ref.momentary_energy.size(); ++b)
        EXPECT_NEAR(got.momentary_energy[b], ref.momentary_energy[b], energy_rel_tolerance * ref.momentary_energy[b]);
      for (std::size_t b = 0; b < ref.short_term_energy.size(); ++b)
        EXPECT_NEAR(got.short_term_energy[b], ref.short_term_energy[b],
                    energy_rel_tolerance * ref.short_term_energy[b]);
      if (std::isfinite(ref.integrated_lufs()))
        EXPECT_NEAR(got.integrated_lufs(), ref.integrated_lufs(), loudness_tolerance_lu);
      else
        EXPECT_EQ(got.integrated_lufs(), ref.integrated_lufs());
      EXPECT_NEAR(got.loudness_range_lu(), ref.loudness_range_lu(), loudness_tolerance_lu);
    }
  }
}

TEST(GpuAnalysisLayout, PeakTilesCoverEveryOutputFrameOnce) {
  const lane_layout in = layout_of({1, 0, 1023, 1024, 1025, 5000});
  for (std::size_t extra : {0, 16, 1000}) {
    const lane_layout out = peak_output_layout(in, extra);
    const peak_tiles t = make_peak_tiles(in, extra, 1024);
    std::vector<int> covered(out.total_frames, 0);
    for (std::size_t j = 0; j < t.size(); ++j) {
      const std::uint32_t l = t.lane[j];
      EXPECT_EQ(t.in_offset[j], in.offset[l]);
      EXPECT_EQ(t.in_frames[j], in.frames[l]);
      EXPECT_EQ(t.out_index[j], out.offset[l] + t.frame[j]);
      ASSERT_LE(t.frame[j] + t.length[j], in.frames[l] + extra);
      for (std::size_t i = 0; i < t.length[j]; ++i) ++covered[t.out_index[j] + i];
    }
    EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](int c) { return c == 1; })) << "extra " << extra;
  }
}

// The device's per-frame formula (frame_peak_reference) against the CPU detectors, including the
// zero-padded tail the offline limiter flushes with; same float operations, so bit-identical.
TEST(GpuAnalysisLayout, PeakFormulaEqualsTheCpuDetectors) {
  for (double fs : {44'100.0, 96'000.0, 192'000.0}) {
    const peak_filter tp = true_peak_filter(fs);
    const peak_filter meter = meter_peak_filter(fs, tp.latency_frames);
    for (std::size_t frames : {1, 31, 257, 2053}) {
      const std::vector<float> x = noise(frames, static_cast<std::uint32_t>(frames));
      const std::size_t tail = tp.latency_frames + 40;
      const std::vector<float> zeros(tail, 0.0f);
      std::vector<float> ref_tp(frames + tail), ref_meter(frames + tail);
      true_peak_interpolator cpu_tp;
      cpu_tp.prepare(fs);
      cpu_tp.process(x.data(), ref_tp.data(), frames);
      cpu_tp.process(zeros.data(), ref_tp.data() + frames, tail);
      lathe::detail::meter_peak_interpolator cpu_meter;
      cpu_meter.prepare(fs, tp.latency_frames);
      cpu_meter.process(x.data(), ref_meter.data(), frames);
      cpu_meter.process(zeros.data(), ref_meter.data() + frames, tail);
      for (std::size_t i = 0; i < frames + tail; ++i) {
        ASSERT_EQ(frame_peak_reference(tp, x.data(), frames, i), ref_tp[i]) << fs << " Hz, frame " << i;
        ASSERT_EQ(frame_peak_reference(meter, x.data(), frames, i), ref_meter[i]) << fs << " Hz, frame " << i;
      }
    }
  }
}

}  // namespace
#else
TEST(GpuAnalysisLayout, NeedsTheCudaEngine) {
  GTEST_SKIP() << "built without the CUDA engine (LATHE_CUDA=OFF or no nvcc): lathe_gpu headers unavailable";
}
#endif
