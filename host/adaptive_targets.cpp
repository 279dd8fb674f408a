#include "adaptive_targets.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "lathe/adaptive.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/error.hpp"
#include "report.hpp"

namespace lathe {

namespace {

// A reference master's balance: decoded once; a bad reference stops the run before any work.
target_curve reference_target(const std::filesystem::path& file) {
  try {
    const decoded_track d = decode_file(file);
    return target_from_analysis(analyze_tonal(d.audio, d.info.sample_rate_hz), "reference",
                                "reference: " + file.filename().string());
  } catch (const input_error& e) {
    throw config_error("reference " + file.string() + ": " + e.reason());
  }
}

}  // namespace

adaptive_targets::adaptive_targets(const run_plan& plan, const std::filesystem::path& reference_file) : plan_(plan) {
  any_adaptive_ = std::any_of(plan.profiles.begin(), plan.profiles.end(),
                              [](const delivery_profile& p) { return p.adaptive.enabled; });
  album_balance_needed_ =
      plan.mode == album_mode::album && std::any_of(plan.profiles.begin(), plan.profiles.end(), [](const auto& p) {
        return p.adaptive.enabled && p.adaptive.album_consistency > 0.0;
      });
  for (const delivery_profile& p : plan.profiles)
    if (!p.adaptive.target_file.empty() && curves_.count(p.adaptive.target_file) == 0)
      curves_.emplace(p.adaptive.target_file, load_target_curve(p.adaptive.target_file));
  if (!reference_file.empty()) run_reference_ = reference_target(reference_file);
  for (const auto& [album, members] : plan.albums)
    for (std::size_t i : members)
      if (!plan.tracks[i].entry.reference.empty() && album_references_.count(album) == 0)
        album_references_.emplace(album, reference_target(plan.tracks[i].entry.reference));
  notes_target_ = run_reference_ ? &*run_reference_ : nullptr;
  for (const delivery_profile& p : plan.profiles)
    if (!notes_target_ && curves_.count(p.adaptive.target_file) != 0)
      notes_target_ = &curves_.at(p.adaptive.target_file);
  if (notes_target_ != nullptr) {
    notes_context_ += notes_target_->name;
    for (const double v : notes_target_->mid_db) notes_context_ += fmt::format("|{:.17g}", v);
  }
}

const target_curve* adaptive_targets::target_of(const planned_track& t, const delivery_profile& p) const {
  if (!p.adaptive.enabled) return nullptr;
  if (const auto it = album_references_.find(t.album_key); !t.album_key.empty() && it != album_references_.end())
    return &it->second;
  if (run_reference_) return &*run_reference_;
  if (const auto it = curves_.find(p.adaptive.target_file); it != curves_.end()) return &it->second;
  return nullptr;
}

void adaptive_targets::set_album_balances(const std::vector<track_state>& state) {
  for (const auto& [album, members] : plan_.albums) {
    std::vector<tonal_analysis> tracks;
    for (std::size_t i : members)
      if (state[i].tonal) tracks.push_back(*state[i].tonal);
    if (tracks.size() >= 2) album_balances_.emplace(album, mean_target(tracks, album, "album mean"));
  }
}

void adaptive_targets::adapt(const planned_track& t, track_state& s) const {
  if (s.adapted || !any_adaptive_) return;
  for (std::size_t f = 0; f < plan_.profiles.size(); ++f) {
    const delivery_profile& p = plan_.profiles[f];
    if (!p.adaptive.enabled) continue;
    adaptation_input in;
    in.tonal = &*s.tonal;
    in.target = target_of(t, p);
    in.amounts = t.entry.amounts;
    if (const auto it = album_balances_.find(t.album_key);
        p.adaptive.album_consistency > 0.0 && !t.album_key.empty() && it != album_balances_.end())
      in.album_mean = &it->second;
    nlohmann::json r;
    s.profiles[f] = adapt_profile(p, in, &r);
    s.adaptive_reports[f] = std::move(r);
    // Track mode: the loudness amount moves the target (album mode scales the album gain).
    const double fraction = t.entry.amounts.loudness.value_or(p.adaptive.loudness);
    if (t.album_key.empty() && s.input)
      s.targets_lufs[f] = adapted_target_lufs(p.target_lufs, s.input->integrated_lufs, fraction);
    s.adaptive_reports[f]["loudness"] = {{"amount", fraction}, {"target_lufs", rounded(s.targets_lufs[f], 2)}};
  }
  s.adapted = true;
}

}  // namespace lathe
