#pragma once
// The run's deliverables about the catalog: report.json (every track, album and format) and
// the mix notes for the people who made the mixes (notes/).
#include <cstddef>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline.hpp"
#include "plan.hpp"
#include "track_state.hpp"

namespace lathe {

/// What the report says about the run itself.
struct run_facts {
  double started_s = 0.0;  ///< now_s() when the run began
  int threads = 0;
  std::size_t max_memory_bytes = 0;
  std::size_t peak_reserved_bytes = 0;  ///< the memory gate's high-water mark
};

/// Writes opt.report_name in opt.out_dir and the mix notes from every track's state (tracks
/// finished in earlier runs included, from their records), with `album_reports`
/// (decide_albums) completed by the album figures; returns the counts.
master_summary write_run_report(const run_plan& plan, const std::vector<track_state>& state,
                                nlohmann::json album_reports, const master_options& opt, const run_facts& facts);

}  // namespace lathe
