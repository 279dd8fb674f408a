#pragma once
// Scale-out on an existing scheduler: one catalog split into N shards that independent machines
// (Slurm array tasks, Kubernetes Indexed Job pods, AWS Batch array children) master into one
// shared output tree. Every machine plans the whole catalog and keeps its own shard, so the
// split must be a pure function of the catalog: same files, same split, on every machine.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan.hpp"

namespace lathe {

/// Shard `index` of `count`, 0-based like the schedulers' array indices.
struct shard_spec {
  int index = 0;
  int count = 1;
  bool operator==(const shard_spec&) const = default;
};

/// Parses "K/N" with 0 <= K < N (K counts from 0, as SLURM_ARRAY_TASK_ID and
/// JOB_COMPLETION_INDEX do). Throws config_error naming the text and what is wrong.
shard_spec parse_shard(const std::string& text);

/// An environment variable's value, or nullopt when unset. Tests pass a map instead of setenv.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;
/// This process's environment.
env_lookup process_environment();

/// The shard a scheduler gave this process, or nullopt when none did (a plain run: the whole
/// catalog). Reads, in this order of precedence, exactly one of:
/// - Slurm job arrays: SLURM_ARRAY_TASK_ID is the index; the count is `count_override`
///   (--shard-count) or LATHE_SHARD_COUNT when given (a rerun of some shards: --array=2,5),
///   else the array's size, which must then be exactly 0..N-1 (SLURM_ARRAY_TASK_MIN = 0,
///   SLURM_ARRAY_TASK_COUNT = SLURM_ARRAY_TASK_MAX + 1; a step, gaps or 1-based indices are refused);
/// - Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX, with the count from `count_override`
///   (--shard-count) or LATHE_SHARD_COUNT (the Job's `completions`; Kubernetes does not export it);
/// - AWS Batch array jobs: AWS_BATCH_JOB_ARRAY_INDEX, with the count from `count_override`,
///   AWS_BATCH_JOB_ARRAY_SIZE or LATHE_SHARD_COUNT.
/// `count_override` 0 means none. Throws config_error for values that are not integers, an
/// index outside the count, a Slurm array that is not 0..N-1 without a count, several
/// schedulers' indices at once, or a count without any index.
std::optional<shard_spec> shard_from_environment(const env_lookup& env, int count_override);

/// --shard K/N when given (the environment is then ignored), else shard_from_environment.
std::optional<shard_spec> resolve_shard(const std::string& shard_flag, int count_flag, const env_lookup& env);

/// One shard of a split.
struct shard_assignment {
  std::vector<std::size_t> tracks;  ///< indices into the full plan, ascending (catalog order)
  std::size_t albums = 0;           ///< albums mastered together in this shard
  double audio_s = 0.0;             ///< total source duration
};

/// Splits the plan into `n` shards (n >= 1). Album-safe: an album's tracks (run_plan::albums)
/// always land in one shard, since album decisions need every track of the album. Balanced by
/// audio duration: greedy longest-processing-time over units (an album or a lone track), each
/// unit to the shard with the least audio so far. Deterministic: units of equal duration are
/// ordered by their first track's relative path, then catalog index; equal shards by track
/// count, then index. Tracks whose header could not be read count 0 s (they fail in their shard).
std::vector<shard_assignment> split_catalog(const run_plan& plan, int n);

/// The plan one shard masters: its tracks re-indexed 0..m-1 in catalog order and its albums
/// re-keyed to them. Output paths, fingerprints and dither seeds are the full plan's, so the
/// files equal a single-machine run's and shards never write the same path.
run_plan select_shard(const run_plan& full, shard_spec shard);

/// "report-shard-K-of-N.json": each shard's report beside the others in the shared output tree.
std::string shard_report_name(shard_spec shard);

/// The "shard" object a shard's report carries so that `lathe report merge` knows what was
/// expected: index, count, the catalog's track count and this shard's tracks (catalog index
/// and relative path).
nlohmann::json shard_report_object(const run_plan& full, shard_spec shard, const shard_assignment& assignment);

}  // namespace lathe
