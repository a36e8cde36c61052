#!/usr/bin/env bash
# Builds every ```rust block of README.md as an example of a separate crate that depends on
# wsproto the way a user's crate does (by path here, with the features the README names), so
# an example that compiles only inside the crate's doctests (private paths, dev-dependencies,
# feature gates) fails CI.
#
# Lines hidden from readers (`# ...`) are kept, except `#[cfg(...)]` gates (a user's crate has
# none of our features) and lines marked `// doctest shim` (stand-ins for crates the doctests
# cannot depend on, such as axum).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=target/readme-examples
rm -rf "$dir/examples"
mkdir -p "$dir/examples" "$dir/src"

cat > "$dir/Cargo.toml" <<TOML
[package]
name = "readme-examples"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
wsproto = { path = "$root", features = ["rustls", "hyper", "axum"] }
tokio = { version = "1", features = ["full"] }
futures-util = { version = "0.3", features = ["sink"] }
axum = "0.8"
http = "1"
TOML
echo "" > "$dir/src/lib.rs"

awk -v out="$dir/examples" '
  /^```rust/ { n++; file = sprintf("%s/readme_%02d.rs", out, n); inblock = 1; body = ""; next }
  inblock && /^```/ {
    inblock = 0
    if (body ~ /fn main/) { printf "%s", body > file }
    else { printf "#![allow(unused)]\nfn main() {\n%s}\n", body > file }
    close(file); next
  }
  inblock {
    line = $0
    if (line ~ /^ *# *#\[cfg\(/ || line ~ /\/\/ doctest shim *$/) next
    if (line ~ /^ *# / || line ~ /^ *#$/) sub(/^ *# ?/, "", line) # hidden: compiled, as rustdoc does
    body = body line "\n"
  }
' README.md

count=$(ls "$dir/examples" | wc -l)
echo "README examples: $count blocks"
CARGO_TARGET_DIR="$root/target" cargo build --quiet --manifest-path "$dir/Cargo.toml" --examples
echo "README examples: all $count build in a separate crate"
