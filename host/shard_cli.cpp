#include "shard_cli.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "lathe/catalog.hpp"
#include "lathe/error.hpp"
#include "report.hpp"
#include "report_merge.hpp"

namespace lathe {

namespace fs = std::filesystem;
using nlohmann::json;

void add_shard_options(CLI::App& master, std::string& shard, int& shard_count) {
  master.add_option("--shard", shard,
                    "Master only shard K of N (K counts from 0, like Slurm and Kubernetes indices: 0/4 .. 3/4); "
                    "albums never split, shards balanced by audio duration, outputs as in a single run, report as "
                    "report-shard-K-of-N.json. Without it: SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or "
                    "AWS_BATCH_JOB_ARRAY_INDEX when set");
  master
      .add_option("--shard-count", shard_count,
                  "N for schedulers that do not export it (Kubernetes Indexed Jobs, AWS Batch); or set "
                  "LATHE_SHARD_COUNT")
      ->check(CLI::PositiveNumber);
}

master_shard shard_for_master(run_plan full, const std::string& shard_flag, int count_flag, const env_lookup& env) {
  master_shard s;
  s.spec = resolve_shard(shard_flag, count_flag, env);
  if (!s.spec) {
    s.plan = std::move(full);
    return s;
  }
  if (!shard_flag.empty())
    s.source = "--shard";
  else
    for (const char* name : {"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"})
      if (env(name)) s.source = name;
  const shard_assignment mine = split_catalog(full, s.spec->count).at(static_cast<std::size_t>(s.spec->index));
  s.report_name = shard_report_name(*s.spec);
  s.report_section = shard_report_object(full, *s.spec, mine);
  s.plan = select_shard(full, *s.spec);
  return s;
}

void finish_shard_report(const fs::path& out_dir, const master_shard& shard) {
  if (!shard.spec) return;
  const fs::path file = out_dir / shard.report_name;
  json report;
  {
    std::ifstream in(file);
    report = json::parse(in);
  }
  report["shard"] = shard.report_section;
  write_text_atomic(file, report.dump(2));
}

void add_shard_commands(CLI::App& app, shard_commands& c) {
  plan_args& a = c.plan;
  c.plan_cmd = app.add_subcommand(
      "plan", "Print how a catalog splits into N shards (tracks, albums, hours each) for a job array");
  c.plan_cmd->add_option("catalog", a.catalog, "Folder or CSV manifest, as for `lathe master`")->required();
  c.plan_cmd->add_option("--shards,-n", a.shards, "Number of shards (array tasks)")
      ->required()
      ->check(CLI::PositiveNumber);
  c.plan_cmd->add_flag("--json", a.json, "Print JSON (every shard's tracks and their output paths)");
  c.plan_cmd->add_flag("--track-mode", a.track_mode, "Plan as `lathe master --track-mode` would (no albums)");
  c.plan_cmd->add_option("--formats,-f", a.formats, "Formats whose output paths the JSON lists (default: every one)");
  c.plan_cmd->add_option("--profile,-p", a.profiles, "Extra profile TOML file (repeatable)");
  c.plan_cmd->add_option("--config-dir", a.config_dir, "Folder of shipped profiles");

  CLI::App* report = app.add_subcommand("report", "Work with run reports");
  report->require_subcommand(1);
  c.merge_cmd = report->add_subcommand(
      "merge",
      "Combine DIR's report-shard-K-of-N.json files into DIR/report.json; list missing or failed tracks and the "
      "shards to rerun (exit status 2 when any)");
  c.merge_cmd->add_option("dir", c.merge_dir, "The shared output folder the shards wrote into")->required();
}

int run_plan_command(const plan_args& a, std::vector<delivery_profile> formats) {
  if (!fs::exists(a.catalog)) throw config_error(fmt::format("{}: no such file or folder", a.catalog));
  const run_plan plan =
      make_plan(load_catalog(a.catalog), std::move(formats), a.track_mode ? album_mode::track : album_mode::album);
  const std::vector<shard_assignment> split = split_catalog(plan, a.shards);
  double total_s = 0.0;
  for (const shard_assignment& s : split) total_s += s.audio_s;
  const double mean_s = total_s / a.shards;
  auto vs_mean = [&](double s) { return mean_s > 0 ? 100.0 * (s - mean_s) / mean_s : 0.0; };
  std::size_t unreadable = 0;
  for (const planned_track& t : plan.tracks) unreadable += t.info ? 0 : 1;

  if (a.json) {
    json shards = json::array();
    for (std::size_t k = 0; k < split.size(); ++k) {
      json tracks = json::array();
      for (std::size_t i : split[k].tracks) {
        const planned_track& t = plan.tracks[i];
        json outs = json::array();
        for (const fs::path& o : t.outputs) outs.push_back(o.generic_string());
        tracks.push_back({{"catalog_index", i},
                          {"path", t.entry.relative_path.generic_string()},
                          {"album", t.album_key},
                          {"duration_s", rounded(t.duration_s(), 3)},
                          {"outputs", outs}});
      }
      shards.push_back({{"index", k},
                        {"shard", fmt::format("{}/{}", k, split.size())},
                        {"tracks", split[k].tracks.size()},
                        {"albums", split[k].albums},
                        {"hours", rounded(split[k].audio_s / 3600.0, 4)},
                        {"vs_mean_percent", rounded(vs_mean(split[k].audio_s), 2)},
                        {"report", shard_report_name({static_cast<int>(k), a.shards})},
                        {"track_list", tracks}});
    }
    const json j = {{"catalog", a.catalog},
                    {"mode", plan.mode == album_mode::album ? "album" : "track"},
                    {"tracks", plan.tracks.size()},
                    {"albums", plan.albums.size()},
                    {"unreadable_tracks", unreadable},
                    {"hours", rounded(total_s / 3600.0, 4)},
                    {"shards", shards}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%5s %7s %7s %9s %8s\n", "shard", "tracks", "albums", "hours", "vs mean");
  double worst = 0.0;
  for (std::size_t k = 0; k < split.size(); ++k) {
    worst = std::max(worst, std::abs(vs_mean(split[k].audio_s)));
    std::printf("%5zu %7zu %7zu %9.3f %+7.1f%%\n", k, split[k].tracks.size(), split[k].albums,
                split[k].audio_s / 3600.0, vs_mean(split[k].audio_s));
  }
  std::printf("%zu tracks, %zu albums, %.3f h in %d shards: mean %.3f h, furthest from it %.1f%%\n", plan.tracks.size(),
              plan.albums.size(), total_s / 3600.0, a.shards, mean_s / 3600.0, worst);
  if (unreadable > 0)
    std::printf("%zu tracks have unreadable headers (counted 0 h; they fail in their shard)\n", unreadable);
  return 0;
}

int run_report_merge_command(const std::string& dir) {
  const merge_result r = merge_shard_reports(dir);
  const json& s = r.report["summary"];
  std::printf("%d shards: %zu of %zu tracks reported; %zu mastered, %zu resumed, %zu failed, %zu missing\n",
              r.shard_count, r.merged_tracks, r.catalog_tracks, s["succeeded"].get<std::size_t>(),
              s["resumed"].get<std::size_t>(), s["failed"].get<std::size_t>(), s["missing"].get<std::size_t>());
  for (const merge_problem& p : r.missing)
    std::printf("missing: shard %d: %s%s%s\n", p.shard, p.path.c_str(), p.path.empty() ? "" : ": ", p.reason.c_str());
  for (const merge_problem& p : r.failed)
    std::printf("failed:  shard %d: %s: %s\n", p.shard, p.path.c_str(), p.reason.c_str());
  if (!r.rerun_shards.empty()) {
    std::string list;
    for (int k : r.rerun_shards) list += fmt::format("{}{}", list.empty() ? "" : ",", k);
    std::printf(
        "rerun shards %s of %d, then merge again (finished outputs are skipped):\n"
        "  Slurm: sbatch --array=%s --export=ALL,LATHE_SHARD_COUNT=%d deploy/slurm/lathe-array.sbatch CATALOG %s ...\n"
        "  or on any machine: lathe master CATALOG --out %s --shard K/%d ... for each K\n",
        list.c_str(), r.shard_count, list.c_str(), r.shard_count, dir.c_str(), dir.c_str(), r.shard_count);
  }
  std::printf("report: %s\n", (fs::path(dir) / "report.json").string().c_str());
  return r.complete() ? 0 : 2;
}

}  // namespace lathe
