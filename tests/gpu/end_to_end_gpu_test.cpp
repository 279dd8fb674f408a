// GPU and CPU masters of the same catalog agree, and GPU masters meet their profiles as measured
// by libebur128. Runs only where a GPU is present.
#include <gtest/gtest.h>
#include <sndfile.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "demo_catalog.hpp"
#include "gpu_engine.hpp"
#include "gpu_test_support.hpp"
#include "lathe/catalog.hpp"
#include "lathe/limiter.hpp"
#include "lathe/master.hpp"
#include "lathe/polyphase.hpp"
#include "lathe/profile.hpp"
#include "lathe/tonal.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "support/backend_compare.hpp"
#include "support/oracle.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe {
namespace {

// Each backend's gain search stops within this of its target (gain_search::converged_lu) plus
// what the dither adds to a 16-bit master's loudness; both read by the same meter.
constexpr double gain_search_tolerance_lu = 0.025;
constexpr double loudness_tolerance_lu = 0.1;  // each master against its target (libebur128)

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

delivery_profile shipped_profile(const std::string& name) {
  return load_profile(fs::path(LATHE_SOURCE_DIR) / "configs" / (name + ".toml"));
}

std::vector<delivery_profile> shipped_profiles(std::initializer_list<const char*> names) {
  std::vector<delivery_profile> out;
  for (const char* n : names) out.push_back(shipped_profile(n));
  return out;
}

// `song` as one track of an engine call, aimed at each profile's own target.
engine_track engine_track_of(const audio_buffer& song, std::span<const delivery_profile> profiles,
                             std::uint64_t seed = 0) {
  engine_track t;
  t.audio = &song;
  t.seed_base = seed;
  for (const delivery_profile& p : profiles) t.targets_lufs.push_back(p.target_lufs);
  return t;
}

TEST(GpuEndToEnd, GpuMastersMatchCpuMastersAndMeetTheirProfiles) {
  LATHE_REQUIRE_GPU();
  const fs::path root = fs::temp_directory_path() / ("lathe-gpu-e2e-" + std::to_string(::getpid()));
  fs::remove_all(root);
  write_demo_catalog(root / "catalog", 8.0);
  const std::vector<delivery_profile> profiles = shipped_profiles({"streaming", "cd", "hires", "broadcast"});
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
      // Delivered masters are not compared sample by sample (two gain searches, and an
      // error-feedback quantizer that diverges after a one-ulp difference): see the float
      // master tests below. Their loudness agrees within both searches' tolerances.
      const test::oracle_reading rc = test::ebur128_measure_file(root / "cpu" / rel);
      const test::oracle_reading rg = test::ebur128_measure_file(root / "gpu" / rel);
      EXPECT_TRUE(test::loudness_agrees(rg.integrated_lufs, rc.integrated_lufs, gain_search_tolerance_lu,
                                        gain_search_tolerance_lu))
          << rg.integrated_lufs << " vs " << rc.integrated_lufs;
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

namespace lathe {
namespace {

// A track's masters do not depend on what else is in the engine call (lanes are independent,
// each track has its own gain search): the bits of a track alone and packed between two others.
TEST(GpuEndToEnd, ATrackRendersTheSameBitsAloneAndPackedWithOthers) {
  LATHE_REQUIRE_GPU();
  demo_track_spec a_spec, b_spec;
  a_spec.seconds = 7.0;
  b_spec.seconds = 11.0;
  b_spec.level_db = -9.0;
  b_spec.seed = 5;
  const audio_buffer a = synthesize_song(a_spec), b = synthesize_song(b_spec);
  const std::vector<delivery_profile> profiles = shipped_profiles({"streaming", "cd"});
  auto track = [&](const audio_buffer& x, std::uint64_t seed) { return engine_track_of(x, profiles, seed); };
  gpu_engine engine(0);
  const std::vector<engine_track> alone = {track(a, 1)};
  const std::vector<engine_track> packed = {track(b, 2), track(a, 1), track(b, 3)};
  const std::vector<engine_result> r1 = engine.render(alone, a_spec.sample_rate_hz, profiles);
  const std::vector<engine_result> r3 = engine.render(packed, a_spec.sample_rate_hz, profiles);
  ASSERT_EQ(r1.size(), 1u);
  ASSERT_EQ(r3.size(), 3u);
  for (std::size_t f = 0; f < profiles.size(); ++f) {
    SCOPED_TRACE(profiles[f].name);
    const rendered_master& x = r1[0].masters[f];
    const rendered_master& y = r3[1].masters[f];
    EXPECT_EQ(x.backend, "gpu") << x.backend_note;
    EXPECT_EQ(x.normalization.gain_db, y.normalization.gain_db);
    EXPECT_EQ(x.int_samples, y.int_samples);
    EXPECT_EQ(x.float_samples, y.float_samples);
  }
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// The GPU's float master (bit depth 32: nothing quantized) against the CPU chain rendered at the
// GPU's own final gain (the two gain searches each stop within 0.02 LU, so their gains differ):
// pre-chain, polyphase resampling and the limiter on the CPU, then sample by sample relative to
// the peak. The GPU stages each hold 1e-5 relative to their CPU references; through the chain
// the tolerance is ten times that.
constexpr double float_master_tolerance = 1e-4;

// The GPU's float master of `song` for `name` against the CPU chain at the GPU's gain.
void expect_float_master_matches_the_cpu(gpu_engine& engine, const audio_buffer& song, double source_rate,
                                         const char* name) {
  SCOPED_TRACE(name);
  delivery_profile p = shipped_profile(name);
  p.bit_depth = 32;
  p.shaping = noise_shaping::none;
  const engine_track t = engine_track_of(song, {&p, 1});
  const std::vector<engine_result> r = engine.render({&t, 1}, source_rate, {&p, 1});
  const rendered_master& g = r.at(0).masters.at(0);
  ASSERT_EQ(g.backend, "gpu") << g.backend_note;

  const double rate = p.output_rate_hz(source_rate);
  audio_buffer x = apply_prechain(song, source_rate, p);
  if (rate != source_rate) {
    polyphase_resampler design;
    design.prepare(source_rate, rate);
    x = design.process(x);
  }
  limiter_params lp = p.limiter;
  lp.ceiling_dbtp = p.ceiling_dbtp;
  offline_limiter limiter;
  limiter.analyze(x, rate, lp);
  audio_buffer cpu;
  limiter.render(x, g.normalization.gain_db, cpu);
  std::vector<float> interleaved(2 * cpu.frames());
  for (std::size_t i = 0; i < cpu.frames(); ++i)
    for (int c = 0; c < 2; ++c) interleaved[2 * i + static_cast<std::size_t>(c)] = cpu.channel(c)[i];
  const test::difference d = test::compare_float_masters(g.float_samples, interleaved, float_master_tolerance);
  EXPECT_TRUE(d.within) << d.why;
  std::printf("%s, %.0f s: float master within %.2e of its peak of the CPU chain at the GPU's gain\n", name,
              static_cast<double>(song.frames()) / source_rate, d.worst);
}

TEST(GpuEndToEnd, FloatMastersMatchTheCpuChainAtTheGpusGain) {
  LATHE_REQUIRE_GPU();
  demo_track_spec spec;
  spec.seconds = 9.0;
  const audio_buffer song = synthesize_song(spec);
  gpu_engine engine(0);
  for (const char* name : {"streaming", "hires", "broadcast"})
    expect_float_master_matches_the_cpu(engine, song, spec.sample_rate_hz, name);
}

// Ten minutes: lanes of many chunks, every kernel's carry across chunk boundaries exercised.
TEST(GpuEndToEnd, FloatMastersOfALongTrackMatchTheCpuChain) {
  LATHE_REQUIRE_GPU();
  demo_track_spec spec;
  spec.seconds = 600.0;
  const audio_buffer song = synthesize_song(spec);
  gpu_engine engine(0);
  expect_float_master_matches_the_cpu(engine, song, spec.sample_rate_hz, "streaming");
}

// The GPU's quantized masters against its own float master: within the quantizer's bound, so
// the dither and the error feedback on the device (or the host, for noise-shaped formats) add
// nothing else.
TEST(GpuEndToEnd, QuantizedMastersStayWithinTheQuantizersBoundOfTheFloatMaster) {
  LATHE_REQUIRE_GPU();
  demo_track_spec spec;
  spec.seconds = 9.0;
  const audio_buffer song = synthesize_song(spec);
  gpu_engine engine(0);
  for (const char* name : {"streaming", "cd", "hires"}) {
    SCOPED_TRACE(name);
    const delivery_profile p = shipped_profile(name);
    if (p.bit_depth == 32) continue;
    delivery_profile f = p;
    f.bit_depth = 32;
    f.shaping = noise_shaping::none;
    const std::vector<delivery_profile> both = {p, f};
    const engine_track t = engine_track_of(song, both);
    const std::vector<engine_result> r = engine.render({&t, 1}, spec.sample_rate_hz, both);
    const rendered_master& q = r.at(0).masters.at(0);
    const rendered_master& x = r.at(0).masters.at(1);
    ASSERT_EQ(q.backend, "gpu") << q.backend_note;
    ASSERT_EQ(x.normalization.gain_db, q.normalization.gain_db) << "the same search on the same audio";
    const double bound = test::quantizer_error_bound_lsb(p.shaping, p.output_rate_hz(spec.sample_rate_hz));
    const test::difference d = test::quantized_against_float(q.int_samples, p.bit_depth, x.float_samples, bound);
    EXPECT_TRUE(d.within) << d.why;
  }
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// Once the engine has met its longest track, a call makes no allocation that synchronizes the
// device, whatever the track: device buffers are stream-ordered from the pool, the staging is
// kept between calls, and small downloads go to pageable memory (no cudaMallocHost/cudaFreeHost).
TEST(GpuEndToEnd, AnEngineCallMakesNoSynchronizingAllocation) {
  LATHE_REQUIRE_GPU();
  const std::vector<delivery_profile> profiles = shipped_profiles({"streaming", "cd"});
  demo_track_spec long_spec, short_spec;
  long_spec.seconds = 20.0;
  short_spec.seconds = 5.0;
  const audio_buffer long_song = synthesize_song(long_spec), short_song = synthesize_song(short_spec);
  gpu_engine engine(0);
  auto call = [&](const audio_buffer& song) {
    const engine_track t = engine_track_of(song, profiles);
    const gpu::allocation_counts before = gpu::allocations();
    const std::vector<engine_result> r = engine.render({&t, 1}, long_spec.sample_rate_hz, profiles);
    const gpu::allocation_counts after = gpu::allocations();
    for (const rendered_master& m : r.at(0).masters) EXPECT_EQ(m.backend, "gpu") << m.backend_note;
    return gpu::allocation_counts{after.device_sync - before.device_sync, after.device_async - before.device_async,
                                  after.pinned - before.pinned};
  };
  call(long_song);  // plans, filters and staging made for the longest track
  const gpu::allocation_counts a = call(long_song), b = call(short_song);
  std::printf(
      "per call: %zu synchronizing device allocations, %zu stream-ordered, %zu pinned (20 s); %zu, %zu, %zu (5 s)\n",
      a.device_sync, a.device_async, a.pinned, b.device_sync, b.device_async, b.pinned);
  EXPECT_EQ(a.device_sync, 0u);
  EXPECT_EQ(b.device_sync, 0u);
  EXPECT_EQ(a.pinned, 0u);
  EXPECT_EQ(b.pinned, 0u);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// Sixteen engines on one device, one per thread as the render graph runs them (each its own
// stream, its buffers from the one pool): every thread's masters equal one engine's, bit for bit.
TEST(GpuEndToEnd, SixteenConcurrentEnginesRenderTheSameBitsAsOne) {
  LATHE_REQUIRE_GPU();
  constexpr int engines = 16;
  const std::vector<delivery_profile> profiles = shipped_profiles({"streaming", "cd"});
  demo_track_spec spec;
  spec.seconds = 12.0;
  const audio_buffer song = synthesize_song(spec);
  const engine_track t = engine_track_of(song, profiles, 7);
  std::vector<engine_result> alone;
  {
    gpu_engine engine(0);
    alone = engine.render({&t, 1}, spec.sample_rate_hz, profiles);
  }
  std::vector<std::vector<engine_result>> results(engines);
  std::vector<std::string> errors(engines);
  std::vector<std::thread> threads;
  for (int k = 0; k < engines; ++k)
    threads.emplace_back([&, k] {
      try {
        gpu_engine engine(0, engines);
        for (int call = 0; call < 2; ++call) results[k] = engine.render({&t, 1}, spec.sample_rate_hz, profiles);
      } catch (const std::exception& e) {
        errors[k] = e.what();
      }
    });
  for (std::thread& th : threads) th.join();
  for (int k = 0; k < engines; ++k) {
    SCOPED_TRACE(k);
    ASSERT_EQ(errors[k], "");
    for (std::size_t f = 0; f < profiles.size(); ++f) {
      EXPECT_EQ(results[k].at(0).masters[f].backend, "gpu");
      EXPECT_EQ(results[k].at(0).masters[f].int_samples, alone.at(0).masters[f].int_samples) << profiles[f].name;
    }
  }
}

}  // namespace
}  // namespace lathe
