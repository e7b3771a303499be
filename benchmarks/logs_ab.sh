#!/bin/bash
# Cost of the logs: the service with its logging defaults (JSON access log, prediction log at
# 1 %) vs access log and prediction log off; same model, alternating, 3 rounds. Needs `hey`.
cd "$(dirname "$0")/.."
body=$(.venv/bin/python -c "
import json, pandas as pd
t = pd.read_parquet('data/raw/test.parquet').text
print(json.dumps({'text': t.iloc[(t.str.len() - t.str.len().median()).abs().argsort().iloc[0]]}))")
echo "$body" > /tmp/body.json
for round in 1 2 3; do
  for mode in on off; do
    if [ $mode = off ]; then extra="ACCESS_LOG=false PREDICTION_LOG_RATE=0"; else extra=""; fi
    port=$((5200 + round))
    env $extra PORT=$port HOST=127.0.0.1 WORKERS=2 PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/imdb-sentiment serve > /tmp/ab-$mode.log 2>&1 &
    pid=$!
    for i in $(seq 1 60); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.5; done
    sleep 2
    hey -z 3s -c 8 -m POST -T application/json -D /tmp/body.json http://127.0.0.1:$port/api/v1/predict >/dev/null
    rps=$(hey -z 15s -c 8 -m POST -T application/json -D /tmp/body.json http://127.0.0.1:$port/api/v1/predict | grep -E "Requests/sec|99%" | tr -s ' ' | tr '\n' ' ')
    echo "round $round logs $mode: $rps"
    kill -TERM $pid; wait $pid 2>/dev/null
  done
done
