#include "track_record.hpp"

#include <cmath>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "lathe/master.hpp"
#include "report.hpp"

namespace lathe::record {

using nlohmann::json;

namespace {

// nlohmann writes the shortest text that parses back to the same double; only non-finite values
// need a form of their own.
json num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

double num_from(const json& j) {
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw json::type_error::create(302, "not a number: " + s, &j);
  }
  return j.get<double>();
}

template <class Range>
json nums(const Range& r) {
  json a = json::array();
  for (const double v : r) a.push_back(num(v));
  return a;
}

std::vector<double> nums_from(const json& j) {
  std::vector<double> v;
  v.reserve(j.size());
  for (const json& x : j) v.push_back(num_from(x));
  return v;
}

template <std::size_t N>
void nums_into(const json& j, std::array<double, N>& out) {
  if (j.size() != N) throw json::type_error::create(302, "array of the wrong length", &j);
  for (std::size_t i = 0; i < N; ++i) out[i] = num_from(j[i]);
}

std::string hex_key(std::string_view text) {
  return fmt::format("{:016x}", fnv1a64(text));
}

std::optional<json> read_json_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    return json::parse(in);
  } catch (const json::exception&) {
    return std::nullopt;  // damaged: as if absent
  }
}

}  // namespace

json exact(const loudness_blocks& b) {
  return {{"momentary_energy", nums(b.momentary_energy)}, {"short_term_energy", nums(b.short_term_energy)}};
}

loudness_blocks blocks_from(const json& j) {
  loudness_blocks b;
  b.momentary_energy = nums_from(j.at("momentary_energy"));
  b.short_term_energy = nums_from(j.at("short_term_energy"));
  return b;
}

json exact(const track_analysis& a) {
  json clips = json::array();
  for (const clip_run& r : a.clip_runs) clips.push_back({r.channel, r.start_frame, r.length_frames, num(r.start_s)});
  return {{"sample_rate_hz", num(a.sample_rate_hz)},
          {"channels", a.channels},
          {"frames", a.frames},
          {"duration_s", num(a.duration_s)},
          {"integrated_lufs", num(a.integrated_lufs)},
          {"loudness_range_lu", num(a.loudness_range_lu)},
          {"max_momentary_lufs", num(a.max_momentary_lufs)},
          {"max_short_term_lufs", num(a.max_short_term_lufs)},
          {"true_peak_dbtp", num(a.true_peak_dbtp)},
          {"sample_peak_dbfs", num(a.sample_peak_dbfs)},
          {"plr_db", num(a.plr_db)},
          {"dc_offset", nums(a.dc_offset)},
          {"dc_offset_dbfs", num(a.dc_offset_dbfs)},
          {"clip_runs", clips},
          {"clipped_samples", a.clipped_samples},
          {"blocks", exact(a.blocks)}};
}

track_analysis analysis_from(const json& j) {
  track_analysis a;
  a.sample_rate_hz = num_from(j.at("sample_rate_hz"));
  a.channels = j.at("channels").get<int>();
  a.frames = j.at("frames").get<std::size_t>();
  a.duration_s = num_from(j.at("duration_s"));
  a.integrated_lufs = num_from(j.at("integrated_lufs"));
  a.loudness_range_lu = num_from(j.at("loudness_range_lu"));
  a.max_momentary_lufs = num_from(j.at("max_momentary_lufs"));
  a.max_short_term_lufs = num_from(j.at("max_short_term_lufs"));
  a.true_peak_dbtp = num_from(j.at("true_peak_dbtp"));
  a.sample_peak_dbfs = num_from(j.at("sample_peak_dbfs"));
  a.plr_db = num_from(j.at("plr_db"));
  nums_into(j.at("dc_offset"), a.dc_offset);
  a.dc_offset_dbfs = num_from(j.at("dc_offset_dbfs"));
  for (const json& r : j.at("clip_runs"))
    a.clip_runs.push_back(
        {r.at(0).get<int>(), r.at(1).get<std::size_t>(), r.at(2).get<std::size_t>(), num_from(r.at(3))});
  a.clipped_samples = j.at("clipped_samples").get<std::size_t>();
  a.blocks = blocks_from(j.at("blocks"));
  return a;
}

json exact(const tonal_analysis& t) {
  return {{"sample_rate_hz", num(t.sample_rate_hz)},
          {"frames", t.frames},
          {"mid_db", nums(t.mid_db)},
          {"side_db", nums(t.side_db)},
          {"width_db", nums(t.width_db)},
          {"fine_freq_hz", nums(t.fine_freq_hz)},
          {"fine_db", nums(t.fine_db)},
          {"tilt_db_per_octave", num(t.tilt_db_per_octave)},
          {"low_end_db", num(t.low_end_db)},
          {"high_end_db", num(t.high_end_db)},
          {"crest_factor_db", num(t.crest_factor_db)},
          {"plr_db", num(t.plr_db)}};
}

tonal_analysis tonal_from(const json& j) {
  tonal_analysis t;
  t.sample_rate_hz = num_from(j.at("sample_rate_hz"));
  t.frames = j.at("frames").get<std::size_t>();
  nums_into(j.at("mid_db"), t.mid_db);
  nums_into(j.at("side_db"), t.side_db);
  nums_into(j.at("width_db"), t.width_db);
  t.fine_freq_hz = nums_from(j.at("fine_freq_hz"));
  t.fine_db = nums_from(j.at("fine_db"));
  t.tilt_db_per_octave = num_from(j.at("tilt_db_per_octave"));
  t.low_end_db = num_from(j.at("low_end_db"));
  t.high_end_db = num_from(j.at("high_end_db"));
  t.crest_factor_db = num_from(j.at("crest_factor_db"));
  t.plr_db = num_from(j.at("plr_db"));
  return t;
}

json exact(const mix_note& n) {
  return {{"code", n.code},
          {"severity", to_string(n.severity)},
          {"what", n.what},
          {"where", n.where},
          {"how_bad", n.how_bad},
          {"advice", n.advice},
          {"times_s", nums(n.times_s)},
          {"figures", n.figures}};
}

mix_note note_from(const json& j) {
  mix_note n;
  n.code = j.at("code").get<std::string>();
  const std::string severity = j.at("severity").get<std::string>();
  bool known = false;
  for (const note_severity s : {note_severity::info, note_severity::warning, note_severity::problem})
    if (severity == to_string(s)) {
      n.severity = s;
      known = true;
    }
  if (!known) throw json::type_error::create(302, "unknown severity " + severity, &j);
  n.what = j.at("what").get<std::string>();
  n.where = j.at("where").get<std::string>();
  n.how_bad = j.at("how_bad").get<std::string>();
  n.advice = j.at("advice").get<std::string>();
  n.times_s = nums_from(j.at("times_s"));
  n.figures = j.at("figures");
  return n;
}

std::filesystem::path track_record_path(const std::filesystem::path& out_dir, const std::string& key) {
  return out_dir / ".lathe" / "state" / "tracks" / (hex_key(key) + ".json");
}

void save_track_record(const std::filesystem::path& out_dir, const std::string& key, const track_record& r) {
  json j = {{"key", key}};
  if (r.input) j["input"] = exact(*r.input);
  if (r.tonal) j["tonal"] = exact(*r.tonal);
  if (r.mix_notes) {
    json notes = json::array();
    for (const mix_note& n : *r.mix_notes) notes.push_back(exact(n));
    j["mix_notes"] = notes;
  }
  write_text_atomic(track_record_path(out_dir, key), j.dump());
}

std::optional<track_record> load_track_record(const std::filesystem::path& out_dir, const std::string& key) {
  const std::optional<json> j = read_json_file(track_record_path(out_dir, key));
  if (!j || j->value("key", "") != key) return std::nullopt;
  try {
    track_record r;
    if (j->contains("input")) r.input = analysis_from(j->at("input"));
    if (j->contains("tonal")) r.tonal = tonal_from(j->at("tonal"));
    if (j->contains("mix_notes")) {
      r.mix_notes.emplace();
      for (const json& n : j->at("mix_notes")) r.mix_notes->push_back(note_from(n));
    }
    return r;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

std::filesystem::path album_record_path(const std::filesystem::path& out_dir, const std::string& album) {
  return out_dir / ".lathe" / "state" / "albums" / (hex_key(album) + ".json");
}

void save_album_decision(const std::filesystem::path& out_dir, const std::string& album, const std::string& format,
                         const std::string& key, const json& decision) {
  const std::filesystem::path file = album_record_path(out_dir, album);
  json j = read_json_file(file).value_or(json::object());
  if (!j.is_object() || j.value("album", "") != album) j = {{"album", album}, {"formats", json::object()}};
  j["formats"][format] = {{"key", key}, {"decision", decision}};
  write_text_atomic(file, j.dump());
}

std::optional<json> load_album_decision(const std::filesystem::path& out_dir, const std::string& album,
                                        const std::string& format, const std::string& key) {
  const std::optional<json> j = read_json_file(album_record_path(out_dir, album));
  if (!j || !j->is_object() || j->value("album", "") != album) return std::nullopt;
  const json& formats = j->value("formats", json::object());
  if (!formats.contains(format) || formats[format].value("key", "") != key) return std::nullopt;
  return formats[format].at("decision");
}

}  // namespace lathe::record
