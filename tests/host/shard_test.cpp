// Scale-out (issue 6): the split (album-safe, balanced, deterministic), the schedulers'
// environments, merging shard reports, and a sharded run's files against a single run's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "demo_catalog.hpp"
#include "lathe/catalog.hpp"
#include "lathe/error.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "report_merge.hpp"
#include "shard.hpp"
#include "shard_cli.hpp"
#include "support/files.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe {
namespace {

using test::slurp;
using test::temp_dir;

// The bound: every shard within 10% of the mean shard duration.
constexpr double balance_tolerance = 0.10;
constexpr double sample_rate_hz = 44'100.0;

planned_track make_track(std::size_t index, const std::string& rel, double seconds) {
  planned_track t;
  t.index = index;
  t.entry.relative_path = rel;
  t.entry.path = "/catalog/" + rel;
  source_info info;
  info.sample_rate_hz = sample_rate_hz;
  info.frames = static_cast<std::size_t>(seconds * sample_rate_hz);
  t.info = info;
  t.outputs = {fs::path("cd") / (rel + ".wav")};
  t.fingerprints = {"fp-" + rel};
  return t;
}

struct spec_track {
  std::string rel, album;
  double seconds = 0.0;
};

// A plan as make_plan would leave it: albums of two or more tracks keyed by name.
run_plan make_catalog(const std::vector<spec_track>& spec) {
  run_plan plan;
  for (const spec_track& s : spec) {
    plan.tracks.push_back(make_track(plan.tracks.size(), s.rel, s.seconds));
    plan.tracks.back().album_key = s.album;
    if (!s.album.empty()) plan.albums[s.album].push_back(plan.tracks.back().index);
  }
  return plan;
}

// `count` albums of 3-14 tracks, each track min_s + [0, span_s] seconds. Integer draws from
// mt19937, whose sequence the standard fixes (the distributions' are not).
void add_albums(std::vector<spec_track>& spec, std::mt19937& rng, int count, const std::string& name, double min_s,
                unsigned span_s) {
  for (int a = 0; a < count; ++a) {
    const int n = 3 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k)
      spec.push_back({name + "-" + std::to_string(a) + "/" + std::to_string(k) + ".flac",
                      name + " " + std::to_string(a), min_s + static_cast<double>(rng() % (span_s + 1))});
  }
}

// Uneven lengths: 40 albums of 3-14 tracks (1-10 min each), 120 singles from 30 s to 15 min, and
// a few very long live recordings.
std::vector<spec_track> uneven_catalog() {
  std::mt19937 rng(20'261'126);
  std::vector<spec_track> spec;
  add_albums(spec, rng, 40, "album", 60.0, 540);
  for (int s = 0; s < 120; ++s)
    spec.push_back({"singles/" + std::to_string(s) + ".wav", "", 30.0 + static_cast<double>(rng() % 871)});
  for (int s = 0; s < 4; ++s) spec.push_back({"live/" + std::to_string(s) + ".flac", "", 2400.0 + 300.0 * s});
  return spec;
}

// Shard -> the set of relative paths it masters.
std::vector<std::set<std::string>> paths_by_shard(const run_plan& plan, const std::vector<shard_assignment>& split) {
  std::vector<std::set<std::string>> out;
  for (const shard_assignment& s : split) {
    out.emplace_back();
    for (std::size_t i : s.tracks) out.back().insert(plan.tracks[i].entry.relative_path.generic_string());
  }
  return out;
}

TEST(Split, EveryTrackInExactlyOneShardAndAlbumsNeverSplit) {
  const run_plan plan = make_catalog(uneven_catalog());
  for (int n : {1, 2, 3, 4, 8, 16}) {
    const auto split = split_catalog(plan, n);
    ASSERT_EQ(split.size(), static_cast<std::size_t>(n));
    std::vector<int> shard_of(plan.tracks.size(), -1);
    for (int k = 0; k < n; ++k) {
      const auto& tracks = split[static_cast<std::size_t>(k)].tracks;
      EXPECT_TRUE(std::is_sorted(tracks.begin(), tracks.end())) << "shard " << k << " not in catalog order";
      for (std::size_t i : tracks) {
        EXPECT_EQ(shard_of[i], -1) << plan.tracks[i].entry.relative_path << " in two shards";
        shard_of[i] = k;
      }
    }
    EXPECT_EQ(std::count(shard_of.begin(), shard_of.end(), -1), 0) << "a track in no shard";
    std::size_t albums = 0;
    for (const auto& s : split) albums += s.albums;
    EXPECT_EQ(albums, plan.albums.size());
    for (const auto& [name, members] : plan.albums)
      for (std::size_t i : members) EXPECT_EQ(shard_of[i], shard_of[members.front()]) << name << " split, n=" << n;
  }
}

// Albums only: the units are whole albums of 3-14 tracks, 6 minutes to 2 hours each.
std::vector<spec_track> albums_only_catalog() {
  std::mt19937 rng(6);
  std::vector<spec_track> spec;
  add_albums(spec, rng, 80, "lp", 120.0, 480);
  return spec;
}

void expect_balanced(const std::vector<spec_track>& spec, std::initializer_list<int> shard_counts) {
  const run_plan plan = make_catalog(spec);
  double total_s = 0.0;
  for (const planned_track& t : plan.tracks) total_s += t.duration_s();
  for (int n : shard_counts) {
    const auto split = split_catalog(plan, n);
    const double mean_s = total_s / n;
    double worst = 0.0, sum_s = 0.0;
    for (const auto& s : split) {
      double recomputed_s = 0.0;
      for (std::size_t i : s.tracks) recomputed_s += plan.tracks[i].duration_s();
      EXPECT_NEAR(s.audio_s, recomputed_s, 1e-6);
      worst = std::max(worst, std::abs(s.audio_s - mean_s) / mean_s);
      sum_s += s.audio_s;
    }
    EXPECT_NEAR(sum_s, total_s, 1e-6);
    EXPECT_LE(worst, balance_tolerance) << n << " shards";
    std::printf("  %zu tracks, %zu albums, %.2f h in %2d shards: mean %.3f h, worst shard %.2f%% from it\n",
                plan.tracks.size(), plan.albums.size(), total_s / 3600.0, n, mean_s / 3600.0, 100.0 * worst);
  }
}

TEST(Split, BalancedWithinTenPercentOfTheMeanOnUnevenLengths) {
  expect_balanced(uneven_catalog(), {2, 4, 8, 16});
  expect_balanced(albums_only_catalog(), {2, 4, 8, 16});
}

TEST(Split, DeterministicAndIndependentOfCatalogOrder) {
  const std::vector<spec_track> spec = uneven_catalog();
  const run_plan plan = make_catalog(spec);
  const auto first = split_catalog(plan, 8);
  const auto again = split_catalog(plan, 8);
  for (std::size_t k = 0; k < first.size(); ++k) EXPECT_EQ(first[k].tracks, again[k].tracks);
  // Another machine may list the same catalog in another order: the same tracks go together.
  std::vector<spec_track> shuffled = spec;
  std::mt19937 rng(7);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  const run_plan other = make_catalog(shuffled);
  EXPECT_EQ(paths_by_shard(plan, first), paths_by_shard(other, split_catalog(other, 8)));
}

TEST(Split, MoreShardsThanUnitsLeavesSomeEmpty) {
  const run_plan plan =
      make_catalog({{"a/1.wav", "A", 100}, {"a/2.wav", "A", 100}, {"b.wav", "", 50}, {"c.wav", "", 60}});
  const auto split = split_catalog(plan, 5);
  std::size_t tracks = 0, empty = 0;
  for (const auto& s : split) {
    tracks += s.tracks.size();
    empty += s.tracks.empty();
  }
  EXPECT_EQ(tracks, 4u);
  EXPECT_EQ(empty, 2u);
  EXPECT_EQ(split[0].tracks, (std::vector<std::size_t>{0, 1}));  // the album, longest, first
  EXPECT_THROW(split_catalog(plan, 0), config_error);
}

TEST(Split, UnreadableTracksSpreadByCount) {
  run_plan plan = make_catalog({{"a.wav", "", 0}, {"b.wav", "", 0}, {"c.wav", "", 0}, {"d.wav", "", 0}});
  for (planned_track& t : plan.tracks) t.info.reset();
  for (const auto& s : split_catalog(plan, 4)) EXPECT_EQ(s.tracks.size(), 1u);
}

TEST(SelectShard, ReindexesButKeepsTheFullPlansOutputs) {
  const run_plan full = make_catalog(uneven_catalog());
  const int n = 4;
  std::set<std::string> outputs;
  std::size_t tracks = 0, albums = 0;
  const auto split = split_catalog(full, n);
  for (int k = 0; k < n; ++k) {
    const run_plan part = select_shard(full, {k, n});
    const shard_assignment& a = split[static_cast<std::size_t>(k)];
    ASSERT_EQ(part.tracks.size(), a.tracks.size());
    for (std::size_t j = 0; j < part.tracks.size(); ++j) {
      const planned_track& t = part.tracks[j];
      const planned_track& original = full.tracks[a.tracks[j]];
      EXPECT_EQ(t.index, j);
      EXPECT_EQ(t.entry.relative_path, original.entry.relative_path);
      EXPECT_EQ(t.outputs, original.outputs);
      EXPECT_EQ(t.fingerprints, original.fingerprints);
      EXPECT_TRUE(outputs.insert(t.outputs[0].string()).second) << "two shards write " << t.outputs[0];
    }
    for (const auto& [name, members] : part.albums) {
      EXPECT_EQ(members.size(), full.albums.at(name).size());
      for (std::size_t i : members) EXPECT_EQ(part.tracks.at(i).album_key, name);
    }
    tracks += part.tracks.size();
    albums += part.albums.size();
  }
  EXPECT_EQ(tracks, full.tracks.size());
  EXPECT_EQ(albums, full.albums.size());
}

TEST(ParseShard, ZeroBasedKOfN) {
  EXPECT_EQ(parse_shard("0/4"), (shard_spec{0, 4}));
  EXPECT_EQ(parse_shard("3/4"), (shard_spec{3, 4}));
  EXPECT_EQ(parse_shard("0/1"), (shard_spec{0, 1}));
  for (const char* bad : {"4/4", "-1/4", "1/0", "a/b", "1", "1/4x", " 1/4", "", "/4", "1/"})
    EXPECT_THROW(parse_shard(bad), config_error) << bad;
}

env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

std::string config_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const config_error& e) {
    return e.what();
  }
  return "(no config_error)";
}

TEST(ShardEnvironment, SlurmArray) {
  const auto slurm = [](const char* id, const char* lo, const char* hi, const char* count) {
    return env_of({{"SLURM_ARRAY_TASK_ID", id},
                   {"SLURM_ARRAY_TASK_MIN", lo},
                   {"SLURM_ARRAY_TASK_MAX", hi},
                   {"SLURM_ARRAY_TASK_COUNT", count}});
  };
  EXPECT_EQ(shard_from_environment(slurm("2", "0", "3", "4"), 0), (shard_spec{2, 4}));
  EXPECT_EQ(shard_from_environment(slurm("0", "0", "0", "1"), 0), (shard_spec{0, 1}));
  // A rerun of shard 2 alone (--array=2) must say the count, or it would be "all of the catalog".
  EXPECT_NE(config_message([&] { shard_from_environment(slurm("2", "2", "2", "1"), 0); }).find("LATHE_SHARD_COUNT"),
            std::string::npos);
  EXPECT_EQ(shard_from_environment(slurm("2", "2", "2", "1"), 4), (shard_spec{2, 4}));
  auto rerun = slurm("5", "2", "5", "2");
  EXPECT_EQ(
      shard_from_environment(
          [&](const std::string& n) { return n == "LATHE_SHARD_COUNT" ? std::optional<std::string>("8") : rerun(n); },
          0),
      (shard_spec{5, 8}));
  EXPECT_THROW(shard_from_environment(slurm("4", "0", "6", "4"), 0), config_error);  // --array=0-6:2: gaps
  EXPECT_THROW(shard_from_environment(slurm("1", "1", "4", "4"), 0), config_error);  // 1-based
  EXPECT_THROW(shard_from_environment(slurm("2", "0", "3", "4"), 2), config_error);  // index outside --shard-count
  EXPECT_NE(config_message([&] { shard_from_environment(slurm("x", "0", "3", "4"), 0); }).find("SLURM_ARRAY_TASK_ID"),
            std::string::npos);
}

TEST(ShardEnvironment, KubernetesIndexedJob) {
  EXPECT_EQ(shard_from_environment(env_of({{"JOB_COMPLETION_INDEX", "3"}, {"LATHE_SHARD_COUNT", "8"}}), 0),
            (shard_spec{3, 8}));
  EXPECT_EQ(shard_from_environment(env_of({{"JOB_COMPLETION_INDEX", "3"}}), 8), (shard_spec{3, 8}));
  EXPECT_NE(config_message([] {
              shard_from_environment(env_of({{"JOB_COMPLETION_INDEX", "3"}}), 0);
            }).find("LATHE_SHARD_COUNT"),
            std::string::npos);
  EXPECT_THROW(shard_from_environment(env_of({{"JOB_COMPLETION_INDEX", "8"}, {"LATHE_SHARD_COUNT", "8"}}), 0),
               config_error);
  EXPECT_THROW(shard_from_environment(env_of({{"JOB_COMPLETION_INDEX", "1"}, {"LATHE_SHARD_COUNT", "0"}}), 0),
               config_error);
  EXPECT_THROW(shard_from_environment(env_of({{"JOB_COMPLETION_INDEX", "1"}, {"LATHE_SHARD_COUNT", "four"}}), 0),
               config_error);
}

TEST(ShardEnvironment, AwsBatchArray) {
  EXPECT_EQ(shard_from_environment(env_of({{"AWS_BATCH_JOB_ARRAY_INDEX", "5"}, {"AWS_BATCH_JOB_ARRAY_SIZE", "10"}}), 0),
            (shard_spec{5, 10}));
  EXPECT_EQ(shard_from_environment(env_of({{"AWS_BATCH_JOB_ARRAY_INDEX", "5"}, {"LATHE_SHARD_COUNT", "6"}}), 0),
            (shard_spec{5, 6}));
  EXPECT_THROW(shard_from_environment(env_of({{"AWS_BATCH_JOB_ARRAY_INDEX", "5"}}), 0), config_error);
  EXPECT_THROW(
      shard_from_environment(env_of({{"AWS_BATCH_JOB_ARRAY_INDEX", "10"}, {"AWS_BATCH_JOB_ARRAY_SIZE", "10"}}), 0),
      config_error);
}

TEST(ShardEnvironment, NoneAmbiguousAndFlags) {
  EXPECT_EQ(shard_from_environment(env_of({}), 0), std::nullopt);
  // A count without an index: a Job that is not Indexed would master the catalog once per pod.
  EXPECT_THROW(shard_from_environment(env_of({{"LATHE_SHARD_COUNT", "4"}}), 0), config_error);
  EXPECT_THROW(shard_from_environment(env_of({}), 4), config_error);
  EXPECT_THROW(
      shard_from_environment(
          env_of({{"JOB_COMPLETION_INDEX", "1"}, {"AWS_BATCH_JOB_ARRAY_INDEX", "1"}, {"LATHE_SHARD_COUNT", "4"}}), 0),
      config_error);
  const auto k8s = env_of({{"JOB_COMPLETION_INDEX", "3"}, {"LATHE_SHARD_COUNT", "8"}});
  EXPECT_EQ(resolve_shard("1/2", 0, k8s), (shard_spec{1, 2}));  // --shard wins
  EXPECT_EQ(resolve_shard("", 0, k8s), (shard_spec{3, 8}));
  EXPECT_EQ(resolve_shard("", 0, env_of({})), std::nullopt);
  EXPECT_THROW(resolve_shard("1/2", 3, k8s), config_error);
}

// ---- merge ------------------------------------------------------------------------------------

// Writes the reports a sharded run of `full` would leave in `dir` (with each ok track's output
// file), as run_master and finish_shard_report write them; `status` overrides a track's status.
void write_shard_reports(const fs::path& dir, const run_plan& full, int n,
                         const std::map<std::string, std::string>& status = {}) {
  const auto split = split_catalog(full, n);
  for (int k = 0; k < n; ++k) {
    const shard_assignment& a = split[static_cast<std::size_t>(k)];
    json tracks = json::array(), albums = json::object();
    for (std::size_t i : a.tracks) {
      const planned_track& t = full.tracks[i];
      const std::string rel = t.entry.relative_path.generic_string();
      const std::string st = status.count(rel) ? status.at(rel) : "ok";
      json entry = {{"path", rel}, {"status", st}};
      if (st == "failed") {
        entry["error"] = rel + ": truncated";
      } else {
        entry["outputs"] = {{"cd", {{"path", t.outputs[0].generic_string()}, {"pass", true}}}};
        fs::create_directories((dir / t.outputs[0]).parent_path());
        std::ofstream(dir / t.outputs[0]) << rel;
      }
      tracks.push_back(entry);
      if (!t.album_key.empty()) albums[t.album_key] = {{"tracks", full.albums.at(t.album_key).size()}};
    }
    const json report = {{"lathe_version", "test"},
                         {"catalog", "manifest.csv"},
                         {"mode", "album"},
                         {"backend", "CPU"},
                         {"formats", json::array({{{"name", "cd"}}})},
                         {"summary", {{"audio_hours", a.audio_s / 3600.0}, {"wall_s", 1.0 + k}}},
                         {"albums", albums},
                         {"tracks", tracks},
                         {"shard", shard_report_object(full, {k, n}, a)}};
    std::ofstream(dir / shard_report_name({k, n})) << report.dump(1);
  }
}

run_plan small_catalog() {
  return make_catalog({{"a/1.wav", "A", 200},
                       {"a/2.wav", "A", 180},
                       {"b/1.wav", "B", 120},
                       {"b/2.wav", "B", 100},
                       {"c.wav", "", 150},
                       {"d.wav", "", 90},
                       {"e.wav", "", 60}});
}

TEST(Merge, CompleteShardsGiveOneCatalogReportInCatalogOrder) {
  const fs::path dir = temp_dir("merge-ok");
  const run_plan full = small_catalog();
  write_shard_reports(dir, full, 3);
  const merge_result r = merge_shard_reports(dir);
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.shard_count, 3);
  EXPECT_EQ(r.catalog_tracks, 7u);
  EXPECT_EQ(r.merged_tracks, 7u);
  EXPECT_TRUE(r.rerun_shards.empty());
  std::ifstream in(dir / "report.json");
  const json report = json::parse(in);
  ASSERT_EQ(report["tracks"].size(), 7u);
  for (std::size_t i = 0; i < 7; ++i)
    EXPECT_EQ(report["tracks"][i]["path"], full.tracks[i].entry.relative_path.generic_string());
  EXPECT_EQ(report["summary"]["succeeded"], 7);
  EXPECT_EQ(report["summary"]["missing"], 0);
  EXPECT_EQ(report["summary"]["wall_s"], 3.0);  // the shards ran side by side: the longest
  EXPECT_EQ(report["albums"].size(), 2u);
  fs::remove_all(dir);
}

TEST(Merge, NamesMissingAndFailedTracksAndTheShardsToRerun) {
  const fs::path dir = temp_dir("merge-gaps");
  const run_plan full = small_catalog();
  const int n = 3;
  write_shard_reports(dir, full, n, {{"d.wav", "failed"}});
  const auto split = split_catalog(full, n);
  auto shard_of = [&](const std::string& rel) {
    for (int k = 0; k < n; ++k)
      for (std::size_t i : split[static_cast<std::size_t>(k)].tracks)
        if (full.tracks[i].entry.relative_path == rel) return k;
    return -1;
  };
  // Shard of a/1.wav lost its report; c.wav's master vanished from the shared tree.
  const int lost = shard_of("a/1.wav"), vanished = shard_of("c.wav"), failed = shard_of("d.wav");
  ASSERT_NE(lost, vanished);
  fs::remove(dir / shard_report_name({lost, n}));
  fs::remove(dir / full.tracks[4].outputs[0]);

  const merge_result r = merge_shard_reports(dir);
  EXPECT_FALSE(r.complete());
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(r.failed[0].path, "d.wav");
  EXPECT_EQ(r.failed[0].shard, failed);
  EXPECT_NE(r.failed[0].reason.find("truncated"), std::string::npos);
  bool lost_named = false, vanished_named = false;
  for (const merge_problem& p : r.missing) {
    lost_named |= p.shard == lost && p.path.empty();
    vanished_named |= p.shard == vanished && p.path == "c.wav";
  }
  EXPECT_TRUE(lost_named);
  EXPECT_TRUE(vanished_named);
  std::set<int> expected_rerun = {lost, vanished, failed};
  EXPECT_EQ(r.rerun_shards, std::vector<int>(expected_rerun.begin(), expected_rerun.end()));
  const std::size_t lost_tracks = split[static_cast<std::size_t>(lost)].tracks.size();
  EXPECT_EQ(r.report["summary"]["missing"].get<std::size_t>(), lost_tracks + 1);  // + c.wav
  EXPECT_EQ(r.report["summary"]["failed"], 1);
  fs::remove_all(dir);
}

TEST(Merge, RefusesMixedSplitsOverlapsAndEmptyFolders) {
  const run_plan full = small_catalog();
  const fs::path empty = temp_dir("merge-empty");
  EXPECT_THROW(merge_shard_reports(empty), config_error);

  const fs::path mixed = temp_dir("merge-mixed");
  write_shard_reports(mixed, full, 3);
  write_shard_reports(mixed, full, 2);
  EXPECT_NE(config_message([&] { merge_shard_reports(mixed); }).find("different splits"), std::string::npos);

  // The catalog changed between shard runs: two shards claim the same track.
  const fs::path overlap = temp_dir("merge-overlap");
  write_shard_reports(overlap, full, 2);
  std::ifstream in(overlap / shard_report_name({0, 2}));
  json r0 = json::parse(in);
  in.close();
  std::ifstream in1(overlap / shard_report_name({1, 2}));
  json r1 = json::parse(in1);
  in1.close();
  r1["shard"]["tracks"].push_back(r0["shard"]["tracks"][0]);
  r1["tracks"].push_back(r0["tracks"][0]);
  std::ofstream(overlap / shard_report_name({1, 2})) << r1.dump();
  EXPECT_NE(config_message([&] { merge_shard_reports(overlap); }).find("changed between shard runs"),
            std::string::npos);
  for (const fs::path& d : {empty, mixed, overlap}) fs::remove_all(d);
}

// ---- a sharded run against a single run, with audio ------------------------------------------

// Every master, relative to the output folder (reports and resume sidecars left out).
std::map<std::string, std::string> masters_in(const fs::path& out) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    const std::string rel = fs::relative(e.path(), out).generic_string();
    // The masters (mix notes are per shard for singles; reports are merged separately).
    if (e.is_regular_file() && rel.rfind(".lathe", 0) != 0 &&
        (e.path().extension() == ".flac" || e.path().extension() == ".wav"))
      files[rel] = slurp(e.path());
  }
  return files;
}

TEST(ShardedRun, ThreeShardsWriteTheSingleRunsFilesAndMergeComplete) {
  const fs::path dir = temp_dir("run");
  write_demo_catalog(dir / "catalog", 2.0);
  const std::vector<delivery_profile> formats = {
      load_profile(fs::path(LATHE_SOURCE_DIR) / "configs" / "streaming.toml")};
  const run_plan full = make_plan(load_catalog(dir / "catalog" / "manifest.csv"), formats, album_mode::album);
  master_options opt;
  opt.jobs = 1;
  opt.log = log_format::json;
  opt.out_dir = dir / "single";
  ASSERT_EQ(run_master(full, opt).failed, 0u);

  opt.out_dir = dir / "sharded";
  const int n = 3;
  std::size_t mastered = 0;
  for (int k = 0; k < n; ++k) {
    // As `lathe master --shard k/n` does.
    const master_shard shard = shard_for_master(full, std::to_string(k) + "/" + std::to_string(n), 0, env_of({}));
    ASSERT_EQ(shard.report_name, shard_report_name({k, n}));
    opt.report_name = shard.report_name;
    const master_summary s = run_master(shard.plan, opt);
    finish_shard_report(opt.out_dir, shard);
    EXPECT_EQ(s.failed, 0u);
    mastered += s.succeeded;
  }
  EXPECT_EQ(mastered, full.tracks.size());
  const auto single = masters_in(dir / "single"), sharded = masters_in(dir / "sharded");
  EXPECT_EQ(single.size(), full.tracks.size());
  EXPECT_TRUE(single == sharded) << "sharded masters differ from the single run's";
  EXPECT_TRUE(merge_shard_reports(dir / "sharded").complete());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lathe
