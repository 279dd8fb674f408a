// GPU biquad cascades (kernels/dsp/iir.cu) against the CPU: highpass_stage and the loudness meter's
// K-weighting recursion, on several lanes of different lengths in one batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gpu/analysis_support.hpp"
#include "gpu/gpu_test_support.hpp"
#include "lathe/highpass.hpp"
#include "lathe_gpu/iir.hpp"

namespace {

using namespace lathe;
using namespace lathe::gpu;

// The GPU contract: max |gpu - cpu| / rms(cpu) per lane (-100 dB).
constexpr double rel_tolerance = 1e-5;

// Lanes straddling warp (32), block (128 chunks), tile (32) and chunk (256, 4096) sizes, a
// prime, plus five seconds of music; noise with DC so the high-pass's slow tail matters.
test::lane_batch make_batch(double fs) {
  return test::noise_lanes_and_song({1, 31, 32, 33, 255, 256, 257, 4095, 4096, 4097, 3 * 4096 + 17, 100'003}, 0.1f,
                                    0.3f, 11, 5.0, fs);
}

std::vector<float> run_gpu(const std::vector<biquad_coeffs>& sections, const test::lane_batch& b, std::size_t chunk,
                           bool in_place) {
  stream s;
  device_vector<float> d_in(b.host.size()), d_out(b.host.size());
  d_in.upload_async(b.host, s);
  iir_plan plan(sections, b.layout, s, chunk);
  plan.process_async(d_in.data(), in_place ? d_in.data() : d_out.data(), s);
  std::vector<float> out(b.host.size());
  (in_place ? d_in : d_out).download_async(out, s);
  s.synchronize();
  return out;
}

TEST(GpuIir, HighpassMatchesCpuStageOnEveryLane) {
  LATHE_REQUIRE_GPU();
  for (double fs : {44'100.0, 192'000.0}) {
    const test::lane_batch b = make_batch(fs);
    for (const highpass_params p :
         {highpass_params{20.0, 8, 2.0}, highpass_params{30.0, 3, 2.0}, highpass_params{0.0, 4, 2.0}}) {
      for (std::size_t chunk : {256, 4096}) {
        const std::vector<float> got = run_gpu(highpass_sections(p, fs), b, chunk, false);
        for (std::size_t l = 0; l < b.layout.lanes(); ++l) {
          const std::size_t n = b.layout.frames[l];
          const float* x = b.host.data() + b.layout.offset[l];
          std::vector<float> ref(n);
          highpass_stage hp(p);
          hp.prepare(stream_spec{fs, 1, n});
          hp.process(const_block_view{{x}, 1, n}, block_view{{ref.data()}, 1, n});
          EXPECT_LE(test::relative_error(got.data() + b.layout.offset[l], ref.data(), n), rel_tolerance)
              << fs << " Hz, order " << p.order << ", chunk " << chunk << ", lane of " << n;
        }
      }
    }
  }
}

TEST(GpuIir, KWeightingMatchesCpuRecursion) {
  LATHE_REQUIRE_GPU();
  const double fs = 48'000.0;
  const test::lane_batch b = make_batch(fs);
  const auto sections = k_weighting_sections(fs);
  const std::vector<float> got = run_gpu(sections, b, iir_plan::default_chunk_frames, false);
  for (std::size_t l = 0; l < b.layout.lanes(); ++l) {
    const std::size_t n = b.layout.frames[l];
    const float* x = b.host.data() + b.layout.offset[l];
    biquad pre, rlb;  // the meter's chain: float64 between the two sections
    pre.set(sections[0]);
    rlb.set(sections[1]);
    std::vector<float> ref(n);
    for (std::size_t i = 0; i < n; ++i) ref[i] = static_cast<float>(rlb.tick(pre.tick(x[i])));
    EXPECT_LE(test::relative_error(got.data() + b.layout.offset[l], ref.data(), n), rel_tolerance) << "lane of " << n;
  }
}

TEST(GpuIir, RepeatableAndInPlaceBitwise) {
  LATHE_REQUIRE_GPU();
  const test::lane_batch b = make_batch(44'100.0);
  const auto sections = highpass_sections(highpass_params{}, 44'100.0);
  const std::vector<float> first = run_gpu(sections, b, 4096, false);
  const std::vector<float> second = run_gpu(sections, b, 4096, false);
  const std::vector<float> in_place = run_gpu(sections, b, 4096, true);
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(first.data(), in_place.data(), first.size() * sizeof(float)), 0);
}

}  // namespace
