#!/usr/bin/env bash
# What `cargo publish` would upload, checked: prints `cargo package --list`, fails when it holds
# files users do not need (tests and their harnesses, test keys, node_modules, benches,
# scripts, fuzz, CI files) or any file over 100 KiB, then runs `cargo publish --dry-run` with
# every feature (what docs.rs builds), which packages the crate and builds it from the package
# alone.
#
#   scripts/package-check.sh            # needs crates.io (the index)
#   OFFLINE=1 scripts/package-check.sh  # `cargo package --offline` instead of the dry run
#
# The "ignoring test `…` as `tests/….rs` is not included" warnings are expected: cargo drops
# the test, bench and example targets whose files are not shipped (Cargo.toml, `include`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

max_bytes=$((100 * 1024))
list=$(cargo package --list --allow-dirty --quiet)
printf '%s\n' "$list" | sed 's/^/    /'

bad=$(printf '%s\n' "$list" | grep -E \
    -e '(^|/)node_modules/' \
    -e '^(benches|scripts|fuzz|\.ci|target)/' \
    -e '^\.gitignore$' \
    -e '^tests/' || true)
if [[ -n $bad ]]; then
    echo "error: the package would ship files users do not need (Cargo.toml, include):" >&2
    printf '    %s\n' $bad >&2
    exit 1
fi
large=$(printf '%s\n' "$list" | while read -r f; do
    if [[ -f $f ]] && (($(stat -c %s "$f") > max_bytes)); then
        echo "$f ($(stat -c %s "$f") bytes)"
    fi
done)
if [[ -n $large ]]; then
    echo "error: the package would ship files over $max_bytes bytes:" >&2
    printf '    %s\n' "$large" >&2
    exit 1
fi
echo "package contents: $(printf '%s\n' "$list" | wc -l) files, none unneeded, none over $max_bytes bytes"

if [[ ${OFFLINE:-} == 1 ]]; then
    echo "OFFLINE=1: cargo package --offline instead of cargo publish --dry-run (no index check)"
    cargo package --allow-dirty --all-features --offline
else
    cargo publish --dry-run --allow-dirty --all-features
fi
