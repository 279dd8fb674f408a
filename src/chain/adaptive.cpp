#include "lathe/adaptive.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lathe/error.hpp"
#include "lathe/profile.hpp"

namespace lathe {
namespace {

constexpr int bands = third_octave_band_count;

bool in_chain(const delivery_profile& p, chain_stage st) {
  return std::find(p.chain_order.begin(), p.chain_order.end(), st) != p.chain_order.end();
}

// Puts `st` right after the last of `before` present in the chain (first when none is).
void insert_stage(delivery_profile& p, chain_stage st, std::initializer_list<chain_stage> before) {
  if (in_chain(p, st)) return;
  auto pos = p.chain_order.begin();
  for (auto it = p.chain_order.begin(); it != p.chain_order.end(); ++it)
    if (std::find(before.begin(), before.end(), *it) != before.end()) pos = it + 1;
  p.chain_order.insert(pos, st);
}

double rounded2(double v) {
  return std::isfinite(v) ? std::round(v * 100.0) / 100.0 : v;
}

nlohmann::json db_or_null(double v) {
  if (!std::isfinite(v)) return nullptr;
  return rounded2(v);
}

// Mean of (a - b) over the bands from lo_hz to hi_hz where both are finite; NaN if none.
double mean_difference(const std::array<double, bands>& a, const std::array<double, bands>& b, double lo_hz,
                       double hi_hz) {
  double sum = 0.0;
  int n = 0;
  for (int k = 0; k < bands; ++k) {
    const double f = third_octave_centres_hz()[k];
    if (f < lo_hz || f > hi_hz || !std::isfinite(a[k]) || !std::isfinite(b[k])) continue;
    sum += a[k] - b[k];
    ++n;
  }
  return n > 0 ? sum / n : std::numeric_limits<double>::quiet_NaN();
}

struct intent_rule {
  double threshold_above_mean_db;  // threshold over the band's long-term RMS level
  double ratio;                    // at amount 1
};

intent_rule rule_of(dynamics_intent i) {
  // The band's RMS over 30 ms windows of music sits mostly within a few dB of its long-term
  // mean; a threshold 8 dB above it touches only the loudest events, 2 dB above it most notes.
  switch (i) {
    case dynamics_intent::gentle:
      return {8.0, 1.5};
    case dynamics_intent::moderate:
      return {5.0, 2.0};
    case dynamics_intent::firm:
      return {2.0, 3.0};
  }
  return {8.0, 1.5};
}

// Long-term RMS level (dBFS, full-scale square = 0) of the mid in [lo_hz, hi_hz): the 1/3-octave
// bands whose centres fall inside, each 0.5 10^(dB/10) (their reference is a full-scale sine).
double band_level_dbfs(const tonal_analysis& t, double lo_hz, double hi_hz) {
  double power = 0.0;
  for (int k = 0; k < bands; ++k) {
    const double f = third_octave_centres_hz()[k];
    if (f >= lo_hz && f < hi_hz && std::isfinite(t.mid_db[k])) power += 0.5 * std::pow(10.0, t.mid_db[k] / 10.0);
  }
  return power > 0.0 ? 10.0 * std::log10(power) : -std::numeric_limits<double>::infinity();
}

}  // namespace

bool parse_dynamics_intent(const std::string& name, dynamics_intent& out) {
  if (name == "gentle") {
    out = dynamics_intent::gentle;
  } else if (name == "moderate") {
    out = dynamics_intent::moderate;
  } else if (name == "firm") {
    out = dynamics_intent::firm;
  } else {
    return false;
  }
  return true;
}

const char* to_string(dynamics_intent i) noexcept {
  switch (i) {
    case dynamics_intent::gentle:
      return "gentle";
    case dynamics_intent::moderate:
      return "moderate";
    case dynamics_intent::firm:
      return "firm";
  }
  return "?";
}

double adapted_target_lufs(double target_lufs, double input_lufs, double fraction) noexcept {
  if (!std::isfinite(input_lufs) || fraction >= 1.0) return target_lufs;
  return input_lufs + fraction * (target_lufs - input_lufs);
}

delivery_profile adapt_profile(const delivery_profile& p, const adaptation_input& in, nlohmann::json* report) {
  delivery_profile out = p;
  if (!p.adaptive.enabled) return out;
  LATHE_EXPECTS(in.tonal != nullptr, "adapt_profile needs the track's tonal analysis");
  const adaptive_params& a = p.adaptive;
  const tonal_analysis& t = *in.tonal;
  const double eq_amount = in.amounts.eq.value_or(a.eq);
  const double width_amount = in.amounts.width.value_or(a.width);
  const double dynamics_amount = in.amounts.dynamics.value_or(a.dynamics);
  const double loudness_amount = in.amounts.loudness.value_or(a.loudness);
  nlohmann::json r = {{"target", in.target ? nlohmann::json(in.target->name) : nlohmann::json(nullptr)},
                      {"amounts",
                       {{"eq", eq_amount},
                        {"width", width_amount},
                        {"dynamics", dynamics_amount},
                        {"loudness", loudness_amount},
                        {"album_consistency", in.album_mean ? a.album_consistency : 0.0}}},
                      {"input",
                       {{"tilt_db_per_octave", db_or_null(t.tilt_db_per_octave)},
                        {"low_end_db", db_or_null(t.low_end_db)},
                        {"high_end_db", db_or_null(t.high_end_db)},
                        {"crest_factor_db", db_or_null(t.crest_factor_db)}}}};
  if (in.target) r["input"]["target_deviation_db"] = db_or_null(target_deviation_db(t, *in.target));

  // ---- auto-EQ: toward the target by `eq`, and toward the album's balance by album_consistency
  // for what the target pull leaves (with eq 1 every track already lands on one curve).
  auto_eq_params q;
  q.amount = 1.0;
  q.max_gain_db = a.max_eq_db;
  std::array<double, bands> correction{};
  const double target_share = in.target ? eq_amount : 0.0;
  const double album_share = in.album_mean ? a.album_consistency * (1.0 - target_share) : 0.0;
  if (target_share > 0.0) {
    const auto c = auto_eq_correction_db(t, *in.target, q);
    for (int k = 0; k < bands; ++k) correction[k] += target_share * c[k];
  }
  if (album_share > 0.0) {
    const auto c = auto_eq_correction_db(t, *in.album_mean, q);
    for (int k = 0; k < bands; ++k) correction[k] += album_share * c[k];
  }
  std::vector<eq_curve_point> curve;
  nlohmann::json curve_json = nlohmann::json::object();
  for (int k = 0; k < bands; ++k) {
    const double g = std::clamp(correction[k], -a.max_eq_db, a.max_eq_db);
    if (!std::isfinite(g)) continue;
    curve.push_back({third_octave_centres_hz()[k], g});
    curve_json[third_octave_names()[k]] = rounded2(g);
  }
  const bool eq_acts =
      std::any_of(curve.begin(), curve.end(), [](const eq_curve_point& c) { return std::abs(c.gain_db) >= 0.01; });
  if (eq_acts) {
    out.eq.curve = std::move(curve);
    insert_stage(out, chain_stage::eq, {chain_stage::highpass});
    r["eq"] = {{"curve_db", curve_json}, {"toward_target", target_share}, {"toward_album", album_share}};
  }

  // ---- width: the side level toward the target's width (200 Hz .. 8 kHz, where width is heard).
  if (width_amount > 0.0 && in.target && in.target->has_width()) {
    const double diff = mean_difference(in.target->width_db, t.width_db, 200.0, 8'000.0);
    if (std::isfinite(diff)) {
      const double side_db = std::clamp(width_amount * diff, -6.0, 6.0);
      out.stereo.width = std::clamp(p.stereo.width * std::pow(10.0, side_db / 20.0), 0.0, 4.0);
      insert_stage(out, chain_stage::stereo,
                   {chain_stage::highpass, chain_stage::eq, chain_stage::deesser, chain_stage::multiband});
      r["width"] = {{"difference_to_target_db", rounded2(diff)},
                    {"side_gain_db", rounded2(side_db)},
                    {"width", rounded2(out.stereo.width)}};
    }
  }

  // ---- auto dynamics: thresholds from each band's measured level, ratios from the intent.
  if (dynamics_amount > 0.0) {
    std::vector<double> xs =
        in_chain(p, chain_stage::multiband)
            ? p.multiband.crossover.crossover_hz
            : std::vector<double>(std::begin(auto_dynamics_crossovers_hz), std::end(auto_dynamics_crossovers_hz));
    std::erase_if(xs, [&](double x) { return x >= 0.45 * t.sample_rate_hz; });
    if (xs.empty()) xs.push_back(std::min(120.0, 0.2 * t.sample_rate_hz));
    const intent_rule rule = rule_of(a.intent);
    out.multiband.crossover.crossover_hz = xs;
    out.multiband.bands.resize(xs.size() + 1);
    nlohmann::json bands_json = nlohmann::json::array();
    for (std::size_t k = 0; k <= xs.size(); ++k) {
      const double lo = k == 0 ? 0.0 : xs[k - 1];
      const double hi = k == xs.size() ? 1e9 : xs[k];
      compressor_params c = k < p.multiband.bands.size() && in_chain(p, chain_stage::multiband) ? p.multiband.bands[k]
                                                                                                : compressor_params{};
      const double level = band_level_dbfs(t, lo, hi);
      c.detector = level_detector::rms;
      c.detector_window_ms = 30.0;
      c.knee_db = 6.0;
      c.makeup_db = 0.0;
      c.link = stereo_link::linked;
      // Low bands move slowly (a fast gain on bass is distortion); high bands follow transients.
      const double centre = k == 0 ? hi / 2.0 : (k == xs.size() ? 2.0 * lo : std::sqrt(lo * hi));
      c.attack_ms = centre < 250.0 ? 30.0 : (centre < 4'000.0 ? 10.0 : 5.0);
      c.release_ms = centre < 250.0 ? 200.0 : (centre < 4'000.0 ? 120.0 : 80.0);
      if (std::isfinite(level)) {
        c.threshold_db = std::clamp(level + rule.threshold_above_mean_db, -80.0, 0.0);
        c.ratio = 1.0 + dynamics_amount * (rule.ratio - 1.0);
      } else {
        c.threshold_db = 0.0;  // an empty band: nothing to control
        c.ratio = 1.0;
      }
      out.multiband.bands[k] = c;
      bands_json.push_back({{"low_hz", lo},
                            {"high_hz", k == xs.size() ? nlohmann::json(nullptr) : nlohmann::json(hi)},
                            {"band_level_dbfs", db_or_null(level)},
                            {"threshold_db", rounded2(c.threshold_db)},
                            {"ratio", rounded2(c.ratio)},
                            {"attack_ms", c.attack_ms},
                            {"release_ms", c.release_ms}});
    }
    insert_stage(out, chain_stage::multiband, {chain_stage::highpass, chain_stage::eq, chain_stage::deesser});
    r["dynamics"] = {{"intent", to_string(a.intent)}, {"bands", bands_json}};
  }
  if (report != nullptr) *report = std::move(r);
  return out;
}

double tonal_spread_db(std::span<const tonal_analysis> tracks) {
  if (tracks.size() < 2) return 0.0;
  std::vector<std::array<double, bands>> norm;
  for (const tonal_analysis& t : tracks) norm.push_back(normalized_mid_db(t));
  double sum_sq = 0.0;
  for (const auto& n : norm) {
    double dev = 0.0;
    int used = 0;
    for (int k = 0; k < bands; ++k) {
      const double f = third_octave_centres_hz()[k];
      if (f < 40.0 || f > 16'000.0) continue;
      double mean = 0.0;
      bool finite = true;
      for (const auto& m : norm) {
        finite = finite && std::isfinite(m[k]);
        mean += m[k];
      }
      if (!finite) continue;
      mean /= static_cast<double>(norm.size());
      dev += (n[k] - mean) * (n[k] - mean);
      ++used;
    }
    sum_sq += used > 0 ? dev / used : 0.0;
  }
  return std::sqrt(sum_sq / static_cast<double>(norm.size()));
}

}  // namespace lathe
