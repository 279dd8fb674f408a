// The GPU tone stages' decomposition, run on the CPU: the chunk pyramids of kernels/dsp/saturation.cu
// and the mid/side passes and meter-window reductions of kernels/dsp/stereo.cu, emulated loop for
// loop with the very per-sample bodies and index math the kernels call
// (kernels/include/lathe_gpu/detail/tone_layout.hpp), against the CPU stages through
// lathe::run_aligned (the chain's semantics). Runs without a GPU: until a device runs
// tests/gpu/{saturation,stereo}_test.cpp this is the evidence that the decomposition is right.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "demo_catalog.hpp"
#include "lathe/eq.hpp"
#include "lathe/saturation.hpp"
#include "lathe/stereo.hpp"
#include "lathe_gpu/detail/tone_layout.hpp"
#include "lathe_gpu/lanes.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

namespace gd = gpu::detail;

constexpr double fs = 44'100.0;
// Outputs: the emulation does the CPU's float operations in the CPU's order, so it must match
// bit for bit (saturation) or to the convolver's float rounding where the FIR runs on
// separately fed instances (stereo: relative to the lane's RMS).
constexpr double stereo_rel_tolerance = 1e-6;
// Statistics: the same float64 sums in another order (CPU per block, here per thread and tree).
constexpr double correlation_tolerance = 1e-9;
constexpr double ratio_tolerance_db = 1e-7;

// White noise lanes of the given lengths (mono buffers), -12 dBFS RMS.
std::vector<std::vector<float>> noise_lanes(const std::vector<std::size_t>& lengths, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 0.25);
  std::vector<std::vector<float>> lanes;
  for (std::size_t n : lengths) {
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(g(rng));
    lanes.push_back(std::move(v));
  }
  return lanes;
}

// ---- saturation --------------------------------------------------------------------------

// The CPU chain: run_aligned(saturation_stage) on one lane.
std::vector<float> cpu_saturation(const saturation_params& p, const std::vector<float>& x) {
  audio_buffer b(1, x.size());
  std::copy(x.begin(), x.end(), b.channel(0));
  saturation_stage st(p);
  st.prepare({fs, 1, gd::chain_block_frames});
  run_aligned(st, b, gd::chain_block_frames);
  return {b.channel(0), b.channel(0) + b.frames()};
}

gd::sat_taps_view view_of(const saturation_taps& t) {
  return {t.pos.data(), t.coeff.data(), static_cast<std::uint32_t>(t.size())};
}

// kernels/dsp/saturation.cu, one chunk at a time: sat_up_kernel for s = 0..S-1 (thread j writes
// 2j and 2j + 1), then sat_down_kernel for s = S-1..0. The scratch is NaN outside what has been
// written, so a read of a sample no thread computed poisons the output; every range is checked
// against the plan's capacities and every read against the range it reads.
std::vector<float> emulate_saturation(const saturation_params& p, const std::vector<float>& lane,
                                      std::size_t chunk_frames) {
  const saturation_design d = design_saturation(p);
  const gd::sat_plan plan = gd::make_sat_plan(d, chunk_frames);
  const gd::sat_geometry& g = plan.geometry;
  const int S = g.stages;
  gpu::lane_layout layout;
  layout.add(lane.size());
  const gpu::chunk_table chunks = gpu::make_chunks(layout, chunk_frames);
  std::vector<float> out(lane.size(), std::numeric_limits<float>::quiet_NaN());
  const auto n = static_cast<std::int64_t>(lane.size());
  std::vector<float> scratch(plan.floats_per_chunk);
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    const auto a = static_cast<std::int64_t>(chunks.start[c]);
    const std::int64_t b = a + chunks.length[c];
    const gd::sat_ranges r = gd::sat_chunk_ranges(g, a, b);
    std::fill(scratch.begin(), scratch.end(), std::numeric_limits<float>::quiet_NaN());
    if (S == 0) {
      for (std::int64_t i = a; i < b; ++i) {
        const float x = lane[static_cast<std::size_t>(i)];
        out[static_cast<std::size_t>(i)] = gd::sat_mix(saturation_shape(x, d.drive, d.trim), x, d.wet, d.dry);
      }
      continue;
    }
    for (int s = 1; s <= S; ++s) {
      EXPECT_LE(static_cast<std::size_t>(r.x_hi[s] - r.x_lo[s]), plan.x_cap[s]) << "x level " << s;
      if (s < S) EXPECT_LE(static_cast<std::size_t>(r.u_hi[s] - r.u_lo[s]), plan.u_cap[s]) << "u level " << s;
      EXPECT_EQ(r.x_lo[s] % 2, 0);
      EXPECT_EQ(r.x_hi[s] % 2, 0);
    }
    for (int s = 0; s < S; ++s) {
      const saturation_oversampling_stage& st = d.stages[static_cast<std::size_t>(s)];
      const gd::sat_taps_view up0 = view_of(st.up[0]), up1 = view_of(st.up[1]);
      const std::int64_t jlo = r.x_lo[s + 1] / 2, jhi = r.x_hi[s + 1] / 2;
      // Reads of level s: [jlo + up_min, jhi - 1 + up_max] must lie in its range.
      EXPECT_GE(jlo + g.up_min[s], r.x_lo[s]);
      EXPECT_LE(jhi - 1 + g.up_max[s], r.x_hi[s] - 1);
      for (std::int64_t j = jlo; j < jhi; ++j) {
        float v0, v1;
        if (s == 0) {
          v0 = gd::sat_tap_sum_padded(up0, lane.data(), n, j);
          v1 = gd::sat_tap_sum_padded(up1, lane.data(), n, j);
        } else {
          const float* src = scratch.data() + plan.x_off[s];
          v0 = gd::sat_tap_sum(up0, src, j - r.x_lo[s]);
          v1 = gd::sat_tap_sum(up1, src, j - r.x_lo[s]);
        }
        if (s == S - 1) {
          v0 = saturation_shape(v0, d.drive, d.trim);
          v1 = saturation_shape(v1, d.drive, d.trim);
        }
        float* dst = scratch.data() + plan.x_off[s + 1] + (2 * j - r.x_lo[s + 1]);
        dst[0] = v0;
        dst[1] = v1;
      }
    }
    for (int s = S - 1; s >= 0; --s) {
      const gd::sat_taps_view down = view_of(d.stages[static_cast<std::size_t>(s)].down);
      const std::size_t src_off = s == S - 1 ? plan.x_off[S] : plan.u_off[s + 1];
      const std::int64_t src_lo = s == S - 1 ? r.x_lo[S] : r.u_lo[s + 1];
      const std::int64_t src_hi = s == S - 1 ? r.x_hi[S] : r.u_hi[s + 1];
      EXPECT_GE(2 * r.u_lo[s] + g.down_min[s], src_lo);
      EXPECT_LE(2 * (r.u_hi[s] - 1) + g.down_max[s], src_hi - 1);
      for (std::int64_t i = r.u_lo[s]; i < r.u_hi[s]; ++i) {
        const float v = gd::sat_tap_sum(down, scratch.data() + src_off, 2 * i - src_lo);
        if (s == 0) {
          const auto y = static_cast<std::size_t>(i - g.latency);
          EXPECT_TRUE(y < lane.size());
          if (y < lane.size()) out[y] = gd::sat_mix(v, lane[y], d.wet, d.dry);
        } else {
          scratch[plan.u_off[s] + static_cast<std::size_t>(i - r.u_lo[s])] = v;
        }
      }
    }
  }
  return out;
}

std::size_t mismatches(const std::vector<float>& a, const std::vector<float>& b, double& max_abs) {
  std::size_t bad = 0;
  max_abs = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) ++bad;
    max_abs = std::max(max_abs, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return bad;
}

TEST(GpuToneLayout, SaturationChunkPyramidsEqualTheCpuStageBitwise) {
  std::vector<saturation_params> cases(5);
  cases[0].drive_db = 9.0, cases[0].mix = 0.7;  // 8x
  cases[1].drive_db = 12.0, cases[1].output_db = -6.0, cases[1].oversampling = 16;
  cases[2].drive_db = 3.0, cases[2].oversampling = 2, cases[2].mix = 0.5;
  cases[3].drive_db = 6.0, cases[3].oversampling = 4, cases[3].filter_attenuation_db = 90.0;
  cases[4].drive_db = 18.0, cases[4].oversampling = 1, cases[4].mix = 0.3;
  for (const std::size_t chunk : {std::size_t{37}, std::size_t{1'000}}) {
    const std::vector<std::size_t> lengths = {1, 2, 31, 257, chunk - 1, chunk, chunk + 1, 3 * chunk + 17, 7'919};
    const std::vector<std::vector<float>> lanes = noise_lanes(lengths, 11);
    for (const saturation_params& p : cases) {
      for (std::size_t l = 0; l < lanes.size(); ++l) {
        const std::vector<float> want = cpu_saturation(p, lanes[l]);
        const std::vector<float> got = emulate_saturation(p, lanes[l], chunk);
        double max_abs = 0.0;
        EXPECT_EQ(mismatches(got, want, max_abs), 0u)
            << "oversampling " << p.oversampling << ", chunk " << chunk << ", lane of " << lengths[l]
            << " frames: max |diff| " << max_abs;
      }
    }
  }
}

TEST(GpuToneLayout, SaturationPlanAtTheKernelChunkSizeOnMusic) {
  // The kernels' chunk size on a music-like stereo song; both channels.
  saturation_params p;
  p.drive_db = 6.0;
  p.output_db = -6.0;
  p.mix = 0.3;
  demo_track_spec spec;
  spec.seconds = 1.5;
  spec.sample_rate_hz = fs;
  const audio_buffer song = synthesize_song(spec);
  for (int c = 0; c < 2; ++c) {
    const std::vector<float> x(song.channel(c), song.channel(c) + song.frames());
    const std::vector<float> want = cpu_saturation(p, x);
    const std::vector<float> got = emulate_saturation(p, x, 8'192);
    double max_abs = 0.0;
    EXPECT_EQ(mismatches(got, want, max_abs), 0u) << "channel " << c << ": max |diff| " << max_abs;
  }
  const gd::sat_plan plan = gd::make_sat_plan(design_saturation(p), 8'192);
  std::printf("8x, chunk 8192: %zu floats of scratch per chunk (top level %zu)\n", plan.floats_per_chunk,
              plan.x_cap[3]);
}

// ---- stereo ------------------------------------------------------------------------------

struct stereo_result {
  audio_buffer out;
  stereo_stats stats;
};

stereo_result cpu_stereo(const stereo_params& p, const audio_buffer& x) {
  audio_buffer b = x;
  stereo_stage st(p);
  st.prepare({fs, 2, gd::chain_block_frames});
  run_aligned(st, b, gd::chain_block_frames);
  return {std::move(b), st.stats()};
}

// kernels/dsp/stereo.cu for one track: stereo_side_kernel over the side lane (zero past the end),
// the side FIR (the convolver's semantics: aligned, tail kept up to the side lane's length; here
// a CPU linear_phase_eq_stage through run_aligned), stereo_join_kernel, then the window table
// and stereo_window_kernel's reduction order, and the host's meter combination.
stereo_result emulate_stereo(const stereo_params& p, const audio_buffer& x) {
  stereo_stage reference(p);
  reference.prepare({fs, 2, gd::chain_block_frames});
  const std::size_t latency = reference.latency_frames();
  const bool bass_mono = p.bass_mono_below_hz > 0.0;
  const bool bypass = p.width == 1.0 && p.mid_gain_db == 0.0 && !bass_mono;
  const auto gm = static_cast<float>(std::pow(10.0, p.mid_gain_db / 20.0));
  const auto gs = static_cast<float>(p.width);
  const std::size_t n = x.frames();
  const gd::stereo_meter_frames mf = gd::stereo_meter_frames_of(n, latency);
  const std::size_t side_frames = bass_mono ? std::max(n, mf.after) : n;
  const float* l = x.channel(0);
  const float* r = x.channel(1);

  audio_buffer out(2, n);
  audio_buffer side_f(1, side_frames);
  if (bypass) {
    out = x;
  } else {
    if (bass_mono) {
      for (std::size_t i = 0; i < side_frames; ++i) side_f.channel(0)[i] = i < n ? gd::stereo_side(l[i], r[i]) : 0.0f;
      eq_params eqp;
      eqp.bands = stereo_stage::bass_mono_bands(p.bass_mono_below_hz);
      eqp.partition_frames = p.partition_frames;
      linear_phase_eq_stage fir(eqp);
      fir.prepare({fs, 1, gd::chain_block_frames});
      run_aligned(fir, side_f, gd::chain_block_frames);
    }
    for (std::size_t i = 0; i < n; ++i) {
      const float mid = gd::stereo_mid(l[i], r[i]);
      const float side = bass_mono ? side_f.channel(0)[i] : gd::stereo_side(l[i], r[i]);
      out.channel(0)[i] = gd::stereo_left(mid, side, gm, gs);
      out.channel(1)[i] = gd::stereo_right(mid, side, gm, gs);
    }
  }
  const std::size_t window = stereo_stage::meter_window_frames(p, fs);
  const std::vector<gd::stereo_window> windows = gd::make_stereo_windows({mf}, window);
  correlation_meter before(window), after(window);
  for (const gd::stereo_window& w : windows) {
    const gd::stereo_sums s = gd::stereo_reduce_window(w.start, w.length, [&](std::uint64_t j, float& lf, float& rf) {
      if (j < n) {
        lf = (w.after ? out.channel(0) : l)[j];
        rf = (w.after ? out.channel(1) : r)[j];
        return true;
      }
      if (w.after && bass_mono && j < side_frames) {
        lf = gd::stereo_left(0.0f, side_f.channel(0)[j], gm, gs);
        rf = gd::stereo_right(0.0f, side_f.channel(0)[j], gm, gs);
        return true;
      }
      return false;
    });
    (w.after ? after : before).add_sums(w.length, s.l, s.r, s.ll, s.rr, s.lr);
  }
  return {std::move(out), stereo_stats_of(before, after)};
}

void expect_stats_near(const stereo_stats& got, const stereo_stats& want, const char* what) {
  EXPECT_NEAR(got.correlation_before, want.correlation_before, correlation_tolerance) << what;
  EXPECT_NEAR(got.correlation_after, want.correlation_after, correlation_tolerance) << what;
  EXPECT_NEAR(got.min_window_correlation_before, want.min_window_correlation_before, correlation_tolerance) << what;
  EXPECT_NEAR(got.min_window_correlation_after, want.min_window_correlation_after, correlation_tolerance) << what;
  for (const auto& [g, w] : {std::pair{got.side_to_mid_db_before, want.side_to_mid_db_before},
                             std::pair{got.side_to_mid_db_after, want.side_to_mid_db_after}}) {
    if (std::isfinite(w))
      EXPECT_NEAR(g, w, ratio_tolerance_db) << what;
    else
      EXPECT_TRUE(g == w || (std::isnan(g) && std::isnan(w))) << what << ": " << g << " vs " << w;
  }
}

TEST(GpuToneLayout, StereoPassesAndMeterWindowsMatchTheCpuStage) {
  std::vector<stereo_params> cases(4);
  cases[0].width = 1.4, cases[0].mid_gain_db = 2.0, cases[0].bass_mono_below_hz = 120.0;
  cases[1].width = 0.0;                 // mono, no FIR: latency 0
  cases[2];                             // bypass
  cases[3].bass_mono_below_hz = 300.0;  // FIR only, width 1
  cases[3].meter_window_ms = 50.0;
  double worst = 0.0;
  // Lengths around the meter window (17'640 frames at 400 ms), the chain block (8'192) and 1.
  for (const std::size_t n : {std::size_t{1}, std::size_t{257}, std::size_t{8'191}, std::size_t{8'193},
                              std::size_t{17'640}, std::size_t{40'009}}) {
    audio_buffer x = test::white_noise(-12.0, static_cast<double>(n) / fs, fs, 2, static_cast<unsigned>(n));
    // Correlated channels (a common part), so correlations are not all near 0.
    for (std::size_t i = 0; i < x.frames(); ++i) x.channel(1)[i] = 0.6f * x.channel(0)[i] + 0.4f * x.channel(1)[i];
    for (std::size_t k = 0; k < cases.size(); ++k) {
      const stereo_result want = cpu_stereo(cases[k], x);
      const stereo_result got = emulate_stereo(cases[k], x);
      ASSERT_EQ(got.out.frames(), want.out.frames());
      for (int c = 0; c < 2; ++c) {
        double err = 0.0, energy = 0.0;
        for (std::size_t i = 0; i < x.frames(); ++i) {
          err = std::max(err, std::abs(double(got.out.channel(c)[i]) - double(want.out.channel(c)[i])));
          energy += double(want.out.channel(c)[i]) * double(want.out.channel(c)[i]);
        }
        const double rms = std::sqrt(energy / static_cast<double>(x.frames()));
        EXPECT_LE(err / std::max(rms, 1e-20), stereo_rel_tolerance) << "case " << k << ", " << n << " frames";
        worst = std::max(worst, err / std::max(rms, 1e-20));
      }
      expect_stats_near(got.stats, want.stats, ("case " + std::to_string(k) + ", " + std::to_string(n)).c_str());
    }
  }
  std::printf("stereo emulation: worst relative output error %.3g\n", worst);
}

TEST(GpuToneLayout, RunAlignedPushedFramesMatchesItsLoop) {
  // Count the frames run_aligned pushes through a stage of a given latency directly.
  struct counting_stage {
    std::size_t lat = 0, pushed = 0;
    void prepare(const stream_spec&) {}
    void reset() noexcept {}
    void process(const_block_view in, block_view out) noexcept {
      pushed += in.frames;
      for (int c = 0; c < in.channels; ++c) std::memmove(out[c], in[c], in.frames * sizeof(float));
    }
    std::size_t latency_frames() const noexcept { return lat; }
  };
  for (const std::size_t n : {std::size_t{1}, std::size_t{100}, std::size_t{8'192}, std::size_t{20'000}})
    for (const std::size_t lat :
         {std::size_t{0}, std::size_t{5}, std::size_t{8'191}, std::size_t{8'192}, std::size_t{30'000}}) {
      counting_stage st{lat, 0};
      audio_buffer b(2, n);
      run_aligned(st, b, gd::chain_block_frames);
      EXPECT_EQ(gd::run_aligned_pushed_frames(n, lat, gd::chain_block_frames), st.pushed) << n << " " << lat;
    }
}

}  // namespace
}  // namespace lathe
