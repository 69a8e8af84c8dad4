#!/usr/bin/env python3
"""cluster-generic status command of the polaris-allocation profile: hyperinr.cluster.allocation."""
import sys

from hyperinr.cluster.allocation import main

sys.exit(main(["status", *sys.argv[1:]]))
