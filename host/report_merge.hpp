#pragma once
// `lathe report merge DIR`: the shard reports of one sharded run combined into the catalog's
// report, with what is missing or failed and which shards to rerun.
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe {

/// A track (or a whole shard, when `path` is empty) that needs its shard rerun.
struct merge_problem {
  int shard = 0;
  std::string path;    ///< the track's path relative to the catalog; "" for a shard without a report
  std::string reason;  ///< why: the track's error, "no report", "not in the shard's report", ...
};

struct merge_result {
  int shard_count = 0;
  std::size_t catalog_tracks = 0;
  std::size_t merged_tracks = 0;  ///< tracks with an entry in some shard report
  std::vector<merge_problem> missing;
  std::vector<merge_problem> failed;
  std::vector<int> rerun_shards;  ///< ascending, each once
  nlohmann::json report;          ///< what was written to DIR/report.json
  bool complete() const noexcept { return missing.empty() && failed.empty(); }
};

/// Reads every `report-shard-K-of-N.json` in `dir` and writes `dir/report.json`: one catalog
/// report with the summary recomputed, the tracks in catalog order, the albums of every shard,
/// and "missing", "failed" and "rerun_shards". A track is missing when its shard has no report,
/// the report lacks it, or an output it lists is not in `dir`. Throws config_error when `dir`
/// holds no shard report, reports of different splits or versions, or splits that disagree
/// (the catalog changed between shard runs).
merge_result merge_shard_reports(const std::filesystem::path& dir);

}  // namespace lathe
