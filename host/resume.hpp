#pragma once
// Where a run starts from: what an earlier run (finished, killed or a shard beside this one)
// left complete in the output folder, and what it left behind half-done.
#include <filesystem>
#include <vector>

#include "adaptive_targets.hpp"
#include "plan.hpp"
#include "track_state.hpp"

namespace lathe {

/// Removes what a killed run left: the spill folder (its files were anonymous, so only the
/// folder) and the temporaries (".NAME.tmp-PID-N") of writers that are gone. Those of a live
/// process (another run or shard) are left alone.
void clear_interrupted_work(const std::filesystem::path& out_dir);

/// Each track's state at the start of a run. An output is complete when its sidecar carries
/// its fingerprint and the file its byte count: then its report entry, master tonal balance and
/// loudness blocks come from the sidecar. needs_render marks tracks with an output to do,
/// needs_album_pass every readable track of an album with one; `audio_to_do_s` sums the
/// durations of the former.
std::vector<track_state> initial_state(const run_plan& plan, const std::filesystem::path& out_dir,
                                       double& audio_to_do_s);

/// Tracks with nothing to render get their input analysis, tonal balance and mix notes back
/// from their records (record key: adaptive_targets::record_key), so the report is whole.
void restore_track_records(const run_plan& plan, std::vector<track_state>& state, const std::filesystem::path& out_dir,
                           const adaptive_targets& targets);

}  // namespace lathe
