#!/usr/bin/env bash
# Builds the demo page into wasm-demo/dist/: index.html at its root, the .wasm and its
# JavaScript glue beside it. Installs the wasm32-unknown-unknown target and
# wasm-bindgen-cli (the version the wasm-bindgen crate is pinned to) when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

# The CLI must be exactly the version of the crate: read it from wasm-demo/Cargo.toml.
version="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' "$here/Cargo.toml")"
if [ -z "$version" ]; then
    echo "build.sh: no exact wasm-bindgen version (=0.2.x) in wasm-demo/Cargo.toml" >&2
    exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
# Cargo installs into $CARGO_HOME/bin; make sure a fresh install is found.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
    cargo install wasm-bindgen-cli --version "=$version" --locked
fi

cargo build --release --locked --target wasm32-unknown-unknown -p wasm-demo

target_dir="$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
dist="$here/dist"
rm -rf "$dist"
mkdir -p "$dist"
wasm-bindgen --target web --no-typescript --out-dir "$dist" \
    "$target_dir/wasm32-unknown-unknown/release/wasm_demo.wasm"
cp "$here"/www/* "$dist"/
echo "build.sh: built $dist"
