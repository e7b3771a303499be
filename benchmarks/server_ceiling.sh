#!/usr/bin/env bash
# The ceiling app (benchmarks/ceiling_app.py: Flask, a constant answer) under gunicorn's sync
# workers, as the service runs, and under granian's WSGI interface (a maintained Rust server):
# 2 workers each, `hey` with 8 keep-alive clients, rounds interleaved. What a server can give
# the service at most on this machine (issue 47).
#   python -m venv /tmp/granenv && /tmp/granenv/bin/pip install granian==2.8.9 flask==3.1.3
#   GRANIAN=/tmp/granenv/bin/granian benchmarks/server_ceiling.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
granian=${GRANIAN:?set GRANIAN to a granian executable}
port=8099
url=http://127.0.0.1:$port/api/v1/predict
body='{"text":"A moving, well acted film with a story that stays with you long after the credits."}'
load() { hey "$@" -c 8 -m POST -T application/json -d "$body" "$url"; }
run() {
  "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d "$body" "$url" && break
    sleep 0.2
  done
  load -z 3s >/dev/null
  load -z 10s | grep -E "Requests/sec|99% in"
  kill "$pid"; wait "$pid" 2>/dev/null || true; sleep 1
}
for round in $(seq "${1:-2}"); do
  echo "round $round: gunicorn sync, 2 workers"
  run .venv/bin/gunicorn -w 2 -k sync -b 127.0.0.1:$port --access-logfile /dev/null \
    benchmarks.ceiling_app:app
  echo "round $round: granian wsgi, 2 workers"
  run env PYTHONPATH="$PWD" "$granian" --interface wsgi --workers 2 --blocking-threads 1 \
    --host 127.0.0.1 --port $port --no-access-log benchmarks.ceiling_app:app
done
