#pragma once
// A small synthetic but music-like catalog: drums, bass, chords and a lead, with quiet and loud
// sections, stereo placement, and albums of differing loudness. Deterministic.
#include <filesystem>
#include <vector>

#include "lathe/audio_buffer.hpp"

namespace lathe {

struct demo_track_spec {
  double seconds = 20.0;
  double sample_rate_hz = 44'100.0;
  double level_db = 0.0;  ///< overall gain applied to the mix
  double tempo_bpm = 120.0;
  int key_semitones = 0;  ///< transposition from A minor
  unsigned seed = 1;
  bool mono = false;
};

/// Renders one demo song (stereo unless spec.mono).
audio_buffer synthesize_song(const demo_track_spec& spec);

/// Writes the demo catalog into `dir`: two albums of three tracks (one album mixed quieter than
/// the other, one track mono, rates 44.1/48/96 kHz, FLAC and WAV) plus one single, and
/// `manifest.csv` naming them. `seconds` per track.
void write_demo_catalog(const std::filesystem::path& dir, double seconds = 20.0);

}  // namespace lathe
