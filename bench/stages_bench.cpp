// Per-stage throughput of lathe's CPU chain on music-like 44.1 kHz stereo (host/demo_catalog's
// synthetic songs), in Google Benchmark form. This is where lathe's per-stage speed figures come
// from; unit tests do not time anything.
//
// Every benchmark reports x_realtime: seconds of source audio processed per wall-clock second
// (stereo, one thread), and items_per_second in source frames. Setup (synthesis, filter design,
// limiter detection, files to decode) is outside the timed region unless the name says prepare.
//
//   build/lathe_stages_bench --benchmark_out=bench/results/NAME.json --benchmark_out_format=json
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "demo_catalog.hpp"
#include "lathe/analysis.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/dither.hpp"
#include "lathe/eq.hpp"
#include "lathe/highpass.hpp"
#include "lathe/limiter.hpp"
#include "lathe/loudness.hpp"
#include "lathe/master.hpp"
#include "lathe/polyphase.hpp"
#include "lathe/profile.hpp"
#include "lathe/resampler.hpp"
#include "lathe/reverb.hpp"
#include "lathe/tonal.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {
namespace {

constexpr double song_seconds = 30.0;
// The demo mix's gain: loud sections reach roughly -10 LUFS, so both normalization targets and
// the limiter have work to do.
constexpr double song_level_db = -6.0;
// What the streaming stages feed per call, as the pipeline does.
constexpr std::size_t block_frames = 4'096;

// One song per rate, synthesized once (it is the input, not the work being measured).
const audio_buffer& song(double rate_hz) {
  static std::map<double, audio_buffer> cache;
  auto it = cache.find(rate_hz);
  if (it == cache.end()) {
    demo_track_spec spec;
    spec.seconds = song_seconds;
    spec.sample_rate_hz = rate_hz;
    spec.level_db = song_level_db;
    spec.seed = 7;
    it = cache.emplace(rate_hz, synthesize_song(spec)).first;
  }
  return it->second;
}

// x_realtime and items_per_second for `frames` source frames at `rate_hz` per iteration.
void report_audio(benchmark::State& state, std::size_t frames, double rate_hz) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(frames));
  state.counters["x_realtime"] =
      benchmark::Counter(static_cast<double>(frames) / rate_hz, benchmark::Counter::kIsIterationInvariantRate);
}

// Times `body(song)` per iteration on the song at `rate_hz`, for the stages that need no state
// kept between iterations.
template <class Body>
void time_on_song(benchmark::State& state, double rate_hz, Body&& body) {
  const audio_buffer& x = song(rate_hz);
  for (auto _ : state) body(x);
  report_audio(state, x.frames(), rate_hz);
}

// The three-band EQ of bench/profiles/*.toml.
std::vector<eq_band> bench_eq_bands() {
  return {{eq_band_type::low_shelf, 100.0, 1.0, 0.707},
          {eq_band_type::bell, 3'000.0, -1.5, 1.0},
          {eq_band_type::high_shelf, 10'000.0, 1.0, 0.707}};
}

delivery_profile streaming_profile() {
  delivery_profile p;
  p.name = "streaming";
  p.target_lufs = -14.0;
  p.ceiling_dbtp = -1.0;
  p.normalization = normalization_mode::limit;
  p.sample_rate_hz = std::nullopt;  // source rate
  p.bit_depth = 24;
  p.container = container_format::flac;
  p.shaping = noise_shaping::none;
  p.highpass = {20.0, 2, 2.0};
  p.eq.bands = bench_eq_bands();
  p.limiter.ceiling_dbtp = p.ceiling_dbtp;
  return p;
}

delivery_profile cd_profile() {
  delivery_profile p = streaming_profile();
  p.name = "cd";
  p.target_lufs = -12.0;
  p.ceiling_dbtp = -0.3;
  p.sample_rate_hz = 44'100.0;
  p.bit_depth = 16;
  p.container = container_format::wav;
  p.shaping = noise_shaping::f_weighted;
  p.limiter.ceiling_dbtp = p.ceiling_dbtp;
  return p;
}

// Wall-clock time (the work is single-threaded; real time also catches time spent waiting on
// the disk), repeated for at least a second so the fast stages get many iterations and the
// slowest (render_master, ~0.3 s) still several.
void timing(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
}

std::filesystem::path& temp_dir() {
  static std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lathe_stages_bench_" + std::to_string(::getpid()));
  return dir;
}

// ---- stages 1-2: high-pass and linear-phase EQ -------------------------------------------------

void BM_highpass_order4(benchmark::State& state) {
  const double fs = 44'100.0;
  const audio_buffer& x = song(fs);
  audio_buffer y(x.channels(), x.frames());
  highpass_stage st({20.0, 4, 2.0});
  st.prepare({fs, x.channels(), block_frames});
  for (auto _ : state) {
    st.reset();
    for (std::size_t pos = 0; pos < x.frames(); pos += block_frames) {
      const std::size_t n = std::min(block_frames, x.frames() - pos);
      st.process(x.view(pos, n), y.view(pos, n));
    }
    benchmark::DoNotOptimize(y.channel(0));
    benchmark::ClobberMemory();
  }
  report_audio(state, x.frames(), fs);
}
BENCHMARK(BM_highpass_order4)->Apply(timing);

// Whole buffer through run_aligned (latency removed), as apply_prechain runs it. The copy that
// run_aligned consumes is made outside the timed region.
void eq_run(benchmark::State& state, std::size_t taps, std::size_t partition_frames) {
  const double fs = 44'100.0;
  const audio_buffer& x = song(fs);
  linear_phase_eq_stage st({bench_eq_bands(), taps, partition_frames});
  st.prepare({fs, x.channels(), block_frames});
  for (auto _ : state) {
    state.PauseTiming();
    audio_buffer y = x;
    st.reset();
    state.ResumeTiming();
    run_aligned(st, y, block_frames);
    benchmark::DoNotOptimize(y.channel(0));
  }
  state.counters["taps"] = static_cast<double>(st.taps());
  report_audio(state, x.frames(), fs);
}

// Taps chosen automatically (4097 for these bands at 44.1 kHz).
void BM_eq_run_aligned(benchmark::State& state) {
  eq_run(state, 0, static_cast<std::size_t>(state.range(0)));
}
BENCHMARK(BM_eq_run_aligned)->ArgName("partition")->Arg(1'024)->Arg(2'048)->Arg(4'096)->Arg(8'192)->Apply(timing);

// Longer filters than the auto choice, at the default partition: a profile with a
// low-frequency band of high Q asks for them.
void BM_eq_taps(benchmark::State& state) {
  eq_run(state, static_cast<std::size_t>(state.range(0)), 4'096);
}
BENCHMARK(BM_eq_taps)->ArgName("taps")->Arg(16'385)->Arg(65'537)->Apply(timing);

// Design plus FFTW planning: paid once per track and pre-chain, so it matters for short tracks.
void BM_eq_prepare(benchmark::State& state) {
  const double fs = 44'100.0;
  const auto partition = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    linear_phase_eq_stage st({bench_eq_bands(), 0, partition});
    st.prepare({fs, 2, block_frames});
    benchmark::DoNotOptimize(st.taps());
  }
}
BENCHMARK(BM_eq_prepare)->ArgName("partition")->Arg(1'024)->Arg(4'096)->Arg(8'192)->Apply(timing);

void BM_apply_prechain(benchmark::State& state) {
  const delivery_profile p = streaming_profile();
  time_on_song(state, 44'100.0, [&](const audio_buffer& x) {
    audio_buffer y = apply_prechain(x, 44'100.0, p);
    benchmark::DoNotOptimize(y.channel(0));
  });
}
BENCHMARK(BM_apply_prechain)->Apply(timing);

// ---- meters ------------------------------------------------------------------------------------

// true_peak_of on each channel: 8x below 88.2 kHz, 4x at and above.
void BM_true_peak_of(benchmark::State& state) {
  const auto fs = static_cast<double>(state.range(0));
  time_on_song(state, fs, [&](const audio_buffer& x) {
    float peak = 0.0f;
    for (int c = 0; c < x.channels(); ++c) peak = std::max(peak, true_peak_of(x.channel(c), x.frames(), fs));
    benchmark::DoNotOptimize(peak);
  });
  true_peak_interpolator tp;
  tp.prepare(fs);
  state.counters["oversampling"] = tp.factor();
}
BENCHMARK(BM_true_peak_of)->ArgName("rate_hz")->Arg(44'100)->Arg(96'000)->Apply(timing);

// Fed in 4096-frame blocks, then the gated integrated loudness.
void loudness_run(benchmark::State& state, const audio_buffer& x, double fs) {
  loudness_meter m;
  m.prepare(fs, x.channels());
  for (auto _ : state) {
    m.reset();
    for (std::size_t pos = 0; pos < x.frames(); pos += block_frames)
      m.process(x.view(pos, std::min(block_frames, x.frames() - pos)));
    benchmark::DoNotOptimize(m.integrated_lufs());
  }
  report_audio(state, x.frames(), fs);
}

void BM_loudness_integrated(benchmark::State& state) {
  loudness_run(state, song(44'100.0), 44'100.0);
}
BENCHMARK(BM_loudness_integrated)->Apply(timing);

// The song followed by as long again of digital silence: the K-weighting filters decay into the
// denormal range there, which must not slow the meter (x_realtime close to the plain run's).
void BM_loudness_integrated_silent_tail(benchmark::State& state) {
  const double fs = 44'100.0;
  const audio_buffer& s = song(fs);
  audio_buffer x(s.channels(), 2 * s.frames());
  for (int c = 0; c < s.channels(); ++c) std::copy(s.channel(c), s.channel(c) + s.frames(), x.channel(c));
  loudness_run(state, x, fs);
}
BENCHMARK(BM_loudness_integrated_silent_tail)->Apply(timing);

void BM_analyze(benchmark::State& state) {
  time_on_song(state, 44'100.0, [](const audio_buffer& x) {
    const track_analysis a = analyze(x, 44'100.0);
    benchmark::DoNotOptimize(a.integrated_lufs);
  });
}
BENCHMARK(BM_analyze)->Apply(timing);

// Tonal balance (issue 5): Welch mid/side power (FFTW float, 8192-point frames, 50 % overlap)
// plus the host-side summary.
void BM_analyze_tonal(benchmark::State& state) {
  time_on_song(state, 44'100.0, [](const audio_buffer& x) {
    const tonal_analysis a = analyze_tonal(x, 44'100.0);
    benchmark::DoNotOptimize(a.tilt_db_per_octave);
  });
}
BENCHMARK(BM_analyze_tonal)->Apply(timing);

// ---- stage 3: limiter --------------------------------------------------------------------------

void BM_limiter_analyze(benchmark::State& state) {
  limiter_params params;
  params.ceiling_dbtp = -1.0;
  time_on_song(state, 44'100.0, [&](const audio_buffer& x) {
    offline_limiter lim;
    lim.analyze(x, 44'100.0, params);
    benchmark::DoNotOptimize(lim.input_true_peak_dbtp(0.0));
  });
}
BENCHMARK(BM_limiter_analyze)->Apply(timing);

// range(0): dB over the gain at which the detected peak reaches the ceiling (+6: limits hard;
// -1: the limiter passes everything through).
void BM_limiter_render(benchmark::State& state) {
  const double fs = 44'100.0;
  const audio_buffer& x = song(fs);
  limiter_params params;
  params.ceiling_dbtp = -1.0;
  offline_limiter lim;
  lim.analyze(x, fs, params);
  const double gain_db = params.ceiling_dbtp - lim.input_true_peak_dbtp(0.0) + static_cast<double>(state.range(0));
  audio_buffer y;
  limiter_stats stats;
  for (auto _ : state) {
    stats = lim.render(x, gain_db, y);
    benchmark::DoNotOptimize(y.channel(0));
  }
  state.counters["gain_db"] = gain_db;
  state.counters["max_gain_reduction_db"] = stats.max_gain_reduction_db;
  state.counters["frames_limited"] = static_cast<double>(stats.frames_limited);
  report_audio(state, x.frames(), fs);
}
BENCHMARK(BM_limiter_render)->ArgName("db_over_ceiling")->Arg(6)->Arg(-1)->Apply(timing);

// ---- stage 5: resampling and quantization ------------------------------------------------------

void BM_resample(benchmark::State& state) {
  const auto in_hz = static_cast<double>(state.range(0));
  const auto out_hz = static_cast<double>(state.range(1));
  time_on_song(state, in_hz, [&](const audio_buffer& x) {
    audio_buffer y = resample(x, in_hz, out_hz);
    benchmark::DoNotOptimize(y.channel(0));
  });
}
BENCHMARK(BM_resample)
    ->ArgNames({"in_hz", "out_hz"})
    ->Args({44'100, 48'000})
    ->Args({48'000, 44'100})
    ->Args({44'100, 96'000})
    ->Args({96'000, 44'100})
    ->Apply(timing);

// The render's resampler (polyphase_stream, fed 8192-frame blocks as render_master feeds it),
// beside libsoxr above on the same pairs; arg avx2 = 0 forces the portable path.
void BM_polyphase_stream(benchmark::State& state) {
  const auto in_hz = static_cast<double>(state.range(0));
  const auto out_hz = static_cast<double>(state.range(1));
  const bool avx2 = state.range(2) != 0;
  if (avx2 && !polyphase_stream::avx2_available()) {
    state.SkipWithError("this CPU has no AVX2 and FMA");
    return;
  }
  polyphase_resampler design;
  design.prepare(in_hz, out_hz);
  time_on_song(state, in_hz, [&](const audio_buffer& x) {
    polyphase_stream s(design, x.channels(), x.frames());
    s.use_avx2(avx2);
    float sum = 0.0f;
    auto sink = [&](const_block_view v) { sum += v[0][0]; };
    for (std::size_t pos = 0; pos < x.frames(); pos += 8192)
      s.push(x.view(pos, std::min<std::size_t>(8192, x.frames() - pos)), sink);
    s.finish(sink);
    benchmark::DoNotOptimize(sum);
  });
}
BENCHMARK(BM_polyphase_stream)
    ->ArgNames({"in_hz", "out_hz", "avx2"})
    ->Args({44'100, 48'000, 0})
    ->Args({44'100, 48'000, 1})
    ->Args({48'000, 44'100, 1})
    ->Args({44'100, 96'000, 1})
    ->Args({96'000, 44'100, 1})
    ->Apply(timing);

void quantize_run(benchmark::State& state, noise_shaping shaping) {
  const double fs = 44'100.0;
  const audio_buffer& x = song(fs);
  quantize_params q;
  q.bit_depth = 16;
  q.shaping = shaping;
  q.seed = 42;
  q.sample_rate_hz = fs;
  std::vector<std::int32_t> out;
  for (auto _ : state) {
    const quantize_stats s = quantize(x, q, out);
    benchmark::DoNotOptimize(s.clipped_samples);
    benchmark::DoNotOptimize(out.data());
  }
  report_audio(state, x.frames(), fs);
}
void BM_quantize16_none(benchmark::State& state) {
  quantize_run(state, noise_shaping::none);
}
void BM_quantize16_f_weighted(benchmark::State& state) {
  quantize_run(state, noise_shaping::f_weighted);
}
BENCHMARK(BM_quantize16_none)->Apply(timing);
BENCHMARK(BM_quantize16_f_weighted)->Apply(timing);

// ---- stages 3-5 together: one master ----------------------------------------------------------

// render_master from the pre-chain output (made in setup): resampling, the loudness/limiter
// loop, quantization and the delivered-master measurement.
void master_run(benchmark::State& state, const delivery_profile& p, double source_hz) {
  const audio_buffer& x = song(source_hz);
  const audio_buffer pre = apply_prechain(x, source_hz, p);
  rendered_master m;
  for (auto _ : state) {
    m = render_master(pre, source_hz, p, p.target_lufs, 1234);
    benchmark::DoNotOptimize(m.int_samples.data());
  }
  state.counters["iterations_of_loop"] = m.normalization.iterations;
  state.counters["limited"] = m.normalization.limited ? 1.0 : 0.0;
  state.counters["gain_db"] = m.normalization.gain_db;
  state.counters["passed"] = m.passed ? 1.0 : 0.0;
  report_audio(state, x.frames(), source_hz);
}
void BM_render_master_streaming(benchmark::State& state) {
  master_run(state, streaming_profile(), 44'100.0);
}
void BM_render_master_cd_from_48k(benchmark::State& state) {
  master_run(state, cd_profile(), 48'000.0);
}
BENCHMARK(BM_render_master_streaming)->Apply(timing);
BENCHMARK(BM_render_master_cd_from_48k)->Apply(timing);

// ---- I/O ---------------------------------------------------------------------------------------

struct encoded {
  std::vector<std::int32_t> samples;
  pcm_frames pcm;
};

encoded quantized_song(int bit_depth) {
  const double fs = 44'100.0;
  const audio_buffer& x = song(fs);
  encoded e;
  quantize_params q;
  q.bit_depth = bit_depth;
  q.seed = 42;
  q.sample_rate_hz = fs;
  quantize(x, q, e.samples);
  e.pcm.channels = x.channels();
  e.pcm.sample_rate_hz = fs;
  e.pcm.bit_depth = bit_depth;
  e.pcm.int_samples = e.samples;
  return e;
}

void write_run(benchmark::State& state, container_format container, int bit_depth) {
  const encoded e = quantized_song(bit_depth);
  const std::filesystem::path dest =
      temp_dir() / ("write_" + std::to_string(bit_depth) + "." + file_extension(container));
  const track_tags tags{"Bench", "lathe", "Stages", "XXLTH2600099", 1};
  for (auto _ : state) write_audio_file(dest, container, e.pcm, tags);
  state.counters["file_mb"] = static_cast<double>(std::filesystem::file_size(dest)) / 1e6;
  report_audio(state, e.pcm.frames(), e.pcm.sample_rate_hz);
}
void BM_write_flac24(benchmark::State& state) {
  write_run(state, container_format::flac, 24);
}
void BM_write_wav16(benchmark::State& state) {
  write_run(state, container_format::wav, 16);
}
BENCHMARK(BM_write_flac24)->Apply(timing);
BENCHMARK(BM_write_wav16)->Apply(timing);

void decode_run(benchmark::State& state, container_format container, int bit_depth) {
  const encoded e = quantized_song(bit_depth);
  const std::filesystem::path src =
      temp_dir() / ("decode_" + std::to_string(bit_depth) + "." + file_extension(container));
  write_audio_file(src, container, e.pcm, {});
  std::size_t frames = 0;
  for (auto _ : state) {
    decoded_track t = decode_file(src);
    frames = t.audio.frames();
    benchmark::DoNotOptimize(t.audio.channel(0));
  }
  report_audio(state, frames, e.pcm.sample_rate_hz);
}
void BM_decode_flac24(benchmark::State& state) {
  decode_run(state, container_format::flac, 24);
}
void BM_decode_wav16(benchmark::State& state) {
  decode_run(state, container_format::wav, 16);
}
BENCHMARK(BM_decode_flac24)->Apply(timing);
BENCHMARK(BM_decode_wav16)->Apply(timing);

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string one, five, fifteen;
  f >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// ---- issue 4 stages and chain presets ---------------------------------------------------------

// A 2 s stereo IR of decaying noise, written once as a float WAV for the reverb stage.
const std::filesystem::path& bench_ir() {
  static const std::filesystem::path path = [] {
    const double fs = 44'100.0;
    audio_buffer ir(2, static_cast<std::size_t>(2.0 * fs));
    std::uint64_t x = 12345;
    for (int c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < ir.frames(); ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const double u = static_cast<double>(x >> 11) * 0x1.0p-53 - 0.5;
        ir.channel(c)[i] = static_cast<float>(u * std::exp(-static_cast<double>(i) / (0.4 * fs)));
      }
    std::vector<float> interleaved(2 * ir.frames());
    for (std::size_t i = 0; i < ir.frames(); ++i)
      for (int c = 0; c < 2; ++c) interleaved[2 * i + static_cast<std::size_t>(c)] = ir.channel(c)[i];
    pcm_frames pcm;
    pcm.channels = 2;
    pcm.sample_rate_hz = fs;
    pcm.bit_depth = 32;
    pcm.float_samples = interleaved;
    const auto p = std::filesystem::temp_directory_path() / "lathe-bench-ir.wav";
    write_audio_file(p, container_format::wav, pcm, {});
    return p;
  }();
  return path;
}

delivery_profile chain_profile(std::initializer_list<chain_stage> order) {
  delivery_profile p = streaming_profile();
  p.chain_order = order;
  p.deesser = {};
  p.multiband.crossover.crossover_hz = {100.0, 500.0, 4'000.0};
  p.multiband.bands.assign(4, compressor_params{-24.0, 3.0, 6.0, 10.0, 120.0, 1.0, 1.0});
  p.stereo.bass_mono_below_hz = 150.0;
  p.stereo.width = 1.1;
  p.saturation.drive_db = 6.0;
  p.saturation.output_db = -6.0;
  p.saturation.mix = 0.3;
  p.reverb.ir_path = bench_ir();
  p.reverb.wet_db = -18.0;
  return p;
}

void prechain_run(benchmark::State& state, const delivery_profile& p) {
  time_on_song(state, 44'100.0, [&](const audio_buffer& x) {
    audio_buffer y = apply_prechain(x, 44'100.0, p);
    benchmark::DoNotOptimize(y.channel(0));
  });
}

void BM_stage(benchmark::State& state) {
  static const chain_stage stages[] = {chain_stage::deesser, chain_stage::multiband, chain_stage::stereo,
                                       chain_stage::saturation, chain_stage::reverb};
  const chain_stage st = stages[state.range(0)];
  state.SetLabel(to_string(st));
  prechain_run(state, chain_profile({st}));
}
BENCHMARK(BM_stage)->ArgName("stage")->DenseRange(0, 4)->Apply(timing);

// The reverb stage alone on the song through run_aligned (as apply_prechain runs it), with an
// in-memory IR of 1, 2 or 4 channels (mono, stereo, true stereo) of 2 s decaying noise at the
// song's rate: the convolution work without the file read or the IR resampling.
void BM_reverb_routing(benchmark::State& state) {
  const double fs = 44'100.0;
  const int ir_channels = static_cast<int>(state.range(0));
  auto ir = std::make_shared<impulse_response>();
  ir->sample_rate_hz = fs;
  ir->audio.resize(ir_channels, static_cast<std::size_t>(2.0 * fs));
  std::uint64_t seed = 99;
  for (int c = 0; c < ir_channels; ++c)
    for (std::size_t i = 0; i < ir->audio.frames(); ++i) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      const double u = static_cast<double>(seed >> 11) * 0x1.0p-53 - 0.5;
      ir->audio.channel(c)[i] = static_cast<float>(u * std::exp(-static_cast<double>(i) / (0.4 * fs)));
    }
  const audio_buffer& x = song(fs);
  constexpr std::size_t chain_block_frames = 8'192;  // apply_prechain's block
  reverb_params params;
  params.wet_db = -18.0;
  reverb_stage st(params, ir);
  st.prepare({fs, x.channels(), chain_block_frames});
  state.SetLabel(ir_channels == 1 ? "mono" : ir_channels == 2 ? "stereo" : "true_stereo");
  for (auto _ : state) {
    state.PauseTiming();
    audio_buffer y = x;
    st.reset();
    state.ResumeTiming();
    run_aligned(st, y, chain_block_frames);
    benchmark::DoNotOptimize(y.channel(0));
  }
  report_audio(state, x.frames(), fs);
}
BENCHMARK(BM_reverb_routing)->ArgName("ir_channels")->Arg(1)->Arg(2)->Arg(4)->Apply(timing);

void BM_chain_all_stages(benchmark::State& state) {
  prechain_run(state,
               chain_profile({chain_stage::highpass, chain_stage::eq, chain_stage::deesser, chain_stage::multiband,
                              chain_stage::stereo, chain_stage::saturation, chain_stage::reverb}));
}
BENCHMARK(BM_chain_all_stages)->Apply(timing);

void BM_chain_preset(benchmark::State& state) {
  static const char* presets[] = {"transparent", "gentle-glue", "loud-modern", "vinyl-premaster"};
  const char* name = presets[state.range(0)];
  state.SetLabel(name);
  delivery_profile p = streaming_profile();
  apply_chain_preset(std::filesystem::path(LATHE_SOURCE_DIR) / "configs" / "chains" / (std::string(name) + ".toml"), p);
  prechain_run(state, p);
}
BENCHMARK(BM_chain_preset)->ArgName("preset")->DenseRange(0, 3)->Apply(timing);

}  // namespace
}  // namespace lathe

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // The machine may be shared: record how busy it was, so a slow figure can be judged.
  benchmark::AddCustomContext("load_average_at_start", lathe::load_average());
  benchmark::AddCustomContext("song_seconds", std::to_string(lathe::song_seconds));
  benchmark::AddCustomContext("song_level_db", std::to_string(lathe::song_level_db));
  std::filesystem::create_directories(lathe::temp_dir());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(lathe::temp_dir(), ec);
  std::fprintf(stderr, "load average at end: %s\n", lathe::load_average().c_str());
  return 0;
}
