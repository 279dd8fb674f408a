#include "cli.hpp"

#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "backend.hpp"
#include "content_hash.hpp"
#include "lathe/analysis.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/catalog.hpp"
#include "lathe/error.hpp"
#include "lathe/profile.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "report.hpp"
#include "shard_cli.hpp"

namespace lathe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Shipped profiles: $LATHE_CONFIG_DIR, then <prefix>/share/lathe/configs beside the installed
// binary, then the source tree's configs/ (a build that was never installed).
fs::path find_config_dir(const std::string& override_dir) {
  if (!override_dir.empty()) return override_dir;
  if (const char* env = std::getenv("LATHE_CONFIG_DIR"); env && *env) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "lathe" / "configs";
    if (fs::is_directory(installed, ec)) return installed;
  }
  return LATHE_CONFIG_DIR;
}

std::vector<delivery_profile> load_all_profiles(const std::string& config_dir, const std::vector<std::string>& extra) {
  std::vector<delivery_profile> all = load_profiles_dir(find_config_dir(config_dir));
  for (const std::string& file : extra) {
    delivery_profile p = load_profile(file);
    // A user's profile of the same name replaces the shipped one.
    auto same = std::find_if(all.begin(), all.end(), [&](const delivery_profile& q) { return q.name == p.name; });
    if (same != all.end())
      *same = std::move(p);
    else
      all.push_back(std::move(p));
  }
  return all;
}

std::vector<delivery_profile> select_formats(std::vector<delivery_profile> all, const std::string& formats,
                                             const std::vector<std::string>& extra_files) {
  if (formats.empty()) {
    if (extra_files.empty()) return all;
    // Only --profile files given: deliver those.
    std::vector<delivery_profile> chosen;
    for (const std::string& f : extra_files) {
      const delivery_profile p = load_profile(f);
      chosen.push_back(
          *std::find_if(all.begin(), all.end(), [&](const delivery_profile& q) { return q.name == p.name; }));
    }
    return chosen;
  }
  std::vector<delivery_profile> chosen;
  std::size_t start = 0;
  while (start <= formats.size()) {
    const std::size_t comma = std::min(formats.find(',', start), formats.size());
    std::string name = formats.substr(start, comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    start = comma + 1;
    if (name.empty()) continue;
    auto it = std::find_if(all.begin(), all.end(), [&](const delivery_profile& p) { return p.name == name; });
    if (it == all.end()) {
      std::string known;
      for (const delivery_profile& p : all) known += (known.empty() ? "" : ", ") + p.name;
      throw config_error(fmt::format(
          "--formats: no profile named '{}' (known: {}; add your own with --profile FILE.toml)", name, known));
    }
    if (std::none_of(chosen.begin(), chosen.end(), [&](const delivery_profile& p) { return p.name == name; }))
      chosen.push_back(*it);
  }
  if (chosen.empty()) throw config_error("--formats: no format named");
  return chosen;
}

std::string describe_rate(const delivery_profile& p) {
  if (p.sample_rate_hz) return fmt::format("{:g} kHz", *p.sample_rate_hz / 1000.0);
  if (p.min_sample_rate_hz > 0) return fmt::format("source (>= {:g} kHz)", p.min_sample_rate_hz / 1000.0);
  return "source";
}

int run_formats(const std::string& config_dir, const std::vector<std::string>& extra, bool as_json) {
  const auto all = load_all_profiles(config_dir, extra);
  if (as_json) {
    json j = json::array();
    for (const auto& p : all) j.push_back(to_json(p));
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%-12s %9s %9s %8s %-20s %5s %-5s  %s\n", "format", "target", "ceiling", "mode", "rate", "bits", "file",
              "source of the figures");
  for (const auto& p : all) {
    std::printf("%-12s %6.1f LUFS %5.1f dBTP %-8s %-20s %5d %-5s  %s\n", p.name.c_str(), p.target_lufs, p.ceiling_dbtp,
                p.normalization == normalization_mode::linear ? "linear" : "limit", describe_rate(p).c_str(),
                p.bit_depth, to_string(p.container), p.source.c_str());
  }
  return 0;
}

bool is_audio_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto& exts = audio_extensions();
  return std::find(exts.begin(), exts.end(), ext) != exts.end();
}

int run_analyze(const std::vector<std::string>& inputs, bool as_json, int jobs) {
  std::vector<fs::path> files;
  for (const std::string& in : inputs) {
    const fs::path p(in);
    if (fs::is_regular_file(p) && is_audio_file(p)) {
      files.push_back(p);
    } else {
      for (const catalog_entry& e : load_catalog(p)) files.push_back(e.path);
    }
  }
  std::vector<json> results(files.size());
  std::optional<tbb::global_control> limit;
  if (jobs > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(jobs));
  tbb::parallel_for(std::size_t{0}, files.size(), [&](std::size_t i) {
    json j = {{"path", files[i].string()}};
    try {
      const decoded_track d = decode_file(files[i]);
      j["source"] = to_json(d.info);
      j["analysis"] = to_json(analyze(d.audio, d.info.sample_rate_hz));
      j["status"] = "ok";
    } catch (const input_error& e) {
      j["status"] = "failed";
      j["error"] = e.reason();
    }
    results[i] = std::move(j);
  });
  int failed = 0;
  for (const json& j : results) failed += j["status"] == "failed";
  if (as_json) {
    std::printf("%s\n", json(results).dump(2).c_str());
  } else {
    std::printf("%9s %7s %8s %8s %7s %8s  %s\n", "LUFS", "LRA", "dBTP", "PLR", "DC dB", "clipped", "file");
    for (const json& j : results) {
      if (j["status"] == "failed") {
        std::printf("%-50s  %s: %s\n", "FAILED", j["path"].get<std::string>().c_str(),
                    j["error"].get<std::string>().c_str());
        continue;
      }
      const json& a = j["analysis"];
      auto num = [](const json& v) {
        return v.is_number() ? fmt::format("{:.1f}", v.get<double>()) : std::string("-inf");
      };
      std::printf("%9s %7s %8s %8s %7s %8zu  %s\n", num(a["integrated_lufs"]).c_str(),
                  num(a["loudness_range_lu"]).c_str(), num(a["true_peak_dbtp"]).c_str(), num(a["plr_db"]).c_str(),
                  num(a["dc_offset_dbfs"]).c_str(), a["clipped_samples"].get<std::size_t>(),
                  j["path"].get<std::string>().c_str());
    }
  }
  return failed > 0 ? 2 : 0;
}

struct master_args {
  std::string catalog, out, formats, backend = "auto", max_memory, log_format, config_dir, chain, target, reference;
  std::vector<std::string> profiles;
  int jobs = 0;
  int gpus = 0;
  bool track_mode = false;
  std::string shard;
  int shard_count = 0;
};

int run_master_command(const master_args& a) {
  backend_kind requested;
  if (!parse_backend(a.backend, requested))
    throw config_error("--backend: expected cpu, gpu or auto, got '" + a.backend + "'");
  master_options opt;
  opt.backend = choose_backend(requested);
  opt.out_dir = a.out;
  opt.jobs = a.jobs;
  opt.gpus = a.gpus;
  opt.catalog = a.catalog;
  if (!a.max_memory.empty()) opt.max_memory_bytes = parse_size(a.max_memory);
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (a.log_format == "json")
    opt.log = log_format::json;
  else if (a.log_format == "text" || a.log_format.empty())
    opt.log = log_format::text;
  else
    throw config_error("--log-format: expected text or json, got '" + a.log_format + "'");
  if (a.log_format.empty() && !tty) opt.log = log_format::json;
  opt.progress_on_terminal = tty;

  auto formats = select_formats(load_all_profiles(a.config_dir, a.profiles), a.formats, a.profiles);
  if (!a.chain.empty()) {
    // A preset name (configs/chains/NAME.toml) or a file: replaces every format's chain.
    fs::path file(a.chain);
    if (!fs::exists(file)) file = find_config_dir(a.config_dir) / "chains" / (a.chain + ".toml");
    if (!fs::exists(file))
      throw config_error(fmt::format("--chain: '{}' is neither a file nor a preset in {}", a.chain,
                                     (find_config_dir(a.config_dir) / "chains").string()));
    for (delivery_profile& p : formats) apply_chain_preset(file, p);
  }
  // --target / --reference: every format is pulled toward that curve; a format without an
  // [adaptive] table gets one with the auto-EQ fully on (the other amounts off).
  auto make_adaptive = [&](delivery_profile& p) {
    if (p.adaptive.enabled) return;
    p.adaptive = adaptive_params{};
    p.adaptive.enabled = true;
    p.adaptive.eq = 1.0;
  };
  if (!a.target.empty()) {
    fs::path file(a.target);
    if (!fs::exists(file)) file = find_config_dir(a.config_dir) / "targets" / (a.target + ".toml");
    if (!fs::exists(file))
      throw config_error(fmt::format("--target: '{}' is neither a file nor a target curve in {}", a.target,
                                     (find_config_dir(a.config_dir) / "targets").string()));
    (void)load_target_curve(file);  // a bad curve fails now, naming its line
    for (delivery_profile& p : formats) {
      make_adaptive(p);
      p.adaptive.target = a.target;
      p.adaptive.target_file = file;
    }
  }
  if (!a.reference.empty()) {
    if (!fs::is_regular_file(a.reference)) throw config_error(fmt::format("--reference {}: no such file", a.reference));
    opt.reference_file = a.reference;
    for (delivery_profile& p : formats) {
      make_adaptive(p);
      p.adaptive.reference = content_hash(a.reference);
    }
  }
  if (!fs::exists(a.catalog)) throw config_error(fmt::format("{}: no such file or folder", a.catalog));
  const fs::path out = fs::absolute(a.out).lexically_normal();
  const fs::path cat = fs::absolute(a.catalog).lexically_normal();
  if (fs::is_directory(cat) && (out == cat || out.string().rfind(cat.string() + "/", 0) == 0))
    throw config_error(
        fmt::format("--out {} lies inside the catalog folder {}; choose a folder outside it so masters are "
                    "never read back as inputs",
                    out.string(), cat.string()));
  auto entries = load_catalog(a.catalog);
  const master_shard shard = shard_for_master(
      make_plan(std::move(entries), std::move(formats), a.track_mode ? album_mode::track : album_mode::album), a.shard,
      a.shard_count, process_environment());
  const run_plan& plan = shard.plan;
  opt.report_name = shard.report_name;
  if (shard.spec)
    std::fprintf(stderr, "lathe: shard %d/%d (from %s)\n", shard.spec->index, shard.spec->count, shard.source.c_str());
  std::fprintf(stderr, "lathe %s: %zu tracks, %zu albums, formats:", LATHE_VERSION, plan.tracks.size(),
               plan.albums.size());
  for (const auto& p : plan.profiles) std::fprintf(stderr, " %s", p.name.c_str());
  std::fprintf(stderr, "; %s\n", opt.backend.reason.c_str());

  const master_summary s = run_master(plan, opt);
  finish_shard_report(out, shard);
  std::printf(
      "%zu tracks: %zu mastered, %zu resumed, %zu failed, %zu outside their profile's checks; %.2f h of audio in %.1f "
      "s "
      "(%.1fx realtime)\nmasters: %s/<format>/\nreport:  %s\n",
      s.tracks, s.succeeded, s.resumed, s.failed, s.qc_failed, s.audio_s / 3600.0, s.wall_s,
      s.wall_s > 0 ? s.audio_s / s.wall_s : 0.0, out.string().c_str(), (out / opt.report_name).string().c_str());
  return s.failed > 0 ? 2 : 0;
}

}  // namespace

int cli_main(int argc, char** argv) {
  CLI::App app{"lathe: batch mastering of whole catalogs to per-format master sets"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("lathe ") + LATHE_VERSION);

  master_args m;
  CLI::App* master = app.add_subcommand("master", "Master a catalog (folder or CSV manifest) to every chosen format");
  master
      ->add_option("catalog", m.catalog,
                   "Folder searched recursively for audio, or a CSV manifest (columns: path, album, artist, title, "
                   "track_number, isrc, eq_amount, width_amount, dynamics_amount, loudness_amount, reference)")
      ->required();
  master->add_option("--out,-o", m.out, "Output folder: <out>/<format>/<album>/<NN - title>.<ext> and report.json")
      ->required();
  master->add_option("--formats,-f", m.formats,
                     "Comma-separated profile names (default: every profile); see `lathe formats`");
  master->add_option("--profile,-p", m.profiles,
                     "Extra profile TOML file (repeatable); replaces a shipped profile of the same name");
  master->add_option("--backend", m.backend, "cpu, gpu or auto (default auto: GPU when one is usable)");
  master->add_option("--jobs,-j", m.jobs, "Worker threads (default: every core)")->check(CLI::NonNegativeNumber);
  master
      ->add_option("--gpus", m.gpus,
                   "GPUs the GPU backend uses, one engine per worker thread (default: every visible GPU)")
      ->check(CLI::NonNegativeNumber);
  master->add_option("--max-memory", m.max_memory, "Bound on audio held in memory, e.g. 4G (default: half of RAM)");
  master->add_option("--chain", m.chain,
                     "Chain preset (transparent, gentle-glue, loud-modern, vinyl-premaster, or a TOML file) replacing "
                     "every format's chain before loudness normalization");
  master->add_flag("--track-mode", m.track_mode,
                   "Normalize each track alone (default: album mode for tracks sharing an album)");
  master->add_option("--log-format", m.log_format,
                     "text (progress line) or json (one line per track; the default when stderr is not a terminal)");
  master->add_option("--target", m.target,
                     "Target tonal balance for the adaptive chain: a curve in configs/targets (e.g. warzone2100) or a "
                     "TOML file");
  master->add_option("--reference", m.reference,
                     "A reference master: its tonal balance (and width) becomes the target of every track; a manifest "
                     "`reference` column sets one per album");
  master->add_option("--config-dir", m.config_dir,
                     "Folder of shipped profiles (default: $LATHE_CONFIG_DIR or the installed configs)");
  add_shard_options(*master, m.shard, m.shard_count);

  std::vector<std::string> analyze_inputs;
  bool analyze_json = false;
  int analyze_jobs = 0;
  CLI::App* analyze_cmd = app.add_subcommand(
      "analyze", "Measure files or catalogs without writing audio (loudness, LRA, true peak, PLR, DC, clipping)");
  analyze_cmd->add_option("inputs", analyze_inputs, "Audio files, folders or CSV manifests")->required();
  analyze_cmd->add_flag("--json", analyze_json, "Print JSON instead of a table");
  analyze_cmd->add_option("--jobs,-j", analyze_jobs, "Worker threads (default: every core)");

  bool formats_json = false;
  std::string formats_config_dir;
  std::vector<std::string> formats_profiles;
  CLI::App* formats_cmd = app.add_subcommand("formats", "List the delivery profiles and their targets");
  formats_cmd->add_flag("--json", formats_json, "Print JSON");
  formats_cmd->add_option("--profile,-p", formats_profiles, "Extra profile TOML file (repeatable)");
  formats_cmd->add_option("--config-dir", formats_config_dir, "Folder of shipped profiles");

  shard_commands shard_cmds;
  add_shard_commands(app, shard_cmds);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  try {
    if (*master) return run_master_command(m);
    if (*analyze_cmd) return run_analyze(analyze_inputs, analyze_json, analyze_jobs);
    if (*formats_cmd) return run_formats(formats_config_dir, formats_profiles, formats_json);
    if (*shard_cmds.plan_cmd) {
      const plan_args& p = shard_cmds.plan;
      return run_plan_command(p, select_formats(load_all_profiles(p.config_dir, p.profiles), p.formats, p.profiles));
    }
    if (*shard_cmds.merge_cmd) return run_report_merge_command(shard_cmds.merge_dir);
  } catch (const config_error& e) {
    std::fprintf(stderr, "lathe: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe: %s\n", e.what());
    return 1;
  }
  return 1;
}

}  // namespace lathe
