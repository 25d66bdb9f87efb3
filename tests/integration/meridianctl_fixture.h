#pragma once

// Runs the real meridianctl binary (MERIDIANCTL_PATH, set by CMake) as a subprocess against
// an in-process control plane on a fresh PostgreSQL database.
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/integration/control_plane_fixture.h"
#include "tests/support/subprocess.h"

namespace meridian::testing {

struct CtlResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::ostream& operator<<(std::ostream& os, const CtlResult& result) {
  return os << "exit " << result.exit_code << "\n--- stdout\n"
            << result.out << "--- stderr\n"
            << result.err;
}

class MeridianctlFixture : public ControlPlaneTest {
 protected:
  std::string Server() const {
    return absl::StrCat("http://127.0.0.1:", control_plane_->http_port());
  }

  // The environment of every run: ours without MERIDIAN_* and USER, plus these.
  std::vector<std::string> Environment() const {
    std::vector<std::string> env = InheritedEnvironment({"MERIDIAN_", "USER="});
    env.push_back("MERIDIAN_SERVER=" + Server());
    env.push_back("MERIDIAN_ENVIRONMENT=prod");
    env.push_back("USER=ctl-tester");
    return env;
  }

  std::vector<std::string> Argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {MERIDIANCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  CtlResult Ctl(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    Subprocess process(Argv(args), Environment(), stdin_text);
    CtlResult result;
    result.exit_code = process.Wait();
    result.out = process.out();
    result.err = process.err();
    return result;
  }

  // Runs a command that must succeed and returns its standard output.
  std::string CtlOk(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    CtlResult result = Ctl(args, stdin_text);
    EXPECT_EQ(result.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << result;
    return result.out;
  }

  json CtlJson(std::vector<std::string> args) {
    args.push_back("-o");
    args.push_back("json");
    const std::string out = CtlOk(args);
    json parsed = json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(parsed.is_discarded()) << out;
    return parsed;
  }

  // Applies YAML from standard input and returns the revision it printed.
  int64_t ApplyYaml(const std::string& yaml, const std::string& comment) {
    const std::string out = CtlOk({"apply", "-f", "-", "--comment", comment}, yaml);
    const size_t at = out.rfind("revision ");
    EXPECT_NE(at, std::string::npos) << out;
    return at == std::string::npos ? -1 : std::stoll(out.substr(at + 9));
  }

  std::vector<std::string> Lines(const std::string& text) {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }
};

}  // namespace meridian::testing
