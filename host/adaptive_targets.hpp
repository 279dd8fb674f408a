#pragma once
// What the adaptive chain aims each track at (target curves, reference masters, album
// balances), and each track's profiles derived from them.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lathe/tonal.hpp"
#include "plan.hpp"
#include "track_state.hpp"

namespace lathe {

class adaptive_targets {
 public:
  /// Loads every target curve the profiles name and decodes the reference masters (the run's
  /// `reference_file`, and the manifest's per album). A bad reference throws config_error,
  /// before any track is mastered.
  adaptive_targets(const run_plan& plan, const std::filesystem::path& reference_file);
  adaptive_targets(const adaptive_targets&) = delete;  // hands out pointers into itself
  adaptive_targets& operator=(const adaptive_targets&) = delete;

  /// The target of track t in profile p: its album's reference, the run's reference, the
  /// profile's curve; nullptr when p is not adaptive.
  const target_curve* target_of(const planned_track& t, const delivery_profile& p) const;
  /// What mix notes compare sub-bass and harshness with: the run's reference, else the first
  /// target curve, else nothing.
  const target_curve* notes_target() const noexcept { return notes_target_; }
  /// Says which curve the mix notes were compared with, for the key of a track's record.
  const std::string& notes_context() const noexcept { return notes_context_; }
  /// The key of track t's record: its plan key and the curve its mix notes compared with.
  std::string record_key(const planned_track& t) const { return t.record_key + "\n" + notes_context_; }

  /// Album consistency: each album's balance needs every member's tonal analysis before any
  /// member's chain is derived.
  bool album_balance_needed() const noexcept { return album_balance_needed_; }
  /// Each album's mean balance, from the tonal analyses in `state` (albums of 2+ analysed tracks).
  void set_album_balances(const std::vector<track_state>& state);

  /// Derives track t's per-format profiles, adaptation reports and (track mode) loudness
  /// targets, once its tonal analysis exists. Does nothing when no profile is adaptive or it
  /// has been done.
  void adapt(const planned_track& t, track_state& s) const;

 private:
  const run_plan& plan_;
  bool any_adaptive_ = false;
  bool album_balance_needed_ = false;
  std::map<std::filesystem::path, target_curve> curves_;  // target file -> curve
  std::optional<target_curve> run_reference_;             // --reference
  std::map<std::string, target_curve> album_references_;  // album key -> from the manifest
  std::map<std::string, target_curve> album_balances_;    // album key -> mean balance of its tracks
  const target_curve* notes_target_ = nullptr;
  std::string notes_context_ = "notes:";
};

}  // namespace lathe
