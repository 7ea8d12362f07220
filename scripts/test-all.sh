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
cargo clippy --workspace --all-targets --locked -- -D warnings

step "p2p-core builds for WebAssembly"
cargo build --locked -p p2p-core --target wasm32-unknown-unknown

step "build"
cargo build --locked --workspace --all-targets

step "tests"
cargo test --locked --workspace
