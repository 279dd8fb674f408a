// deploy/: the Kubernetes Indexed Job manifest parsed as Kubernetes would read it (yaml-cpp),
// with the fields an Indexed Job needs and the API's rules between them, and the Slurm array
// script's directives.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path deploy_dir = fs::path(LATHE_SOURCE_DIR) / "deploy";

class IndexedJob : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path file = deploy_dir / "k8s" / "lathe-indexed-job.yaml";
    ASSERT_TRUE(fs::exists(file)) << file;
    const std::vector<YAML::Node> docs = YAML::LoadAllFromFile(file.string());
    ASSERT_EQ(docs.size(), 1u) << "one Job per file";
    job = docs[0];
    spec = job["spec"];
    pod = spec["template"]["spec"];
    ASSERT_TRUE(pod.IsMap()) << "spec.template.spec";
    ASSERT_TRUE(pod["containers"].IsSequence());
    ASSERT_EQ(pod["containers"].size(), 1u);
    container = pod["containers"][0];
    for (const YAML::Node& part : {container["command"], container["args"]})
      if (part) argv_.push_back(part.as<std::vector<std::string>>());
  }
  std::vector<std::string> argv() const {
    std::vector<std::string> all;
    for (const auto& v : argv_) all.insert(all.end(), v.begin(), v.end());
    return all;
  }
  std::string option(const std::string& name) const {
    const auto a = argv();
    const auto it = std::find(a.begin(), a.end(), name);
    return it != a.end() && it + 1 != a.end() ? *(it + 1) : std::string();
  }
  // mountPath -> volume name
  std::map<std::string, std::string> mounts() const {
    std::map<std::string, std::string> m;
    for (const YAML::Node& v : container["volumeMounts"])
      m[v["mountPath"].as<std::string>()] = v["name"].as<std::string>();
    return m;
  }
  // The mount a path lies under.
  std::string mount_of(const std::string& path) const {
    for (const auto& [at, name] : mounts())
      if (path == at || path.rfind(at + "/", 0) == 0) return at;
    return {};
  }

  YAML::Node job, spec, pod, container;
  std::vector<std::vector<std::string>> argv_;
};

TEST_F(IndexedJob, IsABatchV1JobInIndexedMode) {
  EXPECT_EQ(job["apiVersion"].as<std::string>(), "batch/v1");
  EXPECT_EQ(job["kind"].as<std::string>(), "Job");
  EXPECT_FALSE(job["metadata"]["name"].as<std::string>().empty());
  // Without Indexed mode there is no JOB_COMPLETION_INDEX: every pod would master everything.
  EXPECT_EQ(spec["completionMode"].as<std::string>(), "Indexed");
  const int completions = spec["completions"].as<int>();
  EXPECT_GE(completions, 1);
  const int parallelism = spec["parallelism"].as<int>();
  EXPECT_GE(parallelism, 1);
  EXPECT_LE(parallelism, completions);
}

TEST_F(IndexedJob, RetriesFollowTheApisRules) {
  const std::string restart = pod["restartPolicy"].as<std::string>();
  EXPECT_TRUE(restart == "Never" || restart == "OnFailure") << restart;
  // backoffLimitPerIndex and podFailurePolicy are only accepted with restartPolicy Never.
  if (spec["backoffLimitPerIndex"] || spec["podFailurePolicy"]) EXPECT_EQ(restart, "Never");
  if (spec["backoffLimitPerIndex"]) EXPECT_GE(spec["backoffLimitPerIndex"].as<int>(), 0);
  if (spec["maxFailedIndexes"]) {
    EXPECT_TRUE(spec["backoffLimitPerIndex"]) << "maxFailedIndexes needs backoffLimitPerIndex";
    EXPECT_LE(spec["maxFailedIndexes"].as<int>(), spec["completions"].as<int>());
  }
  for (const YAML::Node& rule : spec["podFailurePolicy"]["rules"])
    if (rule["onExitCodes"] && rule["onExitCodes"]["containerName"])
      EXPECT_EQ(rule["onExitCodes"]["containerName"].as<std::string>(), container["name"].as<std::string>());
}

TEST_F(IndexedJob, RunsLatheMasterWithTheShardCountOfTheJob) {
  const auto a = argv();
  ASSERT_GE(a.size(), 3u);
  EXPECT_EQ(fs::path(a[0]).filename(), "lathe");
  EXPECT_EQ(a[1], "master");
  EXPECT_EQ(std::count(a.begin(), a.end(), "--shard"), 0) << "the shard comes from JOB_COMPLETION_INDEX";
  std::string shard_count;
  for (const YAML::Node& e : container["env"])
    if (e["name"].as<std::string>() == "LATHE_SHARD_COUNT") shard_count = e["value"].as<std::string>();
  EXPECT_EQ(shard_count, spec["completions"].as<std::string>()) << "LATHE_SHARD_COUNT must equal completions";
  EXPECT_EQ(option("--jobs"), container["resources"]["limits"]["cpu"].as<std::string>())
      << "--jobs follows the pod's CPU limit";
}

TEST_F(IndexedJob, HasAGpuAndVolumesForTheCatalogAndTheOutputs) {
  EXPECT_GE(container["resources"]["limits"]["nvidia.com/gpu"].as<int>(), 1);
  std::map<std::string, YAML::Node> volumes;
  for (const YAML::Node& v : pod["volumes"]) volumes[v["name"].as<std::string>()] = v;
  for (const auto& [at, name] : mounts()) EXPECT_EQ(volumes.count(name), 1u) << at << " mounts no declared volume";

  const std::string catalog = argv()[2], out = option("--out");
  const std::string catalog_mount = mount_of(catalog), out_mount = mount_of(out);
  ASSERT_FALSE(catalog_mount.empty()) << catalog << " is on no volume";
  ASSERT_FALSE(out_mount.empty()) << out << " is on no volume: outputs would die with the pod";
  EXPECT_NE(catalog_mount, out_mount);
  const std::string out_volume = mounts().at(out_mount);
  EXPECT_TRUE(volumes[out_volume]["persistentVolumeClaim"]) << "the shared output tree outlives the pods";
  EXPECT_FALSE(volumes[out_volume]["persistentVolumeClaim"]["readOnly"] &&
               volumes[out_volume]["persistentVolumeClaim"]["readOnly"].as<bool>());
  for (const YAML::Node& m : container["volumeMounts"])
    if (m["mountPath"].as<std::string>() == out_mount) EXPECT_FALSE(m["readOnly"] && m["readOnly"].as<bool>());
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SlurmArrayScript, AsksForAGpu16CoresATimeLimitAndRequeue) {
  const std::string script = slurp(deploy_dir / "slurm" / "lathe-array.sbatch");
  ASSERT_FALSE(script.empty());
  for (const char* directive : {"#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=16",
                                "#SBATCH --time=", "#SBATCH --requeue", "#SBATCH --ntasks=1"})
    EXPECT_NE(script.find(directive), std::string::npos) << directive;
  EXPECT_NE(script.find("srun "), std::string::npos);
  EXPECT_NE(script.find("master \"$catalog\" --out \"$out\""), std::string::npos);
  EXPECT_EQ(script.find("--shard "), std::string::npos) << "the shard comes from SLURM_ARRAY_TASK_ID";
}

}  // namespace
