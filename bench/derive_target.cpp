// Derives a corpus target curve (configs/targets/*.toml): every file given is decoded
// (lathe::decode_file: anything libsndfile reads, Opus and Vorbis included), analysed
// (lathe::analyze_tonal at its own rate), and the target is the power-mean of the tracks'
// normalized 1/3-octave mid levels and widths (lathe::mean_target). One thread, files in the
// order given (sorted by the caller for a reproducible file).
//
//   lathe_derive_target --name NAME --description TEXT --derived-from TEXT --out FILE.toml FILES...
//   lathe_derive_target --name NAME --description TEXT --derived-from TEXT --out FILE.toml --tilt S
//       the analytic "smooth tilt" target instead: mid_db = S * log2(centre / 1 kHz) (dB/oct),
//       already mean 0 over 100 Hz .. 10 kHz (symmetric about 1 kHz in log2), no width target
//
// Prints one line per track (seconds, rate, tilt, deviation from the running corpus) to stdout.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/audio_io.hpp"
#include "lathe/tonal.hpp"

int main(int argc, char** argv) {
  std::string name, description, derived_from, out, tilt;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string& dest) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      dest = argv[++i];
    };
    if (a == "--name") {
      value(name);
    } else if (a == "--description") {
      value(description);
    } else if (a == "--derived-from") {
      value(derived_from);
    } else if (a == "--out") {
      value(out);
    } else if (a == "--tilt") {
      value(tilt);
    } else if (a.starts_with("--")) {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    } else {
      files.emplace_back(a);
    }
  }
  if (!tilt.empty() && files.empty() && !name.empty() && !out.empty()) {
    lathe::target_curve t;
    t.name = name;
    t.description = description;
    t.derived_from = derived_from;
    const double slope_db_per_octave = std::stod(tilt);
    for (std::size_t i = 0; i < t.mid_db.size(); ++i) {
      t.mid_db[i] = slope_db_per_octave * std::log2(lathe::third_octave_centres_hz()[i] / 1000.0);
    }
    t.width_db.fill(NAN);
    lathe::save_target_curve(t, out);
    std::printf("wrote %s\n", out.c_str());
    return 0;
  }
  if (name.empty() || out.empty() || files.empty() || !tilt.empty()) {
    std::fprintf(stderr,
                 "usage: lathe_derive_target --name NAME --description TEXT --derived-from TEXT --out FILE.toml "
                 "FILES... | --tilt DB_PER_OCTAVE\n");
    return 2;
  }
  try {
    std::vector<lathe::tonal_analysis> analyses;
    double seconds = 0.0;
    for (const std::string& f : files) {
      const lathe::decoded_track t = lathe::decode_file(f);
      analyses.push_back(lathe::analyze_tonal(t.audio, t.info.sample_rate_hz));
      const lathe::tonal_analysis& a = analyses.back();
      const double s = static_cast<double>(t.audio.frames()) / t.info.sample_rate_hz;
      seconds += s;
      std::printf("%s: %.1f s, %.0f Hz, %s, tilt %+.2f dB/oct, low end %.1f dB, high end %.1f dB\n", f.c_str(), s,
                  t.info.sample_rate_hz, t.info.encoding.c_str(), a.tilt_db_per_octave, a.low_end_db, a.high_end_db);
    }
    lathe::target_curve target = lathe::mean_target(analyses, name, derived_from);
    target.description = description;
    lathe::save_target_curve(target, out);
    std::printf("%zu tracks, %.1f min: wrote %s\n", files.size(), seconds / 60.0, out.c_str());
    for (const lathe::tonal_analysis& a : analyses) {
      std::printf("  deviation from the corpus target: %.2f dB\n", lathe::target_deviation_db(a, target));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe_derive_target: %s\n", e.what());
    return 1;
  }
  return 0;
}
