#pragma once

#include <istream>
#include <ostream>

namespace meridian::ctl {

// meridianctl's command line: parses flags (CLI11), connects to meridian-cp and runs one
// subcommand. Returns the process exit code: 0 on success, 1 when the command fails (the
// reason printed to `err` as "error: <message>"), 2 on a usage error.
// MERIDIAN_SERVER and MERIDIAN_ENVIRONMENT provide the defaults of --server and -e.
int RunCli(int argc, const char* const* argv, std::istream& in, std::ostream& out,
           std::ostream& err);

}  // namespace meridian::ctl
