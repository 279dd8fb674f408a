#include "report_merge.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "lathe/error.hpp"
#include "report.hpp"
#include "shard.hpp"

namespace lathe {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The fields that must agree for reports to be parts of one run.
json run_identity(const json& r) {
  json formats = json::array();
  for (const json& f : r.value("formats", json::array())) formats.push_back(f.value("name", ""));
  return {{"lathe_version", r.value("lathe_version", "")}, {"mode", r.value("mode", "")}, {"formats", formats}};
}

// A member or an empty object: a reference that outlives a loop over its items(), which a
// temporary from json::value() would not.
const json& object_member(const json& j, const char* key) {
  static const json empty = json::object();
  return j.contains(key) ? j.at(key) : empty;
}

// Every output a track's entry lists, relative to the output tree.
std::vector<std::string> output_paths(const json& entry) {
  std::vector<std::string> paths;
  for (const auto& [format, o] : object_member(entry, "outputs").items())
    if (o.contains("path")) paths.push_back(o["path"].get<std::string>());
  return paths;
}

}  // namespace

merge_result merge_shard_reports(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw config_error(fmt::format("{}: no such folder", dir.string()));
  // count -> index -> file
  std::map<int, std::map<int, fs::path>> found;
  const std::regex name_re(R"(report-shard-(\d+)-of-(\d+)\.json)");
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && std::regex_match(name, m, name_re))
      found[std::stoi(m[2].str())][std::stoi(m[1].str())] = e.path();
  }
  if (found.empty())
    throw config_error(fmt::format(
        "{}: no report-shard-K-of-N.json here; run `lathe master CATALOG --out {} --shard K/N` (or a job array) first",
        dir.string(), dir.string()));
  if (found.size() > 1) {
    std::string counts;
    for (const auto& [n, files] : found) counts += fmt::format("{}of {}", counts.empty() ? "" : ", ", n);
    throw config_error(fmt::format(
        "{} holds the reports of different splits ({}): remove the stale report-shard-*-of-N.json files and merge "
        "again",
        dir.string(), counts));
  }

  merge_result res;
  res.shard_count = found.begin()->first;
  const std::map<int, fs::path>& files = found.begin()->second;
  std::optional<json> identity;
  json header;
  std::optional<std::size_t> catalog_tracks;
  std::map<std::size_t, std::pair<int, json>> by_catalog_index;  // -> shard, track entry
  std::set<std::size_t> output_missing;                          // catalog indices
  json albums = json::object(), shards = json::array();
  double audio_hours = 0.0, wall_max_s = 0.0;  // shards run side by side: the longest is the wall time

  for (int k = 0; k < res.shard_count; ++k) {
    const std::string file = shard_report_name({k, res.shard_count});
    const auto it = files.find(k);
    auto shard_missing = [&](const std::string& why) {
      res.missing.push_back({k, "", why});
      shards.push_back({{"index", k}, {"report", file}, {"status", "missing"}, {"reason", why}});
    };
    if (it == files.end()) {
      shard_missing(fmt::format("no report ({})", file));
      continue;
    }
    json r;
    try {
      std::ifstream in(it->second);
      r = json::parse(in);
    } catch (const std::exception& e) {
      shard_missing(fmt::format("{} is unreadable: {}", file, e.what()));
      continue;
    }
    if (!r.contains("shard") || !r.contains("tracks")) {
      shard_missing(fmt::format("{} has no shard section (its run stopped before the end)", file));
      continue;
    }
    const json& s = r["shard"];
    if (s.value("index", -1) != k || s.value("count", -1) != res.shard_count)
      throw config_error(fmt::format("{}: its shard section says {}/{}, its name {}/{}", it->second.string(),
                                     s.value("index", -1), s.value("count", -1), k, res.shard_count));
    if (!identity) {
      identity = run_identity(r);
      header = r;
    } else if (*identity != run_identity(r)) {
      throw config_error(fmt::format(
          "{}: not the same run as the other shards ({} vs {}): rerun this shard with the others' version, mode "
          "and formats",
          it->second.string(), run_identity(r).dump(), identity->dump()));
    }
    const std::size_t n_catalog = s.value("catalog_tracks", std::size_t{0});
    if (catalog_tracks && *catalog_tracks != n_catalog)
      throw config_error(fmt::format(
          "{}: planned a catalog of {} tracks, the other shards {}: the catalog changed between shard runs; rerun "
          "every shard",
          it->second.string(), n_catalog, *catalog_tracks));
    catalog_tracks = n_catalog;

    std::map<std::string, const json*> entries;
    for (const json& t : r["tracks"]) entries[t.value("path", "")] = &t;
    const json& expected = s.value("tracks", json::array());
    for (const json& x : expected) {
      const auto index = x.at("catalog_index").get<std::size_t>();
      const auto path = x.at("path").get<std::string>();
      if (index >= n_catalog)
        throw config_error(
            fmt::format("{}: track {} has catalog index {} of {}", it->second.string(), path, index, n_catalog));
      if (const auto other = by_catalog_index.find(index); other != by_catalog_index.end())
        throw config_error(fmt::format(
            "{} is in the reports of shards {} and {}: the catalog changed between shard runs; rerun every shard", path,
            other->second.first, k));
      const auto e = entries.find(path);
      if (e == entries.end()) {
        res.missing.push_back({k, path, "not in the shard's report"});
        continue;
      }
      const json& entry = *e->second;
      by_catalog_index[index] = {k, entry};
      if (entry.value("status", "") == "failed") {
        res.failed.push_back({k, path, entry.value("error", "failed")});
        continue;
      }
      for (const std::string& out : output_paths(entry)) {
        if (fs::exists(dir / out)) continue;
        res.missing.push_back({k, path, fmt::format("its output {} is not in {}", out, dir.string())});
        output_missing.insert(index);
        break;
      }
    }
    for (const auto& [album, a] : object_member(r, "albums").items()) {
      if (albums.contains(album))
        throw config_error(
            fmt::format("album '{}' is in two shard reports: the splits disagree; rerun every shard", album));
      albums[album] = a;
    }
    const json summary = r.value("summary", json::object());
    audio_hours += summary.value("audio_hours", 0.0);
    wall_max_s = std::max(wall_max_s, summary.value("wall_s", 0.0));
    shards.push_back({{"index", k},
                      {"report", file},
                      {"status", "merged"},
                      {"tracks", expected.size()},
                      {"wall_s", summary.value("wall_s", 0.0)}});
  }
  res.catalog_tracks = catalog_tracks.value_or(0);
  res.merged_tracks = by_catalog_index.size();

  std::size_t succeeded = 0, resumed = 0, failed = 0, qc_failed = 0;
  json tracks = json::array();
  for (const auto& [index, shard_entry] : by_catalog_index) {  // std::map: catalog order
    json entry = shard_entry.second;
    entry["shard"] = shard_entry.first;
    const std::string status = entry.value("status", "");
    if (status == "failed") {
      ++failed;
    } else if (output_missing.count(index) == 0) {
      status == "resumed" ? ++resumed : ++succeeded;
      bool qc_ok = true;
      for (const auto& [format, o] : object_member(entry, "outputs").items()) qc_ok = qc_ok && o.value("pass", false);
      if (!qc_ok) ++qc_failed;
    }
    tracks.push_back(std::move(entry));
  }

  std::set<int> rerun;
  auto problems = [&](const std::vector<merge_problem>& list) {
    json j = json::array();
    for (const merge_problem& p : list) {
      rerun.insert(p.shard);
      j.push_back({{"shard", p.shard}, {"path", p.path}, {"reason", p.reason}});
    }
    return j;
  };
  const json missing_json = problems(res.missing), failed_json = problems(res.failed);
  res.rerun_shards.assign(rerun.begin(), rerun.end());

  json formats = header.value("formats", json::array());
  res.report = {{"lathe_version", header.value("lathe_version", "")},
                {"catalog", header.value("catalog", "")},
                {"mode", header.value("mode", "")},
                {"backend", header.value("backend", "")},
                {"formats", formats},
                {"summary",
                 {{"tracks", res.catalog_tracks},
                  {"succeeded", succeeded},
                  {"failed", failed},
                  {"resumed", resumed},
                  {"qc_failed", qc_failed},
                  {"missing", res.catalog_tracks - succeeded - resumed - failed},
                  {"audio_hours", rounded(audio_hours, 4)},
                  {"wall_s", rounded(wall_max_s, 2)},
                  {"shards", res.shard_count},
                  {"shards_merged", res.shard_count - static_cast<int>(std::count_if(
                                                          shards.begin(), shards.end(),
                                                          [](const json& s) { return s["status"] == "missing"; }))}}},
                {"shards", shards},
                {"missing", missing_json},
                {"failed", failed_json},
                {"rerun_shards", res.rerun_shards},
                {"albums", albums},
                {"tracks", tracks}};
  write_text_atomic(dir / "report.json", res.report.dump(2));
  return res;
}

}  // namespace lathe
