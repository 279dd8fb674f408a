// Delivery profiles from TOML. Every key is checked against the schema so a typo is an error
// with its position, never a silently ignored setting.
#include "lathe/profile.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <string_view>
#include <system_error>

#include "lathe/error.hpp"

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

void read_chain(const table_reader& top, delivery_profile& p) {
  const toml::table* t = top.sub_table("chain");
  if (!t) return;
  const table_reader chain(*t, top.file(), "chain", {"highpass", "eq", "limiter"});
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
  const table_reader top(doc, name, "", {"name", "description", "source", "loudness", "output", "chain"});
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
  p.limiter.ceiling_dbtp = p.ceiling_dbtp;
  return p;
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

std::string profile_fingerprint(const delivery_profile& p) {
  std::string s = "lathe-profile-v1";
  auto num = [&](const char* key, double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    s += ';';
    s += key;
    s += '=';
    s += buf;
  };
  auto text = [&](const char* key, const std::string& v) {
    s += ';';
    s += key;
    s += '=';
    s += v;
  };
  num("target_lufs", p.target_lufs);
  num("ceiling_dbtp", p.ceiling_dbtp);
  text("normalization", p.normalization == normalization_mode::limit ? "limit" : "linear");
  if (p.sample_rate_hz) {
    num("sample_rate_hz", *p.sample_rate_hz);
  } else {
    text("sample_rate_hz", "source");
    num("min_sample_rate_hz", p.min_sample_rate_hz);
  }
  num("bit_depth", p.bit_depth);
  text("container", to_string(p.container));
  text("noise_shaping", to_string(p.shaping));
  num("highpass.cutoff_hz", p.highpass.cutoff_hz);
  num("highpass.order", p.highpass.order);
  num("highpass.dc_cutoff_hz", p.highpass.dc_cutoff_hz);
  num("eq.fir_taps", static_cast<double>(p.eq.fir_taps));
  num("eq.partition_frames", static_cast<double>(p.eq.partition_frames));
  for (const eq_band& b : p.eq.bands) {
    text("eq.band.type", to_string(b.type));
    num("freq_hz", b.freq_hz);
    num("gain_db", b.gain_db);
    num("q", b.q);
  }
  num("limiter.ceiling_dbtp", p.limiter.ceiling_dbtp);
  num("limiter.lookahead_ms", p.limiter.lookahead_ms);
  num("limiter.release_ms", p.limiter.release_ms);
  num("limiter.margin_db", p.limiter.margin_db);
  return s;
}

}  // namespace lathe
