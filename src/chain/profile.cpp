// Delivery profiles from TOML. Every key is checked against the schema so a typo is an error
// with its position, never a silently ignored setting.
#include "lathe/profile.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <string_view>
#include <system_error>

#include "lathe/error.hpp"
#include "lathe/master.hpp"

namespace lathe {
namespace fs = std::filesystem;

namespace {

std::string fmt_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

/// Reads one TOML table against its schema: the set of keys it may hold is declared up
/// front, and every value read is type- and range-checked with its source position.
class table_reader {
 public:
  table_reader(const toml::table& t, std::string file, std::string path, std::initializer_list<std::string_view> keys)
      : t_(t), file_(std::move(file)), path_(std::move(path)) {
    for (auto&& [k, v] : t_) {
      (void)v;
      if (std::find(keys.begin(), keys.end(), k.str()) == keys.end()) {
        std::string known;
        for (auto key : keys) known += (known.empty() ? "" : ", ") + std::string(key);
        fail(k.source(), (v.is_table() || v.is_array_of_tables() ? "unknown table `" : "unknown key `") +
                             qualified(k.str()) + "`; " + (path_.empty() ? "the top level" : "[" + path_ + "]") +
                             " takes " + known);
      }
    }
  }

  const toml::node* find(std::string_view key) const { return t_.get(key); }

  [[noreturn]] void fail(const toml::source_region& where, const std::string& why) const {
    throw config_error(file_ + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column) +
                       ": " + why);
  }
  [[noreturn]] void fail_here(const std::string& why) const { fail(t_.source(), why); }

  std::string qualified(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  /// `key` with its table path, in backticks.
  std::string ticked(std::string_view key) const {
    std::string s = "`";
    s += qualified(key);
    s += '`';
    return s;
  }

  /// A number (integer or float) in [lo, hi]; `out` unchanged when absent.
  bool number(std::string_view key, double& out, double lo, double hi) const {
    const toml::node* n = find(key);
    if (!n) return false;
    double v = 0;
    if (const auto* i = n->as_integer()) {
      v = static_cast<double>(i->get());
    } else if (const auto* f = n->as_floating_point()) {
      v = f->get();
    } else {
      fail(n->source(), ticked(key) + " must be a number from " + fmt_num(lo) + " to " + fmt_num(hi));
    }
    if (!(v >= lo && v <= hi)) {
      fail(n->source(),
           ticked(key) + " = " + fmt_num(v) + " is out of range; accepted: " + fmt_num(lo) + " to " + fmt_num(hi));
    }
    out = v;
    return true;
  }

  /// An integer; range and extra rules are checked by the caller via check().
  bool integer(std::string_view key, long long& out) const {
    const toml::node* n = find(key);
    if (!n) return false;
    const auto* i = n->as_integer();
    if (!i) fail(n->source(), ticked(key) + " must be a whole number");
    out = i->get();
    return true;
  }

  bool string(std::string_view key, std::string& out) const {
    const toml::node* n = find(key);
    if (!n) return false;
    const auto* s = n->as_string();
    if (!s) fail(n->source(), ticked(key) + " must be a string");
    out = s->get();
    return true;
  }

  void check(std::string_view key, bool ok, const std::string& accepted) const {
    if (ok) return;
    fail(find(key)->source(), ticked(key) + " is out of range; accepted: " + accepted);
  }

  const toml::table* sub_table(std::string_view key) const {
    const toml::node* n = find(key);
    if (!n) return nullptr;
    const auto* t = n->as_table();
    if (!t) fail(n->source(), ticked(key) + " must be a table ([" + qualified(key) + "])");
    return t;
  }

  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

 private:
  const toml::table& t_;
  std::string file_;
  std::string path_;
};

bool is_power_of_two(long long v) {
  return v > 0 && (v & (v - 1)) == 0;
}

void read_loudness(const table_reader& top, delivery_profile& p) {
  const toml::table* t = top.sub_table("loudness");
  if (!t) top.fail_here("missing [loudness] table; it needs target_lufs and ceiling_dbtp");
  const table_reader r(*t, top.file(), "loudness", {"target_lufs", "tolerance_lu", "ceiling_dbtp", "normalization"});
  if (!r.number("target_lufs", p.target_lufs, -40.0, 0.0)) r.fail_here("[loudness] needs target_lufs (-40 to 0)");
  if (r.find("tolerance_lu")) {
    r.number("tolerance_lu", p.tolerance_lu, 0.0, 5.0);
    r.check("tolerance_lu", p.tolerance_lu > 0.0, "greater than 0, at most 5");
  }
  if (!r.number("ceiling_dbtp", p.ceiling_dbtp, -20.0, 0.0)) r.fail_here("[loudness] needs ceiling_dbtp (-20 to 0)");
  if (std::string mode; r.string("normalization", mode)) {
    if (mode == "limit") {
      p.normalization = normalization_mode::limit;
    } else if (mode == "linear") {
      p.normalization = normalization_mode::linear;
    } else {
      r.check("normalization", false, "\"limit\" or \"linear\"");
    }
  }
}

void read_output(const table_reader& top, delivery_profile& p) {
  const toml::table* t = top.sub_table("output");
  if (!t) return;
  const table_reader r(*t, top.file(), "output",
                       {"sample_rate_hz", "min_sample_rate_hz", "bit_depth", "container", "noise_shaping"});
  if (const toml::node* n = r.find("sample_rate_hz")) {
    if (const auto* s = n->as_string()) {
      r.check("sample_rate_hz", s->get() == "source", "\"source\" or a rate from 8000 to 384000");
    } else {
      double rate = 0;
      r.number("sample_rate_hz", rate, 8'000.0, 384'000.0);
      r.check("sample_rate_hz", rate == std::floor(rate), "a whole number of Hz from 8000 to 384000");
      p.sample_rate_hz = rate;
    }
  }
  if (r.find("min_sample_rate_hz")) {
    r.number("min_sample_rate_hz", p.min_sample_rate_hz, 8'000.0, 384'000.0);
    r.check("min_sample_rate_hz", !p.sample_rate_hz.has_value(),
            "min_sample_rate_hz applies only with sample_rate_hz = \"source\"");
  }
  if (long long bits = 0; r.integer("bit_depth", bits)) {
    r.check("bit_depth", bits == 16 || bits == 24 || bits == 32, "16, 24 or 32 (32 = float, WAV only)");
    p.bit_depth = static_cast<int>(bits);
  }
  if (std::string c; r.string("container", c)) {
    r.check("container", parse_container(c, p.container), "\"flac\" or \"wav\"");
  }
  if (std::string s; r.string("noise_shaping", s)) {
    r.check("noise_shaping", parse_noise_shaping(s, p.shaping), "\"none\", \"first_order\" or \"f_weighted\"");
  }
  if (p.container == container_format::flac && p.bit_depth == 32) {
    r.fail(r.find(r.find("bit_depth") ? "bit_depth" : "container")->source(),
           "32-bit float output needs container = \"wav\"; FLAC holds 16- or 24-bit integers");
  }
  if (p.bit_depth == 32 && p.shaping != noise_shaping::none) {
    r.fail(r.find("noise_shaping")->source(),
           "noise_shaping applies only when bit_depth is 16 or 24 (32-bit float output is not dithered)");
  }
}

void read_eq(const table_reader& chain, eq_params& eq) {
  const toml::table* t = chain.sub_table("eq");
  if (!t) return;
  const table_reader r(*t, chain.file(), "chain.eq", {"fir_taps", "partition_frames", "band"});
  if (long long taps = 0; r.integer("fir_taps", taps)) {
    r.check("fir_taps", taps == 0 || (taps % 2 == 1 && taps >= 129 && taps <= 131'071),
            "0 (automatic) or an odd number from 129 to 131071");
    eq.fir_taps = static_cast<std::size_t>(taps);
  }
  if (long long part = 0; r.integer("partition_frames", part)) {
    r.check("partition_frames", is_power_of_two(part) && part >= 256 && part <= 65'536,
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

void read_multiband(const table_reader& chain, multiband_params& m) {
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

void read_chain(const table_reader& top, delivery_profile& p) {
  const toml::table* t = top.sub_table("chain");
  if (!t) return;
  const table_reader chain(
      *t, top.file(), "chain",
      {"order", "highpass", "eq", "limiter", "deesser", "multiband", "stereo", "saturation", "reverb"});
  if (const toml::node* order = chain.find("order")) {
    if (!order->is_array()) chain.fail(order->source(), "`chain.order` must be an array of stage names");
    p.chain_order.clear();
    for (const toml::node& n : *order->as_array()) {
      chain_stage st;
      const std::string name = n.value<std::string>().value_or("");
      if (!parse_chain_stage(name, st))
        chain.fail(n.source(),
                   "unknown stage `" + name +
                       "` in `chain.order`; stages: highpass, eq, deesser, multiband, stereo, saturation, reverb");
      if (std::find(p.chain_order.begin(), p.chain_order.end(), st) != p.chain_order.end())
        chain.fail(n.source(), "stage `" + name + "` is listed twice in `chain.order`");
      p.chain_order.push_back(st);
    }
  }
  // A stage configured but not in the order would silently do nothing: say so.
  for (const char* name : {"deesser", "multiband", "stereo", "saturation", "reverb"}) {
    chain_stage st;
    parse_chain_stage(name, st);
    if (chain.find(name) && std::find(p.chain_order.begin(), p.chain_order.end(), st) == p.chain_order.end())
      chain.fail(chain.find(name)->source(),
                 std::string("[chain.") + name + "] is configured but `" + name + "` is not in `chain.order`");
  }
  if (const toml::table* h = chain.sub_table("highpass")) {
    const table_reader r(*h, top.file(), "chain.highpass", {"cutoff_hz", "order"});
    if (r.find("cutoff_hz")) {
      r.number("cutoff_hz", p.highpass.cutoff_hz, 0.0, 200.0);
      r.check("cutoff_hz", p.highpass.cutoff_hz == 0.0 || p.highpass.cutoff_hz >= 5.0, "0 (off) or 5 to 200");
    }
    if (long long order = 0; r.integer("order", order)) {
      r.check("order", order >= 1 && order <= 8, "1 to 8");
      p.highpass.order = static_cast<int>(order);
    }
  }
  read_eq(chain, p.eq);
  if (const toml::table* l = chain.sub_table("limiter")) {
    const table_reader r(*l, top.file(), "chain.limiter", {"lookahead_ms", "release_ms", "margin_db"});
    r.number("lookahead_ms", p.limiter.lookahead_ms, 0.5, 20.0);
    r.number("release_ms", p.limiter.release_ms, 5.0, 2'000.0);
    r.number("margin_db", p.limiter.margin_db, 0.0, 1.0);
  }
  if (const toml::table* d = chain.sub_table("deesser")) {
    const table_reader r(*d, top.file(), "chain.deesser",
                         {"low_hz", "high_hz", "threshold_db", "ratio", "max_reduction_db", "attack_ms", "release_ms"});
    r.number("low_hz", p.deesser.low_hz, 1'000.0, 16'000.0);
    r.number("high_hz", p.deesser.high_hz, 1'500.0, 20'000.0);
    r.check("high_hz", p.deesser.high_hz > p.deesser.low_hz, "above low_hz");
    r.number("threshold_db", p.deesser.threshold_db, -80.0, 0.0);
    r.number("ratio", p.deesser.ratio, 1.0, 100.0);
    r.number("max_reduction_db", p.deesser.max_reduction_db, 0.0, 48.0);
    r.number("attack_ms", p.deesser.attack_ms, 0.01, 100.0);
    r.number("release_ms", p.deesser.release_ms, 1.0, 2'000.0);
  }
  read_multiband(chain, p.multiband);
  if (const toml::table* st = chain.sub_table("stereo")) {
    const table_reader r(*st, top.file(), "chain.stereo", {"width", "mid_gain_db", "bass_mono_below_hz"});
    r.number("width", p.stereo.width, 0.0, 4.0);
    r.number("mid_gain_db", p.stereo.mid_gain_db, -24.0, 24.0);
    r.number("bass_mono_below_hz", p.stereo.bass_mono_below_hz, 0.0, 500.0);
    r.check("bass_mono_below_hz", p.stereo.bass_mono_below_hz == 0.0 || p.stereo.bass_mono_below_hz >= 40.0,
            "0 (off) or 40 to 500");
  }
  if (const toml::table* sat = chain.sub_table("saturation")) {
    const table_reader r(*sat, top.file(), "chain.saturation", {"drive_db", "output_db", "mix"});
    r.number("drive_db", p.saturation.drive_db, -24.0, 36.0);
    r.number("output_db", p.saturation.output_db, -48.0, 24.0);
    r.number("mix", p.saturation.mix, 0.0, 1.0);
  }
  if (const toml::table* rv = chain.sub_table("reverb")) {
    const table_reader r(*rv, top.file(), "chain.reverb",
                         {"ir", "pre_delay_ms", "wet_db", "dry_db", "low_cut_hz", "high_cut_hz"});
    std::string ir;
    if (!r.string("ir", ir)) r.fail_here("[chain.reverb] needs `ir`, the impulse response file");
    fs::path path(ir);
    if (path.is_relative()) path = fs::path(top.file()).parent_path() / path;  // relative to the profile
    p.reverb.ir_path = path;
    r.number("pre_delay_ms", p.reverb.pre_delay_ms, 0.0, 1'000.0);
    r.number("wet_db", p.reverb.wet_db, -120.0, 12.0);
    r.number("dry_db", p.reverb.dry_db, -120.0, 12.0);
    r.number("low_cut_hz", p.reverb.low_cut_hz, 0.0, 2'000.0);
    r.number("high_cut_hz", p.reverb.high_cut_hz, 0.0, 20'000.0);
  }
  if (std::find(p.chain_order.begin(), p.chain_order.end(), chain_stage::reverb) != p.chain_order.end() &&
      p.reverb.ir_path.empty())
    chain.fail_here("`reverb` is in `chain.order` but [chain.reverb] names no `ir`");
  if (std::find(p.chain_order.begin(), p.chain_order.end(), chain_stage::multiband) != p.chain_order.end() &&
      p.multiband.crossover.crossover_hz.empty())
    chain.fail_here("`multiband` is in `chain.order` but [chain.multiband] sets no `crossovers_hz`");
}

// [adaptive]: amounts in percent, the target curve by name (configs/targets/NAME.toml, found
// beside the file or one folder up) or by path (relative to the file).
void read_adaptive(const table_reader& top, adaptive_params& a) {
  const toml::table* t = top.sub_table("adaptive");
  if (!t) return;
  const table_reader r(
      *t, top.file(), "adaptive",
      {"target", "eq", "width", "dynamics", "loudness", "max_eq_db", "album_consistency", "dynamics_intent"});
  a = adaptive_params{};
  a.enabled = true;
  auto percent = [&](std::string_view key, double& out) {
    double v = out * 100.0;
    if (r.number(key, v, 0.0, 100.0)) out = v / 100.0;
  };
  percent("eq", a.eq);
  percent("width", a.width);
  percent("dynamics", a.dynamics);
  percent("loudness", a.loudness);
  percent("album_consistency", a.album_consistency);
  r.number("max_eq_db", a.max_eq_db, 0.5, 12.0);
  if (std::string intent; r.string("dynamics_intent", intent)) {
    if (!parse_dynamics_intent(intent, a.intent))
      r.fail(r.find("dynamics_intent")->source(),
             "`adaptive.dynamics_intent` = \"" + intent + "\" is unknown; use gentle, moderate or firm");
  }
  if (r.string("target", a.target) && !a.target.empty()) {
    const fs::path dir = fs::path(top.file()).parent_path();
    std::vector<fs::path> tried;
    if (fs::path(a.target).extension() == ".toml") {
      tried.push_back(fs::path(a.target).is_absolute() ? fs::path(a.target) : dir / a.target);
    } else {
      tried.push_back(dir / "targets" / (a.target + ".toml"));
      tried.push_back(dir.parent_path() / "targets" / (a.target + ".toml"));
    }
    std::error_code ec;
    for (const fs::path& f : tried)
      if (fs::is_regular_file(f, ec)) {
        a.target_file = f;
        break;
      }
    if (a.target_file.empty()) {
      std::string where;
      for (const fs::path& f : tried) where += (where.empty() ? "" : " or ") + f.string();
      r.fail(r.find("target")->source(),
             "`adaptive.target` = \"" + a.target + "\": no such target curve (" + where + ")");
    }
  }
}

}  // namespace

delivery_profile load_profile(const fs::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    throw config_error(name + ": " + (fs::exists(file, ec) ? "is not a regular file" : "does not exist") +
                       "; a profile is a .toml file (see configs/)");
  }
  toml::table doc;
  try {
    doc = toml::parse_file(name);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw config_error(name + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                       std::string(e.description()));
  }
  delivery_profile p;
  p.file = file;
  p.name = file.stem().string();
  const table_reader top(doc, name, "", {"name", "description", "source", "loudness", "output", "chain", "adaptive"});
  top.string("name", p.name);
  if (p.name.empty() || p.name[0] == '.' || p.name.find_first_of("/\\") != std::string::npos) {
    top.fail(top.find("name") ? top.find("name")->source() : doc.source(),
             "profile name \"" + p.name +
                 "\" must be non-empty, not start with '.', and hold no '/' or '\\' "
                 "(it names output folders)");
  }
  top.string("description", p.description);
  top.string("source", p.source);
  read_loudness(top, p);
  read_output(top, p);
  read_chain(top, p);
  read_adaptive(top, p.adaptive);
  p.limiter.ceiling_dbtp = p.ceiling_dbtp;
  return p;
}

bool parse_chain_stage(const std::string& name, chain_stage& out) {
  static const std::pair<const char*, chain_stage> names[] = {
      {"highpass", chain_stage::highpass},   {"eq", chain_stage::eq},         {"deesser", chain_stage::deesser},
      {"multiband", chain_stage::multiband}, {"stereo", chain_stage::stereo}, {"saturation", chain_stage::saturation},
      {"reverb", chain_stage::reverb}};
  for (const auto& [n, s] : names)
    if (name == n) {
      out = s;
      return true;
    }
  return false;
}

const char* to_string(chain_stage s) noexcept {
  switch (s) {
    case chain_stage::highpass:
      return "highpass";
    case chain_stage::eq:
      return "eq";
    case chain_stage::deesser:
      return "deesser";
    case chain_stage::multiband:
      return "multiband";
    case chain_stage::stereo:
      return "stereo";
    case chain_stage::saturation:
      return "saturation";
    case chain_stage::reverb:
      return "reverb";
  }
  return "?";
}

void apply_chain_preset(const fs::path& file, delivery_profile& p) {
  toml::table doc;
  try {
    doc = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw config_error(file.string() + ":" + std::to_string(e.source().begin.line) + ":" +
                       std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  const table_reader top(doc, file.string(), "", {"name", "description", "chain", "adaptive"});
  if (!top.sub_table("chain")) top.fail_here("a chain preset holds a [chain] table");
  delivery_profile fresh;  // the preset's chain replaces the profile's: start from the defaults
  fresh.limiter = p.limiter;
  read_chain(top, fresh);
  p.chain_order = fresh.chain_order;
  p.highpass = fresh.highpass;
  p.eq = fresh.eq;
  p.deesser = fresh.deesser;
  p.multiband = fresh.multiband;
  p.stereo = fresh.stereo;
  p.saturation = fresh.saturation;
  p.reverb = fresh.reverb;
  if (top.sub_table("adaptive")) read_adaptive(top, p.adaptive);
}

std::vector<delivery_profile> load_profiles_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw config_error(dir.string() + ": not a folder of profiles (*.toml)");
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& f = it->path();
    if (f.extension() == ".toml" && f.filename().string()[0] != '.' && it->is_regular_file()) files.push_back(f);
  }
  if (ec) throw config_error(dir.string() + ": cannot read the folder: " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<delivery_profile> out;
  std::map<std::string, fs::path> by_name;
  for (const fs::path& f : files) {
    delivery_profile p = load_profile(f);
    if (const auto [it, fresh] = by_name.emplace(p.name, f); !fresh) {
      throw config_error(f.string() + ": profile name \"" + p.name + "\" is already used by " + it->second.string() +
                         "; give each profile its own name");
    }
    out.push_back(std::move(p));
  }
  return out;
}

namespace {

// Stable "key=value;" text with doubles printed exactly (%.17g).
class fingerprint_text {
 public:
  explicit fingerprint_text(const char* tag) : s_(tag) {}
  void num(const char* key, double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    text(key, buf);
  }
  void text(const char* key, const std::string& v) {
    s_ += ';';
    s_ += key;
    s_ += '=';
    s_ += v;
  }
  std::string str() && { return std::move(s_); }

 private:
  std::string s_;
};

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

std::string chain_fingerprint(const delivery_profile& p) {
  fingerprint_text f("lathe-chain-v1");
  for (const chain_stage st : p.chain_order) {
    f.text("stage", to_string(st));
    switch (st) {
      case chain_stage::highpass:
        f.num("cutoff_hz", p.highpass.cutoff_hz);
        f.num("order", p.highpass.order);
        f.num("dc_cutoff_hz", p.highpass.dc_cutoff_hz);
        break;
      case chain_stage::eq:
        f.num("fir_taps", static_cast<double>(p.eq.fir_taps));
        f.num("partition_frames", static_cast<double>(p.eq.partition_frames));
        for (const eq_band& b : p.eq.bands) {
          f.text("band", to_string(b.type));
          f.num("freq_hz", b.freq_hz);
          f.num("gain_db", b.gain_db);
          f.num("q", b.q);
        }
        // Only when present, so the fingerprints of profiles without a curve stay as they were.
        for (const eq_curve_point& c : p.eq.curve) {
          f.num("curve_freq_hz", c.freq_hz);
          f.num("curve_gain_db", c.gain_db);
        }
        break;
      case chain_stage::deesser:
        f.num("low_hz", p.deesser.low_hz);
        f.num("high_hz", p.deesser.high_hz);
        f.num("threshold_db", p.deesser.threshold_db);
        f.num("ratio", p.deesser.ratio);
        f.num("max_reduction_db", p.deesser.max_reduction_db);
        f.num("attack_ms", p.deesser.attack_ms);
        f.num("release_ms", p.deesser.release_ms);
        f.num("detector_rms_ms", p.deesser.detector_rms_ms);
        break;
      case chain_stage::multiband:
        for (double x : p.multiband.crossover.crossover_hz) f.num("crossover_hz", x);
        f.num("fir_taps", static_cast<double>(p.multiband.crossover.fir_taps));
        f.num("partition_frames", static_cast<double>(p.multiband.crossover.partition_frames));
        f.num("dry_wet", p.multiband.dry_wet);
        f.num("output_gain_db", p.multiband.output_gain_db);
        for (const compressor_params& c : p.multiband.bands) add_compressor(f, c);
        break;
      case chain_stage::stereo:
        f.num("width", p.stereo.width);
        f.num("mid_gain_db", p.stereo.mid_gain_db);
        f.num("bass_mono_below_hz", p.stereo.bass_mono_below_hz);
        break;
      case chain_stage::saturation:
        f.num("drive_db", p.saturation.drive_db);
        f.num("output_db", p.saturation.output_db);
        f.num("mix", p.saturation.mix);
        f.num("oversampling", p.saturation.oversampling);
        break;
      case chain_stage::reverb: {
        // The IR file's identity too: a changed IR changes the masters.
        std::error_code ec;
        f.text("ir", p.reverb.ir_path.string());
        f.num("ir_bytes", static_cast<double>(fs::file_size(p.reverb.ir_path, ec)));
        f.num("pre_delay_ms", p.reverb.pre_delay_ms);
        f.num("wet_db", p.reverb.wet_db);
        f.num("dry_db", p.reverb.dry_db);
        f.num("low_cut_hz", p.reverb.low_cut_hz);
        f.num("high_cut_hz", p.reverb.high_cut_hz);
        break;
      }
    }
  }
  return std::move(f).str();
}

std::string profile_fingerprint(const delivery_profile& p) {
  fingerprint_text f("lathe-profile-v1");
  f.num("target_lufs", p.target_lufs);
  f.num("ceiling_dbtp", p.ceiling_dbtp);
  f.text("normalization", p.normalization == normalization_mode::limit ? "limit" : "linear");
  if (p.sample_rate_hz) {
    f.num("sample_rate_hz", *p.sample_rate_hz);
  } else {
    f.text("sample_rate_hz", "source");
    f.num("min_sample_rate_hz", p.min_sample_rate_hz);
  }
  f.num("bit_depth", p.bit_depth);
  f.text("container", to_string(p.container));
  f.text("noise_shaping", to_string(p.shaping));
  f.text("chain", chain_fingerprint(p));
  f.num("limiter.ceiling_dbtp", p.limiter.ceiling_dbtp);
  f.num("limiter.lookahead_ms", p.limiter.lookahead_ms);
  f.num("limiter.release_ms", p.limiter.release_ms);
  f.num("limiter.margin_db", p.limiter.margin_db);
  if (const adaptive_params& a = p.adaptive; a.enabled) {
    f.num("adaptive.eq", a.eq);
    f.num("adaptive.width", a.width);
    f.num("adaptive.dynamics", a.dynamics);
    f.num("adaptive.loudness", a.loudness);
    f.num("adaptive.max_eq_db", a.max_eq_db);
    f.num("adaptive.album_consistency", a.album_consistency);
    f.text("adaptive.dynamics_intent", to_string(a.intent));
    f.text("adaptive.reference", a.reference);
    // The target's content, not only its name: an edited curve changes the masters.
    std::string curve;
    if (!a.target_file.empty()) {
      std::ifstream in(a.target_file, std::ios::binary);
      curve.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    f.text("adaptive.target", a.target_file.string());
    f.num("adaptive.target_hash", static_cast<double>(fnv1a64(curve) >> 11));
  }
  return std::move(f).str();
}

}  // namespace lathe
