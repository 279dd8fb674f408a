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
#include "lathe/stage_module.hpp"
#include "profile_reader.hpp"

namespace lathe {
namespace fs = std::filesystem;
using detail::fingerprint_text;
using detail::table_reader;

namespace {

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
  const auto listed = [&](chain_stage st) {
    return std::find(p.chain_order.begin(), p.chain_order.end(), st) != p.chain_order.end();
  };
  for_each_stage([&]<class M>(M) {
    // A stage configured but not in the order would silently do nothing: say so (the default
    // order's high-pass and EQ may be configured for a chain that leaves them out).
    const std::string name(M::name);
    if (M::kind != chain_stage::highpass && M::kind != chain_stage::eq && chain.find(name) && !listed(M::kind))
      chain.fail(chain.find(name)->source(),
                 "[chain." + name + "] is configured but `" + name + "` is not in `chain.order`");
    M::read(chain, M::of(p));
  });
  if (const toml::table* l = chain.sub_table("limiter")) {
    const table_reader r(*l, top.file(), "chain.limiter",
                         {"lookahead_ms", "release_ms", "margin_db", "max_reduction_db"});
    r.number("lookahead_ms", p.limiter.lookahead_ms, 0.5, 20.0);
    r.number("release_ms", p.limiter.release_ms, 5.0, 2'000.0);
    r.number("margin_db", p.limiter.margin_db, 0.0, 1.0);
    r.number("max_reduction_db", p.limiter.max_reduction_db, 1.0, 60.0);
  }
  if (listed(chain_stage::reverb) && p.reverb.ir_path.empty())
    chain.fail_here("`reverb` is in `chain.order` but [chain.reverb] names no `ir`");
  if (listed(chain_stage::multiband) && p.multiband.crossover.crossover_hz.empty())
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
  bool found = false;
  for_each_stage([&]<class M>(M) {
    if (name == M::name) {
      out = M::kind;
      found = true;
    }
  });
  return found;
}

const char* to_string(chain_stage s) noexcept {
  return visit_stage(s, []<class M>(M) { return M::name.data(); });
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
  for_each_stage([&]<class M>(M) { M::of(p) = M::of(fresh); });
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

std::string chain_fingerprint(const delivery_profile& p) {
  fingerprint_text f("lathe-chain-v1");
  for (const chain_stage st : p.chain_order)
    visit_stage(st, [&]<class M>(M) {
      f.text("stage", std::string(M::name));
      M::fingerprint(f, M::of(p));
    });
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
  f.num("limiter.max_reduction_db", p.limiter.max_reduction_db);
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
