// meridianctl: the operator's command line for Meridian's control plane.
#include <iostream>

#include "controlplane/ctl/cli.h"

int main(int argc, char** argv) {
  return meridian::ctl::RunCli(argc, argv, std::cin, std::cout, std::cerr);
}
