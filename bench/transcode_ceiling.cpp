// The decode+encode-only ceiling for `lathe master`: every file of a catalog is decoded
// (lathe::decode_file) and written as a 24-bit FLAC and a 16-bit WAV (lathe::quantize with TPDF
// dither and no shaping, lathe::write_audio_file), with no processing in between, files in
// parallel (tbb::parallel_for, --jobs threads). Whatever lathe master does beyond this costs
// throughput; this is what it cannot beat on the same machine, files and outputs.
//
// Modes:
//   lathe_transcode_ceiling CATALOG --out DIR [--jobs N] [--report FILE]
//       the ceiling: DIR/flac/<rel>.flac and DIR/wav/<rel>.wav; prints x realtime
//   lathe_transcode_ceiling CATALOG --to-flac DIR [--jobs N]
//       converts a catalog (anything libsndfile reads: Opus, MP3, WAV...) to 24-bit FLAC once,
//       to prepare a benchmark catalog (not a measurement)
//   lathe_transcode_ceiling --synth DIR --count N [--seconds S] [--jobs N]
//       writes N music-like demo songs (host/demo_catalog.hpp) of S seconds, 44.1 kHz stereo
//       24-bit FLAC, so that a device run can make its catalog on the spot
//
// x realtime = seconds of source audio / wall-clock seconds of the whole parallel loop.
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "demo_catalog.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/catalog.hpp"
#include "lathe/dither.hpp"
#include "lathe/master.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Quantizes with TPDF dither, no shaping (the cheapest correct reduction), and writes the file.
void encode(const lathe::audio_buffer& audio, double rate_hz, int bit_depth, lathe::container_format container,
            std::uint64_t seed, const fs::path& dest, const lathe::track_tags& tags) {
  lathe::quantize_params q;
  q.bit_depth = bit_depth;
  q.shaping = lathe::noise_shaping::none;
  q.seed = seed;
  q.sample_rate_hz = rate_hz;
  std::vector<std::int32_t> ints;
  lathe::quantize(audio, q, ints);
  lathe::pcm_frames pcm;
  pcm.channels = 2;
  pcm.sample_rate_hz = rate_hz;
  pcm.bit_depth = bit_depth;
  pcm.int_samples = ints;
  lathe::write_audio_file(dest, container, pcm, tags);
}

fs::path with_extension(fs::path p, const char* ext) {
  p.replace_extension(ext);
  return p;
}

struct totals {
  std::atomic<std::size_t> files{0}, failed{0};
  std::mutex m;  // guards audio_s and first_error
  double audio_s = 0.0;
  std::string first_error;

  void add(double seconds) {
    std::lock_guard lock(m);
    audio_s += seconds;
    ++files;
  }
  void fail(const std::string& what) {
    std::lock_guard lock(m);
    ++failed;
    if (first_error.empty()) first_error = what;
    std::fprintf(stderr, "error: %s\n", what.c_str());
  }
};

int run_synth(const fs::path& dir, int count, double seconds) {
  totals t;
  const double t0 = now_s();
  tbb::parallel_for(0, count, [&](int i) {
    lathe::demo_track_spec spec;
    spec.seconds = seconds;
    spec.sample_rate_hz = 44'100.0;
    spec.level_db = -3.0 - static_cast<double>(i % 5) * 2.5;  // albums of differing loudness
    spec.tempo_bpm = 84.0 + static_cast<double>((i * 7) % 60);
    spec.key_semitones = (i * 5) % 12;
    spec.seed = static_cast<unsigned>(1000 + i);
    char name[64];
    std::snprintf(name, sizeof name, "song-%03d.flac", i + 1);
    try {
      const lathe::audio_buffer a = lathe::synthesize_song(spec);
      lathe::track_tags tags;
      tags.title = name;
      tags.album = "bench " + std::to_string(i / 10 + 1);
      tags.track_number = i % 10 + 1;
      encode(a, spec.sample_rate_hz, 24, lathe::container_format::flac, spec.seed, dir / name, tags);
      t.add(static_cast<double>(a.frames()) / spec.sample_rate_hz);
    } catch (const std::exception& e) {
      t.fail(std::string(name) + ": " + e.what());
    }
  });
  std::printf("synthesized %zu songs (%.2f h of audio) into %s in %.1f s; %zu failed\n", t.files.load(),
              t.audio_s / 3600.0, dir.string().c_str(), now_s() - t0, t.failed.load());
  return t.failed > 0 ? 2 : 0;
}

/// Decodes every entry (files in parallel) and hands each decoded track to `write`; counts the
/// source audio and the failures.
template <class Write>
void for_each_decoded(const std::vector<lathe::catalog_entry>& entries, totals& t, const Write& write) {
  tbb::parallel_for(std::size_t{0}, entries.size(), [&](std::size_t i) {
    const lathe::catalog_entry& e = entries[i];
    try {
      const lathe::decoded_track d = lathe::decode_file(e.path);
      write(e, d);
      t.add(static_cast<double>(d.info.frames) / d.info.sample_rate_hz);
    } catch (const std::exception& ex) {
      t.fail(e.path.string() + ": " + ex.what());
    }
  });
}

int run_to_flac(const std::vector<lathe::catalog_entry>& entries, const fs::path& dir) {
  totals t;
  const double t0 = now_s();
  for_each_decoded(entries, t, [&](const lathe::catalog_entry& e, const lathe::decoded_track& d) {
    encode(d.audio, d.info.sample_rate_hz, 24, lathe::container_format::flac, lathe::fnv1a64(e.relative_path.string()),
           with_extension(dir / e.relative_path, ".flac"), d.info.tags);
  });
  std::printf("converted %zu files (%.2f h of audio) to 24-bit FLAC in %s in %.1f s; %zu failed\n", t.files.load(),
              t.audio_s / 3600.0, dir.string().c_str(), now_s() - t0, t.failed.load());
  return t.failed > 0 ? 2 : 0;
}

int run_ceiling(const std::vector<lathe::catalog_entry>& entries, const fs::path& out, int jobs,
                const std::string& report) {
  totals t;
  const double t0 = now_s();
  for_each_decoded(entries, t, [&](const lathe::catalog_entry& e, const lathe::decoded_track& d) {
    const std::uint64_t seed = lathe::fnv1a64(e.relative_path.string());
    encode(d.audio, d.info.sample_rate_hz, 24, lathe::container_format::flac, lathe::fnv1a64("streaming", seed),
           with_extension(out / "flac" / e.relative_path, ".flac"), d.info.tags);
    encode(d.audio, d.info.sample_rate_hz, 16, lathe::container_format::wav, lathe::fnv1a64("cd", seed),
           with_extension(out / "wav" / e.relative_path, ".wav"), d.info.tags);
  });
  const double wall_s = now_s() - t0;
  const double x_realtime = wall_s > 0 ? t.audio_s / wall_s : 0.0;
  const json j = {{"benchmark", "decode+encode-only ceiling (bench/transcode_ceiling.cpp)"},
                  {"what",
                   "decode_file, then quantize (TPDF, no shaping) + write_audio_file to 24-bit FLAC and "
                   "16-bit WAV at the source rate; no processing"},
                  {"files", t.files.load()},
                  {"failed", t.failed.load()},
                  {"first_error", t.first_error},
                  {"audio_hours", t.audio_s / 3600.0},
                  {"wall_s", wall_s},
                  {"x_realtime", x_realtime},
                  {"jobs", jobs},
                  {"hardware_threads", std::thread::hardware_concurrency()}};
  std::printf("%s\n", j.dump().c_str());
  if (!report.empty()) std::ofstream(report) << j.dump(2) << "\n";
  return t.failed > 0 ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"decode+encode-only ceiling for lathe master (and catalog preparation)"};
  std::string catalog, out, to_flac, synth, report;
  int jobs = 0, count = 60;
  double seconds = 180.0;
  app.add_option("catalog", catalog, "Catalog folder or CSV manifest");
  app.add_option("--out,-o", out, "Ceiling mode: output folder (flac/ and wav/ below it)");
  app.add_option("--to-flac", to_flac, "Only convert the catalog to 24-bit FLAC into this folder");
  app.add_option("--synth", synth, "Write --count demo songs as 24-bit FLAC into this folder");
  app.add_option("--count", count, "Songs for --synth")->check(CLI::PositiveNumber);
  app.add_option("--seconds", seconds, "Seconds per song for --synth")->check(CLI::PositiveNumber);
  app.add_option("--jobs,-j", jobs, "Worker threads (default: every core)")->check(CLI::NonNegativeNumber);
  app.add_option("--report", report, "Ceiling mode: also write the JSON result to this file");
  CLI11_PARSE(app, argc, argv);

  const int threads = jobs > 0 ? jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  try {
    if (!synth.empty()) {
      fs::create_directories(synth);
      return run_synth(synth, count, seconds);
    }
    if (catalog.empty() || (out.empty() == to_flac.empty())) {
      std::fprintf(stderr, "give a CATALOG and exactly one of --out DIR or --to-flac DIR (or --synth DIR)\n%s",
                   app.help().c_str());
      return 1;
    }
    const std::vector<lathe::catalog_entry> entries = lathe::load_catalog(catalog);
    if (entries.empty()) {
      std::fprintf(stderr, "no audio files in %s\n", catalog.c_str());
      return 1;
    }
    if (!to_flac.empty()) return run_to_flac(entries, to_flac);
    return run_ceiling(entries, out, threads, report);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe_transcode_ceiling: %s\n", e.what());
    return 1;
  }
}
