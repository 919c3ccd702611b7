#!/usr/bin/env bash
# Serve the dashboard to a class: N Streamlit processes behind nginx, on one or several machines.
#
#   deploy/serve.sh                     # as many processes as cores, nginx on :8501
#   WORKERS=2 PORT=8501 deploy/serve.sh # what `make serve WORKERS=2` runs
#
# Several machines: on each extra machine start processes only,
#   MODE=workers WORKER_ADDRESS=0.0.0.0 WORKERS=2 deploy/serve.sh
# and on the machine that runs nginx list them (space separated host:port):
#   UPSTREAMS="10.0.0.12:8601 10.0.0.12:8602" deploy/serve.sh
# Every process must run the same commit of the app. The fit cache (FIT_CACHE_DIR) is shared by
# the processes of one machine; each machine keeps its own.
#
# Ctrl-C (or SIGTERM) stops nginx and every process this script started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORKERS="${WORKERS:-$(nproc)}"
PORT="${PORT:-8501}"                       # where browsers connect (nginx)
WORKER_PORT="${WORKER_PORT:-8601}"         # first Streamlit port; the others follow
WORKER_ADDRESS="${WORKER_ADDRESS:-127.0.0.1}"
LISTEN="${LISTEN:-$PORT}"                  # nginx `listen` (e.g. 0.0.0.0:8501 or 8501)
UPSTREAMS="${UPSTREAMS:-}"                 # extra host:port processes on other machines
MODE="${MODE:-all}"                        # all | workers (no nginx)
PYTHON="${PYTHON:-.venv/bin/python}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"  # Debian: /usr/sbin, not on a user's PATH
RUN_DIR="${RUN_DIR:-${TMPDIR:-/tmp}/alliance-serve-$PORT}"
COOKIE="${COOKIE:-alliance_worker}"
WARM="${WARM:-1}"                          # open every page once per process before serving
export ALLIANCE_FIT_CACHE_DIR="${ALLIANCE_FIT_CACHE_DIR:-$RUN_DIR/fit-cache}"

mkdir -p "$RUN_DIR" "$ALLIANCE_FIT_CACHE_DIR"
chmod 755 "$RUN_DIR"

pids=()
stop() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

ports=()
for ((i = 0; i < WORKERS; i++)); do
    port=$((WORKER_PORT + i))
    ports+=("$port")
    "$PYTHON" -m streamlit run app.py \
        --server.port "$port" --server.address "$WORKER_ADDRESS" \
        --server.headless true --server.fileWatcherType none \
        --browser.gatherUsageStats false \
        >"$RUN_DIR/worker-$port.log" 2>&1 &
    pids+=("$!")
done

# Wait for every process to answer; then (WARM=1) open every page once on each, so imports and
# the default dataset's fits are done before the first student arrives.
warm_flag=()
[[ "$WARM" == 1 ]] || warm_flag=(--no-warm)
"$PYTHON" deploy/warm.py "${warm_flag[@]}" "${ports[@]}" || {
    echo "serve: a process did not start or a page failed while warming; logs in $RUN_DIR" >&2
    exit 1
}

if [[ "$MODE" != workers ]]; then
    upstream_lines=""
    for port in "${ports[@]}"; do
        upstream_lines+="        server 127.0.0.1:$port max_fails=0;"$'\n'
    done
    for hostport in $UPSTREAMS; do
        upstream_lines+="        server $hostport max_fails=0;"$'\n'
    done
    conf="$RUN_DIR/nginx.conf"
    UPSTREAM_LINES="$upstream_lines" "$PYTHON" - deploy/nginx.conf.template "$conf" \
        "$RUN_DIR" "$LISTEN" "$COOKIE" <<'PY'
import os
import sys

template, out, run_dir, listen, cookie = sys.argv[1:]
text = open(template).read()
for key, value in {
    "@RUN_DIR@": run_dir,
    "@LISTEN@": listen,
    "@COOKIE@": cookie,
    "@UPSTREAMS@": os.environ["UPSTREAM_LINES"].rstrip("\n"),
}.items():
    text = text.replace(key, value)
open(out, "w").write(text)
PY
    "$NGINX" -t -q -c "$conf" -p "$RUN_DIR" -e "$RUN_DIR/nginx-error.log"
    "$NGINX" -c "$conf" -p "$RUN_DIR" -e "$RUN_DIR/nginx-error.log" -g "daemon off;" &
    pids+=("$!")
    echo "serve: nginx on port $PORT -> ${ports[*]} $UPSTREAMS"
fi
echo "serve: ${#ports[@]} Streamlit processes on ports ${ports[*]} (logs in $RUN_DIR)"

wait -n "${pids[@]}"
echo "serve: a process exited; stopping the others" >&2
exit 1
