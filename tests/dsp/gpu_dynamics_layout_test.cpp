// CPU checks of the GPU dynamics kernels' decomposition, runnable without a GPU: the per-thread
// bodies of kernels/dsp/dynamics.cu (kernels/include/lathe_gpu/detail/dynamics_law.hpp, compiled
// here for the host) are driven over the same detector blocks and smoothing chunks as the
// kernels, each launch's threads in a shuffled order, with the same fixed-point iteration of
// chunk start states, and compared with lathe::compressor_stage, lathe::multiband_stage and
// lathe::deesser_stage run through lathe::run_aligned (the CPU chain's semantics).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/biquad.hpp"
#include "lathe/deesser.hpp"
#include "lathe/dynamics.hpp"
#include "lathe/multiband.hpp"
#include "lathe_gpu/detail/dynamics_law.hpp"

namespace lathe {
namespace {

namespace gd = lathe::gpu::detail;

constexpr double fs_hz = 48'000.0;
constexpr std::size_t chain_block = gd::chain_block_frames;
// Peak detection, the smoothing and the de-esser are the CPU's operations in the CPU's order:
// bitwise. The rms detector sums each window from per-block prefix/suffix sums where the CPU
// keeps one running float64 sum over the track; both round differently by ~1e-16 x window of
// the local power, which moves the gain by < 1e-9 dB on these signals (measured ~1e-13).
constexpr double rms_gain_tolerance_db = 1e-9;
// A gain 1e-9 dB off changes a float output by 1e-10 relative: it can flip the float rounding,
// one ulp (2^-23 relative) at most.
constexpr double rms_output_tolerance_rel = 1.2e-7;
// Statistics: sums of the same terms in chunk order instead of one serial sum.
constexpr double stats_tolerance_db = 1e-9;
// Multiband: the emulation's bands come from direct float64 convolution, the CPU's from its FFT
// convolver (float32, ~1e-7 relative); the GPU bound applies.
constexpr double multiband_output_tolerance_rel = 1e-5;
constexpr double multiband_stats_tolerance_db = 1e-3;

std::vector<float> noise(std::size_t n, double rms, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, rms);
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>(g(rng));
  return x;
}

// Stereo test signal: noise under a slow envelope (level changes of ~30 dB, so attack and release
// both act), with independent channels.
audio_buffer test_audio(std::size_t n, unsigned seed) {
  audio_buffer b(2, n);
  for (int c = 0; c < 2; ++c) {
    const std::vector<float> x = noise(n, 0.2, seed + static_cast<unsigned>(c));
    for (std::size_t i = 0; i < n; ++i) {
      const double env = 0.03 + 0.97 * std::pow(std::sin(2.0 * M_PI * (static_cast<double>(i) / 9000.0 + 0.3 * c)), 2);
      b.channel(c)[i] = static_cast<float>(x[i] * env);
    }
  }
  return b;
}

template <class F>
void for_shuffled(std::size_t n, std::mt19937& rng, F f) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i : order) f(i);
}

// ---- emulation of the fixed-point smoothing driver (kernels/dsp/dynamics.cu: smooth_fixed_point) ----

struct fixed_point_result {
  int iterations = 0;
  bool serial_fallback = false;
};

// `groups`: [begin, count) chunk ranges, one serial-fallback thread each. run(c, s) -> end state.
template <class State, class Run>
fixed_point_result emulate_fixed_point(const std::vector<gd::smooth_chunk>& chunks,
                                       const std::vector<std::pair<std::size_t, std::size_t>>& groups,
                                       std::vector<State>& start, Run run, int max_iterations, std::mt19937& rng) {
  fixed_point_result r;
  std::vector<State> end(chunks.size());
  for (;;) {
    if (r.iterations == max_iterations) {
      r.serial_fallback = true;
      for_shuffled(groups.size(), rng, [&](std::size_t g) {
        std::size_t rel = 0;
        for (std::size_t c = groups[g].first; c < groups[g].first + groups[g].second; ++c) {
          rel = chunks[c].first != 0 ? 0 : rel + 1;
          if (rel > static_cast<std::size_t>(max_iterations)) start[c] = run(c - 1, start[c - 1]);
        }
      });
      break;
    }
    for_shuffled(chunks.size(), rng, [&](std::size_t c) { end[c] = run(c, start[c]); });
    ++r.iterations;
    bool changed = false;
    for_shuffled(chunks.size(), rng,
                 [&](std::size_t c) { changed |= gd::propagate_start(chunks.data(), c, end.data(), start.data()); });
    if (!changed) break;
  }
  return r;
}

// ---- compressor pass emulation (kernels/dsp/dynamics.cu: run_comp_pass) -----------------------------

struct pass_output {
  std::vector<dynamics_stats> stats;
  fixed_point_result fp;
  std::vector<double> gains;  // the gain array (dB) after the final pass
};

enum class output_mode { assign, accumulate };

pass_output emulate_comp_pass(const gd::comp_constants& k, const std::vector<gd::comp_track_geometry>& geometry,
                              const std::vector<float>& src, std::vector<float>& out, output_mode mode,
                              std::size_t chunk_frames, int max_iterations, unsigned seed) {
  std::mt19937 rng(seed);
  const gd::comp_pass_plan plan = gd::make_comp_pass_plan(geometry, k, chunk_frames);
  std::vector<double> suffix(plan.detect_frames, -1.0), g(plan.gain_frames, 0.0);
  // Launch 1: suffix blocks, one thread per (lane, block).
  std::vector<std::array<std::uint64_t, 3>> blocks;  // track, lane, block
  for (std::size_t t = 0; t < plan.tracks.size(); ++t)
    for (std::uint64_t b = 0; b < gd::dyn_pieces(plan.tracks[t].stream_frames, k.window); ++b)
      for (std::uint64_t c = 0; c < 2; ++c) blocks.push_back({t, c, b});
  for_shuffled(blocks.size(), rng, [&](std::size_t i) {
    const gd::comp_track& d = plan.tracks[blocks[i][0]];
    const std::uint64_t start = blocks[i][2] * k.window;
    const std::uint64_t len = std::min<std::uint64_t>(k.window, d.stream_frames - start);
    const int c = static_cast<int>(blocks[i][1]);
    gd::detector_suffix_block(k, src.data(), d, c, start, len, suffix.data() + d.detect[c]);
  });
  // Launch 2: target blocks, one thread per (track, block).
  std::vector<std::array<std::uint64_t, 2>> tblocks;
  for (std::size_t t = 0; t < plan.tracks.size(); ++t)
    for (std::uint64_t b = 0; b < gd::dyn_pieces(plan.tracks[t].stream_frames, k.window); ++b)
      tblocks.push_back({t, b});
  for_shuffled(tblocks.size(), rng, [&](std::size_t i) {
    const gd::comp_track& d = plan.tracks[tblocks[i][0]];
    const std::uint64_t start = tblocks[i][1] * k.window;
    const std::uint64_t len = std::min<std::uint64_t>(k.window, d.stream_frames - start);
    gd::detector_target_block(k, src.data(), d, start, len, suffix.data() + d.detect[0], suffix.data() + d.detect[1],
                              g.data() + d.path[0], g.data() + d.path[1]);
  });
  // Smoothing.
  std::vector<double> start(plan.chunks.size());
  for (std::size_t c = 0; c < plan.chunks.size(); ++c) start[c] = gd::comp_start_guess(g.data(), plan.chunks[c]);
  std::vector<std::pair<std::size_t, std::size_t>> groups;
  for (const gd::comp_track& d : plan.tracks) groups.emplace_back(d.chunk_begin, d.chunk_count);
  pass_output r;
  r.fp = emulate_fixed_point(
      plan.chunks, groups, start,
      [&](std::size_t c, double s) { return gd::comp_smooth_chunk(k, g.data(), plan.chunks[c], s, nullptr); },
      max_iterations, rng);
  std::vector<gd::comp_chunk_stats> cs(plan.chunks.size());
  for_shuffled(plan.chunks.size(), rng,
               [&](std::size_t c) { (void)gd::comp_smooth_chunk(k, g.data(), plan.chunks[c], start[c], &cs[c]); });
  // Apply, one thread per output sample.
  for (const gd::comp_track& d : plan.tracks) {
    for (int c = 0; c < 2; ++c) {
      for (std::uint64_t i = 0; i < d.out_frames; ++i) {
        const float v = gd::comp_output(k, src.data(), g.data(), d, c, i);
        float& o = out[d.out[c] + i];
        o = mode == output_mode::assign ? v : gd::add_f(o, v);
      }
    }
  }
  r.stats = gd::comp_pass_stats(plan, k, cs);
  r.gains = std::move(g);
  return r;
}

struct batch {
  std::vector<std::uint64_t> offset, frames;
  std::vector<float> samples;
  std::vector<audio_buffer> tracks;
};

batch make_batch(const std::vector<std::size_t>& lengths, unsigned seed) {
  batch b;
  for (std::size_t t = 0; t < lengths.size(); ++t) {
    b.tracks.push_back(test_audio(lengths[t], seed + 10 * static_cast<unsigned>(t)));
    for (int c = 0; c < 2; ++c) {
      b.offset.push_back(b.samples.size());
      b.frames.push_back(lengths[t]);
      b.samples.insert(b.samples.end(), b.tracks.back().channel(c), b.tracks.back().channel(c) + lengths[t]);
    }
  }
  return b;
}

double rel_error(const float* a, const float* ref, std::size_t n) {
  double err = 0.0, power = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    err = std::max(err, std::abs(static_cast<double>(a[i]) - ref[i]));
    power += static_cast<double>(ref[i]) * ref[i];
  }
  return n == 0 ? 0.0 : err / std::max(std::sqrt(power / static_cast<double>(n)), 1e-20);
}

// ---- small pieces ----------------------------------------------------------------------------------

TEST(GpuDynamicsLaw, StaticCurveIsTheCpusBitForBit) {
  std::vector<compressor_params> ps(4);
  ps[0].ratio = 4.0, ps[0].threshold_db = -24.0;
  ps[1].ratio = 3.0, ps[1].knee_db = 12.0, ps[1].threshold_db = -18.0;
  ps[2].ratio = 0.5, ps[2].knee_db = 6.0, ps[2].threshold_db = -50.0;
  ps[3].ratio = 1000.0, ps[3].knee_db = 60.0, ps[3].threshold_db = -190.0;
  for (const compressor_params& p : ps) {
    const gd::comp_constants k = gd::make_comp_constants(p, fs_hz);
    for (double level = -260.0; level <= 20.0; level += 0.0371) {
      ASSERT_EQ(gd::static_gain_db(k, level), compressor_static_gain_db(p, level)) << level;
    }
  }
}

// A stage with a given latency that counts the frames it is given.
struct counting_stage {
  std::size_t latency = 0;
  std::uint64_t frames = 0;
  std::size_t latency_frames() const noexcept { return latency; }
  void prepare(const stream_spec&) {}
  void reset() noexcept {}
  void process(const_block_view in, block_view out) noexcept {
    frames += in.frames;
    for (int c = 0; c < in.channels; ++c) std::copy(in[c], in[c] + in.frames, out[c]);
  }
};

TEST(GpuDynamicsLaw, StreamFramesEqualWhatRunAlignedFeedsTheStage) {
  for (std::size_t block : {1UL, 7UL, 64UL, 8192UL}) {
    for (std::size_t n : {1UL, 2UL, 63UL, 64UL, 65UL, 1000UL, 8191UL, 8193UL, 20011UL}) {
      for (std::size_t latency : {0UL, 1UL, 5UL, 64UL, 4500UL, 9000UL, 25000UL}) {
        if (block == 1 && latency > 5000) continue;  // slow and adds nothing
        counting_stage st{latency, 0};
        audio_buffer buf(1, n);
        run_aligned(st, buf, block);
        ASSERT_EQ(gd::run_aligned_stream_frames(n, latency, block), st.frames)
            << "n " << n << " latency " << latency << " block " << block;
      }
    }
  }
}

TEST(GpuDynamicsLaw, SmoothingChunksForgetTheirStartWithinOneChunk) {
  for (double tau_ms : {0.0, 0.1, 1.0, 80.0, 200.0, 1000.0, 10'000.0}) {
    const double a = tau_ms <= 0.0 ? 0.0 : std::exp(-1.0 / (tau_ms * 1e-3 * fs_hz));
    const std::size_t n = gd::smoothing_chunk_frames(a);
    EXPECT_TRUE(n >= gd::min_smoothing_chunk_frames && n <= gd::max_smoothing_chunk_frames && std::has_single_bit(n));
    if (n < gd::max_smoothing_chunk_frames) EXPECT_LE(std::pow(a, static_cast<double>(n)), 1e-4) << tau_ms;
    if (n > gd::min_smoothing_chunk_frames) EXPECT_GT(std::pow(a, static_cast<double>(n / 2)), 1e-4) << tau_ms;
  }
}

// ---- compressor ------------------------------------------------------------------------------------

struct comp_case {
  const char* name;
  compressor_params p;
  std::size_t chunk_frames;  // 0: the production rule
};

std::vector<comp_case> comp_cases() {
  std::vector<comp_case> cs;
  compressor_params p;
  p.threshold_db = -22.0, p.ratio = 4.0, p.attack_ms = 5.0, p.release_ms = 80.0, p.detector_window_ms = 3.0;
  cs.push_back({"peak_linked", p, 0});
  cs.push_back({"peak_linked_chunk_97", p, 97});
  p.lookahead_ms = 2.5, p.knee_db = 6.0, p.makeup_db = 3.0;
  cs.push_back({"peak_linked_lookahead_knee", p, 500});
  p.link = stereo_link::independent, p.detector = level_detector::rms, p.detector_window_ms = 10.0;
  cs.push_back({"rms_independent_lookahead", p, 1000});
  p.ratio = 0.5, p.threshold_db = -30.0, p.attack_ms = 1.0, p.release_ms = 50.0, p.lookahead_ms = 0.0;
  cs.push_back({"rms_expander_independent", p, 0});
  p.detector = level_detector::peak, p.link = stereo_link::linked, p.attack_ms = 0.0, p.release_ms = 0.0;
  cs.push_back({"peak_expander_instant", p, 333});
  return cs;
}

TEST(GpuDynamicsEmulation, CompressorEqualsTheCpuStageThroughRunAligned) {
  const std::vector<std::size_t> lengths = {1, 2, 31, 4095, 4096, 4097, 8193, 30011, 65537};
  const batch b = make_batch(lengths, 11);
  for (const comp_case& cc : comp_cases()) {
    const gd::comp_constants k = gd::make_comp_constants(cc.p, fs_hz);
    const std::uint64_t lookahead = gd::comp_lookahead_frames(cc.p, fs_hz);
    const std::size_t chunk =
        cc.chunk_frames ? cc.chunk_frames : gd::smoothing_chunk_frames(std::max(k.attack_coeff, k.release_coeff));
    std::vector<float> out(b.samples.size(), 0.0f);
    const pass_output r =
        emulate_comp_pass(k, gd::compressor_geometry(b.offset, b.frames, lookahead, chain_block), b.samples, out,
                          output_mode::assign, chunk, gd::max_smoothing_iterations, 5);
    std::printf("[ compressor %-28s ] chunk %zu: %d fixed-point iterations%s\n", cc.name, chunk, r.fp.iterations,
                r.fp.serial_fallback ? " (serial fallback)" : "");
    // Chunks shorter than the release's time constant need many iterations: the cap then hands
    // over to the serial finish (same bits); the production chunk rule must converge.
    if (cc.chunk_frames == 0) EXPECT_FALSE(r.fp.serial_fallback) << cc.name;
    for (std::size_t t = 0; t < lengths.size(); ++t) {
      compressor_stage st(cc.p);
      st.prepare(stream_spec{fs_hz, 2, chain_block});
      audio_buffer ref = b.tracks[t];
      run_aligned(st, ref, chain_block);
      const dynamics_stats s = st.stats();
      EXPECT_EQ(r.stats[t].frames, s.frames) << cc.name << " track " << t;
      EXPECT_NEAR(r.stats[t].max_gain_reduction_db, s.max_gain_reduction_db, stats_tolerance_db) << cc.name;
      EXPECT_NEAR(r.stats[t].mean_gain_reduction_db, s.mean_gain_reduction_db, stats_tolerance_db) << cc.name;
      for (int c = 0; c < 2; ++c) {
        const float* got = out.data() + b.offset[2 * t + static_cast<std::size_t>(c)];
        const float* want = ref.channel(c);
        if (cc.p.detector == level_detector::peak) {
          for (std::size_t i = 0; i < lengths[t]; ++i)
            ASSERT_EQ(got[i], want[i]) << cc.name << " track " << t << " lane " << c << " frame " << i;
        } else {
          for (std::size_t i = 0; i < lengths[t]; ++i)
            ASSERT_LE(std::abs(got[i] - want[i]), rms_output_tolerance_rel * std::abs(want[i]))
                << cc.name << " track " << t << " lane " << c << " frame " << i;
        }
      }
    }
  }
}

// The rms detector's gains (dB) against a serial float64 model of compressor_stage (its running
// sum), which is itself checked bitwise against the stage's output.
TEST(GpuDynamicsEmulation, RmsGainsMatchTheSerialRunningSum) {
  compressor_params p;
  p.threshold_db = -26.0, p.ratio = 3.0, p.detector = level_detector::rms, p.detector_window_ms = 7.0;
  p.link = stereo_link::linked, p.attack_ms = 3.0, p.release_ms = 60.0;
  const batch b = make_batch({50'000}, 3);
  const gd::comp_constants k = gd::make_comp_constants(p, fs_hz);
  std::vector<float> out(b.samples.size());
  const pass_output r = emulate_comp_pass(k, gd::compressor_geometry(b.offset, b.frames, 0, chain_block), b.samples,
                                          out, output_mode::assign, 2048, gd::max_smoothing_iterations, 9);
  // Serial model: compressor_stage::detect (rms) and smooth.
  const std::size_t w = k.window, n = 50'000;
  std::vector<float> ring0(w, 0.0f), ring1(w, 0.0f);
  double s0 = 0.0, s1 = 0.0, state = 0.0, worst = 0.0;
  audio_buffer model(2, n);
  for (std::size_t i = 0; i < n; ++i) {
    const float x0 = b.tracks[0].channel(0)[i], x1 = b.tracks[0].channel(1)[i];
    const float q0 = x0 * x0, q1 = x1 * x1;
    s0 += static_cast<double>(q0) - ring0[i % w];
    s1 += static_cast<double>(q1) - ring1[i % w];
    ring0[i % w] = q0, ring1[i % w] = q1;
    const double d = std::max(std::max(s0, 0.0) / static_cast<double>(w), std::max(s1, 0.0) / static_cast<double>(w));
    const double target = compressor_static_gain_db(p, 10.0 * std::log10(std::max(d, 1e-20)));
    const double coeff = (target - state) * -1.0 > 0.0 ? k.attack_coeff : k.release_coeff;
    state = target + coeff * (state - target);
    worst = std::max(worst, std::abs(state - r.gains[i]));
    const auto lin = static_cast<float>(std::exp(state * gd::dyn_ln10_over_20));
    model.channel(0)[i] = x0 * lin, model.channel(1)[i] = x1 * lin;
  }
  compressor_stage st(p);
  st.prepare(stream_spec{fs_hz, 2, chain_block});
  audio_buffer ref = b.tracks[0];
  run_aligned(st, ref, chain_block);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(model.channel(c)[i], ref.channel(c)[i]) << "serial model vs stage";
  std::printf("[ rms gains ] max |chunked - serial| = %.3g dB\n", worst);
  EXPECT_LE(worst, rms_gain_tolerance_db);
}

// Capping the iterations forces the serial finish, which must give the same bits.
TEST(GpuDynamicsEmulation, SerialFallbackGivesTheSameBits) {
  compressor_params p;
  p.threshold_db = -30.0, p.ratio = 5.0, p.attack_ms = 10.0, p.release_ms = 2000.0;
  const batch b = make_batch({40'000, 777}, 21);
  const gd::comp_constants k = gd::make_comp_constants(p, fs_hz);
  const auto geo = gd::compressor_geometry(b.offset, b.frames, 0, chain_block);
  std::vector<float> a(b.samples.size()), c(b.samples.size());
  const pass_output full = emulate_comp_pass(k, geo, b.samples, a, output_mode::assign, 512, 1000, 1);
  const pass_output capped = emulate_comp_pass(k, geo, b.samples, c, output_mode::assign, 512, 3, 2);
  std::printf("[ fallback ] release 2 s, chunk 512: %d iterations to converge; capped at 3: serial %d\n",
              full.fp.iterations, capped.fp.serial_fallback ? 1 : 0);
  EXPECT_TRUE(capped.fp.serial_fallback);
  EXPECT_GT(full.fp.iterations, 3);
  EXPECT_EQ(a, c);
  EXPECT_EQ(full.gains, capped.gains);
}

// ---- multiband -------------------------------------------------------------------------------------

// Band k of every lane into an extended layout (n + taps - 1 per lane): the full causal
// convolution, as gpu_convolver computes it with delay 0 on the zero-padded lane.
std::vector<float> direct_band(const std::vector<double>& h, const batch& b,
                               const std::vector<std::uint64_t>& ext_offset) {
  const std::size_t taps = h.size();
  std::vector<float> hf(h.begin(), h.end());
  std::vector<float> z(ext_offset.back() + b.frames.back() + taps - 1, 0.0f);
  for (std::size_t l = 0; l < b.frames.size(); ++l) {
    const float* x = b.samples.data() + b.offset[l];
    const std::size_t n = b.frames[l];
    for (std::size_t m = 0; m < n + taps - 1; ++m) {
      double acc = 0.0;
      const std::size_t j0 = m >= n - 1 ? m - (n - 1) : 0, j1 = std::min(m, taps - 1);
      for (std::size_t j = j0; j <= j1; ++j) acc += static_cast<double>(hf[j]) * x[m - j];
      z[ext_offset[l] + m] = static_cast<float>(acc);
    }
  }
  return z;
}

struct mb_case {
  const char* name;
  multiband_params p;
};

std::vector<mb_case> mb_cases() {
  std::vector<mb_case> cs;
  multiband_params p;
  p.crossover.crossover_hz = {2000.0};
  p.crossover.fir_taps = 201;
  p.crossover.partition_frames = 128;
  compressor_params lo, hi;
  lo.threshold_db = -28.0, lo.ratio = 3.0, lo.attack_ms = 5.0, lo.release_ms = 80.0, lo.detector_window_ms = 4.0;
  hi = lo;
  hi.threshold_db = -32.0, hi.ratio = 6.0, hi.lookahead_ms = 1.5, hi.makeup_db = 2.0;
  p.bands = {lo, hi};
  cs.push_back({"2band_linked_lookahead", p});
  p.crossover.crossover_hz = {300.0, 1500.0, 6000.0};
  p.crossover.fir_taps = 0;  // auto: 1761 taps at 48 kHz
  p.crossover.partition_frames = 1024;
  compressor_params b3 = lo;
  b3.link = stereo_link::independent, b3.detector = level_detector::rms, b3.lookahead_ms = 4.0;
  compressor_params b4 = hi;
  b4.knee_db = 8.0, b4.lookahead_ms = 0.0;
  p.bands = {lo, b3, hi, b4};
  p.dry_wet = 0.7, p.output_gain_db = -1.5;
  cs.push_back({"4band_mixed_drywet", p});
  return cs;
}

TEST(GpuDynamicsEmulation, MultibandEqualsTheCpuStageThroughRunAligned) {
  const std::vector<std::size_t> lengths = {1, 97, 8191, 20011};
  const batch b = make_batch(lengths, 31);
  // Shorter than the production rule (65536 here), so the tracks span several chunks.
  constexpr std::size_t mb_chunk_frames = 2048;
  for (const mb_case& mc : mb_cases()) {
    const gd::multiband_geometry mb = gd::make_multiband_geometry(mc.p, fs_hz);
    std::vector<std::uint64_t> ext_offset;
    std::uint64_t ext = 0;
    for (std::size_t l = 0; l < b.frames.size(); ++l) ext_offset.push_back(ext), ext += b.frames[l] + mb.taps - 1;
    std::vector<float> acc(b.samples.size(), 0.0f);
    std::vector<std::vector<dynamics_stats>> band_stats;
    for (std::size_t k = 0; k < mb.bands.size(); ++k) {
      const std::vector<float> z = direct_band(mb.bands[k], b, ext_offset);
      const gd::comp_constants kc = gd::make_comp_constants(mc.p.bands[k], fs_hz);
      const auto geo = gd::multiband_band_geometry(mb, k, ext_offset, b.offset, b.frames, chain_block);
      const pass_output r =
          emulate_comp_pass(kc, geo, z, acc, k == 0 ? output_mode::assign : output_mode::accumulate, mb_chunk_frames,
                            gd::max_smoothing_iterations, 40 + static_cast<unsigned>(k));
      std::printf("[ multiband %-24s ] band %zu: %d fixed-point iterations\n", mc.name, k, r.fp.iterations);
      band_stats.push_back(r.stats);
    }
    const double out_gain = std::pow(10.0, mc.p.output_gain_db / 20.0);
    const auto wet = static_cast<float>(mc.p.dry_wet * out_gain),
               dry = static_cast<float>((1.0 - mc.p.dry_wet) * out_gain);
    for (std::size_t i = 0; i < acc.size(); ++i) acc[i] = gd::multiband_mix(wet, acc[i], dry, b.samples[i]);
    for (std::size_t t = 0; t < lengths.size(); ++t) {
      multiband_stage st(mc.p);
      st.prepare(stream_spec{fs_hz, 2, chain_block});
      ASSERT_EQ(st.latency_frames(), mb.latency);
      audio_buffer ref = b.tracks[t];
      run_aligned(st, ref, chain_block);
      for (int c = 0; c < 2; ++c) {
        const double e =
            rel_error(acc.data() + b.offset[2 * t + static_cast<std::size_t>(c)], ref.channel(c), lengths[t]);
        EXPECT_LE(e, multiband_output_tolerance_rel) << mc.name << " track " << t << " lane " << c;
        if (lengths[t] > 1000) std::printf("[ multiband %-24s ] track %zu lane %d: rel error %.3g\n", mc.name, t, c, e);
      }
      for (std::size_t k = 0; k < mb.bands.size(); ++k) {
        const dynamics_stats s = st.band_stats(static_cast<int>(k));
        EXPECT_EQ(band_stats[k][t].frames, s.frames);
        EXPECT_NEAR(band_stats[k][t].max_gain_reduction_db, s.max_gain_reduction_db, multiband_stats_tolerance_db)
            << mc.name << " track " << t << " band " << k;
        EXPECT_NEAR(band_stats[k][t].mean_gain_reduction_db, s.mean_gain_reduction_db, multiband_stats_tolerance_db)
            << mc.name << " track " << t << " band " << k;
      }
    }
  }
}

// ---- de-esser --------------------------------------------------------------------------------------

// Noise with bursts of loud band-limited hiss (5-9 kHz region), like sibilants over program.
audio_buffer sibilant_audio(std::size_t n, unsigned seed) {
  audio_buffer b(2, n);
  biquad hiss;
  hiss.set(deesser_stage::design_band(deesser_params{}, fs_hz));
  for (int c = 0; c < 2; ++c) {
    const std::vector<float> base = noise(n, 0.05, seed + static_cast<unsigned>(c));
    const std::vector<float> burst = noise(n, 0.8, seed + 100 + static_cast<unsigned>(c));
    std::vector<float> hissy(n);
    hiss.reset();
    hiss.process(burst.data(), hissy.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      const bool on = (i / 3000) % 3 == 1;  // 62.5 ms bursts
      b.channel(c)[i] = base[i] + (on ? hissy[i] : 0.0f);
    }
  }
  return b;
}

TEST(GpuDynamicsEmulation, DeesserEqualsTheCpuStageThroughRunAligned) {
  deesser_params p;
  p.threshold_db = -25.0;
  const gd::deesser_constants k = gd::make_deesser_constants(p, fs_hz);
  const biquad_coeffs band = deesser_stage::design_band(p, fs_hz);
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1000}}) {
    const std::size_t chunk_frames =
        chunk ? chunk : gd::smoothing_chunk_frames(std::max({k.power_coeff, k.attack_coeff, k.release_coeff}));
    for (std::size_t n : {1UL, 3UL, 8191UL, 8192UL, 8193UL, 70001UL}) {
      const audio_buffer x = sibilant_audio(n, 7 + static_cast<unsigned>(n));
      // Band and detector band per lane (the GPU: iir_plan, twice), linked power per frame.
      audio_buffer bands(2, n), det_band(2, n);
      std::vector<float> det(n);
      for (int c = 0; c < 2; ++c) {
        biquad split, detect;
        split.set(band), detect.set(band);
        split.process(x.channel(c), bands.channel(c), n);
        detect.process(bands.channel(c), det_band.channel(c), n);
      }
      for (std::size_t i = 0; i < n; ++i)
        det[i] = gd::deesser_linked_power(det_band.channel(0)[i], det_band.channel(1)[i]);
      std::vector<gd::smooth_chunk> chunks;
      gd::add_path_chunks(chunks, 0, n, chunk_frames);
      std::vector<gd::deesser_state> start(chunks.size());
      for (std::size_t c = 0; c < chunks.size(); ++c) start[c] = gd::deesser_start_guess(det.data(), chunks[c]);
      std::mt19937 rng(static_cast<unsigned>(n));
      const fixed_point_result fp = emulate_fixed_point(
          chunks, {{0, chunks.size()}}, start,
          [&](std::size_t c, gd::deesser_state s) {
            return gd::deesser_smooth_chunk(k, det.data(), chunks[c], s, nullptr);
          },
          gd::max_smoothing_iterations, rng);
      std::vector<gd::deesser_chunk_stats> cs(chunks.size());
      for_shuffled(chunks.size(), rng,
                   [&](std::size_t c) { (void)gd::deesser_smooth_chunk(k, det.data(), chunks[c], start[c], &cs[c]); });
      deesser_stats got;
      for (const auto& s : cs) {
        got.max_reduction_db = std::max(got.max_reduction_db, s.max_reduction_db);
        got.sum_reduction_db += s.sum_reduction_db;
        got.active_frames += s.active_frames;
      }
      got.frames = n;

      deesser_stage st(p);
      st.prepare(stream_spec{fs_hz, 2, chain_block});
      audio_buffer ref = x;
      run_aligned(st, ref, chain_block);
      const deesser_stats& want = st.stats();
      if (n > 10'000)
        std::printf("[ de-esser ] n %zu chunk %zu: %d fixed-point iterations, mean reduction %.3f dB, active %.3f\n", n,
                    chunk_frames, fp.iterations, want.mean_reduction_db(),
                    static_cast<double>(want.active_frames) / static_cast<double>(n));
      EXPECT_FALSE(fp.serial_fallback);
      EXPECT_EQ(got.frames, want.frames);
      EXPECT_EQ(got.active_frames, want.active_frames);
      EXPECT_EQ(got.max_reduction_db, want.max_reduction_db);
      EXPECT_NEAR(got.sum_reduction_db, want.sum_reduction_db, stats_tolerance_db * static_cast<double>(n));
      for (int c = 0; c < 2; ++c)
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_EQ(gd::deesser_output(x.channel(c)[i], bands.channel(c)[i], det[i]), ref.channel(c)[i])
              << "n " << n << " lane " << c << " frame " << i;
      if (n == 70001) EXPECT_GT(want.active_frames, n / 10) << "the bursts must be reduced for this test to mean much";
    }
  }
}

}  // namespace
}  // namespace lathe
