#!/usr/bin/env python3
"""cluster-generic cancel command of the polaris-allocation profile: hyperinr.cluster.allocation."""
import sys

from hyperinr.cluster.allocation import main

sys.exit(main(["cancel", *sys.argv[1:]]))
