#!/bin/sh
# Install PyTorch's CPU build into the virtual environment whose pip is $1.
# Where a CPU wheel of torch 2.13.0 lies on this machine (pip's find-links), pip takes it;
# elsewhere the CPU build comes from PyTorch's own CPU index, never the multi-GB CUDA build.
set -eu
pip="$1"
version=2.13.0
if "$pip" show torch >/dev/null 2>&1; then
    exit 0
fi
probe=$(mktemp -d)
if "$pip" download --quiet --no-deps --no-index --dest "$probe" "torch==$version" 2>/dev/null \
    && ls "$probe" | grep -q '+cpu'; then
    echo "installing the local CPU build of torch $version"
    "$pip" install --quiet "torch==$version"
else
    echo "installing torch $version from PyTorch's CPU index"
    "$pip" install --quiet "torch==$version" --index-url https://download.pytorch.org/whl/cpu
fi
rm -rf "$probe"
