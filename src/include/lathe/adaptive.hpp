#pragma once
// Adaptive mastering: per-track chain settings derived from the track's own analysis, a target
// curve (shipped or from a reference master) and its album, scaled by per-dimension amounts.
// Nothing here touches audio: adapt_profile() returns the profile the chain then runs, and a
// report of every setting it derived.
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/catalog.hpp"
#include "lathe/tonal.hpp"

namespace lathe {

struct delivery_profile;

/// How hard auto dynamics works (sets threshold offsets above each band's mean level and ratios).
enum class dynamics_intent { gentle, moderate, firm };
bool parse_dynamics_intent(const std::string& name, dynamics_intent& out);
const char* to_string(dynamics_intent i) noexcept;

/// A profile's [adaptive] table. Amounts are fractions 0..1 (the TOML says percent 0..100).
/// Every amount 0 (and album_consistency 0) leaves the profile's chain exactly as written.
struct adaptive_params {
  bool enabled = false;               ///< the profile has an [adaptive] table
  std::string target;                 ///< as written: a name in configs/targets/ or a file
  std::filesystem::path target_file;  ///< resolved (empty: no target curve)
  double eq = 0.0;                    ///< auto-EQ toward the target curve
  double width = 0.0;                 ///< side level toward the target's width
  double dynamics = 0.0;              ///< auto multiband dynamics
  double loudness = 1.0;              ///< fraction of the way from the mix's loudness to the target
  double max_eq_db = 4.0;             ///< auto-EQ range, +-dB per band
  double album_consistency = 0.0;     ///< pull of each album track toward the album's mean balance
  dynamics_intent intent = dynamics_intent::gentle;
  std::string reference;  ///< --reference: the file's identity (path, size, time), for fingerprints
};

/// What one track's adaptation reads.
struct adaptation_input {
  const tonal_analysis* tonal = nullptr;     ///< the track's input (required when adaptive)
  const target_curve* target = nullptr;      ///< the profile's target or a reference (may be null)
  const target_curve* album_mean = nullptr;  ///< its album's mean balance (null: not in an album)
  track_amounts amounts;                     ///< manifest overrides of the profile's amounts
};

/// Crossovers auto dynamics uses when the profile's chain has no multiband stage.
inline constexpr double auto_dynamics_crossovers_hz[] = {120.0, 1'000.0, 6'000.0};

/// The profile for one track: auto-EQ curve (inserting the EQ stage after the high-pass when
/// the chain has none), stereo width, auto multiband dynamics, each only when its amount is
/// above 0. `report` receives every derived setting. Returns `p` unchanged when p.adaptive is
/// not enabled or every amount is 0.
delivery_profile adapt_profile(const delivery_profile& p, const adaptation_input& in, nlohmann::json* report);

/// Loudness amount: the target a track aims at when it moves `fraction` of the way from its
/// input loudness to `target_lufs` (the target itself for fraction 1 or a silent input).
double adapted_target_lufs(double target_lufs, double input_lufs, double fraction) noexcept;

/// Spread of tonal balance across tracks (dB): the RMS over tracks of each track's RMS deviation
/// (40 Hz .. 16 kHz bands) from the tracks' mean normalized balance. 0 for fewer than 2 tracks.
double tonal_spread_db(std::span<const tonal_analysis> tracks);

}  // namespace lathe
