// GPU and CPU masters of the same catalog agree, and GPU masters meet their profiles as measured
// by libebur128. Runs only where a GPU is present.
#include <gtest/gtest.h>
#include <sndfile.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu_engine.hpp"
#include "gpu_test_support.hpp"
#include "lathe/catalog.hpp"
#include "lathe/profile.hpp"
#include "lathe/tonal.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "support/oracle.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe {
namespace {

// The GPU stages each match the CPU within 1e-5 relative; through the whole chain (limiter,
// loudness loop, dither) the masters then differ by far less than -80 dBFS per sample.
constexpr double sample_tolerance = 1e-4;       // absolute, full scale 1.0
constexpr double loudness_agreement_lu = 0.02;  // GPU vs CPU master, same meter
constexpr double loudness_tolerance_lu = 0.1;   // each master against its target (libebur128)

std::vector<double> read_all(const fs::path& p, SF_INFO& info) {
  SNDFILE* f = sf_open(p.c_str(), SFM_READ, &info);
  EXPECT_NE(f, nullptr) << p;
  std::vector<double> v(static_cast<std::size_t>(info.frames * info.channels));
  if (f != nullptr) {
    sf_readf_double(f, v.data(), info.frames);
    sf_close(f);
  }
  return v;
}

TEST(GpuEndToEnd, GpuMastersMatchCpuMastersAndMeetTheirProfiles) {
  LATHE_REQUIRE_GPU();
  const fs::path root = fs::temp_directory_path() / ("lathe-gpu-e2e-" + std::to_string(::getpid()));
  fs::remove_all(root);
  write_demo_catalog(root / "catalog", 8.0);
  std::vector<delivery_profile> profiles;
  for (const char* n : {"streaming", "cd", "hires", "broadcast"})
    profiles.push_back(load_profile(fs::path(LATHE_SOURCE_DIR) / "configs" / (std::string(n) + ".toml")));
  const run_plan plan = make_plan(load_catalog(root / "catalog" / "manifest.csv"), profiles, album_mode::album);

  auto run = [&](backend_kind kind, const fs::path& out) {
    master_options opt;
    opt.out_dir = out;
    opt.log = log_format::json;
    opt.backend = choose_backend(kind);
    ASSERT_EQ(opt.backend.kind, kind);
    const master_summary s = run_master(plan, opt);
    EXPECT_EQ(s.failed, 0u);
  };
  run(backend_kind::cpu, root / "cpu");
  run(backend_kind::gpu, root / "gpu");
  run(backend_kind::gpu, root / "gpu2");

  std::ifstream in(root / "gpu" / "report.json");
  const json report = json::parse(in);
  std::size_t compared = 0;
  for (const json& t : report["tracks"]) {
    for (const delivery_profile& p : profiles) {
      const std::string rel = t["outputs"][p.name]["path"];
      SCOPED_TRACE(rel);
      SF_INFO a{}, b{}, c{};
      const std::vector<double> cpu = read_all(root / "cpu" / rel, a);
      const std::vector<double> gpu = read_all(root / "gpu" / rel, b);
      const std::vector<double> gpu2 = read_all(root / "gpu2" / rel, c);
      ASSERT_EQ(cpu.size(), gpu.size());
      EXPECT_EQ(gpu, gpu2) << "GPU masters must be bitwise repeatable";
      double worst = 0.0;
      for (std::size_t i = 0; i < cpu.size(); ++i) worst = std::max(worst, std::abs(cpu[i] - gpu[i]));
      EXPECT_LE(worst, sample_tolerance);
      const test::oracle_reading rc = test::ebur128_measure_file(root / "cpu" / rel);
      const test::oracle_reading rg = test::ebur128_measure_file(root / "gpu" / rel);
      EXPECT_NEAR(rg.integrated_lufs, rc.integrated_lufs, loudness_agreement_lu);
      EXPECT_LE(rg.true_peak_dbtp, p.ceiling_dbtp);
      EXPECT_NEAR(rg.integrated_lufs, t["outputs"][p.name]["chain"]["normalization"]["target_lufs"].get<double>(),
                  loudness_tolerance_lu);
      // A master the GPU run rendered on the CPU says why.
      const json& chain = t["outputs"][p.name]["chain"];
      if (chain["backend"] != "gpu") {
        EXPECT_TRUE(chain.contains("backend_note")) << chain.dump(1);
        std::printf("%s: rendered on the CPU (%s)\n", rel.c_str(), chain.value("backend_note", "").c_str());
      }
      ++compared;
    }
  }
  EXPECT_EQ(compared, 7u * profiles.size());
  std::printf("masters by backend: %s\n", report["summary"]["masters_by_backend"].dump().c_str());
  fs::remove_all(root);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// The engine's tonal analysis (Welch spectrum on the device) reads every 1/3-octave band as the
// CPU's analyze_tonal does: float FFTs on both sides, float64 sums.
constexpr double tonal_band_tolerance_db = 0.01;

TEST(GpuEndToEnd, EngineTonalAnalysisMatchesTheCpu) {
  LATHE_REQUIRE_GPU();
  demo_track_spec spec;
  spec.seconds = 12.0;
  const audio_buffer song = synthesize_song(spec);
  gpu_engine engine(0);
  const tonal_analysis gpu = engine.tonal(song, spec.sample_rate_hz);
  const tonal_analysis cpu = analyze_tonal(song, spec.sample_rate_hz);
  for (int k = 0; k < third_octave_band_count; ++k) {
    if (!std::isfinite(cpu.mid_db[k])) continue;
    EXPECT_NEAR(gpu.mid_db[k], cpu.mid_db[k], tonal_band_tolerance_db) << third_octave_names()[k];
    if (std::isfinite(cpu.side_db[k])) EXPECT_NEAR(gpu.side_db[k], cpu.side_db[k], tonal_band_tolerance_db);
  }
  EXPECT_NEAR(gpu.tilt_db_per_octave, cpu.tilt_db_per_octave, 1e-3);
  EXPECT_NEAR(gpu.crest_factor_db, cpu.crest_factor_db, tonal_band_tolerance_db);
}

}  // namespace
}  // namespace lathe
