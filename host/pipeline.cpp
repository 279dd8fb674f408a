#include "pipeline.hpp"

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <nlohmann/json.hpp>

#include "adaptive_targets.hpp"
#include "album_decisions.hpp"
#include "lathe/error.hpp"
#include "lathe/master.hpp"
#include "render_graph.hpp"
#include "resume.hpp"
#include "run_report.hpp"
#include "track_state.hpp"

namespace lathe {

using nlohmann::json;

std::size_t parse_size(const std::string& text) {
  std::size_t pos = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw config_error(fmt::format("--max-memory: '{}' is not a size (examples: 512M, 4G, 1.5GiB)", text));
  }
  std::string unit = text.substr(pos);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  double mult = 1.0;
  if (unit.empty() || unit == "B")
    mult = 1.0;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mult = 1024.0 * 1024.0;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mult = 1024.0 * 1024.0 * 1024.0;
  else if (unit == "T" || unit == "TB" || unit == "TIB")
    mult = 1024.0 * 1024.0 * 1024.0 * 1024.0;
  else
    throw config_error(fmt::format("--max-memory: unknown unit '{}' in '{}' (use K, M, G or T)", unit, text));
  if (!(value > 0.0)) throw config_error(fmt::format("--max-memory: '{}' must be positive", text));
  return static_cast<std::size_t>(value * mult);
}

std::size_t estimate_track_bytes(const planned_track& t, const run_plan& plan) {
  if (!t.info) return 0;
  const double in_rate = t.info->sample_rate_hz;
  const double channel_bytes = static_cast<double>(t.info->frames) * sizeof(float);
  const double stereo = 2.0 * channel_bytes;
  std::map<std::string, int> prechains;
  double formats = 0.0;
  for (const delivery_profile& p : plan.profiles) {
    prechains[prechain_key(p)] = 1;
    // resampled copy, limiter output, delivered copy, integer PCM, limiter envelope, meter scratch
    formats += (p.output_rate_hz(in_rate) / in_rate) * (4.0 * stereo + 2.0 * channel_bytes);
  }
  const double decoded = stereo * (1.0 + static_cast<double>(prechains.size()));
  return static_cast<std::size_t>(decoded + formats);
}

namespace {

std::size_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : (8ull << 30);
}

}  // namespace

// The run: plan (fingerprints) -> where the last run left off -> adaptive targets -> album
// passes and decisions -> render graph -> report.
master_summary run_master(const run_plan& planned, const master_options& opt) {
  const double t0 = now_s();
  const int threads = opt.jobs > 0 ? opt.jobs : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  const run_plan plan = fingerprint_plan(planned, opt.out_dir / ".lathe" / "state" / "inputs");
  const std::size_t budget = opt.max_memory_bytes > 0 ? opt.max_memory_bytes : physical_memory_bytes() / 2;

  clear_interrupted_work(opt.out_dir);
  double audio_to_do_s = 0.0;
  std::vector<track_state> state = initial_state(plan, opt.out_dir, audio_to_do_s);
  adaptive_targets targets(plan, opt.reference_file);
  restore_track_records(plan, state, opt.out_dir, targets);

  render_graph graph(plan, opt, state, targets, budget, threads);
  // Album consistency: every album track's analysis, then each album's balance.
  if (targets.album_balance_needed()) {
    graph.analyze_album_tracks();
    targets.set_album_balances(state);
  }
  // Album mode, window by window: the loudness of the album tracks after the pre-chain, the
  // album gains, then the render.
  json album_reports = json::object();
  graph.begin_render(audio_to_do_s);
  for (const render_window& window : graph.windows()) {
    graph.measure_album_prechains(window);
    album_reports.update(decide_albums(plan, state, opt.out_dir, window.albums));
    graph.render(window);
  }
  graph.end_render();
  return write_run_report(plan, state, std::move(album_reports), opt,
                          {t0, threads, budget, graph.peak_reserved_bytes()});
}

}  // namespace lathe
