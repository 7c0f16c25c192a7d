#!/usr/bin/env bash
# ui-test.sh BIN OUT: loads the aggregator's status page in headless Chromium during
# a real local federation and keeps a screenshot. It runs `fedclaims demo` (three
# synthetic hospitals, six rounds of the 2m preset: aggregator and site agents as
# processes on loopback, secure aggregation included), waits on /status.json until
# two rounds are applied and the next one is open, then dumps the page's
# DOM, checks its elements and saves OUT/status.png, and stops the demo (its
# evaluation is not what this tests). Installs Debian's chromium when missing. Run
# by `make ui-test`; not part of `make test`.
set -euo pipefail
bin=${1:-bin/fedclaims}
out=${2:-out/ui-test}

browser=""
for b in chromium chromium-browser; do
	if command -v "$b" >/dev/null; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
	echo "installing: chromium"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	browser=chromium
fi

rm -rf "$out" && mkdir -p "$out"
demo_pid=""
profile=$(mktemp -d)
cleanup() {
	# The demo stops its aggregator and sites when it gets SIGTERM.
	if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
		kill -TERM "$demo_pid" 2>/dev/null || true
		wait "$demo_pid" 2>/dev/null || true
	fi
	rm -rf "$profile"
}
trap cleanup EXIT

# Rounds long enough (20 local steps at three sites) that the page is caught with
# one open, few patients so that setup is quick.
"$bin" demo --out "$out/demo" --hospitals 3 --patients 600 --rounds 6 --local-steps 20 --seq 64 \
	--bootstrap 20 --log-level warn >"$out/demo.log" 2>&1 &
demo_pid=$!

fail() {
	echo "ui-test: $*" >&2
	echo "--- the demo's log ($out/demo.log), last lines:" >&2
	tail -n 20 "$out/demo.log" >&2 || true
	exit 1
}

# The aggregator's configuration names its metrics listener, a loopback port that
# localfed chose.
cfg="$out/demo/federation/aggregator.yaml"
for _ in $(seq 1 600); do
	[ -s "$cfg" ] && break
	kill -0 "$demo_pid" 2>/dev/null || fail "the demo exited before writing $cfg"
	sleep 0.5
done
addr=$(sed -n 's/^metrics: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$cfg")
case "$addr" in
127.0.0.1:*) ;;
*) fail "metrics address '$addr' in $cfg is not on loopback" ;;
esac
url="http://$addr/"
echo "status page: $url"

# Mid-federation: two rounds applied (so that the plot has a line) and another one
# open with an update in (the in-round progress), or with none yet once four rounds
# passed without catching one: the updates of a round arrive within a second or so
# of each other and it then closes at once. python3's json module reads the status.
mid_round='
import json, sys
s = json.load(sys.stdin)
p = s.get("progress") or {}
ok = s["state"] == "training" and p and s["rounds_completed"] >= 2 and (p["contributions"] >= 1 or s["rounds_completed"] >= 4)
sys.exit(0 if ok else 1)'
ready=""
for _ in $(seq 1 3000); do
	kill -0 "$demo_pid" 2>/dev/null || fail "the demo exited before a round was applied"
	if js=$(curl -fsS --max-time 5 "${url}status.json" 2>/dev/null); then
		if printf '%s' "$js" | python3 -c "$mid_round"; then
			ready=1
			break
		fi
	fi
	sleep 0.2
done
[ -n "$ready" ] || fail "two rounds were not applied within 10 minutes"
printf '%s\n' "$js" >"$out/status.json"
curl -fsS "http://$addr/healthz" | grep -qx ok || fail "/healthz did not answer ok"

chrome=("$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars
	--user-data-dir="$profile" --window-size=1280,1600)
# The screenshot first, to catch the round in progress; the DOM a moment later.
timeout 90 "${chrome[@]}" --screenshot="$out/status.png" "$url" >"$out/chromium.log" 2>&1 ||
	fail "chromium --screenshot failed (see $out/chromium.log)"
timeout 90 "${chrome[@]}" --dump-dom "$url" >"$out/status.dom.html" 2>>"$out/chromium.log" ||
	fail "chromium --dump-dom failed (see $out/chromium.log)"
[ -s "$out/status.png" ] || fail "no screenshot at $out/status.png"

# What the browser built from the page: the federation, three site rows, the applied
# rounds, the plot, the self-refresh and the audit head.
dom="$out/status.dom.html"
check() {
	grep -qE "$2" "$dom" || fail "the DOM lacks $1 (/$2/); see $dom"
}
check "the federation id" '<span id="federation">demo</span>'
check "the state" 'id="state">training<'
check "the round progress" '[0-9]+ / 3 contributions'
check "the loss plot" '<svg id="loss-plot"[^>]*>'
check "the plot's line" '<polyline '
check "the self-refresh" '<meta http-equiv="refresh" content="5">'
check "the audit head" 'id="audit-head" title="[0-9a-f]{64}"'
sites=$(grep -cE '<tr class="site" id="site-' "$dom" || true)
[ "$sites" -eq 3 ] || fail "the DOM has $sites site rows, want 3"
rounds=$(grep -cE '<tr class="round" id="round-[0-9]+">' "$dom" || true)
[ "$rounds" -ge 2 ] || fail "the DOM has $rounds applied-round rows, want at least 2"
if grep -q '<script' "$dom"; then fail "the page carries a script"; fi

echo "ui-test: ok: $out/status.png ($(wc -c <"$out/status.png") bytes), DOM checked ($dom)"
