// CPU checks of the GPU limiter's and quantizer's device code, runnable without a GPU: the
// per-thread bodies the kernels call (kernels/include/lathe_gpu/detail/*.hpp, compiled here for
// the host) are driven over the same chunk and block decomposition as kernels/dsp/limiter.cu, in a
// shuffled order (GPU threads run in any order), and compared with the CPU reference:
// lathe::detail::limiter_gain_law, lathe::offline_limiter, lathe::dither_uniform and
// lathe::quantize.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "gpu/limiter_peaks.hpp"
#include "lathe/dither.hpp"
#include "lathe/limiter.hpp"
#include "lathe_gpu/detail/dither_hash.hpp"
#include "lathe_gpu/detail/limiter_law.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

namespace gd = lathe::gpu::detail;

// The chunked release uses b^k from std::pow where the CPU steps k times, so an envelope may
// differ by ulps and the held minimum, rounded down to 2^-32, by one quantum now and then;
// g = mean of W quanta then differs by <= 2^-32 per frame (2.3e-10). Two quanta of slack.
constexpr double kGainTolerance = 2.0 / 4294967296.0;
// GPU output vs offline_limiter: the project's GPU bound (relative to the reference's RMS).
constexpr double kOutputRelTolerance = 1e-5;
// Stats: the dB sum's order differs (tree vs serial), and g by the quantum above.
constexpr double kStatsToleranceDb = 1e-4;
// frames_limited counts g < 1: the carried release may snap to unity one frame earlier or later
// than the CPU's (when its ulp-level difference straddles 1 - 2^-32), once per release event.
constexpr double kFramesLimitedRelTolerance = 1e-3;

// ---- emulation of kernels/dsp/limiter.cu's launches -------------------------------------------------

struct track_input {
  std::vector<float> peak0, peak1;  // per lane, T = frames + latency long
  std::size_t frames = 0;
  double gain = 1.0;
};

/// Runs the device bodies over a batch exactly as batch_limiter::launch_gain_law does (each
/// launch's threads in a shuffled order) and returns per track g at every stream frame t >= W
/// (g[t] for t < W is left 0: the kernels never read it, as outputs start at latency >= W).
std::vector<std::vector<double>> emulate_gain_law(const std::vector<track_input>& tracks, const gd::law_constants& k,
                                                  std::size_t latency, std::uint32_t shuffle_seed) {
  const std::vector<double> pow_b = gd::make_release_powers(k);
  std::vector<gd::track_desc> desc(tracks.size());
  std::vector<float> peaks;
  std::size_t stream_offset = 0, chunk_offset = 0;
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    gd::track_desc& d = desc[t];
    d.frames = tracks[t].frames;
    d.stream_frames = tracks[t].frames + latency;
    EXPECT_EQ(tracks[t].peak0.size(), d.stream_frames);
    d.peak0 = peaks.size();
    peaks.insert(peaks.end(), tracks[t].peak0.begin(), tracks[t].peak0.end());
    d.peak1 = peaks.size();
    peaks.insert(peaks.end(), tracks[t].peak1.begin(), tracks[t].peak1.end());
    d.stream_offset = stream_offset;
    d.chunk_offset = chunk_offset;
    stream_offset += d.stream_frames;
    chunk_offset += gd::pieces(d.stream_frames, k.chunk_frames);
  }
  std::vector<double> envelope(stream_offset, -1.0), suffix(stream_offset, -1.0);
  std::vector<double> chunk_final(chunk_offset, -1.0), chunk_carry(chunk_offset, -1.0);
  std::mt19937 rng(shuffle_seed);

  // A "launch": every (track, index) pair with index < count(track), in a random order.
  auto launch = [&](auto count, auto body) {
    std::vector<std::pair<std::size_t, std::size_t>> work;
    for (std::size_t t = 0; t < desc.size(); ++t)
      for (std::size_t i = 0; i < count(desc[t]); ++i) work.emplace_back(t, i);
    std::shuffle(work.begin(), work.end(), rng);
    for (auto [t, i] : work) body(desc[t], t, i);
  };

  // release_local_kernel
  launch([&](const gd::track_desc& d) { return gd::pieces(d.stream_frames, k.chunk_frames); },
         [&](const gd::track_desc& d, std::size_t t, std::size_t j) {
           const std::size_t start = j * k.chunk_frames;
           const std::size_t len = std::min<std::size_t>(k.chunk_frames, d.stream_frames - start);
           chunk_final[d.chunk_offset + j] =
               gd::release_local_chunk(peaks.data() + d.peak0, peaks.data() + d.peak1, start, len, tracks[t].gain, k,
                                       envelope.data() + d.stream_offset);
         });
  // release_carry_kernel
  launch([](const gd::track_desc&) { return std::size_t{1}; },
         [&](const gd::track_desc& d, std::size_t, std::size_t) {
           const std::size_t n = gd::pieces(d.stream_frames, k.chunk_frames);
           gd::release_carry_track(chunk_final.data() + d.chunk_offset, n, d.stream_frames - (n - 1) * k.chunk_frames,
                                   k, pow_b.data(), chunk_carry.data() + d.chunk_offset);
         });
  // sliding_min_suffix_kernel, then sliding_min_prefix_kernel
  auto blocks = [&](const gd::track_desc& d) { return gd::pieces(d.stream_frames, k.window); };
  launch(blocks, [&](const gd::track_desc& d, std::size_t, std::size_t b) {
    const std::size_t start = b * k.window;
    gd::sliding_min_suffix_block(envelope.data() + d.stream_offset, suffix.data() + d.stream_offset, start,
                                 std::min<std::size_t>(k.window, d.stream_frames - start),
                                 chunk_carry.data() + d.chunk_offset, pow_b.data(), k);
  });
  launch(blocks, [&](const gd::track_desc& d, std::size_t, std::size_t b) {
    const std::size_t start = b * k.window;
    gd::sliding_min_prefix_block(envelope.data() + d.stream_offset, suffix.data() + d.stream_offset, start,
                                 std::min<std::size_t>(k.window, d.stream_frames - start), k);
  });
  // cub::DeviceScan::InclusiveSum over the whole batch, uint64 wrapping.
  std::vector<std::uint64_t> prefix(stream_offset);
  std::memcpy(prefix.data(), envelope.data(), stream_offset * sizeof(double));
  std::uint64_t run = 0;
  for (auto& v : prefix) v = run += v;

  std::vector<std::vector<double>> g(tracks.size());
  for (std::size_t t = 0; t < tracks.size(); ++t) {
    const gd::track_desc& d = desc[t];
    g[t].assign(d.stream_frames, 0.0);
    for (std::size_t s = k.window; s < d.stream_frames; ++s)
      g[t][s] = gd::gain_from_prefix(prefix.data() + d.stream_offset, s, k.window);
  }
  return g;
}

/// The CPU law over the same detection: g[t] = limiter_gain_law::step(gain * window_peak[t]).
std::vector<double> reference_gain_law(const track_input& in, const limiter_params& p, double fs) {
  detail::limiter_gain_law law;
  law.prepare(p, fs);
  std::vector<double> g(in.peak0.size());
  float prev1 = 0.0f, prev2 = 0.0f;
  for (std::size_t t = 0; t < g.size(); ++t) {
    const float linked = std::max(std::max(0.0f, in.peak0[t]), in.peak1[t]);
    const float w = std::max(std::max(prev2, prev1), linked);
    prev2 = prev1;
    prev1 = linked;
    g[t] = law.step(in.gain * static_cast<double>(w));
  }
  return g;
}

/// Synthetic detector peaks: a quiet floor with bursts far over the ceiling, isolated spikes
/// (single frames, so the 3-frame window and lookahead ramps show), and silence.
std::vector<float> random_peaks(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> p(n);
  float level = 0.3f;
  for (std::size_t t = 0; t < n; ++t) {
    const float r = u(rng);
    if (r < 0.002f) level = u(rng) < 0.5f ? 0.2f * u(rng) : 0.8f + 2.5f * u(rng);  // new section
    float v = level * (0.5f + 0.5f * u(rng));
    if (r > 0.997f) v = 1.0f + 4.0f * u(rng);  // spike
    if (level < 0.05f) v = 0.0f;               // silence
    p[t] = v;
  }
  return p;
}

limiter_params params_for(std::size_t lookahead_frames, double release_ms, double fs) {
  limiter_params p;
  p.lookahead_ms = static_cast<double>(lookahead_frames) * 1000.0 / fs;
  p.release_ms = release_ms;
  return p;
}

struct law_case {
  std::size_t lookahead;
  double release_ms;
  std::size_t chunk_frames;
};

// The chunked release + van Herk sliding minimum + integer moving sum against the serial CPU
// law, for lookaheads around warp and block sizes (W = L + 1 straddling 32 and 256), release
// chunks of 1 frame, odd sizes and the kernels' 512, and tracks whose lengths straddle chunk
// and block edges.
TEST(GpuLimiterHost, ChunkedGainLawMatchesSerialLaw) {
  constexpr double fs = 48'000.0;
  const std::vector<law_case> cases = {{0, 80.0, 512},  {1, 80.0, 7},    {31, 5.0, 512},   {32, 80.0, 33},
                                       {33, 1.0, 512},  {96, 80.0, 1},   {255, 20.0, 512}, {256, 80.0, 256},
                                       {257, 2.0, 100}, {96, 500.0, 512}};
  std::mt19937 rng(20'250'601);
  for (const law_case& c : cases) {
    const limiter_params p = params_for(c.lookahead, c.release_ms, fs);
    const gd::law_constants k = gd::make_law_constants(p, fs, c.chunk_frames);
    ASSERT_EQ(k.window, c.lookahead + 1);
    const std::size_t latency = gd::limiter_latency(p, fs);
    std::vector<track_input> tracks;
    for (std::size_t frames :
         {std::size_t{0}, std::size_t{1}, std::size_t{511} - latency % 512, std::size_t{3000}, std::size_t{20'011}}) {
      track_input in;
      in.frames = frames;
      in.peak0 = random_peaks(frames + latency, rng);
      in.peak1 = random_peaks(frames + latency, rng);
      in.gain = std::pow(10.0, (static_cast<double>(tracks.size()) * 1.5 - 2.0) / 20.0);
      tracks.push_back(std::move(in));
    }
    const auto g = emulate_gain_law(tracks, k, latency, static_cast<std::uint32_t>(c.lookahead + 1));
    for (std::size_t t = 0; t < tracks.size(); ++t) {
      const std::vector<double> ref = reference_gain_law(tracks[t], p, fs);
      double worst = 0.0;
      std::size_t exact = 0, limited = 0;
      for (std::size_t s = k.window; s < ref.size(); ++s) {
        worst = std::max(worst, std::abs(g[t][s] - ref[s]));
        exact += g[t][s] == ref[s];
        limited += ref[s] < 1.0;
      }
      EXPECT_LE(worst, kGainTolerance) << "L=" << c.lookahead << " chunk=" << c.chunk_frames << " track " << t;
      if (ref.size() > 1000) {
        EXPECT_GT(limited, ref.size() / 10) << "material must exercise the limiter";
      }
      RecordProperty("exact_fraction_L" + std::to_string(c.lookahead) + "_t" + std::to_string(t),
                     std::to_string(ref.size() > k.window ? double(exact) / double(ref.size() - k.window) : 1.0));
    }
  }
}

// Where the past is silent and nothing is limited, g must be exactly 1 (bit-exact pass-through),
// and after a reduction the release snaps back to exactly 1, as on the CPU.
TEST(GpuLimiterHost, PassThroughAndSnapAreExact) {
  constexpr double fs = 44'100.0;
  const limiter_params p = params_for(88, 3.0, fs);
  const gd::law_constants k = gd::make_law_constants(p, fs, 512);
  const std::size_t latency = gd::limiter_latency(p, fs);
  track_input in;
  in.frames = 60'000;
  in.peak0.assign(in.frames + latency, 0.5f);
  in.peak1.assign(in.frames + latency, 0.25f);
  in.peak0[1000] = 3.0f;  // one reduction early on, then ~400 release time constants of nothing
  const auto g = emulate_gain_law({in}, k, latency, 7);
  const std::vector<double> ref = reference_gain_law(in, p, fs);
  for (std::size_t s = k.window; s < 900; ++s) ASSERT_EQ(g[0][s], 1.0) << s;
  EXPECT_LT(g[0][1000 + k.window - 1], 0.5);  // the full reduction, L frames after the spike
  EXPECT_LE(std::abs(g[0][1000 + k.window - 1] - ref[1000 + k.window - 1]), kGainTolerance);
  for (std::size_t s = 40'000; s < ref.size(); ++s) {
    ASSERT_EQ(ref[s], 1.0) << "reference must have snapped back";
    ASSERT_EQ(g[0][s], 1.0) << s;
  }
}

// The whole emulated GPU path (detector peaks in the peak layout, gain law, application in
// double, stats) against offline_limiter::render on stereo noise and tone bursts.
TEST(GpuLimiterHost, EmulatedRenderMatchesOfflineLimiter) {
  constexpr double fs = 48'000.0;
  limiter_params p;  // the defaults the chain uses
  const gd::law_constants k = gd::make_law_constants(p, fs, 512);
  const std::size_t latency = gd::limiter_latency(p, fs);
  audio_buffer loud = test::white_noise(-8.0, 0.6, fs, 2, 11);
  audio_buffer tone = test::sine(997.0, 3.0, 0.4, fs, 2);
  audio_buffer quiet = test::white_noise(-40.0, 0.3, fs, 2, 12);
  const audio_buffer in = test::concat({&quiet, &loud, &tone, &quiet});
  const std::vector<double> gains_db = {-6.0, 0.0, 4.5};
  for (double gain_db : gains_db) {
    offline_limiter lim;
    lim.analyze(in, fs, p);
    audio_buffer ref;
    const limiter_stats ref_stats = lim.render(in, gain_db, ref);

    track_input tr;
    tr.frames = in.frames();
    tr.peak0 = test::limiter_lane_peaks(in.channel(0), in.frames(), latency, fs);
    tr.peak1 = test::limiter_lane_peaks(in.channel(1), in.frames(), latency, fs);
    tr.gain = std::pow(10.0, gain_db / 20.0);
    const auto g = emulate_gain_law({tr}, k, latency, 3);

    // apply_kernel and the stats kernels' per-frame terms, reduced serially here.
    double err = 0.0, rms = 0.0, sum_db = 0.0, min_gain = 1.0;
    std::size_t limited = 0;
    for (int c = 0; c < 2; ++c) {
      for (std::size_t m = 0; m < in.frames(); ++m) {
        const double gm = g[0][m + latency];
        const float y = static_cast<float>(static_cast<double>(in.channel(c)[m]) * (tr.gain * gm));
        err = std::max(err, std::abs(static_cast<double>(y) - ref.channel(c)[m]));
        rms += static_cast<double>(ref.channel(c)[m]) * ref.channel(c)[m];
        if (c == 0 && gm < 1.0) {
          ++limited;
          sum_db -= 20.0 * std::log10(gm);
          min_gain = std::min(min_gain, gm);
        }
      }
    }
    rms = std::sqrt(rms / (2.0 * static_cast<double>(in.frames())));
    EXPECT_LE(err / std::max(rms, 1e-30), kOutputRelTolerance) << gain_db;
    EXPECT_NEAR(sum_db / static_cast<double>(in.frames()), ref_stats.mean_gain_reduction_db, kStatsToleranceDb);
    EXPECT_NEAR(min_gain < 1.0 ? -20.0 * std::log10(min_gain) : 0.0, ref_stats.max_gain_reduction_db,
                kStatsToleranceDb);
    EXPECT_NEAR(static_cast<double>(limited), static_cast<double>(ref_stats.frames_limited),
                kFramesLimitedRelTolerance * static_cast<double>(in.frames()));
    if (gain_db > 0.0) {
      EXPECT_GT(ref_stats.frames_limited, 0u) << "material must exercise the limiter";
    }
  }
}

// ---- dither ---------------------------------------------------------------------------------

TEST(GpuDitherHost, HashEqualsDitherUniformBitForBit) {
  std::mt19937_64 rng(42);
  std::size_t checked = 0;
  for (int i = 0; i < 200'000; ++i) {
    const std::uint64_t seed = i % 7 == 0 ? static_cast<std::uint64_t>(i) : rng();
    const int channel = i % 5 == 0 ? static_cast<int>(rng()) : static_cast<int>(rng() % 8);  // incl. negative
    const std::uint64_t frame = i % 3 == 0 ? rng() : rng() % 10'000'000;
    const int substream = static_cast<int>(rng() % 2);
    const double a = gd::dither_uniform(seed, channel, frame, substream);
    const double b = dither_uniform(seed, channel, frame, substream);
    ASSERT_EQ(std::memcmp(&a, &b, sizeof a), 0) << seed << " " << channel << " " << frame << " " << substream;
    ++checked;
  }
  // Edges of the counter: frame + 1 wraps at 2^64 - 1.
  for (std::uint64_t frame : {std::uint64_t{0}, ~std::uint64_t{0}, ~std::uint64_t{0} - 1}) {
    EXPECT_EQ(gd::dither_uniform(1, 0, frame, 0), dither_uniform(1, 0, frame, 0));
    EXPECT_EQ(gd::dither_uniform(~std::uint64_t{0}, -1, frame, 1), dither_uniform(~std::uint64_t{0}, -1, frame, 1));
  }
  EXPECT_EQ(checked, 200'000u);
}

// quantize_sample (the kernel's body) in the kernel's interleaved order equals lathe::quantize
// with shaping none, including clamps, for dither on and off and several depths.
TEST(GpuDitherHost, QuantizeSampleEqualsQuantize) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.3f, 1.3f);  // some samples clip
  audio_buffer in(2, 4099);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < in.frames(); ++i) in.channel(c)[i] = i % 97 == 0 ? 0.5f / 32768.0f : u(rng);
  for (int bits : {8, 16, 24}) {
    for (bool dither : {true, false}) {
      quantize_params qp;
      qp.bit_depth = bits;
      qp.dither = dither;
      qp.seed = 0xC0FFEEull + static_cast<std::uint64_t>(bits);
      std::vector<std::int32_t> ref;
      const quantize_stats ref_stats = quantize(in, qp, ref);
      const double scale = std::ldexp(1.0, bits - 1);
      std::size_t clipped = 0;
      for (std::size_t i = 0; i < 2 * in.frames(); ++i) {
        const int ch = static_cast<int>(i % 2);
        const std::size_t n = i / 2;
        const auto q = gd::quantize_sample(in.channel(ch)[n], scale, gd::dither_key(qp.seed, ch, 0),
                                           gd::dither_key(qp.seed, ch, 1), n, dither);
        ASSERT_EQ(q.value, ref[i]) << "bits " << bits << " dither " << dither << " at " << i;
        clipped += q.clipped;
      }
      EXPECT_EQ(clipped, ref_stats.clipped_samples);
      EXPECT_GT(clipped, 0u);
    }
  }
}

}  // namespace
}  // namespace lathe
