#!/usr/bin/env python3
"""cluster-generic submit command of the polaris-allocation profile: hyperinr.cluster.allocation."""
import sys

from hyperinr.cluster.allocation import main

sys.exit(main(["submit", *sys.argv[1:]]))
