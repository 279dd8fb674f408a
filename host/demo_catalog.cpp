#include "demo_catalog.hpp"

#include <cmath>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "lathe/audio_io.hpp"
#include "lathe/dither.hpp"

namespace lathe {
namespace {

constexpr double two_pi = 2.0 * M_PI;

double midi_hz(double note) {
  return 440.0 * std::pow(2.0, (note - 69.0) / 12.0);
}

// One voice of additive synthesis with a decaying envelope, added into both channels with a pan.
void add_note(audio_buffer& b, double fs, double start_s, double dur_s, double hz, double amp, double pan,
              int harmonics, double decay_s, double detune_cents = 0.0) {
  const auto start = static_cast<std::size_t>(start_s * fs);
  const auto len = static_cast<std::size_t>(dur_s * fs);
  const double gl = amp * std::cos(0.25 * M_PI * (1.0 + pan));
  const double gr = amp * std::sin(0.25 * M_PI * (1.0 + pan));
  const double f2 = hz * std::pow(2.0, detune_cents / 1200.0);
  for (std::size_t i = 0; i < len && start + i < b.frames(); ++i) {
    const double t = static_cast<double>(i) / fs;
    const double attack = std::min(1.0, t / 0.005);
    const double release = std::min(1.0, (dur_s - t) / 0.02);
    const double env = attack * std::max(0.0, release) * std::exp(-t / decay_s);
    double v = 0.0;
    for (int h = 1; h <= harmonics; ++h) {
      if (hz * h > 0.45 * fs) break;
      v += std::sin(two_pi * hz * h * t) / h + 0.5 * std::sin(two_pi * f2 * h * t) / h;
    }
    v *= env;
    b.channel(0)[start + i] += static_cast<float>(gl * v);
    b.channel(1)[start + i] += static_cast<float>(gr * v);
  }
}

}  // namespace

audio_buffer synthesize_song(const demo_track_spec& s) {
  const double fs = s.sample_rate_hz;
  audio_buffer b(2, static_cast<std::size_t>(s.seconds * fs));
  std::mt19937 rng(s.seed);
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  const double beat = 60.0 / s.tempo_bpm;
  const int beats = static_cast<int>(s.seconds / beat);
  const int chords[4][3] = {{57, 60, 64}, {53, 57, 60}, {48, 52, 55}, {55, 59, 62}};  // Am F C G
  const int melody[8] = {76, 74, 72, 71, 72, 74, 76, 79};
  for (int k = 0; k < beats; ++k) {
    const double t = k * beat;
    // Sections: quiet intro (first quarter), loud middle, medium outro.
    const double section = t < s.seconds * 0.25 ? 0.3 : (t < s.seconds * 0.75 ? 1.0 : 0.6);
    const int bar = k / 4;
    const int* chord = chords[bar % 4];
    const double key = s.key_semitones;
    if (section > 0.5) {
      // Kick on every beat, snare (noise burst) on 2 and 4, hats on eighths.
      add_note(b, fs, t, 0.25, 55.0, 0.5 * section, 0.0, 2, 0.08);
      if (k % 2 == 1) {
        const auto start = static_cast<std::size_t>(t * fs);
        for (std::size_t i = 0; i < static_cast<std::size_t>(0.15 * fs) && start + i < b.frames(); ++i) {
          const double env = std::exp(-static_cast<double>(i) / fs / 0.04) * 0.25 * section;
          b.channel(0)[start + i] += static_cast<float>(env * uni(rng));
          b.channel(1)[start + i] += static_cast<float>(env * uni(rng));
        }
      }
    }
    for (int e = 0; e < 2; ++e) {
      const auto start = static_cast<std::size_t>((t + e * beat / 2) * fs);
      for (std::size_t i = 0; i < static_cast<std::size_t>(0.03 * fs) && start + i < b.frames(); ++i) {
        const double env = std::exp(-static_cast<double>(i) / fs / 0.01) * 0.06 * section;
        const double n = uni(rng);
        b.channel(0)[start + i] += static_cast<float>(0.6 * env * n);
        b.channel(1)[start + i] += static_cast<float>(env * n);
      }
    }
    // Bass follows the chord root; pads hold the chord; the lead plays in the loud section.
    add_note(b, fs, t, beat * 0.9, midi_hz(chord[0] - 24 + key), 0.35 * section, -0.1, 6, 0.4);
    if (k % 4 == 0)
      for (int v = 0; v < 3; ++v)
        add_note(b, fs, t, beat * 4, midi_hz(chord[v] + key), 0.07 * (0.5 + 0.5 * section), v - 1.0, 8, 2.0, 7.0);
    if (section > 0.9) add_note(b, fs, t, beat * 0.8, midi_hz(melody[k % 8] + key), 0.12, 0.35, 5, 0.5, 4.0);
  }
  const double g = std::pow(10.0, s.level_db / 20.0);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < b.frames(); ++i) b.channel(c)[i] = static_cast<float>(std::tanh(b.channel(c)[i] * g));
  if (s.mono) {
    audio_buffer m(1, b.frames());
    for (std::size_t i = 0; i < b.frames(); ++i) m.channel(0)[i] = 0.5f * (b.channel(0)[i] + b.channel(1)[i]);
    return m;
  }
  return b;
}

void write_demo_catalog(const std::filesystem::path& dir, double seconds) {
  struct item {
    const char* file;
    const char* album;
    const char* title;
    int track;
    const char* isrc;
    demo_track_spec spec;
    container_format container;
    int bits;
  };
  const item items[] = {
      {"night-drive/01-headlights.flac",
       "Night Drive",
       "Headlights",
       1,
       "XXLTH2600001",
       {seconds, 44'100, -4.0, 118, 0, 11},
       container_format::flac,
       24},
      {"night-drive/02-overpass.flac",
       "Night Drive",
       "Overpass",
       2,
       "XXLTH2600002",
       {seconds, 44'100, -9.0, 96, 3, 12},
       container_format::flac,
       24},
      {"night-drive/03-last-exit.wav",
       "Night Drive",
       "Last Exit",
       3,
       "XXLTH2600003",
       {seconds, 48'000, -6.0, 128, -2, 13},
       container_format::wav,
       24},
      {"tide/01-undertow.wav",
       "Tide",
       "Undertow",
       1,
       "XXLTH2600004",
       {seconds, 48'000, -14.0, 84, 5, 21},
       container_format::wav,
       16},
      {"tide/02-salt.flac",
       "Tide",
       "Salt",
       2,
       "XXLTH2600005",
       {seconds, 96'000, -16.0, 100, 7, 22, true},
       container_format::flac,
       24},
      {"tide/03-low-water.flac",
       "Tide",
       "Low Water",
       3,
       "XXLTH2600006",
       {seconds, 44'100, -12.0, 72, 2, 23},
       container_format::flac,
       16},
      {"singles/signal.wav",
       "",
       "Signal",
       0,
       "XXLTH2600007",
       {seconds, 44'100, 2.0, 140, -5, 31},
       container_format::wav,
       24},
  };
  std::filesystem::create_directories(dir);
  std::ofstream manifest(dir / "manifest.csv.tmp");
  manifest << "path,album,artist,title,track_number,isrc\n";
  for (const item& it : items) {
    const audio_buffer a = synthesize_song(it.spec);
    quantize_params q;
    q.bit_depth = it.bits;
    q.seed = it.spec.seed;
    q.sample_rate_hz = it.spec.sample_rate_hz;
    std::vector<std::int32_t> pcm;
    quantize(a, q, pcm);
    pcm_frames frames;
    frames.channels = a.channels();
    frames.sample_rate_hz = it.spec.sample_rate_hz;
    frames.bit_depth = it.bits;
    frames.int_samples = pcm;
    track_tags tags;
    tags.title = it.title;
    tags.album = it.album;
    tags.artist = "The Lathe Demo Band";
    tags.track_number = it.track;
    write_audio_file(dir / it.file, it.container, frames, tags);
    manifest << it.file << ',' << (std::string(it.album).empty() ? "" : fmt::format("\"{}\"", it.album)) << ','
             << "The Lathe Demo Band," << it.title << ',' << (it.track > 0 ? std::to_string(it.track) : "") << ','
             << it.isrc << '\n';
  }
  manifest.close();
  std::filesystem::rename(dir / "manifest.csv.tmp", dir / "manifest.csv");
}

}  // namespace lathe
