// GPU quantizer (kernels/dsp/dither.cu) against lathe::quantize with shaping none: bit-identical
// int32 output and clamp counts for identical float input, for several stereo tracks of
// different lengths (1, around warp and block sizes, several blocks) in one batch, at 8, 16
// and 24 bits, with and without dither; bitwise repeatable. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "gpu/gpu_test_support.hpp"
#include "lathe/dither.hpp"
#include "lathe_gpu/dither.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe {
namespace {

struct gpu_run {
  std::vector<std::int32_t> out;
  std::vector<quantize_stats> stats;
};

gpu_run run_gpu(const std::vector<audio_buffer>& tracks, const quantize_params& qp,
                const std::vector<std::uint64_t>& seeds) {
  gpu::lane_layout layout;
  for (const audio_buffer& t : tracks) {
    layout.add(t.frames());
    layout.add(t.frames());
  }
  std::vector<float> host(layout.total_frames);
  for (std::size_t t = 0; t < tracks.size(); ++t)
    for (int c = 0; c < 2; ++c)
      std::copy(tracks[t].channel(c), tracks[t].channel(c) + tracks[t].frames(),
                host.begin() + layout.offset[2 * t + static_cast<std::size_t>(c)]);
  gpu::stream s;
  gpu::batch_quantizer q;
  q.prepare(layout, s);
  EXPECT_EQ(q.output_size(), layout.total_frames);  // two lanes per track, interleaved
  gpu::device_vector<float> d_in(host.size());
  gpu::device_vector<std::int32_t> d_out(q.output_size());
  d_in.upload_async(host, s);
  gpu_run r;
  r.stats = q.quantize(d_in.data(), d_out.data(), qp, seeds, s);
  r.out.resize(q.output_size());
  d_out.download_async(r.out, s);
  s.synchronize();
  return r;
}

TEST(GpuDither, BitIdenticalToQuantizeShapingNone) {
  LATHE_REQUIRE_GPU();
  std::mt19937 rng(77);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f);  // some samples clamp
  std::vector<audio_buffer> tracks;
  std::vector<std::uint64_t> seeds;
  for (std::size_t frames : {1u, 31u, 32u, 33u, 127u, 128u, 129u, 255u, 256u, 257u, 48'001u}) {
    audio_buffer b(2, frames);
    for (int c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < frames; ++i) b.channel(c)[i] = u(rng) * (i % 5 == 0 ? 1e-4f : 1.0f);
    tracks.push_back(std::move(b));
    seeds.push_back(0x5EED0000ull + 977ull * seeds.size());
  }
  const std::vector<std::size_t> offsets = gpu::quantize_output_offsets([&] {
    gpu::lane_layout l;
    for (const auto& t : tracks) {
      l.add(t.frames());
      l.add(t.frames());
    }
    return l;
  }());
  for (int bits : {8, 16, 24}) {
    for (bool dither : {true, false}) {
      quantize_params qp;
      qp.bit_depth = bits;
      qp.dither = dither;
      const gpu_run a = run_gpu(tracks, qp, seeds);
      const gpu_run b = run_gpu(tracks, qp, seeds);
      ASSERT_EQ(a.out, b.out) << "not bitwise repeatable";
      std::size_t total_clipped = 0;
      for (std::size_t t = 0; t < tracks.size(); ++t) {
        quantize_params tp = qp;
        tp.seed = seeds[t];
        std::vector<std::int32_t> ref;
        const quantize_stats rs = quantize(tracks[t], tp, ref);
        ASSERT_EQ(ref.size(), offsets[t + 1] - offsets[t]);
        EXPECT_EQ(std::memcmp(ref.data(), a.out.data() + offsets[t], ref.size() * sizeof(std::int32_t)), 0)
            << "bits " << bits << " dither " << dither << " track " << t;
        EXPECT_EQ(a.stats[t].clipped_samples, rs.clipped_samples) << "track " << t;
        EXPECT_EQ(b.stats[t].clipped_samples, rs.clipped_samples);
        total_clipped += rs.clipped_samples;
      }
      EXPECT_GT(total_clipped, 0u) << "material must exercise the clamp";
    }
  }
}

TEST(GpuDither, RejectsNoiseShaping) {
  LATHE_REQUIRE_GPU();
  gpu::lane_layout layout;
  layout.add(10);
  layout.add(10);
  gpu::stream s;
  gpu::batch_quantizer q;
  q.prepare(layout, s);
  gpu::device_vector<float> d_in(20);
  gpu::device_vector<std::int32_t> d_out(20);
  quantize_params qp;
  qp.shaping = noise_shaping::first_order;
  const std::vector<std::uint64_t> seeds = {1};
  EXPECT_THROW(q.quantize_async(d_in.data(), d_out.data(), qp, seeds, s), lathe::error);
}

}  // namespace
}  // namespace lathe
