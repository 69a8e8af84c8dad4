#!/usr/bin/env bash
# Kept for scripts that call it: the system packages now install in one place.
exec bash "$(dirname "$0")/../install_system_packages.sh" "$@"
