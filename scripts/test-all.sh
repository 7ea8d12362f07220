#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need first.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain targets"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# The node binary as it is built: p2p-core without its simulator (the feature `sim`, which
# the workspace-wide builds turn on for wasm-demo and for p2p-core's own tests).
cargo clippy --locked -p p2p-core -p native-host -- -D warnings

step "p2p-core builds for WebAssembly, without and with the simulator"
cargo build --locked -p p2p-core --target wasm32-unknown-unknown
cargo build --locked -p p2p-core --target wasm32-unknown-unknown --features sim

step "build"
cargo build --locked --workspace --all-targets

step "JavaScript test node for the interop tests (tests/interop, from its lockfile)"
npm ci --prefix tests/interop

step "tests"
cargo test --locked --workspace

step "wasm-demo: Chromium for the end-to-end test"
if [ ! -x /usr/bin/chromium ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

step "wasm-demo: build the page into wasm-demo/dist (installs wasm-bindgen-cli when missing)"
wasm-demo/build.sh

step "wasm-demo: wasm-bindgen tests of the bindings, as WebAssembly in Node"
cargo test --locked -p wasm-demo --target wasm32-unknown-unknown

step "wasm-demo: end-to-end test in headless Chromium (wasm-demo/e2e, from its lockfile)"
npm ci --prefix wasm-demo/e2e
(cd wasm-demo/e2e && node --test)
