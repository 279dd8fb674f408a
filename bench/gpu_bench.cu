// GPU engine benchmark: the machine's copy ceilings, every stage of the GPU chain with the batch
// resident on the device, the resident chain as one back-to-back sequence, and the whole chain
// through lathe::gpu_engine::render (upload and download included). One run, one JSON.
//
// Figures are x realtime: seconds of 44.1 kHz stereo source audio per wall-clock second.
//
// Method (stated in the JSON too):
//   - Data: `--distinct` music-like songs from lathe::synthesize_song (host/demo_catalog.hpp),
//     repeated to `--tracks` tracks of `--seconds` each, in one batch (lanes 2t, 2t+1 = track t),
//     uploaded once from pinned memory. The batch (GBs) is far larger than L2, so repeats of a
//     song do not hit any cache.
//   - Resident stages: each stage's plan is built first (outside the timing), then `--warmup`
//     untimed runs, then `--reps` runs timed with a cudaEvent pair on the stage's stream around
//     the stage's *_async call(s). Reported: median (x realtime is from it) and best.
//     An event pair times the stream, so host work inside a call that leaves the GPU idle
//     (e.g. the convolver's table upload) counts, as it would in the chain.
//   - "chain_resident_sum": the sum of the median times of the stages one pass of the 44.1 kHz
//     streaming/cd chain runs (high-pass, EQ, loudness, both peak detectors + max, limiter
//     render, loudness of the limited audio, TPDF quantize); resampling is not in it (44.1 kHz
//     in and out). One normalization iteration; the engine runs 1-12 (limiter + loudness each).
//   - "chain_resident_sequence": the same stages enqueued back to back, one event pair.
//   - "render": lathe::gpu_engine::render() of `--render-tracks` tracks per call, timed with
//     std::chrono around the call (it synchronizes before returning). Includes staging into
//     pinned memory, upload, every stage, the normalization loop, quantization (the cd profile's
//     F-weighted shaping runs on the host, one thread), measurement of the delivered samples,
//     download and the CPU fallback of any master the device path does not cover (counted).
//     For streaming, "one_track_per_call" times the same tracks as one call each, the
//     alternative to packing them.
//     Not included: decoding and encoding files (the end-to-end catalog runs have those).
//   - Ceilings: cudaMemcpyAsync device->device, pinned host->device and device->pinned host,
//     `--copy-mib` MiB each, best of `--reps` after one warm-up. D2D traffic counts bytes read
//     plus bytes written; the copy rate counts bytes copied.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu_engine.hpp"
#include "lathe/eq.hpp"
#include "lathe/highpass.hpp"
#include "lathe/limiter.hpp"
#include "lathe/polyphase.hpp"
#include "lathe/profile.hpp"
#include "lathe/reverb.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/convolution.hpp"
#include "lathe_gpu/device.hpp"
#include "lathe_gpu/dither.hpp"
#include "lathe_gpu/dynamics.hpp"
#include "lathe_gpu/elementwise.hpp"
#include "lathe_gpu/error.cuh"
#include "lathe_gpu/iir.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/limiter.hpp"
#include "lathe_gpu/loudness.hpp"
#include "lathe_gpu/memory.hpp"
#include "lathe_gpu/resample.hpp"
#include "lathe_gpu/reverb.hpp"
#include "lathe_gpu/saturation.hpp"
#include "lathe_gpu/stereo.hpp"
#include "lathe_gpu/tonal.hpp"
#include "lathe_gpu/true_peak.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr double rate_hz = 44'100.0;

struct options {
  int tracks = 64;
  double seconds = 180.0;
  int distinct = 8;
  int warmup = 1;
  int reps = 5;
  int render_tracks = 8;
  int render_reps = 2;
  std::size_t copy_mib = 1024;
  std::string out;
  std::string config_dir = LATHE_CONFIG_DIR;
};

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--out FILE] [--tracks N] [--seconds S] [--distinct N] [--warmup N] [--reps N]\n"
               "          [--render-tracks N] [--render-reps N] [--copy-mib N] [--config-dir DIR]\n"
               "defaults: 64 tracks x 180 s (8 distinct songs), warmup 1, reps 5, render 8 tracks x 2 reps,\n"
               "          copies of 1024 MiB, profiles from %s\n",
               argv0, LATHE_CONFIG_DIR);
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return false;
    static const char* const known[] = {"--out",  "--tracks",        "--seconds",     "--distinct", "--warmup",
                                        "--reps", "--render-tracks", "--render-reps", "--copy-mib", "--config-dir"};
    if (std::find(std::begin(known), std::end(known), a) == std::end(known)) {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return false;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "missing value after %s\n", a.c_str());
      return false;
    }
    const char* v = argv[++i];
    if (a == "--out")
      o.out = v;
    else if (a == "--tracks")
      o.tracks = std::atoi(v);
    else if (a == "--seconds")
      o.seconds = std::atof(v);
    else if (a == "--distinct")
      o.distinct = std::atoi(v);
    else if (a == "--warmup")
      o.warmup = std::atoi(v);
    else if (a == "--reps")
      o.reps = std::atoi(v);
    else if (a == "--render-tracks")
      o.render_tracks = std::atoi(v);
    else if (a == "--render-reps")
      o.render_reps = std::atoi(v);
    else if (a == "--copy-mib")
      o.copy_mib = static_cast<std::size_t>(std::atoll(v));
    else
      o.config_dir = v;
  }
  if (o.tracks < 1 || o.seconds <= 0 || o.distinct < 1 || o.warmup < 0 || o.reps < 1 || o.render_tracks < 0 ||
      o.render_reps < 1 || o.copy_mib < 1) {
    std::fprintf(stderr, "counts must be positive\n");
    return false;
  }
  return true;
}

cudaStream_t raw(const lathe::gpu::stream& s) {
  return static_cast<cudaStream_t>(s.get());
}

/// A pair of CUDA events recorded around work on one stream.
class event_pair {
 public:
  event_pair() {
    LATHE_CUDA_TRY(cudaEventCreate(&start_));
    LATHE_CUDA_TRY(cudaEventCreate(&stop_));
  }
  ~event_pair() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  event_pair(const event_pair&) = delete;
  event_pair& operator=(const event_pair&) = delete;
  void start(const lathe::gpu::stream& s) { LATHE_CUDA_TRY(cudaEventRecord(start_, raw(s))); }
  /// Records the stop event, waits for it, returns the elapsed milliseconds.
  double stop_ms(const lathe::gpu::stream& s) {
    LATHE_CUDA_TRY(cudaEventRecord(stop_, raw(s)));
    LATHE_CUDA_TRY(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    LATHE_CUDA_TRY(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms);
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

struct timing {
  std::vector<double> ms;  // every timed run, in order
  double median() const {
    std::vector<double> v = ms;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  }
  double best() const { return *std::min_element(ms.begin(), ms.end()); }
};

/// Warm-up runs, then timed runs of `enqueue` (which queues work on `s`) with an event pair.
timing time_on_stream(const lathe::gpu::stream& s, int warmup, int reps, const std::function<void()>& enqueue) {
  for (int i = 0; i < warmup; ++i) enqueue();
  s.synchronize();
  event_pair ev;
  timing t;
  for (int i = 0; i < reps; ++i) {
    ev.start(s);
    enqueue();
    t.ms.push_back(ev.stop_ms(s));
  }
  return t;
}

double x_realtime(double audio_s, double ms) {
  return ms > 0 ? audio_s / (ms * 1e-3) : 0.0;
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

/// The NVIDIA kernel module's version line (e.g. "... Kernel Module  580.159.04 ..."), if readable.
std::string kernel_driver_version() {
  std::ifstream f("/proc/driver/nvidia/version");
  std::string line;
  if (!std::getline(f, line)) return "";
  const auto pos = line.find("Kernel Module");
  if (pos == std::string::npos) return line;
  std::string rest = line.substr(pos + 13);
  rest.erase(0, rest.find_first_not_of(' '));
  return rest.substr(0, rest.find(' '));
}

json device_json(int ordinal) {
  cudaDeviceProp p{};
  LATHE_CUDA_TRY(cudaGetDeviceProperties(&p, ordinal));
  int driver = 0, runtime = 0;
  LATHE_CUDA_TRY(cudaDriverGetVersion(&driver));
  LATHE_CUDA_TRY(cudaRuntimeGetVersion(&runtime));
  std::size_t free_b = 0, total_b = 0;
  LATHE_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
  return {{"ordinal", ordinal},
          {"name", p.name},
          {"compute_capability", std::to_string(p.major) + "." + std::to_string(p.minor)},
          {"sm_count", p.multiProcessorCount},
          {"memory_bytes", p.totalGlobalMem},
          {"memory_free_bytes_at_start", free_b},
          {"l2_bytes", p.l2CacheSize},
          {"driver_version", kernel_driver_version()},
          {"cuda_driver_api_version", driver},
          {"cuda_runtime_version", runtime},
          {"host_cpus", std::thread::hardware_concurrency()}};
}

/// Copy ceilings: D2D, pinned H2D, pinned D2H, each `mib` MiB, best of `reps` after a warm-up.
json copy_ceilings(std::size_t mib, int reps, const lathe::gpu::stream& s) {
  namespace gpu = lathe::gpu;
  const std::size_t bytes = mib << 20;
  const std::size_t n = bytes / sizeof(float);
  gpu::device_vector<float> a(n), b(n);
  gpu::pinned_vector<float> host(n);
  std::fill_n(host.data(), n, 0.25f);
  a.zero_async(s);
  b.zero_async(s);
  s.synchronize();
  const auto best_of = [&](void* dst, const void* src) {
    const timing t = time_on_stream(s, 1, reps, [&] { gpu::detail::copy_async(dst, src, bytes, s.get()); });
    return t.best();
  };
  const double d2d = best_of(b.data(), a.data());
  const double h2d = best_of(a.data(), host.data());
  const double d2h = best_of(host.data(), a.data());
  const auto gbps = [&](double ms) { return static_cast<double>(bytes) / (ms * 1e-3) / 1e9; };
  return {{"bytes", bytes},
          {"d2d", {{"best_ms", d2d}, {"copy_GBps", gbps(d2d)}, {"traffic_GBps", 2.0 * gbps(d2d)}}},
          {"h2d_pinned", {{"best_ms", h2d}, {"GBps", gbps(h2d)}}},
          {"d2h_pinned", {{"best_ms", d2h}, {"GBps", gbps(d2h)}}},
          {"note", "best of reps after one warm-up; d2d traffic = bytes read + bytes written"}};
}

/// The three-band EQ of bench/profiles/*.toml (the catalog benchmark's): low shelf +1 dB at
/// 100 Hz, bell -1.5 dB at 3 kHz Q 1, high shelf +1 dB at 10 kHz.
std::vector<lathe::eq_band> bench_eq_bands() {
  using lathe::eq_band_type;
  return {{eq_band_type::low_shelf, 100.0, 1.0, 0.707},
          {eq_band_type::bell, 3000.0, -1.5, 1.0},
          {eq_band_type::high_shelf, 10000.0, 1.0, 0.707}};
}

/// The resident stages. Each stage builds its plan and is timed inside stage(): a stage that
/// throws is recorded (doc["errors"] and its entry) and the next stage still runs; the chain
/// sequence runs only when every stage it needs was built.
void write_json(const options& o, const json& doc);

/// One measured record as a line of JSON on stdout (line-buffered), as soon as it is measured.
void print_record(const char* kind, const json& record) {
  json line = record;
  line["record"] = kind;
  std::printf("%s\n", line.dump().c_str());
}

class resident_bench {
 public:
  resident_bench(const options& o, const std::vector<lathe::audio_buffer>& songs, json& doc)
      : o_(o), songs_(songs), doc_(doc) {}

  void run();

 private:
  /// Runs `build_and_time` (which returns the stage's timing) and records the stage at once.
  /// min_bytes: each input read once, each output written once.
  void stage(const std::string& name, double min_bytes, const std::function<std::string()>& describe,
             const std::function<timing()>& build_and_time);

  const options& o_;
  const std::vector<lathe::audio_buffer>& songs_;
  json& doc_;
  double audio_s_ = 0.0;
  std::map<std::string, double> median_ms_;  // stages that ran
};

void resident_bench::stage(const std::string& name, double min_bytes, const std::function<std::string()>& describe,
                           const std::function<timing()>& build_and_time) {
  json entry = {{"name", name}};
  try {
    const timing t = build_and_time();
    const double med = t.median();
    const double gbps = min_bytes / (med * 1e-3) / 1e9;
    const double d2d = doc_.contains("ceilings") ? doc_["ceilings"]["d2d"]["traffic_GBps"].get<double>() : 0.0;
    entry.update({{"what", describe()},
                  {"median_ms", med},
                  {"best_ms", t.best()},
                  {"runs_ms", t.ms},
                  {"x_realtime", x_realtime(audio_s_, med)},
                  {"min_bytes", min_bytes},
                  {"effective_GBps", gbps},
                  {"fraction_of_d2d_traffic", d2d > 0 ? gbps / d2d : 0.0}});
    median_ms_[name] = med;
    std::printf("  %-24s %9.2f ms  %12.0fx realtime  %7.1f GB/s\n", name.c_str(), med, x_realtime(audio_s_, med), gbps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe_gpu_bench: stage %s failed: %s\n", name.c_str(), e.what());
    entry["error"] = e.what();
    doc_["errors"].push_back({{"part", "stage " + name}, {"error", e.what()}});
  }
  doc_["stages"].push_back(entry);
  print_record("stage", entry);
  write_json(o_, doc_);
}

void resident_bench::run() {
  namespace gpu = lathe::gpu;
  const gpu::stream s;
  const std::size_t frames = songs_.front().frames();
  gpu::lane_layout layout;
  for (int t = 0; t < o_.tracks; ++t) {
    layout.add(frames);
    layout.add(frames);
  }
  const std::size_t n = layout.total_frames;
  audio_s_ = static_cast<double>(o_.tracks) * static_cast<double>(frames) / rate_hz;
  const double sample_bytes = static_cast<double>(n) * sizeof(float);
  doc_["batch"] = {{"tracks", o_.tracks},
                   {"seconds_per_track", static_cast<double>(frames) / rate_hz},
                   {"distinct_songs", songs_.size()},
                   {"sample_rate_hz", rate_hz},
                   {"channels", 2},
                   {"audio_s", audio_s_},
                   {"samples", n},
                   {"bytes_float", n * sizeof(float)}};
  doc_["stages"] = json::array();

  // ---- upload once ------------------------------------------------------------------------
  gpu::device_vector<float> d_in(n);
  {
    gpu::pinned_vector<float> staging(n);
    for (int t = 0; t < o_.tracks; ++t) {
      const lathe::audio_buffer& a = songs_[static_cast<std::size_t>(t) % songs_.size()];
      for (int c = 0; c < 2; ++c)
        std::copy_n(a.channel(c), frames,
                    staging.data() + layout.offset[2 * static_cast<std::size_t>(t) + static_cast<std::size_t>(c)]);
    }
    event_pair ev;
    ev.start(s);
    d_in.upload_async({staging.data(), n}, s);
    const double ms = ev.stop_ms(s);
    doc_["batch"]["upload_ms"] = ms;
    doc_["batch"]["upload_GBps"] = sample_bytes / (ms * 1e-3) / 1e9;
  }
  std::printf("batch: %d tracks x %.0f s = %.2f h of audio, %.2f GB as float, uploaded\n", o_.tracks,
              static_cast<double>(frames) / rate_hz, audio_s_ / 3600.0, sample_bytes / 1e9);

  // ---- resampling 44.1 -> 48 kHz first: its output is the largest buffer, freed afterwards --
  {
    lathe::polyphase_resampler design;
    std::unique_ptr<gpu::resample_filter> filter;
    std::unique_ptr<gpu::resample_batch> batch;
    gpu::device_vector<float> d_r;
    stage(
        "resample_44k1_to_48k", sample_bytes * 48'000.0 / rate_hz + sample_bytes,
        [&] {
          return "polyphase_resampler design (" + std::to_string(design.taps_per_phase()) +
                 " taps/phase), resample_batch::run_async";
        },
        [&] {
          design.prepare(rate_hz, 48'000.0);
          filter = std::make_unique<gpu::resample_filter>(design, s);
          batch = std::make_unique<gpu::resample_batch>(design, layout, s);
          d_r = gpu::device_vector<float>(batch->output_layout().total_frames);
          return time_on_stream(s, o_.warmup, o_.reps, [&] { batch->run_async(*filter, d_in.data(), d_r.data(), s); });
        });
  }

  gpu::device_vector<float> d_a(n), d_b(n);

  // ---- high-pass, order 4 (every profile's pre-chain) --------------------------------------
  std::unique_ptr<gpu::iir_plan> highpass;
  stage(
      "highpass_order4", 2 * sample_bytes,
      [] { return std::string("iir_plan::process_async, Butterworth 20 Hz order 4, chunked IIR with state carry"); },
      [&] {
        lathe::highpass_params hp;
        hp.cutoff_hz = 20.0;
        hp.order = 4;
        highpass = std::make_unique<gpu::iir_plan>(gpu::highpass_sections(hp, rate_hz), layout, s);
        return time_on_stream(s, o_.warmup, o_.reps, [&] { highpass->process_async(d_in.data(), d_a.data(), s); });
      });

  // ---- linear-phase EQ, 3 bands, auto taps --------------------------------------------------
  std::unique_ptr<gpu::gpu_fir_filter> fir;
  gpu::cufft_plan_cache plans;
  gpu::gpu_convolver convolver;
  std::size_t taps = 0, delay = 0;
  stage(
      "eq_convolution", 2 * sample_bytes,
      [&] {
        return "gpu_convolver::convolve_async, 3-band linear-phase FIR of " + std::to_string(taps) + " taps, block " +
               std::to_string(fir->block_frames()) + " frames, " + std::to_string(fir->partitions()) + " partitions";
      },
      [&] {
        const std::vector<lathe::eq_band> bands = bench_eq_bands();
        taps = lathe::eq_auto_taps(bands, rate_hz);
        const std::vector<double> h64 = lathe::design_linear_phase_fir(bands, rate_hz, taps);
        const std::vector<float> h(h64.begin(), h64.end());
        fir = std::make_unique<gpu::gpu_fir_filter>(h, gpu::conv_auto_block_frames(taps), s);
        delay = gpu::linear_phase_delay_frames(taps);
        return time_on_stream(s, o_.warmup, o_.reps,
                              [&] { convolver.convolve_async(*fir, layout, d_in, d_a, delay, plans, s); });
      });

  // ---- loudness ----------------------------------------------------------------------------
  std::unique_ptr<gpu::loudness_plan> meter;
  stage(
      "loudness_measure", sample_bytes,
      [] { return std::string("loudness_plan::measure_async: K-weighting, 100 ms sub-block energies, download"); },
      [&] {
        meter = std::make_unique<gpu::loudness_plan>(layout, rate_hz, s);
        return time_on_stream(s, o_.warmup, o_.reps, [&] { meter->measure_async(d_in.data(), s); });
      });

  // ---- tonal analysis: Welch mid/side power (not in the chain sum; issue 5's analysis pass) ----
  // welch_power_batch returns host values, so each timed run includes its table uploads, the sums'
  // download and the synchronize.
  stage(
      "tonal_welch_power", sample_bytes,
      [] {
        return std::string(
            "welch_power_batch: Hann frames, 50 % overlap, batched R2C of mid and side, float64 "
            "bin sums per track, default work budget");
      },
      [&] {
        return time_on_stream(s, o_.warmup, o_.reps,
                              [&] { (void)gpu::welch_power_batch(layout, rate_hz, d_in, plans, s); });
      });

  // ---- detectors (peaks carry the limiter's latency tail, as the engine runs them) ----------
  std::unique_ptr<gpu::batch_limiter> limiter;
  std::unique_ptr<gpu::peak_plan> tp_plan, meter_plan;
  gpu::peak_filter tp_filter;
  gpu::device_vector<float> d_peaks, d_meter;
  std::size_t peak_frames = 0;
  lathe::limiter_params lp;  // streaming's: 2 ms lookahead, 80 ms release
  lp.ceiling_dbtp = -1.0;
  const double peak_bytes = sample_bytes;  // + the latency tail, negligible
  stage(
      "true_peak_detector", sample_bytes + peak_bytes,
      [&] {
        return "peak_plan::run_async, true_peak_interpolator " + std::to_string(tp_filter.factor) + "x, " +
               std::to_string(tp_filter.taps) + " taps/phase";
      },
      [&] {
        limiter = std::make_unique<gpu::batch_limiter>();
        limiter->prepare(layout, lp, rate_hz, s);
        tp_filter = gpu::true_peak_filter(rate_hz);
        tp_plan = std::make_unique<gpu::peak_plan>(tp_filter, layout, limiter->latency_frames(), s);
        peak_frames = tp_plan->output_layout().total_frames;
        d_peaks = gpu::device_vector<float>(peak_frames);
        return time_on_stream(s, o_.warmup, o_.reps, [&] { tp_plan->run_async(d_in.data(), d_peaks.data(), s); });
      });
  stage(
      "meter_peak_detector", sample_bytes + peak_bytes,
      [] { return std::string("peak_plan::run_async, the limiter's libebur128-style detector"); },
      [&] {
        LATHE_EXPECTS(limiter && tp_plan, "needs the true-peak stage");
        meter_plan = std::make_unique<gpu::peak_plan>(gpu::meter_peak_filter(rate_hz, tp_filter.latency_frames), layout,
                                                      limiter->latency_frames(), s);
        d_meter = gpu::device_vector<float>(peak_frames);
        return time_on_stream(s, o_.warmup, o_.reps, [&] { meter_plan->run_async(d_in.data(), d_meter.data(), s); });
      });
  bool merged = false;
  stage(
      "peak_max_merge", 3 * peak_bytes, [] { return std::string("max_into_async of the two detectors' peaks"); },
      [&] {
        LATHE_EXPECTS(meter_plan != nullptr, "needs both detectors");
        // Idempotent: d_peaks ends as max(true peak, meter) however often it runs.
        const timing t = time_on_stream(s, o_.warmup, o_.reps,
                                        [&] { gpu::max_into_async(d_peaks.data(), d_meter.data(), peak_frames, s); });
        merged = true;
        return t;
      });

  // ---- limiter render: +6 dB into a -1 dBTP ceiling, so it limits -------------------------------
  const std::vector<double> gains(static_cast<std::size_t>(o_.tracks), 6.0);
  bool limited = false;
  stage(
      "limiter_render", 2 * sample_bytes + peak_bytes,
      [] { return std::string("batch_limiter::render_async, +6 dB into -1 dBTP (gain law, sliding min, apply)"); },
      [&] {
        LATHE_EXPECTS(merged, "needs the merged peaks");
        const timing t = time_on_stream(
            s, o_.warmup, o_.reps, [&] { limiter->render_async(d_peaks.data(), d_in.data(), d_b.data(), gains, s); });
        limited = true;
        return t;
      });

  // ---- TPDF quantization to 16 bits, no shaping (of the limited audio) ---------------------------
  std::unique_ptr<gpu::batch_quantizer> quantizer;
  gpu::device_vector<std::int32_t> d_q;
  lathe::quantize_params q16;
  q16.bit_depth = 16;
  q16.shaping = lathe::noise_shaping::none;
  q16.sample_rate_hz = rate_hz;
  std::vector<std::uint64_t> seeds(static_cast<std::size_t>(o_.tracks));
  for (std::size_t t = 0; t < seeds.size(); ++t) seeds[t] = 1000 + t;
  stage(
      "tpdf_quantize", 2 * sample_bytes,
      [] { return std::string("batch_quantizer::quantize_async, 16-bit TPDF, shaping none, of the limited audio"); },
      [&] {
        quantizer = std::make_unique<gpu::batch_quantizer>();
        quantizer->prepare(layout, s);
        d_q = gpu::device_vector<std::int32_t>(quantizer->output_size());
        const float* x = limited ? d_b.data() : d_in.data();
        return time_on_stream(s, o_.warmup, o_.reps, [&] { quantizer->quantize_async(x, d_q.data(), q16, seeds, s); });
      });

  // ---- issue 4's stages (each returns host statistics, so each timed run ends in a synchronize) ----
  gpu::stage_resources res{plans, convolver};
  const lathe::deesser_params deesser{};
  stage(
      "deesser", 2 * sample_bytes, [] { return std::string("deesser_batch: 5-9 kHz split band, linked detector"); },
      [&] {
        return time_on_stream(s, o_.warmup, o_.reps,
                              [&] { (void)gpu::deesser_batch(deesser, rate_hz, layout, d_in, d_a, res, s); });
      });
  lathe::multiband_params mb;
  mb.crossover.crossover_hz = {120.0, 1'000.0, 6'000.0};
  mb.bands.assign(4, lathe::compressor_params{});
  for (lathe::compressor_params& c : mb.bands) {
    c.threshold_db = -24.0;
    c.ratio = 2.0;
    c.knee_db = 6.0;
    c.detector = lathe::level_detector::rms;
    c.detector_window_ms = 30.0;
  }
  stage(
      "multiband_4band", 2 * sample_bytes,
      [] { return std::string("multiband_batch: 4 linear-phase bands (120/1k/6k Hz), 2:1 RMS compressors"); },
      [&] {
        return time_on_stream(s, o_.warmup, o_.reps,
                              [&] { (void)gpu::multiband_batch(mb, rate_hz, layout, d_in, d_a, res, s); });
      });
  lathe::stereo_params st;
  st.width = 1.2;
  st.bass_mono_below_hz = 150.0;
  stage(
      "stereo_bass_mono", 2 * sample_bytes,
      [] { return std::string("stereo_batch: width 1.2, linear-phase bass mono below 150 Hz, correlation meters"); },
      [&] {
        return time_on_stream(s, o_.warmup, o_.reps,
                              [&] { (void)gpu::stereo_batch(st, rate_hz, layout, d_in, d_a, res, s); });
      });
  lathe::saturation_params sat;
  sat.drive_db = 6.0;
  sat.output_db = -6.0;
  sat.mix = 0.3;
  stage(
      "saturation_8x", 2 * sample_bytes,
      [] { return std::string("saturation_batch: tanh at 8x (2x half-band cascade), mix 0.3"); },
      [&] {
        return time_on_stream(s, o_.warmup, o_.reps,
                              [&] { gpu::saturation_batch(sat, rate_hz, layout, d_in, d_a, res, s); });
      });
  // A 2 s stereo room made in memory: exponentially decaying noise, independent per channel.
  lathe::impulse_response ir;
  ir.sample_rate_hz = rate_hz;
  ir.audio = lathe::audio_buffer(2, static_cast<std::size_t>(2.0 * rate_hz));
  for (int c = 0; c < 2; ++c) {
    std::uint64_t x = 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(c);
    for (std::size_t i = 0; i < ir.audio.frames(); ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const double u = static_cast<double>(x >> 11) * 0x1.0p-53 - 0.5;
      ir.audio.channel(c)[i] = static_cast<float>(0.1 * u * std::exp(-6.9 * static_cast<double>(i) / (1.5 * rate_hz)));
    }
  }
  lathe::reverb_params rv;
  rv.wet_db = -18.0;
  rv.pre_delay_ms = 20.0;
  rv.low_cut_hz = 200.0;
  stage(
      "reverb_2s_stereo", 2 * sample_bytes,
      [] { return std::string("reverb_batch: 2 s stereo IR (in memory), 20 ms pre-delay, 200 Hz wet low cut"); },
      [&] {
        return time_on_stream(s, o_.warmup, o_.reps,
                              [&] { (void)gpu::reverb_batch(rv, ir, rate_hz, layout, d_in, d_a, res, s); });
      });

  // ---- one pass of the 44.1 kHz chain ---------------------------------------------------------
  // Summed (loudness twice: before the gain, and of the limited audio), and enqueued back to back.
  const std::vector<std::pair<std::string, int>> chain = {
      {"highpass_order4", 1},     {"eq_convolution", 1}, {"loudness_measure", 2}, {"true_peak_detector", 1},
      {"meter_peak_detector", 1}, {"peak_max_merge", 1}, {"limiter_render", 1},   {"tpdf_quantize", 1}};
  double sum_ms = 0.0;
  json missing = json::array();
  for (const auto& [name, times] : chain) {
    const auto it = median_ms_.find(name);
    if (it == median_ms_.end())
      missing.push_back(name);
    else
      sum_ms += times * it->second;
  }
  json cr = {{"what",
              "one pass of the 44.1 kHz chain with the batch resident on the device, NO upload/download: high-pass, "
              "EQ, loudness, true-peak + meter detectors + max, limiter render, loudness of the limited audio, "
              "16-bit TPDF quantize. One normalization iteration (the engine runs 1 to 12 limiter+loudness "
              "iterations per format)."}};
  if (missing.empty()) {
    cr["sum_of_stages"] = {{"stages",
                            {"highpass_order4", "eq_convolution", "loudness_measure x2", "true_peak_detector",
                             "meter_peak_detector", "peak_max_merge", "limiter_render", "tpdf_quantize"}},
                           {"ms", sum_ms},
                           {"x_realtime", x_realtime(audio_s_, sum_ms)}};
    std::printf("  %-24s %9.2f ms  %12.0fx realtime (sum of stages, resident)\n", "chain_resident_sum", sum_ms,
                x_realtime(audio_s_, sum_ms));
    try {
      const timing seq = time_on_stream(s, o_.warmup, o_.reps, [&] {
        highpass->process_async(d_in.data(), d_a.data(), s);
        convolver.convolve_async(*fir, layout, d_a, d_b, delay, plans, s);
        meter->measure_async(d_b.data(), s);
        tp_plan->run_async(d_b.data(), d_peaks.data(), s);
        meter_plan->run_async(d_b.data(), d_meter.data(), s);
        gpu::max_into_async(d_peaks.data(), d_meter.data(), peak_frames, s);
        limiter->render_async(d_peaks.data(), d_b.data(), d_a.data(), gains, s);
        meter->measure_async(d_a.data(), s);
        quantizer->quantize_async(d_a.data(), d_q.data(), q16, seeds, s);
      });
      cr["sequence"] = {{"median_ms", seq.median()},
                        {"best_ms", seq.best()},
                        {"runs_ms", seq.ms},
                        {"x_realtime", x_realtime(audio_s_, seq.median())}};
      std::printf("  %-24s %9.2f ms  %12.0fx realtime (back to back, resident)\n", "chain_resident_sequence",
                  seq.median(), x_realtime(audio_s_, seq.median()));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lathe_gpu_bench: chain sequence failed: %s\n", e.what());
      cr["sequence"] = {{"error", e.what()}};
      doc_["errors"].push_back({{"part", "chain sequence"}, {"error", e.what()}});
    }
  } else {
    cr["missing_stages"] = missing;
  }
  // The whole chain with every stage on (issue 4): the chain above plus the five stages.
  if (missing.empty()) {
    double all_ms = sum_ms;
    json all_missing = json::array();
    for (const char* name : {"deesser", "multiband_4band", "stereo_bass_mono", "saturation_8x", "reverb_2s_stereo"}) {
      const auto it = median_ms_.find(name);
      if (it == median_ms_.end())
        all_missing.push_back(name);
      else
        all_ms += it->second;
    }
    if (all_missing.empty()) {
      cr["all_stages_sum"] = {{"what",
                               "the chain above plus de-esser, 4-band multiband, stereo with bass mono, 8x "
                               "saturation and a 2 s stereo reverb (sum of resident stage medians)"},
                              {"ms", all_ms},
                              {"x_realtime", x_realtime(audio_s_, all_ms)}};
      std::printf("  %-24s %9.2f ms  %12.0fx realtime (sum of stages, resident)\n", "chain_all_stages_sum", all_ms,
                  x_realtime(audio_s_, all_ms));
    } else {
      cr["all_stages_sum"] = {{"missing_stages", all_missing}};
    }
  }
  doc_["chain_resident"] = cr;
}

/// gpu_engine::render() of `tracks` tracks per call for each profile set (and, for streaming,
/// the same tracks one call each); chrono timing.
void write_json(const options& o, const json& doc);

/// Appends one entry per profile set to doc["render"], writing the JSON after each (a run cut
/// short by a time limit keeps what it measured).
void render_bench(const options& o, const std::vector<lathe::audio_buffer>& songs, json& doc) {
  std::vector<lathe::delivery_profile> all = {lathe::load_profile(fs::path(o.config_dir) / "streaming.toml"),
                                              lathe::load_profile(fs::path(o.config_dir) / "cd.toml")};
  // Streaming with the loud-modern preset's chain (multiband with lookahead, saturation): the
  // issue-4 stages inside the engine, upload and download included.
  all.push_back(all[0]);
  lathe::apply_chain_preset(fs::path(o.config_dir) / "chains" / "loud-modern.toml", all.back());
  all.back().name = "streaming+loud-modern";
  lathe::gpu_engine engine(0);
  const double seconds_per_track = static_cast<double>(songs.front().frames()) / rate_hz;
  const double audio_s = o.render_tracks * seconds_per_track;
  doc["render"] = json::array();
  const std::vector<std::vector<std::size_t>> sets = {{0}, {1}, {0, 1}, {2}};
  for (const std::vector<std::size_t>& set : sets) {
    std::vector<lathe::delivery_profile> profiles;
    std::string names;
    for (std::size_t i : set) {
      profiles.push_back(all[i]);
      names += (names.empty() ? "" : ",") + all[i].name;
    }
    std::vector<lathe::engine_track> tracks(static_cast<std::size_t>(o.render_tracks));
    for (std::size_t t = 0; t < tracks.size(); ++t) {
      tracks[t].audio = &songs[t % songs.size()];
      for (const lathe::delivery_profile& p : profiles) tracks[t].targets_lufs.push_back(p.target_lufs);
      tracks[t].seed_base = 77 + t;
    }
    std::size_t fallbacks = 0, failed_checks = 0, masters = 0;
    std::vector<double> runs_s;
    for (int r = 0; r < o.warmup + o.render_reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<lathe::gpu_engine::result> res = engine.render(tracks, rate_hz, profiles);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r < o.warmup) continue;
      runs_s.push_back(s);
      fallbacks = failed_checks = masters = 0;
      for (const auto& tr : res)
        for (std::size_t f = 0; f < tr.masters.size(); ++f) {
          ++masters;
          fallbacks += tr.cpu_fallback[f] ? 1 : 0;
          failed_checks += tr.masters[f].passed ? 0 : 1;
        }
    }
    timing t;
    for (double s : runs_s) t.ms.push_back(s * 1e3);
    // The alternative to packing, for the first set: the same tracks, one engine call each.
    json alone = nullptr;
    if (&set == &sets.front() && tracks.size() > 1) {
      timing a;
      for (int r = 0; r < o.warmup + o.render_reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (const lathe::engine_track& one : tracks) (void)engine.render({&one, 1}, rate_hz, profiles);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r >= o.warmup) a.ms.push_back(s * 1e3);
      }
      alone = {{"median_s", a.median() * 1e-3}, {"x_realtime", x_realtime(audio_s, a.median())}};
      std::printf("  render %-16s %9.3f s   %12.0fx realtime  (one track per call)\n", names.c_str(), a.median() * 1e-3,
                  x_realtime(audio_s, a.median()));
    }
    doc["render"].push_back({{"profiles", names},
                             {"tracks", o.render_tracks},
                             {"audio_s", audio_s},
                             {"median_s", t.median() * 1e-3},
                             {"best_s", t.best() * 1e-3},
                             {"runs_s", runs_s},
                             {"x_realtime", x_realtime(audio_s, t.median())},
                             {"masters", masters},
                             {"cpu_fallbacks", fallbacks},
                             {"failed_profile_checks", failed_checks},
                             {"one_track_per_call", alone}});
    std::printf("  render %-16s %9.3f s   %12.0fx realtime  (%zu of %zu masters by the CPU fallback)\n", names.c_str(),
                t.median() * 1e-3, x_realtime(audio_s, t.median()), fallbacks, masters);
    print_record("render", doc["render"].back());
    write_json(o, doc);
  }
}

std::vector<lathe::audio_buffer> synthesize(const options& o) {
  std::vector<lathe::audio_buffer> songs(static_cast<std::size_t>(o.distinct));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < songs.size(); ++i)
    threads.emplace_back([&, i] {
      lathe::demo_track_spec spec;
      spec.seconds = o.seconds;
      spec.sample_rate_hz = rate_hz;
      spec.level_db = -3.0 - static_cast<double>(i % 4) * 2.0;
      spec.tempo_bpm = 90.0 + 7.0 * static_cast<double>(i);
      spec.key_semitones = static_cast<int>(i * 5 % 12);
      spec.seed = static_cast<unsigned>(1 + i);
      songs[i] = lathe::synthesize_song(spec);
    });
  for (std::thread& t : threads) t.join();
  return songs;
}

void write_json(const options& o, const json& doc) {
  if (o.out.empty()) return;  // rewritten whole after each record: a cut run keeps what it measured
  std::ofstream f(o.out);
  f << doc.dump(2) << "\n";
  if (!f) std::fprintf(stderr, "lathe_gpu_bench: could not write %s\n", o.out.c_str());
}

/// Runs one part; a failure is recorded in doc["errors"] and the next part still runs.
void part(json& doc, const char* name, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe_gpu_bench: %s failed: %s\n", name, e.what());
    doc["errors"].push_back({{"part", name}, {"error", e.what()}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line out as it is printed, even into a file
  options o;
  if (!parse(argc, argv, o)) {
    usage(argv[0]);
    return 1;
  }
  json doc = {{"benchmark",
               "lathe GPU engine: copy ceilings, resident stages, resident chain, gpu_engine::render "
               "(bench/gpu_bench.cu)"},
              {"date", today()},
              {"x_realtime_means", "seconds of 44.1 kHz stereo source audio per wall-clock second"},
              {"method",
               {{"warmup_runs", o.warmup},
                {"timed_runs", o.reps},
                {"stage_timing", "cudaEvent pair on the stage's stream around its *_async call(s); median reported"},
                {"render_timing",
                 "std::chrono around gpu_engine::render (synchronizes before returning); median "
                 "of render_reps after warmup"},
                {"render_reps", o.render_reps}}},
              {"errors", json::array()}};
  if (const char* commit = std::getenv("LATHE_GIT_COMMIT")) doc["git_commit"] = commit;

  const std::vector<lathe::gpu::device_info> devs = lathe::gpu::devices();
  if (devs.empty()) {
    const std::string why = lathe::gpu::no_device_reason();
    std::fprintf(stderr, "lathe_gpu_bench: no usable GPU (%s); nothing measured\n", why.c_str());
    doc["status"] = "no_gpu";
    doc["reason"] = why;
    write_json(o, doc);
    return 2;
  }
  int exit_code = 0;
  try {
    lathe::gpu::set_current_device(0);
    doc["device"] = device_json(0);
    std::printf("device: %s, %d SMs, %.1f GiB, driver %s, %u host CPUs\n",
                doc["device"]["name"].get<std::string>().c_str(), doc["device"]["sm_count"].get<int>(),
                static_cast<double>(doc["device"]["memory_bytes"].get<std::size_t>()) / (1 << 30),
                doc["device"]["driver_version"].get<std::string>().c_str(), std::thread::hardware_concurrency());

    // Shrink the batch if it cannot fit: ~36 bytes of device memory per sample at the peak
    // (input, two work arrays, two peak arrays, int32 output, limiter workspace ~8/sample).
    const double free_b = static_cast<double>(doc["device"]["memory_free_bytes_at_start"].get<std::size_t>());
    const double per_track = 36.0 * 2.0 * o.seconds * rate_hz;
    const int fit = static_cast<int>(0.8 * free_b / per_track);
    if (fit < o.tracks) {
      std::printf("batch reduced from %d to %d tracks to fit device memory\n", o.tracks, std::max(fit, 1));
      doc["batch_reduced_from_tracks"] = o.tracks;
      o.tracks = std::max(fit, 1);
    }

    part(doc, "ceilings", [&] {
      const lathe::gpu::stream s;
      doc["ceilings"] = copy_ceilings(o.copy_mib, o.reps, s);
      std::printf(
          "ceilings: D2D %.0f GB/s copy (%.0f GB/s traffic), pinned H2D %.1f GB/s, D2H %.1f GB/s\n",
          doc["ceilings"]["d2d"]["copy_GBps"].get<double>(), doc["ceilings"]["d2d"]["traffic_GBps"].get<double>(),
          doc["ceilings"]["h2d_pinned"]["GBps"].get<double>(), doc["ceilings"]["d2h_pinned"]["GBps"].get<double>());
    });
    write_json(o, doc);

    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<lathe::audio_buffer> songs = synthesize(o);
    doc["synthesis_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    part(doc, "resident stages", [&] { resident_bench(o, songs, doc).run(); });
    write_json(o, doc);
    if (o.render_tracks > 0) part(doc, "render", [&] { render_bench(o, songs, doc); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe_gpu_bench: %s\n", e.what());
    doc["errors"].push_back({{"part", "setup"}, {"error", e.what()}});
    exit_code = 1;
  }
  if (!doc["errors"].empty()) exit_code = 1;
  doc["status"] = exit_code == 0 ? "ok" : "errors";
  write_json(o, doc);
  return exit_code;
}
