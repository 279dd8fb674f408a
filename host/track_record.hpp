#pragma once
// Lossless JSON forms of what a finished track leaves for later runs: its input analysis, tonal
// balance and mix notes (one record per track), its masters' tonal balance and loudness blocks
// (in each output's resume sidecar) and each album's gain decision. A resumed or repeated run
// rebuilds report.json and notes/ from these, so the result does not depend on where an earlier
// run stopped. Unlike report.cpp's rounded forms, every double round-trips bit for bit
// (non-finite values are written as the strings "nan", "inf" and "-inf").
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/mix_notes.hpp"
#include "lathe/tonal.hpp"

namespace lathe::record {

nlohmann::json exact(const loudness_blocks& b);
nlohmann::json exact(const track_analysis& a);
nlohmann::json exact(const tonal_analysis& t);
nlohmann::json exact(const mix_note& n);

/// Inverses of exact(); throw nlohmann::json::exception on malformed input.
loudness_blocks blocks_from(const nlohmann::json& j);
track_analysis analysis_from(const nlohmann::json& j);
tonal_analysis tonal_from(const nlohmann::json& j);
mix_note note_from(const nlohmann::json& j);

/// What a finished track keeps beside its resume state.
struct track_record {
  std::optional<track_analysis> input;
  std::optional<tonal_analysis> tonal;
  std::optional<std::vector<mix_note>> mix_notes;  ///< nullopt: not checked
};

/// OUT/.lathe/state/tracks/<key>.json
std::filesystem::path track_record_path(const std::filesystem::path& out_dir, const std::string& key);
/// Written atomically; `key` is stored inside and checked by load_track_record.
void save_track_record(const std::filesystem::path& out_dir, const std::string& key, const track_record& r);
/// nullopt when missing, damaged or written for another key.
std::optional<track_record> load_track_record(const std::filesystem::path& out_dir, const std::string& key);

/// OUT/.lathe/state/albums/<album key hash>.json: per format, the album decision made for the
/// members' fingerprints `key`.
std::filesystem::path album_record_path(const std::filesystem::path& out_dir, const std::string& album);
void save_album_decision(const std::filesystem::path& out_dir, const std::string& album, const std::string& format,
                         const std::string& key, const nlohmann::json& decision);
std::optional<nlohmann::json> load_album_decision(const std::filesystem::path& out_dir, const std::string& album,
                                                  const std::string& format, const std::string& key);

}  // namespace lathe::record
