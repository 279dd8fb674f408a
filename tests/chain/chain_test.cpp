// prechain_stream against the whole-buffer pre-chain it replaces: every stage run over the whole
// buffer by run_aligned in 8192-frame blocks (the high-pass in one in-place call), kept here as
// the reference. The comparison is exact: output bitwise equal (memcmp per frame) and the report
// JSON equal, for the shipped profiles and chain presets, a chain of every stage with a reverb,
// three rates, lengths around one block, and push sizes 1, 1000, 8192, 65537 and random. The
// stream's memory is measured: its queues are the same size for 10 s and 60 s, and the heap does
// not grow while it runs.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sndfile.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "lathe/chain.hpp"
#include "lathe/master.hpp"
#include "lathe/stage_module.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

namespace fs = std::filesystem;

const fs::path configs = fs::path(LATHE_SOURCE_DIR) / "configs";

template <dsp_stage S>
S run_whole(S stage, const stream_spec& spec, audio_buffer& audio) {
  stage.prepare(spec);
  run_aligned(stage, audio, spec.max_block_frames);
  return stage;
}

// The pre-chain as apply_prechain ran it before it became a stream.
audio_buffer reference_prechain(const audio_buffer& in, double fs_hz, const delivery_profile& p,
                                nlohmann::json& report) {
  stream_spec spec;
  spec.sample_rate_hz = fs_hz;
  spec.channels = in.channels();
  spec.max_block_frames = 8192;
  audio_buffer out = in;
  report = nlohmann::json::array();
  for (const chain_stage st : p.chain_order) {
    switch (st) {
      case chain_stage::highpass: {
        highpass_stage hp(p.highpass);
        hp.prepare(spec);
        hp.process(out.view(), out.view());
        report.push_back(stage_module<chain_stage::highpass>::report(p.highpass, {}));
        break;
      }
      case chain_stage::eq: {
        const eq_params eq = eq_at_rate(p.eq, fs_hz);
        const std::size_t taps =
            eq.bands.empty() && eq.curve.empty() ? 0 : run_whole(linear_phase_eq_stage(eq), spec, out).taps();
        report.push_back(stage_module<chain_stage::eq>::report(p.eq, {eq.bands.size(), taps}));
        break;
      }
      case chain_stage::deesser:
        report.push_back(stage_module<chain_stage::deesser>::report(
            p.deesser, run_whole(deesser_stage(p.deesser), spec, out).stats()));
        break;
      case chain_stage::multiband: {
        const multiband_stage mb = run_whole(multiband_stage(p.multiband), spec, out);
        std::vector<dynamics_stats> bands;
        for (int k = 0; k < mb.band_count(); ++k) bands.push_back(mb.band_stats(k));
        report.push_back(stage_module<chain_stage::multiband>::report(p.multiband, bands));
        break;
      }
      case chain_stage::stereo:
        report.push_back(
            stage_module<chain_stage::stereo>::report(p.stereo, run_whole(stereo_stage(p.stereo), spec, out).stats()));
        break;
      case chain_stage::saturation:
        run_whole(saturation_stage(p.saturation), spec, out);
        report.push_back(stage_module<chain_stage::saturation>::report(p.saturation, {}));
        break;
      case chain_stage::reverb:
        report.push_back(
            stage_module<chain_stage::reverb>::report(p.reverb, run_whole(reverb_stage(p.reverb), spec, out).stats()));
        break;
    }
  }
  return out;
}

// A decaying mono room of 0.3 s at 44.1 kHz (so other rates resample it), as a float WAV.
fs::path room_ir() {
  const fs::path dir = fs::path(LATHE_BINARY_DIR) / "chain_test_files";
  fs::create_directories(dir);
  // Test processes run side by side: each writes its own file and renames it into place, so
  // none ever reads a half-written one.
  const fs::path path = dir / "room.wav";
  const fs::path tmp = dir / ("room.wav.tmp-" + std::to_string(::getpid()));
  const int rate_hz = 44'100;
  audio_buffer ir = test::white_noise(-6.0, 0.3, rate_hz, 1, 11);
  for (std::size_t i = 0; i < ir.frames(); ++i)
    ir.channel(0)[i] *= static_cast<float>(std::exp(-static_cast<double>(i) / (0.06 * rate_hz)));
  SF_INFO info{};
  info.channels = 1;
  info.samplerate = rate_hz;
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* f = sf_open(tmp.c_str(), SFM_WRITE, &info);
  EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
  sf_writef_float(f, ir.channel(0), static_cast<sf_count_t>(ir.frames()));
  sf_close(f);
  fs::rename(tmp, path);
  return path;
}

delivery_profile with_preset(const std::string& preset) {
  delivery_profile p = load_profile(configs / "streaming.toml");
  apply_chain_preset(configs / "chains" / (preset + ".toml"), p);
  return p;
}

// Every stage, each with latency: EQ bands and a curve (a 30 kHz band that eq_at_rate drops
// below 61 kHz), the vinyl de-esser and bass mono, loud-modern's lookahead multiband and
// oversampled saturation, and a reverb whose partitions are longer than a block.
delivery_profile every_stage() {
  delivery_profile p = with_preset("loud-modern");
  const delivery_profile vinyl = load_profile(configs / "vinyl.toml");
  p.deesser = vinyl.deesser;
  p.stereo = vinyl.stereo;
  p.eq.bands = {{eq_band_type::low_shelf, 90.0, 2.0, 0.707},
                {eq_band_type::bell, 3'000.0, -3.0, 1.4},
                {eq_band_type::high_shelf, 30'000.0, 1.5, 0.707}};
  p.eq.curve = {{200.0, 0.5}, {1'000.0, -0.5}, {8'000.0, 1.0}};
  p.saturation.drive_db = 6.0;
  p.saturation.mix = 0.5;
  p.reverb.ir_path = room_ir();
  p.reverb.wet_db = -18.0;
  p.reverb.low_cut_hz = 200.0;
  p.chain_order = {chain_stage::highpass, chain_stage::eq,         chain_stage::deesser, chain_stage::multiband,
                   chain_stage::stereo,   chain_stage::saturation, chain_stage::reverb};
  return p;
}

// The reverb first, then an EQ of a curve only (the auto-EQ's form), then the high-pass.
delivery_profile reverb_first() {
  delivery_profile p = load_profile(configs / "streaming.toml");
  p.reverb.ir_path = room_ir();
  p.reverb.pre_delay_ms = 7.0;
  p.eq.curve = {{60.0, 1.0}, {500.0, -1.0}, {6'000.0, 0.5}};
  p.chain_order = {chain_stage::reverb, chain_stage::eq, chain_stage::highpass};
  return p;
}

delivery_profile profile_named(const std::string& name) {
  if (name == "every_stage") return every_stage();
  if (name == "reverb_first") return reverb_first();
  if (name == "streaming" || name == "vinyl" || name == "broadcast") return load_profile(configs / (name + ".toml"));
  std::string preset = name;
  std::replace(preset.begin(), preset.end(), '_', '-');
  return with_preset(preset);
}

// Noise whose level steps between -13 and -29 dBFS every 50 ms (so the dynamics stages act and
// release), the right channel partly correlated with the left.
audio_buffer program(std::size_t frames, double fs_hz, int channels = 2) {
  audio_buffer x = test::white_noise(-13.0, static_cast<double>(frames) / fs_hz, fs_hz, channels, 5);
  const auto step = static_cast<std::size_t>(0.05 * fs_hz);
  for (std::size_t i = 0; i < x.frames(); ++i) {
    const float g = (i / step) % 2 == 0 ? 1.0f : 0.16f;
    const float left = x.channel(0)[i];
    x.channel(0)[i] = g * left;
    if (channels > 1) x.channel(1)[i] = g * (0.6f * left + 0.4f * x.channel(1)[i]);
  }
  return x;
}

struct stream_result {
  audio_buffer out;
  nlohmann::json report;
  std::size_t largest_view = 0;
  bool lag_within_bound = true;
};

// Runs the stream over `in`, pushing blocks cycling through `sizes`.
stream_result run_stream(const audio_buffer& in, double fs_hz, const delivery_profile& p,
                         const std::vector<std::size_t>& sizes) {
  prechain_stream s(p, fs_hz, in.channels(), in.frames());
  stream_result r;
  r.out.resize(in.channels(), in.frames());
  std::size_t at = 0;
  auto sink = [&](const_block_view v) {
    r.largest_view = std::max(r.largest_view, v.frames);
    for (int c = 0; c < v.channels; ++c) std::memcpy(r.out.channel(c) + at, v[c], v.frames * sizeof(float));
    at += v.frames;
  };
  // Each stage holds back at most its latency plus one block less a frame.
  const std::size_t lag_bound = s.latency_frames() + p.chain_order.size() * (prechain_stream::block_frames - 1);
  std::size_t pos = 0;
  for (std::size_t b = 0; pos < in.frames(); ++b) {
    const std::size_t n = std::min(sizes[b % sizes.size()], in.frames() - pos);
    s.push(in.view(pos, n), sink);
    pos += n;
    if (s.emitted_frames() + lag_bound < pos) r.lag_within_bound = false;
  }
  s.finish(sink);
  EXPECT_EQ(at, in.frames());
  EXPECT_EQ(s.emitted_frames(), in.frames());
  r.report = s.report();
  return r;
}

constexpr std::size_t all_equal = static_cast<std::size_t>(-1);

// The first frame where a and b differ in any bit, all_equal when they are bitwise equal (a
// shape mismatch differs at frame 0).
std::size_t first_difference(const audio_buffer& a, const audio_buffer& b) {
  if (a.channels() != b.channels() || a.frames() != b.frames()) return 0;
  for (std::size_t i = 0; i < a.frames(); ++i)
    for (int c = 0; c < a.channels(); ++c)
      if (std::memcmp(a.channel(c) + i, b.channel(c) + i, sizeof(float)) != 0) return i;
  return all_equal;
}

std::vector<std::size_t> random_sizes(std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> d(0, 30'000);
  std::vector<std::size_t> s(61);
  for (std::size_t& v : s) v = d(rng);
  s[7] = 1;
  return s;
}

class PrechainStream : public testing::TestWithParam<std::string> {};

TEST_P(PrechainStream, BitIdenticalToTheWholeBufferChainForAnyPushSizes) {
  const delivery_profile p = profile_named(GetParam());
  const std::vector<std::vector<std::size_t>> pushes = {{1}, {1'000}, {8'192}, {65'537}, random_sizes(3)};
  for (const double fs_hz : {44'100.0, 48'000.0, 96'000.0}) {
    // Empty, shorter than a block, one block exactly, one frame over, and many blocks.
    for (const std::size_t frames : {std::size_t{0}, std::size_t{1}, std::size_t{1'000}, std::size_t{8'192},
                                     std::size_t{8'193}, std::size_t{100'003}}) {
      SCOPED_TRACE(testing::Message() << fs_hz << " Hz, " << frames << " frames");
      const audio_buffer in = program(frames, fs_hz);
      nlohmann::json want_report;
      const audio_buffer want = reference_prechain(in, fs_hz, p, want_report);
      for (const std::vector<std::size_t>& sizes : pushes) {
        SCOPED_TRACE(testing::Message() << "push " << sizes.front() << (sizes.size() > 1 ? " (random)" : ""));
        const stream_result got = run_stream(in, fs_hz, p, sizes);
        EXPECT_EQ(first_difference(got.out, want), all_equal);
        EXPECT_EQ(got.report, want_report) << got.report.dump() << "\n" << want_report.dump();
        EXPECT_LE(got.largest_view, prechain_stream::block_frames);
        EXPECT_TRUE(got.lag_within_bound);
      }
      nlohmann::json report;
      EXPECT_EQ(first_difference(apply_prechain(in, fs_hz, p, &report), want), all_equal);
      EXPECT_EQ(report, want_report);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Profiles, PrechainStream,
                         testing::Values("streaming", "vinyl", "broadcast", "loud_modern", "gentle_glue",
                                         "vinyl_premaster", "adaptive", "every_stage", "reverb_first"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(PrechainStreamMono, BitIdenticalOnOneChannel) {
  delivery_profile p = profile_named("reverb_first");
  p.chain_order.push_back(chain_stage::deesser);
  const double fs_hz = 48'000.0;
  const audio_buffer in = program(50'001, fs_hz, 1);
  nlohmann::json want_report;
  const audio_buffer want = reference_prechain(in, fs_hz, p, want_report);
  const stream_result got = run_stream(in, fs_hz, p, random_sizes(9));
  EXPECT_EQ(first_difference(got.out, want), all_equal);
  EXPECT_EQ(got.report, want_report);
}

std::size_t heap_in_use_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// What the heap grew by while the whole track streamed through, and the stream's queue bytes.
struct memory_use {
  std::size_t buffer_bytes = 0;
  std::ptrdiff_t heap_growth_bytes = 0;
  std::size_t emitted = 0;
};

memory_use stream_memory(double seconds) {
  const double fs_hz = 48'000.0;
  const audio_buffer in = program(static_cast<std::size_t>(seconds * fs_hz), fs_hz);
  prechain_stream s(every_stage(), fs_hz, in.channels(), in.frames());
  double sum = 0.0;  // the sink keeps nothing, so only the stream can hold memory
  auto sink = [&](const_block_view v) {
    for (std::size_t i = 0; i < v.frames; ++i) sum += v[0][i];
  };
  const std::size_t before = heap_in_use_bytes();
  for (std::size_t pos = 0; pos < in.frames(); pos += 3'001)
    s.push(in.view(pos, std::min<std::size_t>(3'001, in.frames() - pos)), sink);
  s.finish(sink);
  const std::size_t after = heap_in_use_bytes();
  EXPECT_TRUE(std::isfinite(sum));
  return {s.buffer_bytes(), static_cast<std::ptrdiff_t>(after) - static_cast<std::ptrdiff_t>(before),
          s.emitted_frames()};
}

TEST(PrechainStreamMemory, DoesNotGrowWithTheTrackLength) {
  const memory_use short_track = stream_memory(10.0);
  const memory_use long_track = stream_memory(60.0);
  EXPECT_EQ(short_track.emitted, 480'000u);
  EXPECT_EQ(long_track.emitted, 2'880'000u);
  EXPECT_EQ(short_track.buffer_bytes, long_track.buffer_bytes);
  // Seven stages, a queue and an output block each, and the flush's zeros: 15 stereo blocks.
  EXPECT_EQ(long_track.buffer_bytes, 15u * 2u * prechain_stream::block_frames * sizeof(float));
  // push() and finish() allocate nothing, so the heap in use is unchanged to the byte.
  EXPECT_EQ(short_track.heap_growth_bytes, 0);
  EXPECT_EQ(long_track.heap_growth_bytes, 0);
}

TEST(PrechainStreamErrors, RejectsMisuseBeforeProcessing) {
  const delivery_profile p = load_profile(configs / "streaming.toml");
  const audio_buffer in = program(100, 48'000.0);
  prechain_stream s(p, 48'000.0, 2, 100);
  auto sink = [](const_block_view) {};
  EXPECT_THROW(s.push(program(101, 48'000.0).view(), sink), logic_error);
  EXPECT_THROW(s.push(program(10, 48'000.0, 1).view(), sink), logic_error);
  EXPECT_EQ(s.pushed_frames(), 0u);
  s.push(in.view(0, 60), sink);
  EXPECT_THROW(s.finish(sink), logic_error);
  s.push(in.view(60, 40), sink);
  s.finish(sink);
  EXPECT_TRUE(s.finished());
  EXPECT_THROW(s.finish(sink), logic_error);
  EXPECT_THROW(s.push(in.view(0, 0), sink), logic_error);
}

}  // namespace
}  // namespace lathe
