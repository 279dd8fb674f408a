// GPU polyphase resampling against its CPU reference (lathe::polyphase_resampler), the CPU
// render's polyphase_stream (bit for bit) and lathe::resample (libsoxr VHQ), on one batch of lanes of different
// lengths; bitwise repeatability.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu/gpu_test_support.hpp"
#include "lathe/polyphase.hpp"
#include "lathe/resampler.hpp"
#include "lathe_gpu/resample.hpp"

namespace lathe {
namespace {

constexpr double kPi = 3.14159265358979323846;
// GPU vs the CPU reference, max |gpu - cpu| / max(rms(cpu), tiny) per lane. The kernel performs
// the reference's float64 operations in the same order, so the outputs should be bitwise equal;
// 1e-6 leaves room only for a different final rounding, not for a different algorithm.
constexpr double kCpuRelativeError = 1e-6;
// GPU vs libsoxr on sines below half the lower Nyquist, 50 ms from the lane ends: the bound of
// tests/dsp/polyphase_test.cpp (both filters flat there; the difference is float rounding).
constexpr double kSoxrRelativeError = 1e-5;
constexpr double kEdgeSeconds = 0.05;
constexpr double kTiny = 1e-30;

struct rate_pair {
  double in_hz, out_hz;
};
const rate_pair kPairs[] = {{44'100, 48'000}, {48'000, 44'100},  {96'000, 44'100},
                            {8'000, 44'100},  {384'000, 48'000}, {48'000, 48'000}};

double rms(const float* v, std::size_t n) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s / static_cast<double>(std::max<std::size_t>(n, 1)));
}

// A batch whose lanes straddle warp (32) and block (256) sizes, primes, and a few seconds of
// music (the two channels of one song are two lanes, as the host lays tracks out).
struct batch {
  gpu::lane_layout layout;
  std::vector<float> data;
};
batch make_batch(double fs) {
  batch b;
  std::mt19937 rng(17);
  std::normal_distribution<float> noise(0.0f, 0.25f);
  for (std::size_t n : {1u, 2u, 31u, 32u, 33u, 255u, 256u, 257u, 1'009u, 7'919u, 65'537u}) {
    b.layout.add(n);
    for (std::size_t i = 0; i < n; ++i) b.data.push_back(noise(rng));
  }
  demo_track_spec spec;
  spec.seconds = fs > 200'000 ? 1.0 : 3.0;
  spec.sample_rate_hz = fs;
  spec.tempo_bpm = 180.0;
  const audio_buffer song = synthesize_song(spec);
  for (int c = 0; c < 2; ++c) {
    b.layout.add(song.frames());
    b.data.insert(b.data.end(), song.channel(c), song.channel(c) + song.frames());
  }
  b.layout.add(0);  // an empty lane is legal and produces nothing
  return b;
}

TEST(GpuResample, MatchesCpuReferenceLaneByLane) {
  LATHE_REQUIRE_GPU();
  const gpu::stream s;
  for (const auto& p : kPairs) {
    polyphase_resampler design;
    design.prepare(p.in_hz, p.out_hz);
    const batch in = make_batch(p.in_hz);
    const std::vector<float> out = gpu::resample(design, in.layout, in.data, s);
    const gpu::lane_layout out_layout = gpu::resampled_layout(in.layout, design);
    ASSERT_EQ(out.size(), out_layout.total_frames);
    std::size_t differing = 0;
    double worst = 0.0;
    for (std::size_t l = 0; l < in.layout.lanes(); ++l) {
      ASSERT_EQ(out_layout.frames[l], design.output_frames(in.layout.frames[l]));
      std::vector<float> cpu(out_layout.frames[l]);
      design.process(std::span<const float>(in.data).subspan(in.layout.offset[l], in.layout.frames[l]), cpu);
      const float* gpu_lane = out.data() + out_layout.offset[l];
      double m = 0.0;
      for (std::size_t j = 0; j < cpu.size(); ++j) {
        m = std::max(m, std::abs(static_cast<double>(gpu_lane[j]) - cpu[j]));
        differing += gpu_lane[j] != cpu[j];
      }
      const double e = m / std::max(rms(cpu.data(), cpu.size()), kTiny);
      worst = std::max(worst, e);
      EXPECT_LE(e, kCpuRelativeError) << p.in_hz << "->" << p.out_hz << " lane " << l << " (" << in.layout.frames[l]
                                      << " frames)";
    }
    std::printf(
        "%6.0f -> %6.0f  %zu lanes, %zu output samples: worst relative error %.2e, %zu samples not bitwise "
        "equal to the CPU\n",
        p.in_hz, p.out_hz, in.layout.lanes(), out.size(), worst, differing);
  }
}

// The CPU render resamples with polyphase_stream (AVX2 where the CPU has it): the same dot
// products as the kernel, so the two backends' resampled audio is the same bits.
TEST(GpuResample, EqualsTheCpuRendersStreamBitForBit) {
  LATHE_REQUIRE_GPU();
  const gpu::stream s;
  for (const auto& p : kPairs) {
    if (p.in_hz == p.out_hz) continue;  // the render does not resample equal rates
    polyphase_resampler design;
    design.prepare(p.in_hz, p.out_hz);
    const batch in = make_batch(p.in_hz);
    const std::vector<float> out = gpu::resample(design, in.layout, in.data, s);
    const gpu::lane_layout out_layout = gpu::resampled_layout(in.layout, design);
    for (std::size_t l = 0; l < in.layout.lanes(); ++l) {
      const std::size_t n = in.layout.frames[l];
      audio_buffer lane(1, n);
      std::copy_n(in.data.data() + in.layout.offset[l], n, lane.channel(0));
      polyphase_stream stream(design, 1, n);
      std::vector<float> cpu;
      auto keep = [&](const_block_view v) { cpu.insert(cpu.end(), v[0], v[0] + v.frames); };
      stream.push(lane.view(), keep);
      stream.finish(keep);
      ASSERT_EQ(cpu.size(), out_layout.frames[l]);
      EXPECT_EQ(std::memcmp(cpu.data(), out.data() + out_layout.offset[l], cpu.size() * sizeof(float)), 0)
          << p.in_hz << "->" << p.out_hz << " lane " << l << " (" << n << " frames, AVX2 " << stream.uses_avx2() << ")";
    }
  }
}

TEST(GpuResample, AgreesWithSoxrOnBandLimitedSines) {
  LATHE_REQUIRE_GPU();
  const gpu::stream s;
  for (const auto& p : kPairs) {
    if (p.in_hz == p.out_hz) continue;
    polyphase_resampler design;
    design.prepare(p.in_hz, p.out_hz);
    const double nyq = 0.5 * std::min(p.in_hz, p.out_hz);
    // Two lanes of one second: a chord of sines below half the lower Nyquist, different per lane.
    gpu::lane_layout layout;
    std::vector<float> data;
    const auto n = static_cast<std::size_t>(p.in_hz);
    for (int lane = 0; lane < 2; ++lane) {
      layout.add(n);
      for (std::size_t i = 0; i < n; ++i) {
        const double t = static_cast<double>(i) / p.in_hz;
        data.push_back(static_cast<float>(0.3 * std::sin(2 * kPi * (97.0 + lane) * t) +
                                          0.2 * std::sin(2 * kPi * 0.21 * nyq * t) +
                                          0.1 * std::sin(2 * kPi * (0.47 - 0.1 * lane) * nyq * t)));
      }
    }
    const std::vector<float> out = gpu::resample(design, layout, data, s);
    const gpu::lane_layout out_layout = gpu::resampled_layout(layout, design);
    for (std::size_t l = 0; l < layout.lanes(); ++l) {
      audio_buffer x(1, n);
      std::copy_n(data.data() + layout.offset[l], n, x.channel(0));
      const audio_buffer ref = resample(x, p.in_hz, p.out_hz);
      ASSERT_EQ(ref.frames(), out_layout.frames[l]);
      const auto edge = static_cast<std::size_t>(kEdgeSeconds * p.out_hz);
      const std::size_t len = ref.frames() - 2 * edge;
      double m = 0.0;
      for (std::size_t j = edge; j < edge + len; ++j)
        m = std::max(m, std::abs(static_cast<double>(out[out_layout.offset[l] + j]) - ref.channel(0)[j]));
      const double e = m / std::max(rms(ref.channel(0) + edge, len), kTiny);
      std::printf("%6.0f -> %6.0f  lane %zu: max|gpu - soxr| / rms %.2e\n", p.in_hz, p.out_hz, l, e);
      EXPECT_LT(e, kSoxrRelativeError) << p.in_hz << "->" << p.out_hz << " lane " << l;
    }
  }
}

TEST(GpuResample, BitwiseRepeatableAndLanesIndependent) {
  LATHE_REQUIRE_GPU();
  const gpu::stream s;
  polyphase_resampler design;
  design.prepare(44'100, 48'000);
  const batch in = make_batch(44'100);
  // Two runs of the same batch through one filter and one set of tables.
  const gpu::resample_filter filter(design, s);
  const gpu::resample_batch tables(design, in.layout, s);
  gpu::device_vector<float> d_in(in.layout.total_frames);
  d_in.upload_async(in.data, s);
  std::vector<float> first, second;
  for (std::vector<float>* result : {&first, &second}) {
    gpu::device_vector<float> d_out(tables.output_layout().total_frames);
    d_out.zero_async(s);
    tables.run_async(filter, d_in.data(), d_out.data(), s);
    result->resize(d_out.size());
    d_out.download_async(*result, s);
    s.synchronize();
  }
  ASSERT_EQ(first.size(), second.size());
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0);
  // Each lane alone in its own batch gives the same bits as inside the big batch.
  const gpu::lane_layout& out_layout = tables.output_layout();
  for (std::size_t l = 0; l < in.layout.lanes(); ++l) {
    gpu::lane_layout alone;
    alone.add(in.layout.frames[l]);
    const std::vector<float> y = gpu::resample(
        design, alone, std::span<const float>(in.data).subspan(in.layout.offset[l], in.layout.frames[l]), s);
    ASSERT_EQ(y.size(), out_layout.frames[l]);
    EXPECT_EQ(std::memcmp(y.data(), first.data() + out_layout.offset[l], y.size() * sizeof(float)), 0) << "lane " << l;
  }
}

TEST(GpuResample, RejectsAFilterForAnotherRatePair) {
  LATHE_REQUIRE_GPU();
  const gpu::stream s;
  polyphase_resampler a, b;
  a.prepare(44'100, 48'000);
  b.prepare(48'000, 44'100);
  gpu::lane_layout layout;
  layout.add(100);
  const gpu::resample_filter filter_b(b, s);
  const gpu::resample_batch tables_a(a, layout, s);
  EXPECT_THROW(tables_a.run_async(filter_b, nullptr, nullptr, s), lathe::logic_error);
}

}  // namespace
}  // namespace lathe
