// The lathe binary as a user meets it: help, formats, usage errors and their exit status.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct result {
  int status = -1;
  std::string output;  // stdout and stderr together
};

result lathe(const std::string& args) {
  const std::string cmd = std::string(LATHE_BINARY_DIR) + "/lathe " + args + " 2>&1";
  result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) r.output += buf.data();
  const int s = ::pclose(p);
  r.status = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  return r;
}

const std::string configs = std::string(" --config-dir ") + LATHE_SOURCE_DIR + "/configs";

TEST(Cli, HelpForEveryCommand) {
  for (const char* cmd :
       {"--help", "master --help", "analyze --help", "formats --help", "plan --help", "report merge --help"}) {
    const result r = lathe(cmd);
    EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << cmd;
  }
}

TEST(Cli, FormatsListsEveryShippedProfileWithItsTarget) {
  const result r = lathe("formats" + configs);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* name : {"streaming", "apple", "cd", "hires", "broadcast", "atsc"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name;
  EXPECT_NE(r.output.find("-23.0 LUFS"), std::string::npos);
  EXPECT_NE(r.output.find("-24.0 LUFS"), std::string::npos);
}

TEST(Cli, UsageAndConfigurationErrorsExitOneWithAReason) {
  const fs::path dir = fs::temp_directory_path() / ("lathe-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir / "in");
  {
    std::ofstream(dir / "bad.toml")
        << "name = \"mine\"\n[loudness]\ntarget_lufs = -14.0\nceiling_dbtp = -1.0\nloudnes = 3\n";
  }
  const std::string in = (dir / "in").string(), out = (dir / "out").string();

  result r = lathe("master " + in + " --out " + out + " --formats nosuch" + configs);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("nosuch"), std::string::npos) << r.output;

  r = lathe("master " + in + " --out " + out + " --profile " + (dir / "bad.toml").string() + configs);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("bad.toml:"), std::string::npos) << r.output;

  r = lathe("master " + in + " --out " + in + "/masters" + configs);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("inside the catalog"), std::string::npos) << r.output;

  r = lathe("master " + (dir / "missing").string() + " --out " + out + configs);
  EXPECT_EQ(r.status, 1);

  r = lathe("master " + in + " --out " + out + " --max-memory lots" + configs);
  EXPECT_EQ(r.status, 1);

  r = lathe("master --nonsense");
  EXPECT_EQ(r.status, 1);
  fs::remove_all(dir);
}

TEST(Cli, GpuBackendFailsClearlyWhenItCannotRun) {
  const fs::path dir = fs::temp_directory_path() / ("lathe-cli-gpu-" + std::to_string(::getpid()));
  fs::create_directories(dir / "in");
  const result r =
      lathe("master " + (dir / "in").string() + " --out " + (dir / "out").string() + " --backend gpu" + configs);
  if (r.status == 1) {
    // No usable GPU (or no CUDA in this build): it must say why.
    EXPECT_NE(r.output.find("--backend gpu"), std::string::npos) << r.output;
    fs::remove_all(dir);
    return;
  }
  // A GPU is present: an empty catalog masters nothing and succeeds on the GPU engine.
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("GPU engine"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

}  // namespace
