// Non-uniformly partitioned convolution and the convolution reverb stage against direct
// convolution in float64, analytic Butterworth responses, and exact frame shifts.
#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <complex>
#include <filesystem>
#include <random>

#include "lathe/nonuniform_convolver.hpp"
#include "lathe/reverb.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

static_assert(dsp_stage<reverb_stage>);

// Max |fast - direct| relative to the direct output's RMS: -100 dB. Single-precision FFTs and
// sums over partitions and segments leave ~1e-7; 1e-5 leaves room for long sums.
constexpr double relative_error_limit = 1e-5;
// Butterworth magnitude at a probe frequency against the analytic bilinear response.
constexpr double magnitude_tolerance_db = 0.01;
// wet level statistic against the float64 reference energies.
constexpr double stats_tolerance_db = 1e-3;

namespace fs = std::filesystem;

// Gaussian noise, -10 dBFS RMS (fs = 1 Hz turns white_noise's seconds into frames).
std::vector<float> random_signal(std::size_t n, std::uint32_t seed) {
  const audio_buffer b = test::white_noise(-10.0, static_cast<double>(n), 1.0, 1, seed);
  return std::vector<float>(b.channel(0), b.channel(0) + n);
}

// Room-like: noise under an exponential decay, so late partitions carry small values.
std::vector<float> decaying_ir(std::size_t n, std::uint32_t seed) {
  std::vector<float> h = random_signal(n, seed);
  for (std::size_t i = 0; i < n; ++i) h[i] *= static_cast<float>(std::exp(-4.0 * static_cast<double>(i) / n));
  return h;
}

// y[n] = sum_k h[k] x[n - k], float64, length x.size() + h.size() - 1.
std::vector<double> direct_convolution(std::span<const float> x, std::span<const float> h) {
  std::vector<double> y(x.size() + h.size() - 1, 0.0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    if (xi == 0.0) continue;
    for (std::size_t k = 0; k < h.size(); ++k) y[i + k] += xi * h[k];
  }
  return y;
}

std::vector<std::size_t> random_block_sizes(std::uint32_t seed, std::size_t max_size) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(1, max_size);
  std::vector<std::size_t> s = {1, 2, 3, 5, 7, 13, 1'009};  // 1 and primes, then random
  for (int i = 0; i < 40; ++i) s.push_back(pick(rng));
  return s;
}

// max |got[n + shift] - ref[n]| / rms(ref) over ref's length; the `shift` frames before it must
// be silent (to the same tolerance: FFT rounding noise spreads over a whole block).
double relative_error(std::span<const float> got, std::size_t shift, std::span<const double> ref) {
  double rms = 0.0, worst = 0.0;
  for (std::size_t n = 0; n < shift; ++n) worst = std::max(worst, std::abs(static_cast<double>(got[n])));
  for (std::size_t n = 0; n < ref.size(); ++n) {
    rms += ref[n] * ref[n];
    worst = std::max(worst, std::abs(static_cast<double>(got[n + shift]) - ref[n]));
  }
  rms = std::sqrt(rms / static_cast<double>(ref.size()));
  return rms > 0.0 ? worst / rms : worst;
}

// ---------------------------------------------------------------- non-uniform convolver

std::vector<float> stream_mono(nonuniform_convolver& conv, std::vector<float> buf,
                               const std::vector<std::size_t>& sizes) {
  std::size_t pos = 0, k = 0;
  while (pos < buf.size()) {
    const std::size_t n = std::min(sizes[k++ % sizes.size()], buf.size() - pos);
    conv.process(buf.data() + pos, buf.data() + pos, n);  // in place
    pos += n;
  }
  return buf;
}

TEST(NonuniformConvolver, SegmentsDoubleAndCoverTheIr) {
  for (std::size_t per_segment : {1u, 2u, 3u}) {
    const nonuniform_layout layout{64, 1'024, per_segment};
    const std::vector<float> h(20'000, 0.5f);
    const nonuniform_filter f(h, layout, 17);
    std::size_t covered = 0, expected_block = 64;
    for (const auto& s : f.segments()) {
      EXPECT_EQ(s.offset_frames, covered);
      EXPECT_EQ(s.block_frames, expected_block);
      // The segment's output must land at latency + offset + delay.
      EXPECT_EQ(s.input_delay_frames + s.block_frames, 64 + s.offset_frames + 17);
      if (s.block_frames < layout.max_block_frames) {
        EXPECT_EQ(s.partitions, per_segment);
      }
      covered += std::min(s.partitions * s.block_frames, h.size() - covered);
      expected_block = std::min<std::size_t>(2 * expected_block, 1'024);
    }
    EXPECT_EQ(covered, h.size());
    EXPECT_EQ(f.segments().back().block_frames, 1'024u);
  }
}

TEST(NonuniformConvolver, MatchesDirectConvolution) {
  // Segments of {64 x 2, 128 x 2, 256 x rest}: boundaries at IR frames 128 and 384.
  const nonuniform_layout layout{64, 256, 2};
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::size_t> any_len(1, 3'000);
  const std::vector<std::size_t> lengths = {1,   63,  64,  127, 128,          129,         383,
                                            384, 385, 640, 641, any_len(rng), any_len(rng)};
  for (std::size_t delay : {0u, 37u}) {
    for (std::size_t ir_len : lengths) {
      SCOPED_TRACE("ir_len " + std::to_string(ir_len) + " delay " + std::to_string(delay));
      const std::vector<float> h = decaying_ir(ir_len, static_cast<std::uint32_t>(ir_len));
      const std::vector<float> x = random_signal(2'500, static_cast<std::uint32_t>(ir_len + 1));
      auto filter = std::make_shared<const nonuniform_filter>(h, layout, delay);
      nonuniform_convolver conv(filter);
      ASSERT_EQ(conv.latency_frames(), 64u);
      const std::vector<double> ref = direct_convolution(x, h);
      std::vector<float> padded(x);
      padded.resize(x.size() + h.size() + delay + 64, 0.0f);  // tail + delay + latency
      std::vector<float> first;
      for (const std::vector<std::size_t>& sizes :
           {std::vector<std::size_t>{padded.size()}, std::vector<std::size_t>{1},
            random_block_sizes(static_cast<std::uint32_t>(ir_len), 700)}) {
        conv.reset();
        const std::vector<float> got = stream_mono(conv, padded, sizes);
        EXPECT_LE(relative_error(got, 64 + delay, ref), relative_error_limit);
        // Same input, any call sizes: bit-identical output.
        if (first.empty()) first = got;
        EXPECT_EQ(got, first);
      }
    }
  }
}

// One input, two filters (a true-stereo input channel): each output must be bit-identical to a
// single-filter convolver with that filter (the shared input transform changes no arithmetic),
// whatever the call sizes, with the input buffer doubling as the first output (in place).
TEST(NonuniformConvolver, SharedInputMatchesSeparateConvolversBitwise) {
  const nonuniform_layout layout{64, 256, 2};
  for (std::size_t delay : {0u, 37u}) {
    SCOPED_TRACE("delay " + std::to_string(delay));
    const std::vector<float> h0 = decaying_ir(1'500, 21), h1 = decaying_ir(1'500, 22);
    auto f0 = std::make_shared<const nonuniform_filter>(h0, layout, delay);
    auto f1 = std::make_shared<const nonuniform_filter>(h1, layout, delay);
    const std::vector<float> x = random_signal(4'000, 23);
    nonuniform_convolver single0(f0), single1(f1);
    const std::vector<std::size_t> sizes = random_block_sizes(24, 700);
    const std::vector<float> ref0 = stream_mono(single0, x, sizes);
    const std::vector<float> ref1 = stream_mono(single1, x, sizes);
    nonuniform_convolver both({f0, f1});
    ASSERT_EQ(both.filters(), 2u);
    for (const std::vector<std::size_t>& call_sizes : {sizes, std::vector<std::size_t>{x.size()}}) {
      both.reset();
      std::vector<float> out0 = x, out1(x.size());
      std::size_t pos = 0, k = 0;
      while (pos < x.size()) {
        const std::size_t n = std::min(call_sizes[k++ % call_sizes.size()], x.size() - pos);
        float* outs[] = {out0.data() + pos, out1.data() + pos};
        both.process(out0.data() + pos, outs, n);
        pos += n;
      }
      EXPECT_EQ(out0, ref0);
      EXPECT_EQ(out1, ref1);
    }
  }
  // Filters segmented differently (other IR length) cannot share an input.
  auto shorter = std::make_shared<const nonuniform_filter>(decaying_ir(300, 25), layout, 0);
  auto longer = std::make_shared<const nonuniform_filter>(decaying_ir(1'500, 26), layout, 0);
  EXPECT_THROW(nonuniform_convolver({shorter, longer}), logic_error);
}

// ---------------------------------------------------------------- IR files

fs::path temp_dir() {
  // One folder per test process: ctest runs cases side by side, and names repeat across them.
  const fs::path d = fs::path(LATHE_BINARY_DIR) / "test-tmp" / ("reverb_test_files-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// Writes planar channels as a float WAV.
fs::path write_wav(const std::string& name, const std::vector<std::vector<float>>& channels, int rate_hz) {
  const fs::path p = temp_dir() / name;
  SF_INFO info{};
  info.channels = static_cast<int>(channels.size());
  info.samplerate = rate_hz;
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
  EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
  const std::size_t frames = channels.empty() ? 0 : channels[0].size();
  std::vector<float> inter(frames * channels.size());
  for (std::size_t i = 0; i < frames; ++i)
    for (std::size_t c = 0; c < channels.size(); ++c) inter[i * channels.size() + c] = channels[c][i];
  if (frames > 0) sf_writef_float(f, inter.data(), static_cast<sf_count_t>(frames));
  sf_close(f);
  return p;
}

void expect_input_error(const fs::path& p, const std::string& reason_part) {
  try {
    load_impulse_response(p);
    ADD_FAILURE() << "no error for " << p;
  } catch (const input_error& e) {
    EXPECT_EQ(e.path(), p.string());
    EXPECT_NE(e.reason().find(reason_part), std::string::npos) << e.what();
  }
  // The stage reports the same error from prepare().
  reverb_params params;
  params.ir_path = p;
  reverb_stage stage(params);
  EXPECT_THROW(stage.prepare(stream_spec{48'000.0, 2, 512}), input_error);
}

TEST(ReverbIr, BadFilesNameTheFileAndTheReason) {
  expect_input_error(temp_dir() / "does_not_exist.wav", "not found");
  expect_input_error(write_wav("three_channels.wav", {{0.5f, 0.1f}, {0.5f, 0.1f}, {0.5f, 0.1f}}, 48'000),
                     "has 3 channels");
  expect_input_error(write_wav("no_frames.wav", {{}}, 48'000), "empty");
  const fs::path zero = temp_dir() / "zero_bytes.wav";
  {
    std::FILE* f = std::fopen(zero.c_str(), "wb");
    std::fclose(f);
  }
  expect_input_error(zero, "empty");
  const fs::path text = temp_dir() / "not_audio.wav";
  {
    std::FILE* f = std::fopen(text.c_str(), "wb");
    std::fputs("this is not a wav file at all", f);
    std::fclose(f);
  }
  expect_input_error(text, "not a readable audio file");
}

TEST(ReverbIr, LoadsOneTwoAndFourChannels) {
  for (int ch : {1, 2, 4}) {
    std::vector<std::vector<float>> data;
    for (int c = 0; c < ch; ++c) data.push_back(decaying_ir(300, static_cast<std::uint32_t>(c + 1)));
    const fs::path p = write_wav("ir_" + std::to_string(ch) + "ch.wav", data, 44'100);
    const impulse_response ir = load_impulse_response(p);
    ASSERT_EQ(ir.audio.channels(), ch);
    EXPECT_EQ(ir.sample_rate_hz, 44'100.0);
    for (int c = 0; c < ch; ++c)
      for (std::size_t i = 0; i < 300; ++i) ASSERT_EQ(ir.audio.channel(c)[i], data[c][i]);  // float WAV: exact
  }
}

// ---------------------------------------------------------------- reverb stage

// Streams `in` (which must already hold the tail zeros) through `stage`, block sizes cycling.
audio_buffer stream(reverb_stage& stage, const audio_buffer& in, const std::vector<std::size_t>& sizes, bool in_place) {
  audio_buffer out = in;
  std::size_t pos = 0, k = 0;
  while (pos < in.frames()) {
    const std::size_t n = std::min(sizes[k++ % sizes.size()], in.frames() - pos);
    if (in_place) {
      stage.process(out.view(pos, n), out.view(pos, n));
    } else {
      stage.process(in.view(pos, n), out.view(pos, n));
    }
    pos += n;
  }
  return out;
}

audio_buffer padded_noise(int channels, std::size_t frames, std::size_t tail, std::uint32_t seed) {
  audio_buffer b(channels, frames + tail);
  for (int c = 0; c < channels; ++c) {
    const std::vector<float> v = random_signal(frames, seed + static_cast<std::uint32_t>(c));
    std::copy(v.begin(), v.end(), b.channel(c));
  }
  return b;
}

struct mix_case {
  int ir_channels;
  int ir_rate_hz;
  double pre_delay_ms;
};

TEST(Reverb, MatchesDirectConvolutionWithMix) {
  const double fs = 44'100.0;
  const std::size_t input_frames = 6'000;
  for (const mix_case mc : {mix_case{1, 48'000, 0.0}, mix_case{2, 44'100, 3.3}, mix_case{4, 32'000, 0.0}}) {
    SCOPED_TRACE("IR channels " + std::to_string(mc.ir_channels));
    std::vector<std::vector<float>> data;
    for (int c = 0; c < mc.ir_channels; ++c) data.push_back(decaying_ir(2'000, static_cast<std::uint32_t>(10 + c)));
    const fs::path p = write_wav("mix_" + std::to_string(mc.ir_channels) + "ch.wav", data, mc.ir_rate_hz);
    reverb_params params;
    params.ir_path = p;
    params.wet_db = -6.0;
    params.dry_db = -3.0;
    params.pre_delay_ms = mc.pre_delay_ms;
    params.layout = {128, 1'024, 2};
    reverb_stage stage(params);
    stage.prepare(stream_spec{fs, 2, 1'100});
    const std::size_t latency = stage.latency_frames();
    ASSERT_EQ(latency, 128u);
    EXPECT_EQ(stage.routing(), mc.ir_channels == 1   ? reverb_routing::mono
                               : mc.ir_channels == 2 ? reverb_routing::stereo
                                                     : reverb_routing::true_stereo);
    const audio_buffer& h = stage.resampled_ir();
    ASSERT_EQ(h.channels(), mc.ir_channels);
    // lathe::resample keeps round(frames * out / in) frames.
    EXPECT_EQ(h.frames(), static_cast<std::size_t>(std::llround(2'000.0 * fs / mc.ir_rate_hz)));
    const std::size_t d = stage.pre_delay_frames();
    EXPECT_EQ(d, static_cast<std::size_t>(std::llround(mc.pre_delay_ms * fs / 1000.0)));

    const audio_buffer in = padded_noise(2, input_frames, h.frames() + d + latency, 99);
    // Reference: out_o[n] = g_dry x_o[n] + g_wet sum over paths (x_i * h_path)[n - d], float64.
    const double g_dry = std::pow(10.0, -3.0 / 20.0), g_wet = std::pow(10.0, -6.0 / 20.0);
    const std::span<const float> x0(in.channel(0), input_frames), x1(in.channel(1), input_frames);
    std::vector<std::vector<double>> wet(2, std::vector<double>(input_frames + h.frames() - 1 + d, 0.0));
    auto add = [&](int out, std::span<const float> x, int ir_channel) {
      const std::vector<double> y = direct_convolution(x, h.span(ir_channel));
      for (std::size_t n = 0; n < y.size(); ++n) wet[out][n + d] += y[n];
    };
    if (mc.ir_channels == 1) {
      add(0, x0, 0);
      add(1, x1, 0);
    } else if (mc.ir_channels == 2) {
      add(0, x0, 0);
      add(1, x1, 1);
    } else {
      add(0, x0, 0);  // LL
      add(1, x0, 1);  // LR
      add(0, x1, 2);  // RL
      add(1, x1, 3);  // RR
    }
    std::vector<std::vector<double>> ref(2);
    double wet_energy = 0.0, dry_energy = 0.0;
    for (int c = 0; c < 2; ++c) {
      ref[c].resize(wet[c].size());
      for (std::size_t n = 0; n < ref[c].size(); ++n) {
        const double x = n < input_frames ? in.channel(c)[n] : 0.0;
        ref[c][n] = g_dry * x + g_wet * wet[c][n];
        wet_energy += g_wet * g_wet * wet[c][n] * wet[c][n];
        dry_energy += x * x;
      }
    }

    audio_buffer first;
    int run = 0;
    for (const std::vector<std::size_t>& sizes :
         {std::vector<std::size_t>{1'100}, std::vector<std::size_t>{1}, random_block_sizes(5, 1'100)}) {
      for (bool in_place : {false, true}) {
        stage.reset();
        const audio_buffer out = stream(stage, in, sizes, in_place);
        for (int c = 0; c < 2; ++c) EXPECT_LE(relative_error(out.span(c), latency, ref[c]), relative_error_limit);
        if (run++ == 0) {
          first = out;
          const reverb_stats s = stage.stats();
          EXPECT_EQ(s.frames, in.frames());
          EXPECT_NEAR(s.wet_relative_db, 10.0 * std::log10(wet_energy / dry_energy), stats_tolerance_db);
        } else {
          for (int c = 0; c < 2; ++c)
            ASSERT_TRUE(std::equal(first.span(c).begin(), first.span(c).end(), out.span(c).begin()))
                << "output depends on block sizes";
        }
      }
    }
  }
}

// Impulse response of the wet path only (dry muted), `frames` long after the latency.
std::vector<std::vector<float>> wet_impulse_response(reverb_stage& stage, int impulse_channel, std::size_t frames) {
  audio_buffer in(2, frames + stage.latency_frames());
  in.channel(impulse_channel)[0] = 1.0f;
  stage.reset();
  const audio_buffer out = stream(stage, in, {4'096}, false);
  std::vector<std::vector<float>> r(2);
  for (int c = 0; c < 2; ++c) r[c].assign(out.channel(c) + stage.latency_frames(), out.channel(c) + out.frames());
  return r;
}

TEST(Reverb, PreDelayShiftsTheWetPathByWholeFrames) {
  const double fs = 44'100.0;
  std::vector<float> h = decaying_ir(3'000, 3);
  h[0] = 2.0f;  // a dominant direct sound marks the onset
  const auto ir =
      std::make_shared<const impulse_response>(impulse_response{"mem.wav", fs, [&] {
                                                                  audio_buffer b(1, h.size());
                                                                  std::copy(h.begin(), h.end(), b.channel(0));
                                                                  return b;
                                                                }()});
  for (double pre_delay_ms : {0.0, 12.34, 25.0, 0.011}) {
    SCOPED_TRACE(pre_delay_ms);
    reverb_params params;
    params.pre_delay_ms = pre_delay_ms;
    params.wet_db = 0.0;
    params.dry_db = -std::numeric_limits<double>::infinity();
    params.layout = {256, 2'048, 2};
    reverb_stage stage(params, ir);
    stage.prepare(stream_spec{fs, 2, 4'096});
    const auto expected = static_cast<std::size_t>(std::llround(pre_delay_ms * fs / 1000.0));
    ASSERT_EQ(stage.pre_delay_frames(), expected);
    const std::vector<std::vector<float>> r = wet_impulse_response(stage, 0, 5'000);
    // Silence before the pre-delay, then the IR itself (direct convolution with a unit impulse).
    const std::vector<double> ref(h.begin(), h.end());
    EXPECT_LE(relative_error(r[0], expected, ref), relative_error_limit);
    const auto peak =
        std::max_element(r[0].begin(), r[0].end(), [](float a, float b) { return std::abs(a) < std::abs(b); });
    EXPECT_EQ(static_cast<std::size_t>(peak - r[0].begin()), expected);
    for (float v : r[1]) ASSERT_EQ(v, 0.0f);  // mono IR: no crosstalk to the right channel
  }
}

TEST(Reverb, TrueStereoRoutesLeftImpulseToLlAndLr) {
  const double fs = 48'000.0;
  audio_buffer b(4, 1'500);
  for (int c = 0; c < 4; ++c) {
    const std::vector<float> v = decaying_ir(1'500, static_cast<std::uint32_t>(40 + c));
    std::copy(v.begin(), v.end(), b.channel(c));
  }
  const auto ir = std::make_shared<const impulse_response>(impulse_response{"true_stereo.wav", fs, b});
  reverb_params params;
  params.wet_db = 0.0;
  params.dry_db = -std::numeric_limits<double>::infinity();
  params.layout = {64, 512, 2};
  reverb_stage stage(params, ir);
  stage.prepare(stream_spec{fs, 2, 4'096});
  ASSERT_EQ(stage.routing(), reverb_routing::true_stereo);
  auto as_ref = [&](int c) { return std::vector<double>(b.channel(c), b.channel(c) + b.frames()); };
  const auto left_in = wet_impulse_response(stage, 0, 2'000);
  EXPECT_LE(relative_error(left_in[0], 0, as_ref(0)), relative_error_limit);  // LL on the left
  EXPECT_LE(relative_error(left_in[1], 0, as_ref(1)), relative_error_limit);  // LR on the right
  const auto right_in = wet_impulse_response(stage, 1, 2'000);
  EXPECT_LE(relative_error(right_in[0], 0, as_ref(2)), relative_error_limit);  // RL on the left
  EXPECT_LE(relative_error(right_in[1], 0, as_ref(3)), relative_error_limit);  // RR on the right
}

TEST(Reverb, StereoIrNeedsAStereoTrack) {
  const auto ir = std::make_shared<const impulse_response>(impulse_response{"st.wav", 48'000.0, audio_buffer(2, 100)});
  reverb_stage stage(reverb_params{}, ir);
  EXPECT_THROW(stage.prepare(stream_spec{48'000.0, 1, 512}), input_error);
}

// |H|^2 of the bilinear-transformed 2nd-order Butterworth, analytic.
double butterworth_db(double f, double fc, double fs, bool highpass) {
  const double r = std::tan(M_PI * f / fs) / std::tan(M_PI * fc / fs);
  const double ratio4 = highpass ? std::pow(1.0 / r, 4) : std::pow(r, 4);
  return -10.0 * std::log10(1.0 + ratio4);
}

TEST(Reverb, WetFiltersAreButterworth) {
  const double fs = 48'000.0;
  audio_buffer delta(1, 1);
  delta.channel(0)[0] = 1.0f;
  const auto ir = std::make_shared<const impulse_response>(impulse_response{"delta.wav", fs, delta});
  reverb_params params;
  params.wet_db = 0.0;
  params.dry_db = -std::numeric_limits<double>::infinity();
  params.low_cut_hz = 200.0;
  params.high_cut_hz = 6'000.0;
  params.layout = {64, 64, 1};
  reverb_stage stage(params, ir);
  stage.prepare(stream_spec{fs, 2, 4'096});
  // The 200 Hz pole decays by e^-1 per ~50 frames; 48k frames leave it far below float noise.
  const auto r = wet_impulse_response(stage, 0, 48'000);
  for (double f : {50.0, 200.0, 1'000.0, 6'000.0, 15'000.0}) {
    std::complex<double> acc = 0.0;  // naive DFT at f
    for (std::size_t n = 0; n < r[0].size(); ++n)
      acc += static_cast<double>(r[0][n]) * std::polar(1.0, -2.0 * M_PI * f * static_cast<double>(n) / fs);
    const double expected = butterworth_db(f, 200.0, fs, true) + butterworth_db(f, 6'000.0, fs, false);
    EXPECT_NEAR(20.0 * std::log10(std::abs(acc)), expected, magnitude_tolerance_db) << f << " Hz";
  }
}

TEST(Reverb, TenSecondIrAt96kHz) {
  const double fs = 96'000.0;
  const std::size_t ir_frames = 1'000'000;  // 10.4 s
  const std::vector<float> h = decaying_ir(ir_frames, 5);
  const fs::path p = write_wav("long_96k.wav", {h}, 96'000);
  reverb_params params;
  params.ir_path = p;
  params.wet_db = 0.0;
  params.dry_db = -std::numeric_limits<double>::infinity();
  reverb_stage stage(params);
  stage.prepare(stream_spec{fs, 2, 4'096});
  // Convolving a unit impulse must return the whole IR, its last frames included.
  const auto r = wet_impulse_response(stage, 0, ir_frames + 10);
  const std::vector<double> ref(h.begin(), h.end());
  EXPECT_LE(relative_error(r[0], 0, ref), relative_error_limit);
}

}  // namespace
}  // namespace lathe
