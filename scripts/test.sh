#!/usr/bin/env bash
# The project's one test command, for a newcomer on a fresh Debian/Ubuntu machine and for CI.
#
#   scripts/test.sh
#
# 1. installs the system packages the tests need, with apt, only when they are missing;
# 2. cargo fmt --check, clippy (warnings are errors), tests (unit, integration, examples,
#    doctests) and rustdoc (warnings are errors), all with every feature enabled;
# 3. checks the library with the toolchain named by rust-version in Cargo.toml (the MSRV);
# 4. builds examples/hyper_server.rs alone in a scratch crate (scripts/standalone-example.sh);
# 5. checks what `cargo publish` would upload and dry-runs it (scripts/package-check.sh; needs
#    crates.io, OFFLINE=1 packages and verifies without it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# System packages the tests need. Append to the list, e.g. nginx libnginx-mod-http-js.
SYSTEM_PACKAGES=(
    redis-server nginx libnginx-mod-http-js
    chromium
    openssl curl
    postgresql
)
# The browser test drives Chromium from node (tests/browser), the identity-provider tests run
# oidc-provider (tests/oidc, node >= 20.19); python3 runs their PyJWT helpers.
command -v node >/dev/null 2>&1 || SYSTEM_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || SYSTEM_PACKAGES+=(npm)
command -v python3 >/dev/null 2>&1 || SYSTEM_PACKAGES+=(python3 python3-pip)

step() {
    printf '\n==> %s\n' "$*"
}

install_system_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "note: not a Debian-based system; make sure these are installed: ${SYSTEM_PACKAGES[*]}" >&2
        return
    fi
    local missing=() pkg
    for pkg in "${SYSTEM_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return
    fi
    step "installing system packages: ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

ensure_rust_components() {
    local component
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            if command -v rustup >/dev/null 2>&1; then
                step "installing the $component component"
                rustup component add "$component"
            else
                echo "error: cargo ${component/rustfmt/fmt} is not available; install $component" >&2
                exit 1
            fi
        fi
    done
}

# The browser test's npm packages (playwright-core), as locked in package-lock.json.
install_browser_test_packages() {
    local dir=tests/browser
    if [[ -f $dir/node_modules/.package-lock.json &&
        ! $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
        return
    fi
    step "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund)
}

# The identity-provider tests' npm packages (oidc-provider, jose), as locked in
# tests/oidc/package-lock.json, and their Python packages (PyJWT, cryptography), as pinned in
# tests/oidc/requirements.txt (installed for the user when missing or of another version).
install_idp_test_packages() {
    local dir=tests/oidc
    if [[ ! -f $dir/node_modules/.package-lock.json ||
        $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
        step "npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund)
    fi
    command -v python3 >/dev/null 2>&1 || {
        echo "error: python3 is needed for the PyJWT interop tests (tests/idp.rs)" >&2
        exit 1
    }
    if ! python3 - "$dir/requirements.txt" <<'PY'; then
import sys
from importlib.metadata import PackageNotFoundError, version

for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
        step "pip install -r $dir/requirements.txt"
        # A virtualenv or pyenv Python takes a plain install; Debian's system Python (PEP 668)
        # only a user install that says it knows.
        python3 -m pip install --quiet -r "$dir/requirements.txt" ||
            python3 -m pip install --quiet --user --break-system-packages -r "$dir/requirements.txt"
    fi
}

install_system_packages
install_browser_test_packages
install_idp_test_packages
ensure_rust_components

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets --all-features -- -D warnings"
cargo clippy --all-targets --all-features -- -D warnings

step "feature combinations: each crypto backend alone, no axum/redis; each SQL backend alone"
cargo check --lib --no-default-features --features aws_lc_rs
cargo check --lib --no-default-features --features rust_crypto
cargo check --lib --no-default-features --features aws_lc_rs,postgres
cargo check --lib --no-default-features --features aws_lc_rs,sqlite
if cargo check --lib --no-default-features --quiet 2>/dev/null; then
    echo "error: building without a crypto backend must fail" >&2
    exit 1
fi

# The MSRV: the library must build with the `rust-version` Cargo.toml states (1.88: let
# chains), installed with rustup when missing. SKIP_MSRV=1 skips it, loudly.
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
step "MSRV: cargo +$msrv check --lib --all-features (rust-version in Cargo.toml)"
if [[ ${SKIP_MSRV:-} == 1 ]]; then
    echo "SKIPPED: the MSRV check (SKIP_MSRV=1); rust-version $msrv is not verified by this run" >&2
elif ! command -v rustup >/dev/null 2>&1; then
    echo "error: rustup not found: the MSRV check needs it to install Rust $msrv (or set SKIP_MSRV=1)" >&2
    exit 1
else
    if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
        rustup toolchain install "$msrv" --profile minimal
    fi
    cargo "+$msrv" check --lib --all-features
fi

step "examples/hyper_server.rs copied alone into a fresh crate, with its header's [dependencies]"
bash scripts/standalone-example.sh examples/hyper_server.rs

step "cargo test --all-features"
cargo test --all-features

step "cargo doc --no-deps, default features and --all-features (RUSTDOCFLAGS=-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "package: cargo package --list reviewed, cargo publish --dry-run (scripts/package-check.sh)"
bash scripts/package-check.sh

step "all checks passed"
