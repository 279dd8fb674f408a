// Writes one long music-like track (24-bit FLAC, or WAV/RF64 by extension) for the memory
// benchmark: demo songs of 60 s at the chosen rate, one after another, each at its own level,
// streamed to the file so the tool itself needs no memory for the length.
//   lathe_long_track OUT.flac MINUTES [RATE_HZ]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "demo_catalog.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/error.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT.flac MINUTES [RATE_HZ]\n", argv[0]);
    return 2;
  }
  using namespace lathe;
  const std::filesystem::path out = argv[1];
  const double minutes = std::atof(argv[2]);
  const double rate = argc > 3 ? std::atof(argv[3]) : 96'000.0;
  const auto total = static_cast<std::size_t>(minutes * 60.0 * rate);
  const container_format container = out.extension() == ".wav" ? container_format::wav : container_format::flac;
  try {
    track_tags tags;
    tags.title = "Long programme";
    audio_writer w(out, container, 2, rate, 24, tags, total);
    std::vector<std::int32_t> pcm;
    std::size_t written = 0;
    for (unsigned song = 0; written < total; ++song) {
      demo_track_spec spec;
      spec.seconds = 60.0;
      spec.sample_rate_hz = rate;
      spec.level_db = -static_cast<double>(song % 5) * 2.0;
      spec.tempo_bpm = 96.0 + 8.0 * (song % 6);
      spec.key_semitones = static_cast<int>(song % 7);
      spec.seed = song + 1;
      const audio_buffer a = synthesize_song(spec);
      const std::size_t n = std::min(a.frames(), total - written);
      pcm.resize(2 * n);
      for (std::size_t i = 0; i < n; ++i)
        for (int c = 0; c < 2; ++c) {
          const double v = std::clamp(static_cast<double>(a.channel(c)[i]), -1.0, 1.0 - 1.0 / 8388608.0);
          pcm[2 * i + static_cast<std::size_t>(c)] = static_cast<std::int32_t>(std::lrint(v * 8388608.0));
        }
      w.write(pcm);
      written += n;
    }
    w.commit();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe_long_track: %s\n", e.what());
    return 1;
  }
  return 0;
}
