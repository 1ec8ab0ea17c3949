#!/usr/bin/env bash
# make_seeds.sh - (re)generate the seed corpora in tests/fuzz/corpus/<target>/
# from homura's own encoders (build/homura convert) and a few hand-written
# inputs. Run from anywhere after `make`; the output is committed, so this is
# only needed when a format changes. Regression inputs for fixed bugs are
# added by hand next to the seeds (named regress-*), and kept by this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
H=${HOMURA_BIN:-build/homura}
C=tests/fuzz/corpus
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for d in pprof otlp otlp_json speedscope collapsed read gzip push ingest selector api walker pyobj querier; do
	mkdir -p "$C/$d"
	find "$C/$d" -type f -name 'seed-*' -delete
done

# Two small profiles in the collapsed form, converted to every format.
cat > "$T/a.txt" <<'X'
main (app.py:3);work (app.py:9);inner (lib/x.py:120) 5
main (app.py:3);idle (app.py:20) 2
thread 1 (main);main (app.py:3);native_fn (libfoo.so) 1
X
printf 'a;b;c 1\na;b 2\nz 3\n' > "$T/b.txt"
for n in a b; do
	for f in pprof otlp otlp-json speedscope; do
		"$H" convert "$T/$n.txt" -f "$f" -o "$T/$n.$f" 2>/dev/null
	done
	gzip -dc "$T/$n.pprof" > "$T/$n.pprof.raw"
	cp "$T/$n.pprof.raw" "$C/pprof/seed-$n"
	cp "$T/$n.otlp" "$C/otlp/seed-$n"
	cp "$T/$n.otlp-json" "$C/otlp_json/seed-$n"
	cp "$T/$n.speedscope" "$C/speedscope/seed-$n"
	cp "$T/$n.txt" "$C/collapsed/seed-$n"
	for f in pprof otlp otlp-json speedscope; do cp "$T/$n.$f" "$C/read/seed-$n-$f"; done
	cp "$T/$n.txt" "$C/read/seed-$n-collapsed"
	gzip -nc "$T/$n.txt" > "$C/read/seed-$n-collapsed.gz"
done
printf '# comment\n\nfoo;bar 1\r\nfoo\t 2\n' > "$C/collapsed/seed-c"

# gzip: a cap byte, then gzip / zlib data.
python3 - "$C/gzip" <<'X'
import sys, gzip, zlib
d = sys.argv[1]
open(d + "/seed-gzip", "wb").write(bytes([12]) + gzip.compress(b"a;b;c 1\n" * 20, mtime=0))
open(d + "/seed-zlib", "wb").write(bytes([20]) + zlib.compress(b"hello " * 100))
open(d + "/seed-capped", "wb").write(bytes([4]) + gzip.compress(b"x" * 1000, mtime=0))
open(d + "/seed-empty", "wb").write(bytes([10]) + gzip.compress(b"", mtime=0))
X

# Push: a flags byte (1 = JSON, 2 = gzip), then a PushRequest.
python3 - "$C/push" "$T/a.pprof.raw" "$T/b.pprof" <<'X'
import sys, gzip, base64, json
d, raw, gz = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if n: out += bytes([b | 0x80])
        else: return out + bytes([b])
def field(no, data): return varint(no << 3 | 2) + varint(len(data)) + data
def label(k, v): return field(1, field(1, k.encode()) + field(2, v.encode()))
def series(labels, profiles):
    return field(1, b"".join(label(k, v) for k, v in labels) +
                 b"".join(field(2, field(1, p) + field(2, b"id1")) for p in profiles))
lab = [("__name__", "process_cpu"), ("service_name", "api"), ("__delta__", "false"),
       ("version", "1.0")]
req = series(lab, [raw]) + series([("__name__", "wall"), ("host", "h1")], [gz])
open(d + "/seed-proto", "wb").write(b"\0" + req)
open(d + "/seed-proto-gzip", "wb").write(b"\2" + gzip.compress(req, mtime=0))
j = {"series": [{"labels": [{"name": k, "value": v} for k, v in lab],
                 "samples": [{"rawProfile": base64.b64encode(raw).decode(), "ID": "x"}]}]}
open(d + "/seed-json", "wb").write(b"\1" + json.dumps(j).encode())
X

# Pyroscope /ingest: "QUERY\nCONTENT-TYPE\nBODY".
{ printf 'name=app.cpu{env=prod,region=eu}&from=1700000000&format=folded&sampleRate=100\n\n'
  cat "$T/a.txt"; } > "$C/ingest/seed-folded"
{ printf 'name=app.wall&format=lines&from=now-10s\ntext/plain\n'
  printf 'a;b;c\na;b\r\na;b;c\n'; } > "$C/ingest/seed-lines"
{ printf 'name=svc.itimer{service_name=other}&format=pprof\napplication/octet-stream\n'
  cat "$T/a.pprof"; } > "$C/ingest/seed-pprof"
{ printf 'name=app.cpu&format=pprof\nmultipart/form-data; boundary=XyZ\n'
  printf -- '--XyZ\r\nContent-Disposition: form-data; name="profile"; filename="p"\r\n\r\n'
  cat "$T/b.pprof"
  printf '\r\n--XyZ\r\nContent-Disposition: form-data; name="sample_type_config"\r\n\r\n{}\r\n--XyZ--\r\n'; } \
	> "$C/ingest/seed-multipart"
{ printf 'name=app.cpu&format=folded\n\n'; gzip -nc "$T/b.txt"; } > "$C/ingest/seed-gzip"

# Selectors.
s=0
while IFS= read -r line; do
	s=$((s + 1)); printf '%s' "$line" > "$C/selector/seed-$s"
done <<'X'
process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api",version=~"1\\..*"}
{service_name!="x", host!~"a|b", k='v'}
wall
process_cpu:samples:count:cpu:nanoseconds{}
{k=~"(a|b)+c?", e="esc\"aped\\"}
X

# Query API: an endpoint byte (index into fuzz_api.c's paths), then the query.
api() { printf "\\x$(printf %02x "$1")%s" "$2" > "$C/api/seed-$3"; }
api 1 'from=now-1h&until=now' services
api 3 'query={service_name="api"}' labels
api 4 'name=version&from=1699990000000' label_values
api 5 'query=process_cpu{version=~"1.*"}&from=now-2h' series
api 6 'query=process_cpu{}&from=now-1d&until=now&step=60' timeseries
api 7 'query=process_cpu:samples:count:cpu:nanoseconds{}&max_nodes=3&by=line' flamegraph
api 8 'query=wall{}&limit=1&sort=total&label=service_name!=api' top
api 9 'baseline={version="1.0"}&comparison={version="1.1"}&from=now-3h' diff
api 10 'query=process_cpu{}&format=collapsed' download
api 11 'query=api.cpu{version=1.0}&from=now-1h&until=now&maxNodes=10' render
api 13 'label=__name__' pyro_label_values
api 8 'service=api&type=process_cpu&from=now-30m&until=now-1m' top2

# Walker: memory images of an interpreter with two threads, one per layout.
# With a CPython 3.13+ at hand, one more whose layout comes from the
# _Py_DebugOffsets at the start of its _PyRuntime (initialised data: read
# from the file at the symbol's section offset).
python3 - "$T/blob" /root/.pyenv/versions/3.1[3-9]*/lib/libpython3.1[3-9].so.1.0 <<'X' || true
import re, subprocess, sys
out = sys.argv[1]
for lib in sys.argv[2:]:
    try:
        syms = subprocess.run(["readelf", "-sW", lib], capture_output=True, text=True).stdout
        secs = subprocess.run(["readelf", "-SW", lib], capture_output=True, text=True).stdout
    except OSError:
        continue
    addr = [int(l.split()[1], 16) for l in syms.splitlines() if l.split()[-1:] == ["_PyRuntime"]]
    if not addr:
        continue
    for l in secs.splitlines():
        f = re.sub(r"^\s*\[\s*\d+\]", "", l).split()
        if len(f) > 4 and f[1] == "PROGBITS":
            va, off, size = int(f[2], 16), int(f[3], 16), int(f[4], 16)
            if va <= addr[0] < va + size:
                with open(lib, "rb") as fh:
                    fh.seek(addr[0] - va + off)
                    open(out, "wb").write(fh.read(4096))
                sys.exit(0)
sys.exit(1)
X
blob=
[ -s "$T/blob" ] && blob=$T/blob
FUZZ_WALKER_SEEDS=$C/walker FUZZ_WALKER_BLOB=$blob build-fuzz/fuzz_walker

# Object reader: a str, an int and a tuple laid out by each layout.
FUZZ_PYOBJ_SEEDS=$C/pyobj build-fuzz/fuzz_pyobj

# Querier (Connect): a method byte (index into fuzz_querier.c's methods), an
# encoding byte (1 JSON, 0 protobuf), then the request body.
mkdir -p "$C/querier"
find "$C/querier" -type f -name 'seed-*' -delete
qj() { { printf "\\x$(printf %02x "$1")\\x01"; printf '%s' "$2"; } > "$C/querier/seed-$3"; }
qp() { { printf "\\x$(printf %02x "$1")\\x00"; printf '%s' "$2" | protoc --proto_path=proto \
	--encode="$4" pyroscope/querier/v1/querier.proto; } > "$C/querier/seed-$3"; }
qj 0 '{"start":"1699990000000","end":"1700000000000"}' types-json
qj 1 '{"matchers":["{service_name=\"api\"}"]}' names-json
qj 2 '{"name":"endpoint","matchers":["{}"]}' values-json
qj 3 '{"matchers":["{}"],"labelNames":["__name__","service_name"]}' series-json
qj 4 '{"profile_typeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{service_name=\"api\"}","start":"1699990000000","maxNodes":"2"}' flame-json
qj 6 '{"profileTypeID":"memory:alloc_space:bytes:space:bytes","labelSelector":"{}"}' pprof-json
qj 7 '{"profileTypeID":"wall:wall:nanoseconds:wall:nanoseconds","labelSelector":"{}","start":"1699990000000","step":60,"groupBy":["endpoint"],"limit":"1","aggregation":"TIME_SERIES_AGGREGATION_TYPE_SUM"}' series-sel-json
qj 8 '{"left":{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{}"},"right":{"profileTypeID":"wall:wall:nanoseconds:wall:nanoseconds","labelSelector":"{}","start":"1699990000000"}}' diff-json
qj 9 '{}' stats-json
qj 5 '{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{service_name=\"api\"}","spanSelector":["00f067aa0ba902b7","00F067AA0BA902B8"],"start":"1699990000000"}' span-json
qp 4 'profile_typeID: "process_cpu:samples:count:cpu:nanoseconds" label_selector: "{endpoint=~\"/.*\"}" start: 1699990000000 end: 1700000000000' flame-pb querier.v1.SelectMergeStacktracesRequest
qp 7 'profile_typeID: "process_cpu:cpu:nanoseconds:cpu:nanoseconds" label_selector: "{}" step: 10 group_by: "service_name"' series-pb querier.v1.SelectSeriesRequest
qp 0 'start: 1 end: 2' types-pb querier.v1.ProfileTypesRequest
qp 5 'profile_typeID: "process_cpu:samples:count:cpu:nanoseconds" label_selector: "{}" span_selector: "00f067aa0ba902b7" start: 1699990000000 end: 1700000000000 max_nodes: 3' span-pb querier.v1.SelectMergeSpanProfileRequest

# pprof with four sample types (heap) and per-sample string labels.
protoc --proto_path=proto --encode=perftools.profiles.Profile perftools/profiles/profile.proto \
	> "$C/pprof/seed-heap-labels" <<'X'
sample_type { type: 1 unit: 2 } sample_type { type: 3 unit: 4 }
sample_type { type: 5 unit: 2 } sample_type { type: 6 unit: 4 }
period_type { type: 7 unit: 4 } period: 524288
function { id: 1 name: 9 filename: 10 } function { id: 2 name: 11 filename: 10 }
location { id: 1 line { function_id: 1 line: 3 } } location { id: 2 line { function_id: 2 line: 7 } }
sample { location_id: 2 location_id: 1 value: 1 value: 1000 value: 2 value: 3000 label { key: 8 str: 13 } label { key: 12 num: 7 } }
sample { location_id: 1 value: 2 value: 2000 value: 4 value: 6000 label { key: 8 str: 14 } }
string_table: "" string_table: "alloc_objects" string_table: "count" string_table: "alloc_space"
string_table: "bytes" string_table: "inuse_objects" string_table: "inuse_space" string_table: "space"
string_table: "endpoint" string_table: "main" string_table: "app.go" string_table: "handle"
string_table: "thread_id" string_table: "/a" string_table: "/b"
X
