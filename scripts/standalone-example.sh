#!/usr/bin/env bash
# Builds an example the way a user does who copies that one file: alone, as src/main.rs of a
# fresh crate whose [dependencies] are exactly the ones listed in the example's header comment
# (a `//! [dependencies]` line, then one `//! name = …` line per dependency). The
# `tower-token-auth` line is pointed at this checkout (`path = …`), keeping its features.
#
#   scripts/standalone-example.sh examples/hyper_server.rs
#
# Fails when the header lists no dependencies, or when the file does not build (a dependency or
# feature missing from the header, a `#[path]` module it cannot find, any warning). Offline when
# the registry cache has everything; otherwise `cargo fetch` downloads what is missing. Builds
# in the checkout's target/ so the dependencies compiled for the suite are reused.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
example=${1:?usage: $0 examples/NAME.rs}
[[ $example = /* ]] || example=$root/$example
name=$(basename "$example" .rs)

# The header's dependency lines, `//! ` stripped.
deps=$(awk '
    /^\/\/! \[dependencies\][[:space:]]*$/ { on = 1; next }
    on && /^\/\/! [A-Za-z0-9_-]+ = / { sub(/^\/\/! /, ""); print; next }
    on { exit }
' "$example")
if [[ -z $deps ]]; then
    echo "error: $example: no '//! [dependencies]' list in its header comment" >&2
    exit 1
fi
if ! grep -q '^tower-token-auth = ' <<<"$deps"; then
    echo "error: $example: the header's [dependencies] do not list tower-token-auth" >&2
    exit 1
fi
# tower-token-auth = "0.1"                        -> { path = "<root>" }
# tower-token-auth = { version = "0.1", ... }     -> { path = "<root>", ... }
deps=$(sed -E \
    -e "s|^(tower-token-auth = )\"[^\"]*\"\$|\\1{ path = \"$root\" }|" \
    -e "s|^(tower-token-auth = \\{.*)version = \"[^\"]*\"|\\1path = \"$root\"|" \
    <<<"$deps")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/src"
cp "$example" "$scratch/src/main.rs"
cat >"$scratch/Cargo.toml" <<EOF
[package]
name = "standalone-$name"
version = "0.0.0"
edition = "2024"
publish = false

# Not part of any workspace the temp dir may sit in.
[workspace]

[lints.rust]
warnings = "deny"

[dependencies]
$deps
EOF
# The checkout's lock file: the same versions as the rest of the suite, already in the cache.
cp "$root/Cargo.lock" "$scratch/Cargo.lock"

echo "standalone $name: [dependencies] from its header:"
sed 's/^/    /' <<<"$deps"
cd "$scratch"
if ! cargo fetch --offline --quiet 2>/dev/null; then
    echo "standalone $name: the registry cache lacks some dependencies; fetching them"
    cargo fetch --quiet
fi
CARGO_TARGET_DIR=$root/target cargo build --offline --quiet
echo "standalone $name: builds alone with exactly those dependencies"
