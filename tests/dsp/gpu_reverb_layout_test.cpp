// Host-side index math of the GPU reverb (kernels/include/lathe_gpu/detail/reverb_layout.hpp),
// checked on the CPU: the frame count run_aligned pushes through a stage, and the whole GPU
// scheme (pre-delay padding, routing passes over lane subsets, true-stereo combine, wet filters,
// mix, per-lane energies) emulated with the very element functions the kernels call, the
// convolutions done directly in float64, against the CPU chain's run_aligned(reverb_stage).
// Runs without a GPU and without CUDA.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/reverb.hpp"
#include "lathe_gpu/detail/reverb_layout.hpp"
#include "support/reverb_stats_checks.hpp"
#include "support/signals.hpp"

namespace {

using namespace lathe;
using gpu::lane_layout;
namespace d = gpu::detail;

// The CPU stage convolves with float32 FFTs; the emulation in float64: -100 dB, the GPU target.
constexpr double output_rel_tolerance = 1e-5;
// The GPU stage's promise for the statistics.
constexpr double stats_tolerance_db = 1e-3;

// A stage that only counts the frames pushed through it (output: zeros).
struct counting_stage {
  std::size_t latency = 0;
  std::uint64_t frames = 0;
  void prepare(const stream_spec&) {}
  void reset() noexcept { frames = 0; }
  void process(const_block_view in, block_view out) noexcept {
    frames += in.frames;
    for (int c = 0; c < out.channels; ++c) std::fill_n(out[c], out.frames, 0.0f);
  }
  std::size_t latency_frames() const noexcept { return latency; }
};

TEST(GpuReverbLayout, ProcessedFramesMatchRunAligned) {
  for (std::size_t latency : {0u, 1u, 64u, 4'096u, 5'000u}) {
    for (std::size_t block : {1u, 7u, 1'000u, 4'096u, 8'192u}) {
      for (std::size_t n : {0u, 1u, 2u, 63u, 999u, 4'095u, 4'096u, 4'097u, 8'193u, 20'011u}) {
        if (block == 1 && n + latency > 10'000) continue;  // slow and adds nothing
        counting_stage st{latency};
        audio_buffer buf(1, n);
        run_aligned(st, buf, block);
        EXPECT_EQ(d::run_aligned_processed_frames(n, latency, block), st.frames)
            << "n " << n << " latency " << latency << " block " << block;
      }
    }
  }
}

TEST(GpuReverbLayout, GeometryCoversEveryWetLaneOnce) {
  lane_layout layout;
  for (std::size_t n : {5u, 0u, 4'097u, 1u}) {
    layout.add(n);
    layout.add(n);
  }
  const d::reverb_geometry g = d::make_reverb_geometry(layout, 256, 1'000, 100);
  ASSERT_EQ(g.lanes.size(), 8u);
  std::vector<int> seen(g.wet.total_frames, 0);
  for (const d::reverb_chunk& c : g.chunks) {
    ASSERT_LT(c.lane, g.lanes.size());
    ASSERT_LE(c.start + c.length, g.lanes[c.lane].wet_frames);
    for (std::uint32_t t = 0; t < c.length; ++t) ++seen[g.lanes[c.lane].wet_offset + c.start + t];
  }
  for (int v : seen) EXPECT_EQ(v, 1);
  for (std::size_t l = 0; l < g.lanes.size(); ++l) {
    EXPECT_EQ(g.lanes[l].partner_wet_offset, g.lanes[l ^ 1].wet_offset);
    EXPECT_EQ(g.lanes[l].in_offset, layout.offset[l]);
    // Aligned wet frames counted by the stats: at least the track (F >= N + L).
    if (layout.frames[l] > 0) {
      EXPECT_GE(g.lanes[l].wet_frames, layout.frames[l] + 0u);
    }
  }
  EXPECT_EQ(g.wet_left.lanes() + g.wet_right.lanes(), g.wet.lanes());
  lane_layout odd;
  odd.add(3);
  EXPECT_THROW(d::make_reverb_geometry(odd, 256, 1'000, 100), logic_error);
}

// ---- the whole scheme, emulated -------------------------------------------------------------

// What gpu_convolver computes for the lanes of `lanes` (delay 0): out[i] = sum_k h[k] in[i - k],
// in = 0 outside the lane, float64 then rounded once.
void convolve_lanes(const std::vector<float>& h, const lane_layout& lanes, const std::vector<float>& in,
                    std::vector<float>& out) {
  for (std::size_t l = 0; l < lanes.lanes(); ++l) {
    const std::size_t off = lanes.offset[l], n = lanes.frames[l];
    for (std::size_t i = 0; i < n; ++i) {
      double acc = 0.0;
      for (std::size_t k = 0; k < h.size() && k <= i; ++k) acc += static_cast<double>(h[k]) * in[off + i - k];
      out[off + i] = static_cast<float>(acc);
    }
  }
}

// One biquad section over each lane from zero state, float64 state, float output (the CPU's
// wet filter and what one single-section iir_plan computes).
void filter_lanes(const biquad_coeffs& k, const lane_layout& lanes, std::vector<float>& w) {
  for (std::size_t l = 0; l < lanes.lanes(); ++l) {
    double s1 = 0.0, s2 = 0.0;
    float* x = w.data() + lanes.offset[l];
    for (std::size_t i = 0; i < lanes.frames[l]; ++i) {
      const double xi = x[i];
      const double y = k.b0 * xi + s1;
      s1 = k.b1 * xi - k.a1 * y + s2;
      s2 = k.b2 * xi - k.a2 * y;
      x[i] = static_cast<float>(y);
    }
  }
}

struct emulated {
  std::vector<float> out;
  std::vector<reverb_stats> stats;
};

// reverb_batch, step by step, with the layout header's functions.
emulated emulate_reverb_batch(const reverb_params& params, std::shared_ptr<const impulse_response> ir, double fs,
                              const lane_layout& layout, const std::vector<float>& in, std::size_t chain_block) {
  reverb_stage cpu(params, std::move(ir));
  cpu.prepare({fs, 2, 1});
  const d::reverb_geometry g = d::make_reverb_geometry(layout, cpu.latency_frames(), chain_block, 97);
  std::vector<float> padded(g.wet.total_frames), w0(g.wet.total_frames), w1(g.wet.total_frames);
  for (const d::reverb_chunk& c : g.chunks)
    for (std::uint32_t t = 0; t < c.length; ++t) {
      const d::reverb_lane& l = g.lanes[c.lane];
      padded[l.wet_offset + c.start + t] = d::reverb_padded_input(l, in.data(), c.start + t, cpu.pre_delay_frames());
    }
  const audio_buffer& h = cpu.resampled_ir();
  for (const d::reverb_conv_pass& p : d::reverb_conv_passes(cpu.routing())) {
    const lane_layout& lanes = p.lanes == d::reverb_lanes::all    ? g.wet
                               : p.lanes == d::reverb_lanes::left ? g.wet_left
                                                                  : g.wet_right;
    const auto ch = h.span(p.ir_channel);
    convolve_lanes(std::vector<float>(ch.begin(), ch.end()), lanes, padded, p.target == d::reverb_target::w0 ? w0 : w1);
  }
  if (cpu.routing() == reverb_routing::true_stereo) {
    for (const d::reverb_chunk& c : g.chunks)
      for (std::uint32_t t = 0; t < c.length; ++t) {
        const d::reverb_lane& l = g.lanes[c.lane];
        w0[l.wet_offset + c.start + t] = d::reverb_combined(l, w0.data(), w1.data(), c.start + t);
      }
  }
  for (const biquad_coeffs& k : cpu.wet_filter_sections()) filter_lanes(k, g.wet, w0);
  emulated e;
  e.out.assign(in.size(), -1.0f);
  const std::size_t tracks = layout.lanes() / 2;
  std::vector<double> dry(tracks, 0.0), wet(tracks, 0.0);
  for (const d::reverb_chunk& c : g.chunks)
    for (std::uint32_t t = 0; t < c.length; ++t) {
      const d::reverb_lane& l = g.lanes[c.lane];
      const std::uint64_t j = c.start + t;
      const float ws = d::reverb_wet_scaled(w0[l.wet_offset + j], cpu.wet_gain());
      wet[c.lane / 2] += static_cast<double>(ws) * ws;
      if (j < l.frames) {
        const float x = in[l.in_offset + j];
        dry[c.lane / 2] += static_cast<double>(x) * x;
        e.out[l.in_offset + j] = d::reverb_mix(x, cpu.dry_gain(), ws);
      }
    }
  for (std::size_t t = 0; t < tracks; ++t)
    e.stats.push_back(make_reverb_stats(dry[t], wet[t], g.processed_frames[t], 2));
  return e;
}

std::shared_ptr<const impulse_response> noise_ir(int channels, double rate_hz, std::size_t frames) {
  auto ir = std::make_shared<impulse_response>();
  ir->path = "in-memory";
  ir->sample_rate_hz = rate_hz;
  ir->audio = test::white_noise(-12.0, static_cast<double>(frames) / rate_hz, rate_hz, channels, 31);
  for (int c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < ir->audio.frames(); ++i)
      ir->audio.channel(c)[i] *= static_cast<float>(std::exp(-5.0 * static_cast<double>(i) / frames));
  return ir;
}

TEST(GpuReverbLayout, EmulationMatchesCpuStage) {
  constexpr double fs = 48'000.0;
  const std::vector<std::size_t> lengths = {1, 2, 97, 1'009, 4'095, 4'097, 9'973};
  struct config {
    int ir_channels;
    double pre_delay_ms, low_cut_hz, high_cut_hz;
    nonuniform_layout layout;
    std::size_t chain_block;
  };
  const std::vector<config> configs = {
      {1, 0.0, 0.0, 0.0, {256, 1'024, 2}, 8'192},
      {2, 3.3, 150.0, 0.0, {256, 1'024, 2}, 1'000},  // flush of several short blocks
      {4, 10.0, 120.0, 9'000.0, {1'024, 4'096, 2}, 8'192},
      {4, 0.0, 0.0, 6'000.0, {256, 512, 1}, 300},
  };
  for (const config& cfg : configs) {
    SCOPED_TRACE("IR channels " + std::to_string(cfg.ir_channels) + ", chain block " + std::to_string(cfg.chain_block));
    reverb_params p;
    p.pre_delay_ms = cfg.pre_delay_ms;
    p.low_cut_hz = cfg.low_cut_hz;
    p.high_cut_hz = cfg.high_cut_hz;
    p.layout = cfg.layout;
    p.wet_db = -6.0;
    p.dry_db = -1.0;
    const auto ir = noise_ir(cfg.ir_channels, 44'100.0, 700);  // resampled to 48 kHz

    lane_layout layout;
    std::vector<float> in;
    std::vector<audio_buffer> tracks;
    std::mt19937 rng(5);
    std::normal_distribution<float> gauss(0.0f, 0.2f);
    for (std::size_t n : lengths) {
      audio_buffer t(2, n);
      for (int c = 0; c < 2; ++c) {
        layout.add(n);
        for (std::size_t i = 0; i < n; ++i) t.channel(c)[i] = gauss(rng);
        in.insert(in.end(), t.channel(c), t.channel(c) + n);
      }
      tracks.push_back(std::move(t));
    }
    const emulated e = emulate_reverb_batch(p, ir, fs, layout, in, cfg.chain_block);

    for (std::size_t t = 0; t < tracks.size(); ++t) {
      SCOPED_TRACE("track of " + std::to_string(lengths[t]) + " frames");
      reverb_stage st(p, ir);
      st.prepare({fs, 2, cfg.chain_block});
      audio_buffer y = tracks[t];
      run_aligned(st, y, cfg.chain_block);
      for (int c = 0; c < 2; ++c) {
        const float* cpu = y.channel(c);
        const float* emu = e.out.data() + layout.offset[2 * t + static_cast<std::size_t>(c)];
        double rms = 0.0, worst = 0.0;
        for (std::size_t i = 0; i < y.frames(); ++i) {
          rms += static_cast<double>(cpu[i]) * cpu[i];
          worst = std::max(worst, std::abs(static_cast<double>(emu[i]) - cpu[i]));
        }
        rms = std::sqrt(rms / static_cast<double>(y.frames()));
        EXPECT_LE(worst / std::max(rms, 1e-20), output_rel_tolerance) << "channel " << c;
      }
      test::expect_reverb_stats_near(e.stats[t], st.stats(), stats_tolerance_db);
    }
  }
}

}  // namespace
