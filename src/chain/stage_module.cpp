// Each pre-chain stage's [chain.NAME] table, fingerprint and report entry (stage_module.hpp).
#include "lathe/stage_module.hpp"

#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>

#include "profile_reader.hpp"

namespace lathe {

namespace fs = std::filesystem;
using detail::fingerprint_text;
using detail::table_reader;

namespace {

nlohmann::json rounded_db(double v) {
  if (!std::isfinite(v)) return nullptr;
  return std::round(v * 100.0) / 100.0;
}

// The report entry of stage `K`, its name first.
template <chain_stage K>
nlohmann::json entry() {
  return {{"stage", std::string(stage_module<K>::name)}};
}

compressor_params read_compressor(const table_reader& r) {
  compressor_params c;
  r.number("threshold_db", c.threshold_db, -80.0, 0.0);
  r.number("ratio", c.ratio, 0.1, 100.0);
  r.number("knee_db", c.knee_db, 0.0, 24.0);
  r.number("attack_ms", c.attack_ms, 0.01, 1'000.0);
  r.number("release_ms", c.release_ms, 1.0, 5'000.0);
  r.number("lookahead_ms", c.lookahead_ms, 0.0, 20.0);
  r.number("makeup_db", c.makeup_db, -24.0, 24.0);
  r.number("detector_window_ms", c.detector_window_ms, 0.1, 200.0);
  if (std::string d; r.string("detector", d)) {
    r.check("detector", d == "peak" || d == "rms", "\"peak\" or \"rms\"");
    c.detector = d == "peak" ? level_detector::peak : level_detector::rms;
  }
  if (std::string l; r.string("link", l)) {
    r.check("link", l == "linked" || l == "independent", "\"linked\" or \"independent\"");
    c.link = l == "linked" ? stereo_link::linked : stereo_link::independent;
  }
  return c;
}

void add_compressor(fingerprint_text& f, const compressor_params& c) {
  f.num("threshold_db", c.threshold_db);
  f.num("ratio", c.ratio);
  f.num("knee_db", c.knee_db);
  f.num("attack_ms", c.attack_ms);
  f.num("release_ms", c.release_ms);
  f.num("lookahead_ms", c.lookahead_ms);
  f.num("makeup_db", c.makeup_db);
  f.text("detector", c.detector == level_detector::peak ? "peak" : "rms");
  f.num("detector_window_ms", c.detector_window_ms);
  f.text("link", c.link == stereo_link::linked ? "linked" : "independent");
}

}  // namespace

// ---- highpass ---------------------------------------------------------------------------------

void stage_module<chain_stage::highpass>::read(const table_reader& chain, params& p) {
  const toml::table* h = chain.sub_table("highpass");
  if (!h) return;
  const table_reader r(*h, chain.file(), "chain.highpass", {"cutoff_hz", "order"});
  if (r.find("cutoff_hz")) {
    r.number("cutoff_hz", p.cutoff_hz, 0.0, 200.0);
    r.check("cutoff_hz", p.cutoff_hz == 0.0 || p.cutoff_hz >= 5.0, "0 (off) or 5 to 200");
  }
  if (long long order = 0; r.integer("order", order)) {
    r.check("order", order >= 1 && order <= 8, "1 to 8");
    p.order = static_cast<int>(order);
  }
}

void stage_module<chain_stage::highpass>::fingerprint(fingerprint_text& f, const params& p) {
  f.num("cutoff_hz", p.cutoff_hz);
  f.num("order", p.order);
  f.num("dc_cutoff_hz", p.dc_cutoff_hz);
}

nlohmann::json stage_module<chain_stage::highpass>::report(const params& p, const stats&) {
  nlohmann::json r = entry<kind>();
  r["cutoff_hz"] = p.cutoff_hz;
  r["order"] = p.order;
  return r;
}

// ---- eq ---------------------------------------------------------------------------------------

void stage_module<chain_stage::eq>::read(const table_reader& chain, params& eq) {
  const toml::table* t = chain.sub_table("eq");
  if (!t) return;
  const table_reader r(*t, chain.file(), "chain.eq", {"fir_taps", "partition_frames", "band"});
  if (long long taps = 0; r.integer("fir_taps", taps)) {
    r.check("fir_taps", taps == 0 || (taps % 2 == 1 && taps >= 129 && taps <= 131'071),
            "0 (automatic) or an odd number from 129 to 131071");
    eq.fir_taps = static_cast<std::size_t>(taps);
  }
  if (long long part = 0; r.integer("partition_frames", part)) {
    r.check("partition_frames", detail::is_power_of_two(part) && part >= 256 && part <= 65'536,
            "a power of two from 256 to 65536");
    eq.partition_frames = static_cast<std::size_t>(part);
  }
  const toml::node* bands = r.find("band");
  if (!bands) return;
  const auto* arr = bands->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    r.fail(bands->source(), "`chain.eq.band` must be an array of tables ([[chain.eq.band]])");
  }
  for (const toml::node& n : *arr) {
    const table_reader b(*n.as_table(), chain.file(), "chain.eq.band", {"type", "freq_hz", "gain_db", "q"});
    eq_band band;
    if (std::string type; b.string("type", type)) {
      b.check("type", parse_eq_band_type(type, band.type),
              "\"bell\", \"low_shelf\", \"high_shelf\", \"high_pass\" or \"low_pass\"");
    }
    b.number("freq_hz", band.freq_hz, 10.0, 40'000.0);
    b.number("gain_db", band.gain_db, -24.0, 24.0);
    b.number("q", band.q, 0.1, 20.0);
    eq.bands.push_back(band);
  }
}

void stage_module<chain_stage::eq>::fingerprint(fingerprint_text& f, const params& p) {
  f.num("fir_taps", static_cast<double>(p.fir_taps));
  f.num("partition_frames", static_cast<double>(p.partition_frames));
  for (const eq_band& b : p.bands) {
    f.text("band", to_string(b.type));
    f.num("freq_hz", b.freq_hz);
    f.num("gain_db", b.gain_db);
    f.num("q", b.q);
  }
  // Only when present, so the fingerprints of profiles without a curve stay as they were.
  for (const eq_curve_point& c : p.curve) {
    f.num("curve_freq_hz", c.freq_hz);
    f.num("curve_gain_db", c.gain_db);
  }
}

std::optional<linear_phase_eq_stage> stage_module<chain_stage::eq>::build(const params& p, double sample_rate_hz) {
  eq_params at_rate = eq_at_rate(p, sample_rate_hz);
  if (at_rate.bypassed()) return std::nullopt;
  return linear_phase_eq_stage(std::move(at_rate));
}

nlohmann::json stage_module<chain_stage::eq>::report(const params&, const stats& s) {
  nlohmann::json r = entry<kind>();
  r["bands"] = s.bands;
  if (s.bands > 0) r["taps"] = s.taps;
  return r;
}

// ---- deesser ----------------------------------------------------------------------------------

void stage_module<chain_stage::deesser>::read(const table_reader& chain, params& p) {
  const toml::table* d = chain.sub_table("deesser");
  if (!d) return;
  const table_reader r(*d, chain.file(), "chain.deesser",
                       {"low_hz", "high_hz", "threshold_db", "ratio", "max_reduction_db", "attack_ms", "release_ms"});
  r.number("low_hz", p.low_hz, 1'000.0, 16'000.0);
  r.number("high_hz", p.high_hz, 1'500.0, 20'000.0);
  r.check("high_hz", p.high_hz > p.low_hz, "above low_hz");
  r.number("threshold_db", p.threshold_db, -80.0, 0.0);
  r.number("ratio", p.ratio, 1.0, 100.0);
  r.number("max_reduction_db", p.max_reduction_db, 0.0, 48.0);
  r.number("attack_ms", p.attack_ms, 0.01, 100.0);
  r.number("release_ms", p.release_ms, 1.0, 2'000.0);
}

void stage_module<chain_stage::deesser>::fingerprint(fingerprint_text& f, const params& p) {
  f.num("low_hz", p.low_hz);
  f.num("high_hz", p.high_hz);
  f.num("threshold_db", p.threshold_db);
  f.num("ratio", p.ratio);
  f.num("max_reduction_db", p.max_reduction_db);
  f.num("attack_ms", p.attack_ms);
  f.num("release_ms", p.release_ms);
  f.num("detector_rms_ms", p.detector_rms_ms);
}

nlohmann::json stage_module<chain_stage::deesser>::report(const params&, const stats& d) {
  nlohmann::json r = entry<kind>();
  r["max_reduction_db"] = rounded_db(d.max_reduction_db);
  r["mean_reduction_db"] = rounded_db(d.mean_reduction_db());
  r["active_fraction"] = d.frames ? static_cast<double>(d.active_frames) / static_cast<double>(d.frames) : 0.0;
  return r;
}

// ---- multiband --------------------------------------------------------------------------------

void stage_module<chain_stage::multiband>::read(const table_reader& chain, params& m) {
  const toml::table* t = chain.sub_table("multiband");
  if (!t) return;
  const table_reader r(*t, chain.file(), "chain.multiband", {"crossovers_hz", "dry_wet", "output_gain_db", "band"});
  const toml::node* xs = r.find("crossovers_hz");
  if (!xs || !xs->is_array())
    r.fail_here("`chain.multiband.crossovers_hz` must be an array of 1 to 5 ascending frequencies");
  m.crossover.crossover_hz.clear();
  for (const toml::node& n : *xs->as_array()) {
    const double f = n.value<double>().value_or(-1.0);
    if (!(f >= 20.0 && f <= 20'000.0) || (!m.crossover.crossover_hz.empty() && f <= m.crossover.crossover_hz.back()))
      r.fail(n.source(), "`chain.multiband.crossovers_hz` must ascend, each from 20 to 20000 Hz");
    m.crossover.crossover_hz.push_back(f);
  }
  if (m.crossover.crossover_hz.empty() || m.crossover.crossover_hz.size() > 5)
    r.fail(xs->source(), "`chain.multiband.crossovers_hz` takes 1 to 5 frequencies (2 to 6 bands)");
  r.number("dry_wet", m.dry_wet, 0.0, 1.0);
  r.number("output_gain_db", m.output_gain_db, -24.0, 24.0);
  const std::size_t bands = m.crossover.crossover_hz.size() + 1;
  m.bands.assign(bands, compressor_params{});
  if (const toml::node* b = r.find("band")) {
    if (!b->is_array_of_tables() || b->as_array()->size() != bands)
      r.fail(b->source(), "`chain.multiband.band` must be " + std::to_string(bands) +
                              " tables ([[chain.multiband.band]]), one per band, low to high");
    std::size_t k = 0;
    for (const toml::node& n : *b->as_array())
      m.bands[k++] =
          read_compressor(table_reader(*n.as_table(), chain.file(), "chain.multiband.band",
                                       {"threshold_db", "ratio", "knee_db", "attack_ms", "release_ms", "lookahead_ms",
                                        "makeup_db", "detector", "detector_window_ms", "link"}));
  }
}

void stage_module<chain_stage::multiband>::fingerprint(fingerprint_text& f, const params& p) {
  for (double x : p.crossover.crossover_hz) f.num("crossover_hz", x);
  f.num("fir_taps", static_cast<double>(p.crossover.fir_taps));
  f.num("partition_frames", static_cast<double>(p.crossover.partition_frames));
  f.num("dry_wet", p.dry_wet);
  f.num("output_gain_db", p.output_gain_db);
  for (const compressor_params& c : p.bands) add_compressor(f, c);
}

std::vector<dynamics_stats> stage_module<chain_stage::multiband>::stats_of(const dsp& d) {
  std::vector<dynamics_stats> bands;
  for (int b = 0; b < d.band_count(); ++b) bands.push_back(d.band_stats(b));
  return bands;
}

nlohmann::json stage_module<chain_stage::multiband>::report(const params& p, const stats& bands) {
  nlohmann::json b = nlohmann::json::array();
  for (const dynamics_stats& s : bands)
    b.push_back({{"max_gain_reduction_db", rounded_db(s.max_gain_reduction_db)},
                 {"mean_gain_reduction_db", rounded_db(s.mean_gain_reduction_db)}});
  nlohmann::json r = entry<kind>();
  r["crossovers_hz"] = p.crossover.crossover_hz;
  r["bands"] = std::move(b);
  return r;
}

// ---- stereo -----------------------------------------------------------------------------------

void stage_module<chain_stage::stereo>::read(const table_reader& chain, params& p) {
  const toml::table* st = chain.sub_table("stereo");
  if (!st) return;
  const table_reader r(*st, chain.file(), "chain.stereo", {"width", "mid_gain_db", "bass_mono_below_hz"});
  r.number("width", p.width, 0.0, 4.0);
  r.number("mid_gain_db", p.mid_gain_db, -24.0, 24.0);
  r.number("bass_mono_below_hz", p.bass_mono_below_hz, 0.0, 500.0);
  r.check("bass_mono_below_hz", p.bass_mono_below_hz == 0.0 || p.bass_mono_below_hz >= 40.0, "0 (off) or 40 to 500");
}

void stage_module<chain_stage::stereo>::fingerprint(fingerprint_text& f, const params& p) {
  f.num("width", p.width);
  f.num("mid_gain_db", p.mid_gain_db);
  f.num("bass_mono_below_hz", p.bass_mono_below_hz);
}

nlohmann::json stage_module<chain_stage::stereo>::report(const params&, const stats& s) {
  nlohmann::json r = entry<kind>();
  r["correlation_before"] = rounded_db(s.correlation_before);
  r["correlation_after"] = rounded_db(s.correlation_after);
  r["width_change_db"] = rounded_db(s.width_change_db());
  return r;
}

// ---- saturation -------------------------------------------------------------------------------

void stage_module<chain_stage::saturation>::read(const table_reader& chain, params& p) {
  const toml::table* sat = chain.sub_table("saturation");
  if (!sat) return;
  const table_reader r(*sat, chain.file(), "chain.saturation", {"drive_db", "output_db", "mix"});
  r.number("drive_db", p.drive_db, -24.0, 36.0);
  r.number("output_db", p.output_db, -48.0, 24.0);
  r.number("mix", p.mix, 0.0, 1.0);
}

void stage_module<chain_stage::saturation>::fingerprint(fingerprint_text& f, const params& p) {
  f.num("drive_db", p.drive_db);
  f.num("output_db", p.output_db);
  f.num("mix", p.mix);
  f.num("oversampling", p.oversampling);
}

nlohmann::json stage_module<chain_stage::saturation>::report(const params& p, const stats&) {
  nlohmann::json r = entry<kind>();
  r["drive_db"] = p.drive_db;
  r["mix"] = p.mix;
  return r;
}

// ---- reverb -----------------------------------------------------------------------------------

void stage_module<chain_stage::reverb>::read(const table_reader& chain, params& p) {
  const toml::table* rv = chain.sub_table("reverb");
  if (!rv) return;
  const table_reader r(*rv, chain.file(), "chain.reverb",
                       {"ir", "pre_delay_ms", "wet_db", "dry_db", "low_cut_hz", "high_cut_hz"});
  std::string ir;
  if (!r.string("ir", ir)) r.fail_here("[chain.reverb] needs `ir`, the impulse response file");
  fs::path path(ir);
  if (path.is_relative()) path = fs::path(chain.file()).parent_path() / path;  // relative to the profile
  p.ir_path = path;
  r.number("pre_delay_ms", p.pre_delay_ms, 0.0, 1'000.0);
  r.number("wet_db", p.wet_db, -120.0, 12.0);
  r.number("dry_db", p.dry_db, -120.0, 12.0);
  r.number("low_cut_hz", p.low_cut_hz, 0.0, 2'000.0);
  r.number("high_cut_hz", p.high_cut_hz, 0.0, 20'000.0);
}

void stage_module<chain_stage::reverb>::fingerprint(fingerprint_text& f, const params& p) {
  std::error_code ec;
  f.text("ir", p.ir_path.string());
  f.num("ir_bytes", static_cast<double>(fs::file_size(p.ir_path, ec)));
  f.num("pre_delay_ms", p.pre_delay_ms);
  f.num("wet_db", p.wet_db);
  f.num("dry_db", p.dry_db);
  f.num("low_cut_hz", p.low_cut_hz);
  f.num("high_cut_hz", p.high_cut_hz);
}

nlohmann::json stage_module<chain_stage::reverb>::report(const params& p, const stats& s) {
  nlohmann::json r = entry<kind>();
  r["ir"] = p.ir_path.string();
  r["wet_level_db"] = rounded_db(s.wet_relative_db);
  return r;
}

}  // namespace lathe
