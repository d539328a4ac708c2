#!/bin/sh
# demo.sh -- `make demo`: install missing Debian build packages, build,
# then run the whole job on a generated sample shop.
set -e
missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
pkg-config --exists openblas 2>/dev/null || missing="$missing libopenblas-dev"
if [ -n "$missing" ]; then
    echo "demo: installing Debian packages:$missing"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q $missing
fi
make -s all
exec build/cxengine demo "$@"
