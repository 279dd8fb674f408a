#include "album_decisions.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lathe/master.hpp"
#include "report.hpp"
#include "track_record.hpp"

namespace lathe {

using nlohmann::json;

namespace {

std::string album_decision_key(const run_plan& plan, const std::vector<std::size_t>& members, std::size_t f) {
  std::string key;
  for (std::size_t i : members) key += plan.tracks[i].fingerprints[f] + "|";
  return key;
}

}  // namespace

json decide_albums(const run_plan& plan, std::vector<track_state>& state, const std::filesystem::path& out_dir,
                   const std::vector<std::string>& albums) {
  const std::size_t n_formats = plan.profiles.size();
  json album_reports = json::object();
  for (const std::string& album : albums) {
    const std::vector<std::size_t>& members = plan.albums.at(album);
    json a = {{"tracks", members.size()}, {"formats", json::object()}};
    if (std::none_of(members.begin(), members.end(), [&](std::size_t i) { return state[i].needs_album_pass; })) {
      for (std::size_t f = 0; f < n_formats; ++f) {
        const std::string& name = plan.profiles[f].name;
        if (auto d = record::load_album_decision(out_dir, album, name, album_decision_key(plan, members, f)))
          a["formats"][name] = std::move(*d);
      }
      album_reports[album] = a;
      continue;
    }
    for (std::size_t f = 0; f < n_formats; ++f) {
      const delivery_profile& p = plan.profiles[f];
      double loudest = -std::numeric_limits<double>::infinity();
      std::size_t loudest_index = members.front();
      double headroom = std::numeric_limits<double>::infinity();
      for (std::size_t i : members) {
        const track_state& s = state[i];
        const std::string key = prechain_key(s.profiles[f]);
        if (!s.error.empty() || s.pre_loudness_lufs.count(key) == 0) continue;
        const double l = s.pre_loudness_lufs.at(key);
        if (std::isfinite(l) && l > loudest) {
          loudest = l;
          loudest_index = i;
        }
        if (std::isfinite(l))
          headroom = std::min(headroom, p.ceiling_dbtp - p.limiter.margin_db - s.pre_true_peak_dbtp.at(key));
      }
      if (!std::isfinite(loudest)) continue;
      // The loudness amount moves the album's loudest track that fraction of the way to the target.
      const double fraction = p.adaptive.enabled ? p.adaptive.loudness : 1.0;
      double album_gain = fraction * (p.target_lufs - loudest);
      if (p.normalization == normalization_mode::linear) album_gain = std::min(album_gain, headroom);
      for (std::size_t i : members) {
        track_state& s = state[i];
        const std::string key = prechain_key(s.profiles[f]);
        if (s.pre_loudness_lufs.count(key) == 0) continue;
        const double l = s.pre_loudness_lufs.at(key);
        s.targets_lufs[f] = std::isfinite(l) ? l + album_gain : p.target_lufs;
      }
      json members_json = json::array();
      for (std::size_t i : members) {
        const std::string key = prechain_key(state[i].profiles[f]);
        members_json.push_back(
            {{"path", plan.tracks[i].entry.relative_path.generic_string()},
             {"pre_loudness_lufs",
              rounded(state[i].pre_loudness_lufs.count(key) ? state[i].pre_loudness_lufs.at(key) : NAN, 2)},
             {"target_lufs", rounded(state[i].targets_lufs[f], 2)}});
      }
      a["formats"][p.name] = {{"loudest_track", plan.tracks[loudest_index].entry.relative_path.generic_string()},
                              {"loudest_pre_loudness_lufs", rounded(loudest, 2)},
                              {"album_gain_db", rounded(album_gain, 3)},
                              {"tracks", members_json}};
      record::save_album_decision(out_dir, album, p.name, album_decision_key(plan, members, f), a["formats"][p.name]);
    }
    album_reports[album] = a;
  }
  return album_reports;
}

}  // namespace lathe
