// GPU per-frame peaks (kernels/analysis/true_peak.cu) against the CPU detectors: true_peak_interpolator
// and the limiter's meter_peak_interpolator, with the flushed tail offline_limiter::analyze uses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gpu/analysis_support.hpp"
#include "gpu/gpu_test_support.hpp"
#include "lathe/limiter.hpp"
#include "lathe/true_peak.hpp"
#include "lathe_gpu/true_peak.hpp"

namespace {

using namespace lathe;
using namespace lathe::gpu;

// The GPU contract: max |gpu - cpu| / rms(cpu) per lane (-100 dB). The device repeats the CPU's
// float operations in order, so equality is expected; the contract is what is required.
constexpr double rel_tolerance = 1e-5;

// Lanes straddling warp (32), block (256 threads) and tile (1024) sizes, a prime, and music.
test::lane_batch make_batch(double fs) {
  return test::noise_lanes_and_song({1, 31, 32, 33, 255, 256, 257, 1023, 1024, 1025, 5003}, 0.0f, 0.3f, 7, 2.0, fs);
}

struct gpu_result {
  std::vector<float> peaks;
  std::vector<float> lane_max;
};

gpu_result run_gpu(const peak_filter& f, const test::lane_batch& b, std::size_t extra) {
  stream s;
  device_vector<float> d_in(b.host.size());
  d_in.upload_async(b.host, s);
  peak_plan plan(f, b.layout, extra, s);
  device_vector<float> d_out(plan.output_layout().total_frames);
  plan.run_async(d_in.data(), d_out.data(), s);
  gpu_result r;
  r.lane_max = plan.lane_max(s);  // synchronizes
  r.peaks.resize(d_out.size());
  d_out.download_async(r.peaks, s);
  s.synchronize();
  return r;
}

// The CPU detector over the lane then `extra` zeros, as offline_limiter::analyze runs it.
template <class Detector>
std::vector<float> cpu_peaks(Detector& d, const float* x, std::size_t n, std::size_t extra) {
  std::vector<float> out(n + extra);
  const std::vector<float> zeros(extra, 0.0f);
  d.process(x, out.data(), n);
  d.process(zeros.data(), out.data() + n, extra);
  return out;
}

TEST(GpuTruePeak, BothDetectorsMatchTheCpuWithFlushedTail) {
  LATHE_REQUIRE_GPU();
  for (double fs : {44'100.0, 96'000.0, 192'000.0}) {
    const test::lane_batch b = make_batch(fs);
    const peak_filter tp = true_peak_filter(fs);
    const peak_filter meter = meter_peak_filter(fs, tp.latency_frames);
    const std::size_t extra = tp.latency_frames + 1 + 88;  // the limiter's latency at 2 ms lookahead
    for (const peak_filter* f : {&tp, &meter}) {
      const gpu_result got = run_gpu(*f, b, extra);
      const lane_layout out = peak_output_layout(b.layout, extra);
      ASSERT_EQ(got.peaks.size(), out.total_frames);
      for (std::size_t l = 0; l < b.layout.lanes(); ++l) {
        const float* x = b.host.data() + b.layout.offset[l];
        const std::size_t n = b.layout.frames[l];
        std::vector<float> ref;
        if (f == &tp) {
          true_peak_interpolator d;
          d.prepare(fs);
          ref = cpu_peaks(d, x, n, extra);
        } else {
          lathe::detail::meter_peak_interpolator d;
          d.prepare(fs, tp.latency_frames);
          ref = cpu_peaks(d, x, n, extra);
        }
        EXPECT_LE(test::relative_error(got.peaks.data() + out.offset[l], ref.data(), ref.size()), rel_tolerance)
            << fs << " Hz, " << (f == &tp ? "true-peak" : "meter") << " detector, lane of " << n;
        const float ref_max = *std::max_element(ref.begin(), ref.end());
        EXPECT_NEAR(got.lane_max[l], ref_max, rel_tolerance * ref_max) << "lane max, lane of " << n;
      }
    }
  }
}

TEST(GpuTruePeak, RepeatableBitwise) {
  LATHE_REQUIRE_GPU();
  const test::lane_batch b = make_batch(44'100.0);
  const peak_filter tp = true_peak_filter(44'100.0);
  const gpu_result first = run_gpu(tp, b, tp.latency_frames);
  const gpu_result second = run_gpu(tp, b, tp.latency_frames);
  ASSERT_EQ(first.peaks.size(), second.peaks.size());
  EXPECT_EQ(std::memcmp(first.peaks.data(), second.peaks.data(), first.peaks.size() * sizeof(float)), 0);
  EXPECT_EQ(first.lane_max, second.lane_max);
}

}  // namespace
