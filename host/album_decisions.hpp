#pragma once
// Album decisions (AES TD1008 in spirit): one gain per album and format, so the album's
// loudest track lands on the target and the others keep their loudness relative to it.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan.hpp"
#include "track_state.hpp"

namespace lathe {

/// Sets targets_lufs of every track of `albums` in `state` from the pre-chain loudness and true peak
/// the album pass measured (linear normalization takes the one gain every track allows), and
/// returns their part of the report's "albums" object (per album: per format the loudest track, the album
/// gain and each track's target). Each decision is stored under out_dir/.lathe/state/albums
/// with its members' fingerprints, so an album whose masters are all complete (no member
/// needs the album pass) reports the decision they were made with.
nlohmann::json decide_albums(const run_plan& plan, std::vector<track_state>& state,
                             const std::filesystem::path& out_dir, const std::vector<std::string>& albums);

}  // namespace lathe
