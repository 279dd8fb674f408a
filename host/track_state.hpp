#pragma once
// What a catalog run knows about each track between its passes (album analysis, album
// decisions, render) and puts into the report.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/mix_notes.hpp"
#include "lathe/profile.hpp"
#include "lathe/tonal.hpp"

namespace lathe {

/// What survives between the passes and ends up in the report, per track.
struct track_state {
  std::optional<track_analysis> input;
  std::optional<tonal_analysis> tonal;           // the input's tonal balance
  std::vector<delivery_profile> profiles;        // per format: the profile adapted to this track
  std::vector<nlohmann::json> adaptive_reports;  // per format: what the adaptation derived (null: none)
  bool adapted = false;
  std::vector<mix_note> mix_notes;
  bool mix_checked = false;
  std::vector<std::optional<tonal_analysis>> master_tonal;  // per format, masters rendered in this run
  bool input_is_scan_only = false;                          // GPU rendering: loudness and true peak still to come
  std::map<std::string, double> pre_loudness_lufs;          // pre-chain key -> loudness at the source rate
  std::map<std::string, double> pre_true_peak_dbtp;
  std::map<std::string, nlohmann::json> chain_reports;  // pre-chain key -> what each stage did
  std::vector<double> targets_lufs;                     // per format
  std::vector<nlohmann::json> outputs;                  // per format: report entry
  std::vector<bool> resumed;                            // per format: output already complete
  std::vector<loudness_blocks> output_blocks;           // per format, album tracks rendered in this run
  std::string error;                                    // the track failed
  bool needs_render = false;
  bool needs_album_pass = false;
};

/// Seconds on the monotonic clock.
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace lathe
