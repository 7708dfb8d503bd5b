#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with cargo fuzz (libFuzzer, address
# sanitizer, nightly): each target in fuzz/fuzz_targets for FUZZ_SECONDS
# (default 20: CI's brief run; docs/security.md says how to run long).
# Seeds in fuzz/seeds/<target>; the growing corpus in target/fuzz-corpus.
# A crash fails the run and leaves its input in fuzz/artifacts/<target>:
# make it a regression test.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_rust
seconds="${FUZZ_SECONDS:-20}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (crates.io)"
  cargo install --locked cargo-fuzz
fi
cd fuzz
log "building the fuzz targets (nightly, address sanitizer)"
cargo +nightly fuzz build
summary=()
for target in $(cargo +nightly fuzz list); do
  corpus="$ROOT/target/fuzz-corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  log "fuzzing $target for ${seconds}s"
  out=$(mktemp)
  if ! cargo +nightly fuzz run "$target" "$corpus" "${seeds[@]}" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=70000 -print_final_stats=1 \
      >"$out" 2>&1; then
    tail -40 "$out" >&2
    echo "fuzz target $target FAILED (input in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out" | grep -o '[0-9]*$' | tail -1)
  summary+=("$target: ${runs:-?} executions in ${seconds}s, no crash")
  rm -f "$out"
done
printf 'fuzz: %s\n' "${summary[@]}"
