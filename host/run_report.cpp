#include "run_report.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "lathe/loudness.hpp"
#include "lathe/mix_notes.hpp"
#include "report.hpp"

namespace lathe {

using nlohmann::json;

namespace {

// One entry per track (metadata, analyses, mix notes, each format's master), counted into `sum`.
json track_entries(const run_plan& plan, const std::vector<track_state>& state, master_summary& sum) {
  const std::size_t n_formats = plan.profiles.size();
  json tracks = json::array();
  for (const planned_track& t : plan.tracks) {
    const track_state& s = state[t.index];
    json j = {{"path", t.entry.relative_path.generic_string()},
              {"title", t.tags.title},
              {"artist", t.tags.artist},
              {"album", t.tags.album},
              {"track_number", t.tags.track_number},
              {"isrc", t.tags.isrc},
              {"album_mode", !t.album_key.empty()}};
    if (t.info) j["source"] = to_json(*t.info);
    if (s.input) j["input"] = to_json(*s.input);
    if (s.tonal) j["tonal"] = to_json(*s.tonal);
    if (s.mix_checked) {
      json notes = json::array();
      for (const mix_note& n : s.mix_notes) notes.push_back(to_json(n));
      j["mix_notes"] = notes;
    }
    if (!s.error.empty()) {
      j["status"] = "failed";
      j["error"] = fmt::format("{}: {}", t.entry.path.string(), s.error);
      ++sum.failed;
    } else {
      const bool all_resumed = std::all_of(s.resumed.begin(), s.resumed.end(), [](bool b) { return b; });
      j["status"] = all_resumed ? "resumed" : "ok";
      all_resumed ? ++sum.resumed : ++sum.succeeded;
      if (!all_resumed) sum.audio_s += t.duration_s();
      json outs = json::object();
      bool qc_ok = true;
      for (std::size_t f = 0; f < n_formats; ++f) {
        json o = s.outputs[f];
        o["resumed"] = static_cast<bool>(s.resumed[f]);
        qc_ok = qc_ok && o.value("pass", false);
        outs[plan.profiles[f].name] = o;
      }
      j["outputs"] = outs;
      if (!qc_ok) ++sum.qc_failed;
    }
    tracks.push_back(j);
  }
  return tracks;
}

// Album figures: the inputs' album loudness (merged gating blocks), duration, consistency of
// tonal balance and loudness across the album, and each format's album loudness when every
// master of the album was rendered in this run (a resumed master's blocks are not kept).
void add_album_figures(const run_plan& plan, const std::vector<track_state>& state, json& album_reports) {
  const std::size_t n_formats = plan.profiles.size();
  for (const auto& [album, members] : plan.albums) {
    loudness_blocks merged;
    bool complete = true;
    for (std::size_t i : members) {
      if (state[i].input)
        merged.merge(state[i].input->blocks);
      else
        complete = false;
    }
    if (!album_reports.contains(album)) album_reports[album] = {{"tracks", members.size()}};
    // Total running time, for planning sides and discs.
    double album_s = 0.0;
    for (std::size_t k : members) album_s += plan.tracks[k].duration_s();
    album_reports[album]["duration_s"] = rounded(album_s, 2);
    if (complete) album_reports[album]["input_album_loudness_lufs"] = rounded(merged.integrated_lufs(), 2);
    // Consistency across the album: spread of tonal balance and of loudness, inputs and masters.
    {
      std::vector<tonal_analysis> in_tonal;
      std::vector<double> in_lufs;
      for (std::size_t i : members) {
        if (state[i].tonal) in_tonal.push_back(*state[i].tonal);
        if (state[i].input && std::isfinite(state[i].input->integrated_lufs))
          in_lufs.push_back(state[i].input->integrated_lufs);
      }
      json spread = json::object();
      if (in_tonal.size() == members.size()) spread["input_tonal_spread_db"] = rounded(tonal_spread_db(in_tonal), 2);
      if (in_lufs.size() == members.size())
        spread["input_loudness_spread_lu"] = rounded(
            *std::max_element(in_lufs.begin(), in_lufs.end()) - *std::min_element(in_lufs.begin(), in_lufs.end()), 2);
      for (std::size_t f = 0; f < n_formats; ++f) {
        std::vector<tonal_analysis> out_tonal;
        std::vector<double> out_lufs;
        for (std::size_t i : members) {
          if (state[i].master_tonal[f]) out_tonal.push_back(*state[i].master_tonal[f]);
          const json& o = state[i].outputs[f];
          if (o.contains("measured") && o["measured"].value("integrated_lufs", json()).is_number())
            out_lufs.push_back(o["measured"]["integrated_lufs"].get<double>());
        }
        json o = json::object();
        if (out_tonal.size() == members.size()) o["output_tonal_spread_db"] = rounded(tonal_spread_db(out_tonal), 2);
        if (out_lufs.size() == members.size())
          o["output_loudness_spread_lu"] = rounded(
              *std::max_element(out_lufs.begin(), out_lufs.end()) - *std::min_element(out_lufs.begin(), out_lufs.end()),
              2);
        if (!o.empty()) spread[plan.profiles[f].name] = o;
      }
      album_reports[album]["consistency"] = spread;
    }
    // Album loudness of each format's masters, when every track of the album was rendered in
    // this run (a resumed master's blocks are not kept).
    for (std::size_t f = 0; f < n_formats; ++f) {
      loudness_blocks out;
      const bool all = std::all_of(members.begin(), members.end(), [&](std::size_t i) {
        return state[i].output_blocks.size() == n_formats && !state[i].output_blocks[f].momentary_energy.empty();
      });
      if (!all || !album_reports[album].contains("formats")) continue;
      for (std::size_t i : members) out.merge(state[i].output_blocks[f]);
      album_reports[album]["formats"][plan.profiles[f].name]["output_album_loudness_lufs"] =
          rounded(out.integrated_lufs(), 2);
    }
  }
}

// mix-notes.md: one per album (notes/<album>/mix-notes.md), singles in notes/mix-notes.md.
void write_mix_notes(const run_plan& plan, const std::vector<track_state>& state, const std::filesystem::path& out_dir,
                     const std::string& report_name, json& album_reports) {
  std::map<std::string, std::vector<track_notes>> by_album;
  for (const planned_track& t : plan.tracks) {
    const track_state& s = state[t.index];
    if (!s.mix_checked) continue;
    by_album[t.album_key].push_back({t.tags.title, t.entry.relative_path.generic_string(), s.mix_notes});
  }
  for (const auto& [album, tracks] : by_album) {
    // Albums never span shards; singles do, so each shard names its singles file after its report.
    const std::string singles = report_name == "report.json"
                                    ? std::string("mix-notes.md")
                                    : "mix-notes-" + std::filesystem::path(report_name).stem().string() + ".md";
    const std::filesystem::path file =
        album.empty() ? out_dir / "notes" / singles : out_dir / "notes" / sanitize_name(album) / "mix-notes.md";
    write_text_atomic(file, mix_notes_markdown(album.empty() ? "Singles" : album, tracks));
    if (!album.empty() && album_reports.contains(album))
      album_reports[album]["mix_notes"] = std::filesystem::relative(file, out_dir).generic_string();
  }
}

}  // namespace

master_summary write_run_report(const run_plan& plan, const std::vector<track_state>& state, json album_reports,
                                const master_options& opt, const run_facts& facts) {
  master_summary sum;
  sum.tracks = plan.tracks.size();
  sum.peak_reserved_bytes = facts.peak_reserved_bytes;
  const json tracks = track_entries(plan, state, sum);
  // Masters by the backend that rendered them, and those a GPU run rendered on the CPU, by reason.
  std::map<std::string, std::size_t> by_backend, cpu_reasons;
  std::size_t cpu_in_gpu_run = 0;
  for (const json& t : tracks) {
    if (!t.contains("outputs")) continue;
    for (const auto& [name, o] : t["outputs"].items()) {
      if (!o.contains("chain") || !o["chain"].contains("backend")) continue;
      ++by_backend[o["chain"]["backend"].get<std::string>()];
      if (!o["chain"].contains("backend_note")) continue;
      ++cpu_in_gpu_run;
      ++cpu_reasons[o["chain"]["backend_note"].get<std::string>()];
    }
  }
  add_album_figures(plan, state, album_reports);
  write_mix_notes(plan, state, opt.out_dir, opt.report_name, album_reports);
  sum.wall_s = now_s() - facts.started_s;
  json formats = json::array();
  for (const delivery_profile& p : plan.profiles) formats.push_back(to_json(p));
  const json report = {{"lathe_version", LATHE_VERSION},
                       {"catalog", opt.catalog},
                       {"mode", plan.mode == album_mode::album ? "album" : "track"},
                       {"backend", opt.backend.reason},
                       {"formats", formats},
                       {"summary",
                        {{"tracks", sum.tracks},
                         {"succeeded", sum.succeeded},
                         {"failed", sum.failed},
                         {"resumed", sum.resumed},
                         {"qc_failed", sum.qc_failed},
                         {"audio_hours", rounded(sum.audio_s / 3600.0, 4)},
                         {"wall_s", rounded(sum.wall_s, 2)},
                         {"x_realtime", rounded(sum.wall_s > 0 ? sum.audio_s / sum.wall_s : 0.0, 1)},
                         {"threads", facts.threads},
                         {"max_memory_bytes", facts.max_memory_bytes},
                         {"peak_reserved_bytes", sum.peak_reserved_bytes},
                         {"masters_by_backend", by_backend},
                         {"masters_on_cpu_in_gpu_run", cpu_in_gpu_run},
                         {"cpu_reasons_in_gpu_run", cpu_reasons}}},
                       {"albums", album_reports},
                       {"tracks", tracks}};
  write_text_atomic(opt.out_dir / opt.report_name, report.dump(2));
  return sum;
}

}  // namespace lathe
