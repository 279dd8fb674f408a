#include "report.hpp"

#include <unistd.h>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "lathe/error.hpp"

namespace lathe {

using nlohmann::json;

json number_or_null(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

json rounded(double v, int decimals) {
  if (!std::isfinite(v)) return nullptr;
  const double s = std::pow(10.0, decimals);
  return std::round(v * s) / s;
}

json to_json(const source_info& info) {
  return {{"container", info.container},           {"encoding", info.encoding}, {"bit_depth", info.bit_depth},
          {"sample_rate_hz", info.sample_rate_hz}, {"channels", info.channels}, {"frames", info.frames},
          {"file_bytes", info.file_bytes}};
}

json to_json(const track_analysis& a) {
  json clips = json::array();
  constexpr std::size_t max_listed = 100;  // the count below says how many there were in all
  for (std::size_t i = 0; i < a.clip_runs.size() && i < max_listed; ++i) {
    const clip_run& r = a.clip_runs[i];
    clips.push_back({{"channel", r.channel}, {"start_s", rounded(r.start_s, 4)}, {"length_frames", r.length_frames}});
  }
  json dc = json::array();
  for (int c = 0; c < a.channels; ++c) dc.push_back(a.dc_offset[static_cast<std::size_t>(c)]);
  return {{"duration_s", rounded(a.duration_s, 3)},
          {"integrated_lufs", rounded(a.integrated_lufs, 2)},
          {"loudness_range_lu", rounded(a.loudness_range_lu, 2)},
          {"max_momentary_lufs", rounded(a.max_momentary_lufs, 2)},
          {"max_short_term_lufs", rounded(a.max_short_term_lufs, 2)},
          {"true_peak_dbtp", rounded(a.true_peak_dbtp, 2)},
          {"sample_peak_dbfs", rounded(a.sample_peak_dbfs, 2)},
          {"plr_db", rounded(a.plr_db, 2)},
          {"dc_offset", dc},
          {"dc_offset_dbfs", rounded(a.dc_offset_dbfs, 1)},
          {"clipped_samples", a.clipped_samples},
          {"clip_run_count", a.clip_runs.size()},
          {"clip_runs", clips}};
}

json to_json(const delivery_profile& p) {
  json j = {{"name", p.name},
            {"description", p.description},
            {"source", p.source},
            {"file", p.file.string()},
            {"target_lufs", p.target_lufs},
            {"tolerance_lu", p.tolerance_lu},
            {"ceiling_dbtp", p.ceiling_dbtp},
            {"normalization", p.normalization == normalization_mode::linear ? "linear" : "limit"},
            {"sample_rate_hz", p.sample_rate_hz ? json(*p.sample_rate_hz) : json("source")},
            {"bit_depth", p.bit_depth},
            {"container", to_string(p.container)},
            {"noise_shaping", to_string(p.shaping)}};
  if (!p.sample_rate_hz && p.min_sample_rate_hz > 0) j["min_sample_rate_hz"] = p.min_sample_rate_hz;
  if (const adaptive_params& a = p.adaptive; a.enabled)
    j["adaptive"] = {{"target", a.target},
                     {"eq_percent", rounded(100.0 * a.eq, 1)},
                     {"width_percent", rounded(100.0 * a.width, 1)},
                     {"dynamics_percent", rounded(100.0 * a.dynamics, 1)},
                     {"loudness_percent", rounded(100.0 * a.loudness, 1)},
                     {"album_consistency_percent", rounded(100.0 * a.album_consistency, 1)},
                     {"max_eq_db", a.max_eq_db},
                     {"dynamics_intent", to_string(a.intent)}};
  return j;
}

json to_json(const rendered_master& m, const delivery_profile& p) {
  const normalization_result& n = m.normalization;
  const output_measurement& o = m.measured;
  json bands = json::array();
  for (const eq_band& b : p.eq.bands)
    bands.push_back({{"type", to_string(b.type)}, {"freq_hz", b.freq_hz}, {"gain_db", b.gain_db}, {"q", b.q}});
  json chain = {{"highpass", {{"cutoff_hz", p.highpass.cutoff_hz}, {"order", p.highpass.order}}},
                {"eq", {{"bands", bands}}},
                {"normalization",
                 {{"mode", p.normalization == normalization_mode::linear ? "linear" : "limit"},
                  {"pre_loudness_lufs", rounded(n.pre_loudness_lufs, 2)},
                  {"target_lufs", rounded(n.target_lufs, 2)},
                  {"gain_db", rounded(n.gain_db, 3)},
                  {"shortfall_lu", rounded(n.shortfall_lu, 2)},
                  {"iterations", n.iterations},
                  {"predicted_iterations", n.predictions},
                  {"full_track_passes", n.passes}}},
                {"limiter",
                 {{"ceiling_dbtp", rounded(n.limiter_ceiling_dbtp, 3)},
                  {"max_gain_reduction_db", rounded(n.limiter.max_gain_reduction_db, 2)},
                  {"mean_gain_reduction_db", rounded(n.limiter.mean_gain_reduction_db, 3)},
                  {"frames_limited", n.limiter.frames_limited}}},
                {"dither", p.bit_depth == 32 ? json("none (float output)")
                                             : json(fmt::format("TPDF, noise shaping {}", to_string(p.shaping)))}};
  chain["backend"] = m.backend;
  if (!m.backend_note.empty()) chain["backend_note"] = m.backend_note;
  if (!m.resampler.empty()) chain["resample"] = {{"to_hz", o.sample_rate_hz}, {"method", m.resampler}};
  json measured = {{"integrated_lufs", rounded(o.integrated_lufs, 2)},
                   {"true_peak_dbtp", rounded(o.true_peak_dbtp, 2)},
                   {"sample_peak_dbfs", rounded(o.sample_peak_dbfs, 2)},
                   {"loudness_range_lu", rounded(o.loudness_range_lu, 2)},
                   {"sample_rate_hz", o.sample_rate_hz},
                   {"bit_depth", o.bit_depth},
                   {"frames", o.frames},
                   {"duration_s", rounded(o.duration_s, 3)}};
  return {{"chain", chain}, {"measured", measured}, {"pass", m.passed}, {"failures", m.failures}};
}

json to_json(const tonal_analysis& t) {
  json thirds = json::object();
  json width = json::object();
  for (int k = 0; k < third_octave_band_count; ++k) {
    thirds[third_octave_names()[k]] = rounded(t.mid_db[k], 1);
    width[third_octave_names()[k]] = rounded(t.width_db[k], 1);
  }
  return {{"tilt_db_per_octave", rounded(t.tilt_db_per_octave, 2)},
          {"low_end_db", rounded(t.low_end_db, 2)},
          {"high_end_db", rounded(t.high_end_db, 2)},
          {"crest_factor_db", rounded(t.crest_factor_db, 2)},
          {"third_octave_mid_db", thirds},
          {"third_octave_width_db", width}};
}

void write_text_atomic(const std::filesystem::path& dest, const std::string& text) {
  std::error_code ec;
  std::filesystem::create_directories(dest.parent_path(), ec);
  const std::filesystem::path tmp = dest.parent_path() / fmt::format(".{}.tmp-{}-{}", dest.filename().string(),
                                                                     ::getpid(), std::hash<std::string>{}(text)&0xffff);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) {
      std::filesystem::remove(tmp, ec);
      throw output_error(fmt::format("{}: cannot write (disk full or no permission?)", dest.string()));
    }
  }
  std::filesystem::rename(tmp, dest, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw output_error(fmt::format("{}: cannot move into place: {}", dest.string(), ec.message()));
  }
}

}  // namespace lathe
