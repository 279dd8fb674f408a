#include "resume.hpp"

#include <signal.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>

#include <nlohmann/json.hpp>

#include "track_record.hpp"

namespace lathe {

using nlohmann::json;

namespace {

// A temporary that lathe writes beside a final name (".NAME.tmp-PID-N") and whose writer is
// gone: a run that was killed. Those of a live process (another run) are left alone.
void remove_stale_temporaries(const std::filesystem::path& out_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(out_dir, ec)) return;
  std::vector<std::filesystem::path> stale;
  for (auto it = std::filesystem::recursive_directory_iterator(out_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::size_t tmp = name.rfind(".tmp-");
    if (name.empty() || name[0] != '.' || tmp == std::string::npos || !it->is_regular_file(ec)) continue;
    const std::string rest = name.substr(tmp + 5);
    const std::size_t dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    const std::string pid_text = rest.substr(0, dash);
    if (!std::all_of(pid_text.begin(), pid_text.end(), [](unsigned char c) { return std::isdigit(c); })) continue;
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    stale.push_back(it->path());
  }
  for (const auto& p : stale) std::filesystem::remove(p, ec);
}

// An output is complete when its sidecar carries its fingerprint and its byte count; `sidecar`
// then holds the report entry and what the album figures need.
bool resume_complete(const std::filesystem::path& out_dir, const planned_track& t, std::size_t f, json& sidecar) {
  const std::filesystem::path state = state_path(out_dir, t.outputs[f]);
  std::ifstream in(state);
  if (!in) return false;
  try {
    json j = json::parse(in);
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(out_dir / t.outputs[f], ec);
    if (ec || j.value("fingerprint", "") != t.fingerprints[f] || j.value("bytes", std::uintmax_t{0}) != bytes)
      return false;
    if (!j.contains("output")) return false;
    sidecar = std::move(j);
    return true;
  } catch (const std::exception&) {
    return false;  // a damaged sidecar means "not done"
  }
}

}  // namespace

void clear_interrupted_work(const std::filesystem::path& out_dir) {
  std::error_code ec;
  std::filesystem::remove_all(out_dir / ".lathe" / "spill", ec);
  remove_stale_temporaries(out_dir);
}

std::vector<track_state> initial_state(const run_plan& plan, const std::filesystem::path& out_dir,
                                       double& audio_to_do_s) {
  const std::size_t n_formats = plan.profiles.size();
  std::vector<track_state> state(plan.tracks.size());
  audio_to_do_s = 0.0;
  for (const planned_track& t : plan.tracks) {
    track_state& s = state[t.index];
    s.outputs.assign(n_formats, json::object());
    s.resumed.assign(n_formats, false);
    s.targets_lufs.assign(n_formats, 0.0);
    for (std::size_t f = 0; f < n_formats; ++f) s.targets_lufs[f] = plan.profiles[f].target_lufs;
    s.profiles = plan.profiles;
    s.adaptive_reports.assign(n_formats, json());
    s.master_tonal.resize(n_formats);
    if (!t.info) {
      s.error = t.probe_error;
      continue;
    }
    for (std::size_t f = 0; f < n_formats; ++f) {
      json sidecar;
      if (resume_complete(out_dir, t, f, sidecar)) {
        s.resumed[f] = true;
        s.outputs[f] = sidecar.at("output");
        // The master's tonal balance and loudness blocks, for the album figures.
        try {
          if (sidecar.contains("master_tonal")) s.master_tonal[f] = record::tonal_from(sidecar["master_tonal"]);
          if (sidecar.contains("blocks")) {
            s.output_blocks.resize(n_formats);
            s.output_blocks[f] = record::blocks_from(sidecar["blocks"]);
          }
        } catch (const json::exception&) {
          s.master_tonal[f].reset();
        }
      } else {
        s.needs_render = true;
      }
    }
    if (s.needs_render) audio_to_do_s += t.duration_s();
  }
  for (const auto& [album, members] : plan.albums) {
    const bool any = std::any_of(members.begin(), members.end(), [&](std::size_t i) { return state[i].needs_render; });
    if (!any) continue;
    for (std::size_t i : members)
      if (state[i].error.empty()) state[i].needs_album_pass = true;
  }
  return state;
}

void restore_track_records(const run_plan& plan, std::vector<track_state>& state, const std::filesystem::path& out_dir,
                           const adaptive_targets& targets) {
  for (const planned_track& t : plan.tracks) {
    track_state& s = state[t.index];
    if (s.needs_render || !s.error.empty()) continue;
    const auto r = record::load_track_record(out_dir, targets.record_key(t));
    if (!r) continue;
    s.input = r->input;
    s.tonal = r->tonal;
    if (r->mix_notes) {
      s.mix_notes = *r->mix_notes;
      s.mix_checked = true;
    }
  }
}

}  // namespace lathe
