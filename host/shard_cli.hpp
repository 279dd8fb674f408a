#pragma once
// The command line of scale-out: `lathe master --shard K/N`, `lathe plan CATALOG --shards N` and
// `lathe report merge DIR` (README, "Scale out").
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/profile.hpp"
#include "plan.hpp"
#include "shard.hpp"

namespace CLI {
class App;
}

namespace lathe {

/// What one `lathe master` process masters.
struct master_shard {
  run_plan plan;                            ///< its tracks (the whole plan when not sharded)
  std::optional<shard_spec> spec;           ///< nullopt: the whole catalog
  std::string report_name = "report.json";  ///< report-shard-K-of-N.json when sharded
  nlohmann::json report_section;            ///< the report's "shard" object; null when not sharded
  std::string source;                       ///< where the shard came from: "--shard", "SLURM_ARRAY_TASK_ID", ...
};

/// --shard and --shard-count on `lathe master`.
void add_shard_options(CLI::App& master, std::string& shard, int& shard_count);

/// This process's part of the planned catalog: --shard when given, else the scheduler's
/// environment (shard_from_environment), else all of it. Throws config_error.
master_shard shard_for_master(run_plan full, const std::string& shard_flag, int count_flag, const env_lookup& env);

/// Adds the "shard" section to the report that run_master wrote into out_dir, so that
/// `lathe report merge` knows which tracks the shard was to master. Nothing when not sharded.
void finish_shard_report(const std::filesystem::path& out_dir, const master_shard& shard);

struct plan_args {
  std::string catalog, formats, config_dir;
  std::vector<std::string> profiles;
  int shards = 1;
  bool json = false;
  bool track_mode = false;
};

/// The `plan` and `report merge` subcommands; their arguments live here while CLI11 parses.
struct shard_commands {
  plan_args plan;
  std::string merge_dir;
  CLI::App* plan_cmd = nullptr;
  CLI::App* merge_cmd = nullptr;
};
void add_shard_commands(CLI::App& app, shard_commands& commands);

/// Prints the split (tracks, albums, hours per shard) as a table or JSON. Exit status 0.
int run_plan_command(const plan_args& a, std::vector<delivery_profile> formats);

/// Merges DIR's shard reports into DIR/report.json and prints what is missing or failed and
/// which shards to rerun. Exit status 0 when every track was mastered, 2 otherwise.
int run_report_merge_command(const std::string& dir);

}  // namespace lathe
