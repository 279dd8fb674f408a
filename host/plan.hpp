#pragma once
// Planning a catalog run before any audio is decoded: metadata, albums, output paths and the
// fingerprints that let a rerun skip finished work.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lathe/audio_io.hpp"
#include "lathe/catalog.hpp"
#include "lathe/profile.hpp"

namespace lathe {

enum class album_mode { album, track };

/// One track of the run with everything decided before decoding.
struct planned_track {
  std::size_t index = 0;
  catalog_entry entry;
  std::optional<source_info> info;  ///< nullopt when the header could not be read
  std::string probe_error;          ///< why, when info is empty
  track_tags tags;                  ///< resolved: manifest first, then the file's tags, then its name
  std::string album_key;            ///< "" when the track is mastered alone
  std::uint64_t dither_seed_base = 0;
  /// Per format (same order as run_plan::profiles): output path relative to the output folder.
  std::vector<std::filesystem::path> outputs;
  /// Per format: fingerprint of input, profile, version and album context (fingerprint_plan).
  std::vector<std::string> fingerprints;
  /// What the track's own record (input analysis, tonal balance, mix notes) is valid for:
  /// input, version, metadata and album context, whatever the formats.
  std::string record_key;
  double duration_s() const noexcept {
    return info && info->sample_rate_hz > 0 ? static_cast<double>(info->frames) / info->sample_rate_hz : 0.0;
  }
};

struct run_plan {
  std::vector<delivery_profile> profiles;  ///< the formats to deliver
  std::vector<planned_track> tracks;
  std::map<std::string, std::vector<std::size_t>> albums;  ///< album key -> track indices (2+ tracks)
  album_mode mode = album_mode::album;
};

/// Makes a file or folder name safe: no separators, control characters or characters that
/// Windows/SMB shares reject; never "." or ".."; at most 180 bytes (cut on a UTF-8 boundary).
std::string sanitize_name(const std::string& name);

/// Probes every entry's header, resolves metadata, groups albums (tracks sharing an album name;
/// with --track-mode none), and assigns collision-free output paths
/// `<format>/<album>/<NN - title>.<ext>`; tracks without an album keep their catalog folder.
/// Reads headers only; fingerprint_plan reads the inputs.
run_plan make_plan(std::vector<catalog_entry> entries, std::vector<delivery_profile> profiles, album_mode mode);

/// Fills every track's fingerprints and record key from what its outputs depend on: the
/// input's content (content_hash, cached in `hash_cache_dir`), the manifest's amounts and
/// reference, the profile, lathe's version, the metadata and, in album mode, the content of
/// every track of its album. Neither the catalog's location nor file times enter, so a catalog
/// copied elsewhere resumes. Reads every input whose cache entry is missing or stale, in
/// parallel.
run_plan fingerprint_plan(run_plan plan, const std::filesystem::path& hash_cache_dir);

/// Sidecar that records a finished output, for resume: `<out>/.lathe/state/<output>.json`.
std::filesystem::path state_path(const std::filesystem::path& out_dir, const std::filesystem::path& output_rel);

}  // namespace lathe
