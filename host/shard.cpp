#include "shard.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <tuple>

#include <fmt/format.h>

#include "lathe/error.hpp"

namespace lathe {

namespace {

// A whole decimal number and nothing else; nullopt otherwise ("3 ", "3.0", "-" and "" are not).
std::optional<long long> parse_integer(const std::string& text) {
  long long v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return v;
}

long long env_integer(const std::string& name, const std::string& value) {
  const auto v = parse_integer(value);
  if (!v) throw config_error(fmt::format("{}='{}' is not an integer (lathe reads its shard from it)", name, value));
  return *v;
}

shard_spec checked(long long index, long long count, const std::string& source) {
  if (count < 1 || count > std::numeric_limits<int>::max())
    throw config_error(fmt::format("{}: the shard count must be at least 1, got {}", source, count));
  if (index < 0 || index >= count)
    throw config_error(
        fmt::format("{}: shard index {} is outside 0..{} (indices count from 0)", source, index, count - 1));
  return {static_cast<int>(index), static_cast<int>(count)};
}

// The count for schedulers that do not export it: --shard-count, else the first variable set.
std::optional<long long> passed_count(const env_lookup& env, int count_override,
                                      std::initializer_list<const char*> names) {
  if (count_override > 0) return count_override;
  for (const char* name : names)
    if (const auto v = env(name)) return env_integer(name, *v);
  return std::nullopt;
}

// Schedulers whose array size is not in the environment: the count is passed in.
shard_spec from_passed_count(const env_lookup& env, const char* index_name, const std::string& index_text,
                             int count_override, std::initializer_list<const char*> count_names, const char* how) {
  const long long index = env_integer(index_name, index_text);
  const auto count = passed_count(env, count_override, count_names);
  if (!count) throw config_error(fmt::format("{}={} but no shard count: {}", index_name, index, how));
  return checked(index, *count, fmt::format("{}={}", index_name, index));
}

// The array index is the shard index. The count is the array's size only when the array is
// 0..N-1 exactly: a rerun of some shards (sbatch --array=2,5) must say the count of the whole
// split, or shard 2 of a 1-task array would be "all of the catalog".
shard_spec from_slurm(const env_lookup& env, const std::string& id_text, int count_override) {
  const long long id = env_integer("SLURM_ARRAY_TASK_ID", id_text);
  const std::string source = fmt::format("SLURM_ARRAY_TASK_ID={}", id);
  if (const auto passed = passed_count(env, count_override, {"LATHE_SHARD_COUNT"})) return checked(id, *passed, source);
  const auto min_text = env("SLURM_ARRAY_TASK_MIN"), max_text = env("SLURM_ARRAY_TASK_MAX");
  const auto count_text = env("SLURM_ARRAY_TASK_COUNT");
  if (!min_text || !max_text)
    throw config_error(
        "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN/MAX are not; pass the shard count (LATHE_SHARD_COUNT "
        "or --shard-count) or --shard K/N");
  const long long lo = env_integer("SLURM_ARRAY_TASK_MIN", *min_text);
  const long long hi = env_integer("SLURM_ARRAY_TASK_MAX", *max_text);
  const long long tasks = count_text ? env_integer("SLURM_ARRAY_TASK_COUNT", *count_text) : hi - lo + 1;
  if (lo != 0 || tasks != hi + 1)
    throw config_error(fmt::format(
        "the Slurm array ({} tasks from {} to {}) is not 0..N-1, so it does not say how many shards there are: "
        "submit --array=0-<N-1> (shard indices count from 0), or, to rerun some shards of N, pass the count: "
        "sbatch --array=2,5 --export=ALL,LATHE_SHARD_COUNT=N ...",
        tasks, lo, hi));
  return checked(id, tasks, source);
}

}  // namespace

shard_spec parse_shard(const std::string& text) {
  const std::size_t slash = text.find('/');
  const auto k = slash == std::string::npos ? std::nullopt : parse_integer(text.substr(0, slash));
  const auto n = slash == std::string::npos ? std::nullopt : parse_integer(text.substr(slash + 1));
  if (!k || !n)
    throw config_error(fmt::format("--shard '{}': expected K/N, e.g. 0/4 for the first of four shards", text));
  if (*n < 1) throw config_error(fmt::format("--shard '{}': N must be at least 1", text));
  if (*k < 0 || *k >= *n)
    throw config_error(fmt::format(
        "--shard '{}': K counts from 0, like Slurm and Kubernetes indices, so it must be 0..{}", text, *n - 1));
  return checked(*k, *n, "--shard");
}

env_lookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
}

std::optional<shard_spec> shard_from_environment(const env_lookup& env, int count_override) {
  const auto slurm = env("SLURM_ARRAY_TASK_ID");
  const auto k8s = env("JOB_COMPLETION_INDEX");
  const auto aws = env("AWS_BATCH_JOB_ARRAY_INDEX");
  if (int(slurm.has_value()) + int(k8s.has_value()) + int(aws.has_value()) > 1)
    throw config_error(
        "more than one scheduler's array index is set (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, "
        "AWS_BATCH_JOB_ARRAY_INDEX); pass --shard K/N to say which shard this is");
  if (slurm) return from_slurm(env, *slurm, count_override);
  if (k8s)
    return from_passed_count(env, "JOB_COMPLETION_INDEX", *k8s, count_override, {"LATHE_SHARD_COUNT"},
                             "Kubernetes does not export the Job's completions, so set the env LATHE_SHARD_COUNT to "
                             "them in the manifest, or pass --shard-count");
  if (aws)
    return from_passed_count(env, "AWS_BATCH_JOB_ARRAY_INDEX", *aws, count_override,
                             {"AWS_BATCH_JOB_ARRAY_SIZE", "LATHE_SHARD_COUNT"},
                             "AWS Batch does not export the array size, so set AWS_BATCH_JOB_ARRAY_SIZE or "
                             "LATHE_SHARD_COUNT in the job definition, or pass --shard-count");
  // A count without an index is a job that was meant to be sharded but is not (a Kubernetes Job
  // without completionMode: Indexed): every pod would master the whole catalog.
  if (count_override > 0 || env("LATHE_SHARD_COUNT"))
    throw config_error(
        "a shard count is given but no shard index: none of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX (is the "
        "Kubernetes Job's completionMode Indexed?) or AWS_BATCH_JOB_ARRAY_INDEX is set; pass --shard K/N");
  return std::nullopt;
}

std::optional<shard_spec> resolve_shard(const std::string& shard_flag, int count_flag, const env_lookup& env) {
  if (shard_flag.empty()) return shard_from_environment(env, count_flag);
  const shard_spec s = parse_shard(shard_flag);
  if (count_flag > 0 && count_flag != s.count)
    throw config_error(fmt::format("--shard {} and --shard-count {} disagree; give one", shard_flag, count_flag));
  return s;
}

std::vector<shard_assignment> split_catalog(const run_plan& plan, int n) {
  if (n < 1) throw config_error(fmt::format("the shard count must be at least 1, got {}", n));
  struct unit {
    std::vector<std::size_t> tracks;
    double audio_s = 0.0;
    bool album = false;
  };
  std::vector<unit> units;
  std::vector<char> in_album(plan.tracks.size(), 0);
  for (const auto& [key, members] : plan.albums) {
    unit u{members, 0.0, true};
    std::sort(u.tracks.begin(), u.tracks.end());
    for (std::size_t i : u.tracks) in_album[i] = 1;
    units.push_back(std::move(u));
  }
  for (const planned_track& t : plan.tracks)
    if (!in_album[t.index]) units.push_back({{t.index}, 0.0, false});
  for (unit& u : units)
    for (std::size_t i : u.tracks) u.audio_s += plan.tracks[i].duration_s();

  // Longest first; the key makes the order a function of the catalog alone.
  auto key = [&](const unit& u) {
    return std::make_tuple(-u.audio_s, plan.tracks[u.tracks.front()].entry.relative_path.generic_string(),
                           u.tracks.front());
  };
  std::sort(units.begin(), units.end(), [&](const unit& a, const unit& b) { return key(a) < key(b); });

  std::vector<shard_assignment> shards(static_cast<std::size_t>(n));
  for (const unit& u : units) {
    // Least audio; then fewest tracks, so zero-length (unreadable) tracks spread out too.
    const auto target = std::min_element(shards.begin(), shards.end(), [](const auto& a, const auto& b) {
      return std::make_pair(a.audio_s, a.tracks.size()) < std::make_pair(b.audio_s, b.tracks.size());
    });
    target->tracks.insert(target->tracks.end(), u.tracks.begin(), u.tracks.end());
    target->audio_s += u.audio_s;
    target->albums += u.album ? 1 : 0;
  }
  for (shard_assignment& s : shards) std::sort(s.tracks.begin(), s.tracks.end());
  return shards;
}

run_plan select_shard(const run_plan& full, shard_spec shard) {
  const std::vector<shard_assignment> split = split_catalog(full, shard.count);
  const shard_assignment& mine = split.at(static_cast<std::size_t>(shard.index));
  run_plan out;
  out.profiles = full.profiles;
  out.mode = full.mode;
  constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> new_index(full.tracks.size(), none);
  for (std::size_t i : mine.tracks) {
    new_index[i] = out.tracks.size();
    out.tracks.push_back(full.tracks[i]);
    out.tracks.back().index = new_index[i];
  }
  for (const auto& [key, members] : full.albums) {
    if (new_index[members.front()] == none) continue;
    std::vector<std::size_t> mapped;
    for (std::size_t i : members) {
      LATHE_EXPECTS(new_index[i] != none, "an album is split across shards: " + key);
      mapped.push_back(new_index[i]);
    }
    out.albums.emplace(key, std::move(mapped));
  }
  return out;
}

std::string shard_report_name(shard_spec shard) {
  return fmt::format("report-shard-{}-of-{}.json", shard.index, shard.count);
}

nlohmann::json shard_report_object(const run_plan& full, shard_spec shard, const shard_assignment& assignment) {
  nlohmann::json tracks = nlohmann::json::array();
  for (std::size_t i : assignment.tracks)
    tracks.push_back({{"catalog_index", i}, {"path", full.tracks[i].entry.relative_path.generic_string()}});
  return {{"index", shard.index},        {"count", shard.count},          {"catalog_tracks", full.tracks.size()},
          {"albums", assignment.albums}, {"audio_s", assignment.audio_s}, {"tracks", std::move(tracks)}};
}

}  // namespace lathe
