#pragma once
// A catalog: a folder searched recursively for audio files, or a CSV manifest.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lathe {

/// Per-track adaptive amounts from the manifest (fractions 0..1; nullopt: the profile decides).
struct track_amounts {
  std::optional<double> eq, width, dynamics, loudness;
};

struct catalog_entry {
  std::filesystem::path path;              ///< absolute or relative to the working directory, ready to open
  std::filesystem::path relative_path;     ///< relative to the catalog root (folder or manifest's folder)
  std::string album, artist, title, isrc;  ///< empty when the manifest does not say
  int track_number = 0;                    ///< 0 when unknown
  std::size_t manifest_line = 0;           ///< 1-based line in the manifest; 0 for folder scans
  track_amounts amounts;                   ///< manifest columns eq_amount .. loudness_amount (percent)
  std::filesystem::path reference;         ///< manifest `reference`: a reference master for the track's album
};

/// File extensions (lower case, with dot) a folder scan picks up.
const std::vector<std::string>& audio_extensions();

/// Loads a folder (recursive, sorted by relative path, hidden entries skipped) or a CSV manifest
/// (RFC 4180 quoting; a header row with `path` required and optionally album, artist, title,
/// track_number, isrc, eq_amount, width_amount, dynamics_amount, loudness_amount (percent 0..100,
/// empty: the profile's), reference (a reference master's path), in any order; paths relative to
/// the manifest's folder). Throws
/// config_error "FILE:LINE: reason" for a malformed manifest (missing path column, unknown
/// column, bad track_number, unterminated quote); an entry whose file does not exist is kept
/// (it fails as that track, not as the catalog).
std::vector<catalog_entry> load_catalog(const std::filesystem::path& folder_or_manifest);

}  // namespace lathe
