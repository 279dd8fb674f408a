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
// decode_file refuses a file whose decoded length falls short of its header's frame count; for
// Ogg Vorbis/Opus that count is an estimate that libsndfile sometimes overshoots by a few frames
// (seen: 10 of 18.8 M), so such a file is read again here with plain libsndfile to its end, and
// the line printed for it says "(read to EOF)".
//
// Prints one line per track (seconds, rate, tilt, deviation from the running corpus) to stdout.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <sndfile.h>

#include "lathe/audio_io.hpp"
#include "lathe/error.hpp"
#include "lathe/tonal.hpp"

namespace {

// Every frame libsndfile returns, as stereo (mono duplicated).
lathe::audio_buffer read_to_eof(const std::string& path, double& rate_hz) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (f == nullptr) throw lathe::input_error(path, sf_strerror(nullptr));
  if (info.channels < 1 || info.channels > 2) {
    sf_close(f);
    throw lathe::input_error(path, "more than two channels");
  }
  std::vector<float> interleaved, block(4'096 * static_cast<std::size_t>(info.channels));
  sf_count_t got = 0;
  while ((got = sf_readf_float(f, block.data(), 4'096)) > 0) {
    interleaved.insert(interleaved.end(), block.begin(), block.begin() + got * info.channels);
  }
  sf_close(f);
  const std::size_t ch = static_cast<std::size_t>(info.channels), frames = interleaved.size() / ch;
  lathe::audio_buffer out(2, frames);
  for (std::size_t i = 0; i < frames; ++i) {
    out.channel(0)[i] = interleaved[i * ch];
    out.channel(1)[i] = interleaved[i * ch + ch - 1];
  }
  rate_hz = info.samplerate;
  return out;
}

}  // namespace

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
      lathe::audio_buffer audio;
      double rate_hz = 0.0;
      std::string how;
      try {
        lathe::decoded_track t = lathe::decode_file(f);
        audio = std::move(t.audio);
        rate_hz = t.info.sample_rate_hz;
        how = t.info.encoding;
      } catch (const lathe::input_error& e) {
        if (std::string(e.reason()).find("truncated") == std::string::npos) throw;
        audio = read_to_eof(f, rate_hz);
        how = "(read to EOF)";
      }
      analyses.push_back(lathe::analyze_tonal(audio, rate_hz));
      const lathe::tonal_analysis& a = analyses.back();
      const double s = static_cast<double>(audio.frames()) / rate_hz;
      seconds += s;
      std::printf("%s: %.1f s, %.0f Hz, %s, tilt %+.2f dB/oct, low end %.1f dB, high end %.1f dB\n", f.c_str(), s,
                  rate_hz, how.c_str(), a.tilt_db_per_octave, a.low_end_db, a.high_end_db);
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
