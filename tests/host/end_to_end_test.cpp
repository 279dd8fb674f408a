// Masters the demo catalog end to end and checks every delivered file with libebur128.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "demo_catalog.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/catalog.hpp"
#include "lathe/master.hpp"
#include "lathe/profile.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "support/files.hpp"
#include "support/oracle.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe {
namespace {

using test::read_json;
using test::slurp;
using test::temp_dir;

// Delivery tolerance the issue sets for every master: +-0.1 LU of its target, measured by libebur128.
constexpr double loudness_tolerance_lu = 0.1;
// libebur128 oversamples 4x (2x at 96 kHz) with a short filter; it must never read above the
// ceiling. No allowance is made: the ceiling is the ceiling.
constexpr double ceiling_tolerance_db = 0.0;
constexpr double demo_seconds = 9.0;

std::vector<delivery_profile> profiles(std::initializer_list<const char*> names) {
  std::vector<delivery_profile> out;
  for (const char* n : names)
    out.push_back(load_profile(fs::path(LATHE_SOURCE_DIR) / "configs" / (std::string(n) + ".toml")));
  return out;
}

void write_float_wav(const fs::path& path, int channels, int rate, const std::vector<float>& interleaved) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
  sf_writef_float(f, interleaved.data(),
                  static_cast<sf_count_t>(interleaved.size() / static_cast<std::size_t>(channels)));
  sf_close(f);
}

// Every FLAC and WAV master of outs[0] is byte-identical in each other tree of `outs`, and
// there are `masters` of them.
void expect_same_masters(const std::vector<fs::path>& outs, std::size_t masters) {
  std::size_t compared = 0;
  for (const auto& e : fs::recursive_directory_iterator(outs[0])) {
    const std::string ext = e.path().extension().string();
    if (ext != ".flac" && ext != ".wav") continue;
    const fs::path rel = fs::relative(e.path(), outs[0]);
    for (std::size_t k = 1; k < outs.size(); ++k)
      EXPECT_TRUE(slurp(e.path()) == slurp(outs[k] / rel)) << rel << " under run " << k;
    ++compared;
  }
  EXPECT_EQ(compared, masters);
}

class EndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    catalog_ = new fs::path(temp_dir("catalog"));
    write_demo_catalog(*catalog_, demo_seconds);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*catalog_);
    delete catalog_;
  }
  static master_summary master(const fs::path& out, std::vector<delivery_profile> p, album_mode mode, int jobs = 0) {
    master_options opt;
    opt.out_dir = out;
    opt.jobs = jobs;
    opt.log = log_format::json;
    const run_plan plan = make_plan(load_catalog(*catalog_ / "manifest.csv"), std::move(p), mode);
    return run_master(plan, opt);
  }
  static fs::path* catalog_;
};
fs::path* EndToEnd::catalog_ = nullptr;

TEST_F(EndToEnd, TrackModeLandsOnEveryTargetUnderEveryCeiling) {
  const fs::path out = temp_dir("track");
  const auto ps = profiles({"streaming", "cd", "hires", "broadcast"});
  const master_summary s = master(out, ps, album_mode::track);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.succeeded, 7u);
  const json report = read_json(out / "report.json");
  ASSERT_EQ(report["tracks"].size(), 7u);
  for (const json& t : report["tracks"]) {
    ASSERT_EQ(t["status"], "ok") << t.dump(1);
    for (const delivery_profile& p : ps) {
      const json& o = t["outputs"][p.name];
      const fs::path file = out / o["path"].get<std::string>();
      SCOPED_TRACE(file.string());
      ASSERT_TRUE(fs::exists(file));
      const test::oracle_reading r = test::ebur128_measure_file(file);
      EXPECT_NEAR(r.integrated_lufs, p.target_lufs, loudness_tolerance_lu);
      EXPECT_LE(r.true_peak_dbtp, p.ceiling_dbtp + ceiling_tolerance_db);
      const double source_rate = t["source"]["sample_rate_hz"];
      EXPECT_EQ(r.sample_rate_hz, p.output_rate_hz(source_rate));
      EXPECT_EQ(r.channels, 2);
      const int sub = r.format & SF_FORMAT_SUBMASK;
      EXPECT_EQ(sub, p.bit_depth == 16 ? SF_FORMAT_PCM_16 : p.bit_depth == 24 ? SF_FORMAT_PCM_24 : SF_FORMAT_FLOAT);
      EXPECT_EQ(r.format & SF_FORMAT_TYPEMASK, p.container == container_format::flac ? SF_FORMAT_FLAC : SF_FORMAT_WAV);
      // lathe's own meter agrees with the oracle, and the report says what was delivered.
      EXPECT_NEAR(o["measured"]["integrated_lufs"].get<double>(), r.integrated_lufs, 0.05);
      EXPECT_TRUE(o["pass"].get<bool>()) << o.dump(1);
      // Which backend rendered it and, where the rate changes, with which resampler.
      EXPECT_EQ(o["chain"]["backend"], "cpu");
      EXPECT_FALSE(o["chain"].contains("backend_note"));
      if (r.sample_rate_hz != source_rate)
        EXPECT_EQ(o["chain"]["resample"]["method"], "polyphase");
      else
        EXPECT_FALSE(o["chain"].contains("resample"));
    }
  }
  EXPECT_EQ(report["summary"]["masters_by_backend"], json({{"cpu", 7 * ps.size()}}));
  EXPECT_EQ(report["summary"]["masters_on_cpu_in_gpu_run"], 0);
  fs::remove_all(out);
}

// The serial first stage only admits tracks; decoding runs in the parallel stage after it, so a
// slow decoder (here: 150 ms more per track) does not hold the others back.
TEST_F(EndToEnd, TracksDecodeSideBySide) {
  const fs::path out = temp_dir("decode");
  master_options opt;
  opt.out_dir = out;
  opt.jobs = 2;
  opt.log = log_format::json;
  std::mutex mutex;
  int decoding = 0, most = 0, decodes = 0;
  opt.decode_observer = [&](std::size_t, bool begins) {
    {
      std::lock_guard lock(mutex);
      decoding += begins ? 1 : -1;
      decodes += begins ? 1 : 0;
      most = std::max(most, decoding);
    }
    if (begins) std::this_thread::sleep_for(std::chrono::milliseconds(150));
  };
  const master_summary s =
      run_master(make_plan(load_catalog(*catalog_ / "manifest.csv"), profiles({"streaming"}), album_mode::track), opt);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(decodes, 7);
  EXPECT_EQ(most, 2) << "decodes ran one at a time";
  fs::remove_all(out);
}

TEST_F(EndToEnd, AlbumModeKeepsRelativeLoudnessAndPutsTheLoudestOnTarget) {
  const fs::path out = temp_dir("album");
  const auto ps = profiles({"streaming"});
  const master_summary s = master(out, ps, album_mode::album);
  EXPECT_EQ(s.failed, 0u);
  const json report = read_json(out / "report.json");
  ASSERT_EQ(report["albums"].size(), 2u);
  std::map<std::string, json> tracks;
  for (const json& t : report["tracks"]) tracks[t["path"]] = t;
  for (const auto& [name, album] : report["albums"].items()) {
    const json& decision = album["formats"]["streaming"];
    const std::string loudest = decision["loudest_track"];
    std::map<std::string, double> measured, pre;
    for (const json& m : decision["tracks"]) {
      const std::string path = m["path"];
      pre[path] = m["pre_loudness_lufs"];
      measured[path] = test::ebur128_measure_file(out / tracks[path]["outputs"]["streaming"]["path"].get<std::string>())
                           .integrated_lufs;
    }
    SCOPED_TRACE(name);
    EXPECT_NEAR(measured[loudest], ps[0].target_lufs, loudness_tolerance_lu);
    EXPECT_TRUE(decision.contains("output_album_loudness_lufs"));
    for (const auto& [path, l] : measured) {
      // Relative loudness kept: the report's pre-chain loudness is rounded to 0.01 LU.
      EXPECT_NEAR(l - measured[loudest], pre[path] - pre[loudest], loudness_tolerance_lu + 0.01) << path;
    }
  }
  fs::remove_all(out);
}

// The album pass keeps an album track's pre-chained audio for its render while the hold has
// room: then the track is decoded once, not twice. Fails if a kept track is decoded again, if a
// track that could not be kept is not decoded again, if the windows (one album's audio held at a
// time) lose a track, or if keeping changes one byte of any master or album decision.
TEST_F(EndToEnd, AlbumPassKeepsWhatFitsAndChangesNoMaster) {
  const auto ps = profiles({"streaming", "cd"});
  const run_plan plan = make_plan(load_catalog(*catalog_ / "manifest.csv"), ps, album_mode::album);
  ASSERT_EQ(plan.albums.size(), 2u);
  std::map<std::string, int> prechains;
  for (const delivery_profile& p : ps) prechains[prechain_key(p)] = 1;
  std::size_t largest = 0, both = 0;
  for (const auto& [name, members] : plan.albums) {
    std::size_t bytes = 0;
    for (const std::size_t i : members)
      bytes += static_cast<std::size_t>(plan.tracks[i].info->frames) * 2 * sizeof(float) * prechains.size();
    largest = std::max(largest, bytes);
    both += bytes;
  }
  // Room for one album (spill blocks round each track up a little), not for both.
  const std::size_t one_album = largest + largest / 4;
  ASSERT_LT(one_album, both);
  struct run {
    std::size_t hold;
    bool album_tracks_once;
  };
  const std::vector<run> runs = {{0, true}, {1, false}, {one_album, true}};
  std::vector<fs::path> outs;
  for (const run& r : runs) {
    SCOPED_TRACE(testing::Message() << "hold " << r.hold);
    const fs::path out = temp_dir("hold-" + std::to_string(outs.size()));
    master_options opt;
    opt.out_dir = out;
    opt.jobs = 2;
    opt.log = log_format::json;
    opt.album_hold_bytes = r.hold;
    std::mutex mutex;
    std::vector<int> decodes(plan.tracks.size(), 0);
    opt.decode_observer = [&](std::size_t track, bool begins) {
      std::lock_guard lock(mutex);
      if (begins) ++decodes.at(track);
    };
    const master_summary s = run_master(plan, opt);
    EXPECT_EQ(s.succeeded, 7u);
    for (const planned_track& t : plan.tracks)
      EXPECT_EQ(decodes[t.index], t.album_key.empty() || r.album_tracks_once ? 1 : 2) << t.entry.path;
    outs.push_back(out);
  }
  expect_same_masters(outs, 14);
  for (std::size_t k = 1; k < outs.size(); ++k)
    EXPECT_EQ(read_json(outs[0] / "report.json")["albums"], read_json(outs[k] / "report.json")["albums"]);
  for (const fs::path& o : outs) fs::remove_all(o);
}

TEST_F(EndToEnd, SameInputGivesBitIdenticalOutputWhateverTheThreadCount) {
  const fs::path a = temp_dir("det-a"), b = temp_dir("det-b");
  std::map<fs::path, std::string> inputs_before;
  for (const auto& e : fs::recursive_directory_iterator(*catalog_))
    if (e.is_regular_file()) inputs_before[e.path()] = slurp(e.path());
  master(a, profiles({"cd", "streaming"}), album_mode::album, 1);
  master(b, profiles({"cd", "streaming"}), album_mode::album, 2);
  std::size_t compared = 0;
  for (const auto& e : fs::recursive_directory_iterator(a)) {
    const std::string ext = e.path().extension().string();
    if (ext != ".wav" && ext != ".flac") continue;
    const fs::path other = b / fs::relative(e.path(), a);
    ASSERT_TRUE(fs::exists(other)) << other;
    EXPECT_EQ(slurp(e.path()), slurp(other)) << e.path();
    ++compared;
  }
  EXPECT_EQ(compared, 14u);
  // Inputs are never modified.
  for (const auto& [path, bytes] : inputs_before) EXPECT_EQ(slurp(path), bytes) << path;
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_F(EndToEnd, RerunSkipsCompleteOutputsAndRedoesChangedInputs) {
  const fs::path out = temp_dir("resume");
  const auto ps = profiles({"cd"});
  // Work on a private copy of the catalog so an input can be changed.
  const fs::path cat = temp_dir("resume-cat");
  fs::copy(*catalog_, cat, fs::copy_options::recursive);
  auto run = [&] {
    master_options opt;
    opt.out_dir = out;
    opt.log = log_format::json;
    return run_master(make_plan(load_catalog(cat / "manifest.csv"), ps, album_mode::track), opt);
  };
  const master_summary first = run();
  EXPECT_EQ(first.succeeded, 7u);
  const fs::path sample = out / "cd" / "Night Drive" / "01 - Headlights.wav";
  ASSERT_TRUE(fs::exists(sample));
  const auto written = fs::last_write_time(sample);
  const master_summary second = run();
  EXPECT_EQ(second.resumed, 7u);
  EXPECT_EQ(second.succeeded, 0u);
  EXPECT_EQ(fs::last_write_time(sample), written);
  EXPECT_EQ(read_json(out / "report.json")["summary"]["resumed"], 7);
  // A touched input is the same input: resume knows it by its content.
  const fs::path changed = cat / "night-drive" / "02-overpass.flac";
  fs::last_write_time(changed, fs::last_write_time(changed) + std::chrono::seconds(5));
  EXPECT_EQ(run().resumed, 7u);
  // Change one input's audio: only that track is mastered again.
  fs::copy_file(cat / "night-drive" / "01-headlights.flac", changed, fs::copy_options::overwrite_existing);
  const master_summary third = run();
  EXPECT_EQ(third.succeeded, 1u);
  EXPECT_EQ(third.resumed, 6u);
  // A damaged output is not taken as complete.
  { std::ofstream(sample, std::ios::app) << "garbage"; }
  const master_summary fourth = run();
  EXPECT_EQ(fourth.succeeded, 1u);
  fs::remove_all(out);
  fs::remove_all(cat);
}

// What a run's report says about the catalog, without what differs by run (timings, which
// outputs this run wrote).
json catalog_part(json report) {
  report.erase("summary");
  for (json& t : report["tracks"]) {
    t.erase("status");
    for (auto& [name, o] : t["outputs"].items()) o.erase("resumed");
  }
  return report;
}

// A catalog copied to another folder (local disk, another mount) is the same catalog: every
// output resumes. The content hashes come from the cache while files are unchanged.
TEST_F(EndToEnd, CatalogCopiedElsewhereResumes) {
  const fs::path out = temp_dir("moved-out");
  const fs::path a = temp_dir("moved-a");
  const fs::path b = temp_dir("moved-b");
  fs::copy(*catalog_, a, fs::copy_options::recursive);
  auto run = [&](const fs::path& cat) {
    master_options opt;
    opt.out_dir = out;
    opt.log = log_format::json;
    return run_master(make_plan(load_catalog(cat / "manifest.csv"), profiles({"cd"}), album_mode::album), opt);
  };
  EXPECT_EQ(run(a).succeeded, 7u);
  const std::string first_report = slurp(out / "report.json");
  fs::copy(a, b, fs::copy_options::recursive);
  fs::remove_all(a);
  const master_summary moved = run(b);
  EXPECT_EQ(moved.resumed, 7u);
  EXPECT_EQ(moved.succeeded, 0u);
  // The report is the first run's, the inputs' new location apart.
  std::string expected = catalog_part(json::parse(first_report)).dump();
  for (std::size_t at = 0; (at = expected.find(a.string(), at)) != std::string::npos; at += b.string().size())
    expected.replace(at, a.string().size(), b.string());
  EXPECT_EQ(catalog_part(read_json(out / "report.json")).dump(), expected);
  // One hash entry per input path seen.
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(out / ".lathe" / "state" / "inputs")) entries += e.is_regular_file();
  EXPECT_EQ(entries, 14u);
  fs::remove_all(out);
  fs::remove_all(b);
}

std::map<fs::path, std::string> files_under(const fs::path& dir) {
  std::map<fs::path, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir)] = slurp(e.path());
  return out;
}

TEST_F(EndToEnd, ResumedRunsReportWhatAnUninterruptedRunReports) {
  const fs::path a = temp_dir("report-a"), b = temp_dir("report-b");
  const auto ps = profiles({"cd", "streaming"});
  ASSERT_EQ(master(a, ps, album_mode::album).failed, 0u);
  const json whole = catalog_part(read_json(a / "report.json"));
  const auto notes = files_under(a / "notes");
  ASSERT_FALSE(notes.empty());
  ASSERT_EQ(master(b, ps, album_mode::album).failed, 0u);
  // Some masters lost (as if a run had stopped before them): one album track, one single.
  const json report_b = read_json(b / "report.json");
  std::size_t removed = 0;
  for (const json& t : report_b["tracks"]) {
    const bool single = !t["album_mode"].get<bool>();
    if (removed == (single ? 1u : 0u)) {
      fs::remove(b / t["outputs"]["cd"]["path"].get<std::string>());
      ++removed;
    }
  }
  ASSERT_EQ(removed, 2u);
  const master_summary partial = master(b, ps, album_mode::album);
  EXPECT_EQ(partial.resumed, 5u);
  EXPECT_EQ(catalog_part(read_json(b / "report.json")), whole);
  EXPECT_EQ(files_under(b / "notes"), notes);
  // Nothing left to do: every track comes from its record.
  const master_summary again = master(b, ps, album_mode::album);
  EXPECT_EQ(again.resumed, 7u);
  const json resumed = catalog_part(read_json(b / "report.json"));
  EXPECT_EQ(resumed, whole) << "first difference: " << json::diff(whole, resumed).dump().substr(0, 600);
  EXPECT_EQ(files_under(b / "notes"), notes);
  fs::remove_all(a);
  fs::remove_all(b);
}

// The memory bound decides where tracks keep what later passes read (files under a tiny bound,
// memory under a large one) and how many run at once, never what they deliver: every master is
// byte-identical across bounds and thread counts, and the gate's reservations stay under the
// bound (a lone track's fixed streaming working set when the bound is smaller than that).
// Runs `lathe master` on the demo catalog into `out`; with kill_after_s, SIGKILLs it then.
// Returns true when it was still running at the kill.
bool run_cli(const fs::path& catalog, const fs::path& out, double kill_after_s = -1.0) {
  const std::string bin = std::string(LATHE_BINARY_DIR) + "/lathe";
  const std::string manifest = (catalog / "manifest.csv").string(), out_s = out.string();
  const std::string configs = std::string(LATHE_SOURCE_DIR) + "/configs";
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* null = std::freopen("/dev/null", "w", stderr);
    (void)null;
    ::execl(bin.c_str(), bin.c_str(), "master", manifest.c_str(), "--out", out_s.c_str(), "--formats", "streaming,cd",
            "--jobs", "2", "--max-memory", "1", "--log-format", "json", "--config-dir", configs.c_str(),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  bool killed = false;
  if (kill_after_s >= 0.0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(kill_after_s);
    int status = 0;
    while (std::chrono::steady_clock::now() < until && ::waitpid(pid, &status, WNOHANG) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    killed = ::kill(pid, SIGKILL) == 0;
    if (::waitpid(pid, &status, 0) == pid && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) killed = false;
    return killed;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) <= 1) << "status " << status;
  return false;
}

// The masters under `out` (final names only).
std::map<fs::path, std::string> masters_under(const fs::path& out) {
  std::map<fs::path, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".flac" || ext == ".wav") && e.path().filename().string()[0] != '.')
      m[fs::relative(e.path(), out)] = slurp(e.path());
  }
  return m;
}

// A run killed (SIGKILL) at several points and resumed each time: after every kill each file
// under a final name decodes whole, and the finished tree (masters, report.json, notes/) equals
// an uninterrupted run's, with no temporary or spill left behind.
TEST_F(EndToEnd, KilledAtAnyPointAndResumedGivesTheUninterruptedTree) {
  const fs::path a = temp_dir("kill-a"), b = temp_dir("kill-b");
  const auto t0 = std::chrono::steady_clock::now();
  run_cli(*catalog_, a);
  const double whole_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto masters = masters_under(a);
  ASSERT_EQ(masters.size(), 14u);
  int kills = 0;
  for (const double fraction : {0.1, 0.25, 0.4, 0.55, 0.7}) {
    kills += run_cli(*catalog_, b, fraction * whole_s) ? 1 : 0;
    for (const auto& [rel, bytes] : masters_under(b)) {
      EXPECT_NO_THROW(decode_file(b / rel)) << rel << " after a kill at " << fraction;
      EXPECT_EQ(bytes, masters.at(rel)) << rel << " after a kill at " << fraction;
    }
  }
  EXPECT_GE(kills, 2) << "the runs finished before they could be killed (whole run " << whole_s << " s)";
  run_cli(*catalog_, b);
  EXPECT_TRUE(masters_under(b) == masters);
  const json whole = catalog_part(read_json(a / "report.json"));
  const json resumed = catalog_part(read_json(b / "report.json"));
  EXPECT_EQ(resumed, whole) << "first difference: " << json::diff(whole, resumed).dump().substr(0, 600);
  EXPECT_TRUE(files_under(b / "notes") == files_under(a / "notes"));
  for (const auto& e : fs::recursive_directory_iterator(b))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  EXPECT_TRUE(!fs::exists(b / ".lathe" / "spill") || fs::is_empty(b / ".lathe" / "spill"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_F(EndToEnd, MemoryBoundChangesNoMasterAndHoldsTheReservations) {
  const auto ps = profiles({"streaming", "cd"});
  const run_plan plan = make_plan(load_catalog(*catalog_ / "manifest.csv"), ps, album_mode::album);
  std::size_t whole = 0;
  for (const planned_track& t : plan.tracks) whole = std::max(whole, estimate_track_bytes(t, plan));
  struct run {
    std::size_t budget;
    int jobs;
  };
  // In memory; one track at a time, in files; streamed, one format at a time; and streamed with
  // both formats side by side (a token's share holds two working sets but not the whole track).
  const std::size_t two_formats_streamed = 4 * (2 * streaming_track_bytes + whole / 2);
  const std::vector<run> runs = {
      {std::size_t{1} << 40, 2}, {1, 1}, {streaming_track_bytes, 3}, {1, 2}, {two_formats_streamed, 2}};
  std::vector<fs::path> outs;
  for (const run& r : runs) {
    SCOPED_TRACE(testing::Message() << "budget " << r.budget << " jobs " << r.jobs);
    const fs::path out = temp_dir("mem-" + std::to_string(outs.size()));
    master_options opt;
    opt.out_dir = out;
    opt.jobs = r.jobs;
    opt.max_memory_bytes = r.budget;
    opt.log = log_format::json;
    const master_summary s = run_master(plan, opt);
    EXPECT_EQ(s.succeeded, 7u);
    EXPECT_LE(s.peak_reserved_bytes, std::max(r.budget, streaming_track_bytes));
    if (r.budget == 1) EXPECT_EQ(s.peak_reserved_bytes, streaming_track_bytes);  // one track at a time, in files
    if (r.budget > 2 * 3 * (whole + streaming_track_bytes)) EXPECT_GT(s.peak_reserved_bytes, whole);  // in memory
    EXPECT_FALSE(fs::exists(out / ".lathe" / "spill") && !fs::is_empty(out / ".lathe" / "spill"));
    outs.push_back(out);
  }
  expect_same_masters(outs, 14);
  for (const fs::path& o : outs) fs::remove_all(o);
}

TEST_F(EndToEnd, ChainPresetsRenderTheCatalogOnTarget) {
  const fs::path chains = fs::path(LATHE_SOURCE_DIR) / "configs" / "chains";
  for (const char* preset : {"transparent", "gentle-glue", "loud-modern", "vinyl-premaster"}) {
    SCOPED_TRACE(preset);
    std::vector<delivery_profile> ps = profiles({"streaming"});
    apply_chain_preset(chains / (std::string(preset) + ".toml"), ps[0]);
    const fs::path out = temp_dir(std::string("preset-") + preset);
    const master_summary s = master(out, ps, album_mode::track);
    EXPECT_EQ(s.failed, 0u);
    const json report = read_json(out / "report.json");
    for (const json& t : report["tracks"]) {
      const json& o = t["outputs"]["streaming"];
      EXPECT_EQ(o["chain"]["stages"].size(), ps[0].chain_order.size());
      const test::oracle_reading r = test::ebur128_measure_file(out / o["path"].get<std::string>());
      EXPECT_NEAR(r.integrated_lufs, -14.0, loudness_tolerance_lu) << t["path"];
      EXPECT_LE(r.true_peak_dbtp, -1.0) << t["path"];
    }
    fs::remove_all(out);
  }
}

TEST_F(EndToEnd, VinylMastersAreNeverLimitedAndHaveMonoBass) {
  const fs::path out = temp_dir("vinyl");
  const master_summary s = master(out, profiles({"vinyl"}), album_mode::track);
  EXPECT_EQ(s.failed, 0u);
  const json report = read_json(out / "report.json");
  for (const json& t : report["tracks"]) {
    SCOPED_TRACE(t["path"].get<std::string>());
    const json& o = t["outputs"]["vinyl"];
    EXPECT_EQ(o["chain"]["limiter"]["frames_limited"], 0) << "linear: gain only";
    EXPECT_EQ(o["measured"]["sample_rate_hz"], 96'000.0);
    const test::oracle_reading r = test::ebur128_measure_file(out / o["path"].get<std::string>());
    EXPECT_LE(r.true_peak_dbtp, -0.5);
    EXPECT_GT(o["measured"]["duration_s"].get<double>(), 0.0);  // for planning the sides
  }
  fs::remove_all(out);

  // The vinyl chain makes the bass mono: a side-only (L = -R) 50 Hz tone is removed while a
  // side-only 1 kHz tone passes (lock-in amplitudes over the settled second half).
  const double fs = 48'000.0;
  audio_buffer x(2, static_cast<std::size_t>(4 * fs));
  for (std::size_t i = 0; i < x.frames(); ++i) {
    const double t = static_cast<double>(i) / fs;
    const auto v = static_cast<float>(0.25 * std::sin(2 * M_PI * 50.0 * t) + 0.1 * std::sin(2 * M_PI * 1000.0 * t));
    x.channel(0)[i] = v;
    x.channel(1)[i] = -v;
  }
  const audio_buffer y = apply_prechain(x, fs, profiles({"vinyl"})[0]);
  const auto side_amplitude = [&](const audio_buffer& b, double f) {
    double re = 0.0, im = 0.0;
    const std::size_t from = b.frames() / 2;
    for (std::size_t i = from; i < b.frames(); ++i) {
      const double side = 0.5 * (static_cast<double>(b.channel(0)[i]) - b.channel(1)[i]);
      re += side * std::cos(2 * M_PI * f * static_cast<double>(i) / fs);
      im += side * std::sin(2 * M_PI * f * static_cast<double>(i) / fs);
    }
    return 2.0 * std::hypot(re, im) / static_cast<double>(b.frames() - from);
  };
  EXPECT_LT(20.0 * std::log10(side_amplitude(y, 50.0) / side_amplitude(x, 50.0)), -40.0);
  EXPECT_NEAR(20.0 * std::log10(side_amplitude(y, 1000.0) / side_amplitude(x, 1000.0)), 0.0, 0.1);
}

TEST_F(EndToEnd, BrokenFilesFailAloneWithReasonsAndExitStatusTwo) {
  const fs::path cat = temp_dir("broken");
  fs::copy(*catalog_ / "night-drive", cat / "good", fs::copy_options::recursive);
  fs::create_directories(cat / "bad");
  { std::ofstream(cat / "bad" / "notes.wav") << "this is not audio\n"; }
  { std::ofstream(cat / "bad" / "empty.flac"); }
  {
    // Truncated: a valid WAV cut short.
    const std::string whole = slurp(*catalog_ / "night-drive" / "03-last-exit.wav");
    std::ofstream(cat / "bad" / "truncated.wav", std::ios::binary) << whole.substr(0, whole.size() / 3);
  }
  // Three channels, and a NaN in a float file.
  write_float_wav(cat / "bad" / "surround.wav", 3, 48'000, std::vector<float>(3 * 48'000, 0.01f));
  std::vector<float> with_nan(2 * 44'100, 0.1f);
  with_nan[2 * 22'050] = std::numeric_limits<float>::quiet_NaN();
  write_float_wav(cat / "bad" / "nan.wav", 2, 44'100, with_nan);
  const fs::path out = temp_dir("broken-out");
  const std::string cmd = std::string(LATHE_BINARY_DIR) + "/lathe master " + cat.string() + " --out " + out.string() +
                          " --formats streaming --log-format json --config-dir " + LATHE_SOURCE_DIR + "/configs 2>" +
                          (out / "log.txt").string() + " >/dev/null";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2) << slurp(out / "log.txt");
  const json report = read_json(out / "report.json");
  std::map<std::string, json> by_path;
  for (const json& t : report["tracks"]) by_path[t["path"]] = t;
  ASSERT_EQ(by_path.size(), 8u);
  for (const char* good : {"good/01-headlights.flac", "good/02-overpass.flac", "good/03-last-exit.wav"}) {
    EXPECT_EQ(by_path[good]["status"], "ok") << good;
    EXPECT_TRUE(fs::exists(out / by_path[good]["outputs"]["streaming"]["path"].get<std::string>()));
  }
  const std::map<std::string, std::string> reason = {{"bad/notes.wav", ""},
                                                     {"bad/empty.flac", ""},
                                                     {"bad/truncated.wav", "trunc"},
                                                     {"bad/surround.wav", "3 channels"},
                                                     {"bad/nan.wav", "NaN"}};
  for (const auto& [path, word] : reason) {
    SCOPED_TRACE(path);
    EXPECT_EQ(by_path[path]["status"], "failed");
    const std::string err = by_path[path]["error"];
    EXPECT_NE(err.find(path.substr(4)), std::string::npos) << "error must name the file: " << err;
    if (!word.empty()) {
      EXPECT_NE(err.find(word), std::string::npos) << err;
    }
  }
  EXPECT_EQ(report["summary"]["failed"], 5);
  // No temporary or half-written file is left anywhere.
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  fs::remove_all(out);
  fs::remove_all(cat);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

TEST_F(EndToEnd, AdaptiveAlbumsWithAReferenceReportSettingsSpreadsAndMixNotes) {
  std::vector<delivery_profile> ps = profiles({"streaming"});
  adaptive_params& a = ps[0].adaptive;
  a.enabled = true;
  a.eq = 0.5;
  a.dynamics = 0.3;
  a.album_consistency = 0.5;
  const fs::path out = temp_dir("adaptive");
  master_options opt;
  opt.out_dir = out;
  opt.log = log_format::json;
  const std::vector<catalog_entry> entries = load_catalog(*catalog_ / "manifest.csv");
  opt.reference_file = entries.front().path;  // one of the album tracks stands in for a reference master
  const run_plan plan = make_plan(entries, ps, album_mode::album);
  const master_summary s = run_master(plan, opt);
  EXPECT_EQ(s.failed, 0u);
  const json report = read_json(out / "report.json");
  int albums_with_spreads = 0;
  for (const auto& [name, album] : report["albums"].items()) {
    if (!album.contains("consistency") || !album["consistency"].contains("input_tonal_spread_db")) continue;
    ++albums_with_spreads;
    const json& c = album["consistency"];
    ASSERT_TRUE(c.contains("streaming")) << name;
    // Half the album pull and half the reference pull: the album's balance is tighter afterwards.
    EXPECT_LT(c["streaming"]["output_tonal_spread_db"].get<double>(), c["input_tonal_spread_db"].get<double>()) << name;
    ASSERT_TRUE(album.contains("mix_notes")) << name;
    EXPECT_TRUE(fs::exists(out / album["mix_notes"].get<std::string>())) << name;
  }
  EXPECT_EQ(albums_with_spreads, 2);
  for (const json& t : report["tracks"]) {
    ASSERT_TRUE(t.contains("mix_notes")) << t["path"];
    ASSERT_TRUE(t.contains("tonal")) << t["path"];
    const json& o = t["outputs"]["streaming"];
    ASSERT_TRUE(o.contains("adaptive")) << t["path"];
    EXPECT_EQ(o["adaptive"]["target"], "reference");
    EXPECT_TRUE(o["adaptive"].contains("dynamics")) << t["path"];
    ASSERT_TRUE(o.contains("translation")) << t["path"];
    const test::oracle_reading r = test::ebur128_measure_file(out / o["path"].get<std::string>());
    EXPECT_LE(r.true_peak_dbtp, -1.0 + ceiling_tolerance_db) << t["path"];
  }
  fs::remove_all(out);
}

}  // namespace
}  // namespace lathe
