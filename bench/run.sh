#!/usr/bin/env bash
# Benchmarks llmgate against direct-to-upstream, a bare httputil.ReverseProxy
# and (when installed) nginx, in one run, alternating targets phase by phase.
#
#   bash bench/run.sh quick    # < 60 s: every mode once, short (validates the harness)
#   bash bench/run.sh full     # requests + streams: 3 rounds of 10 s phases (~10 min)
#   bash bench/run.sh memory   # 10 000 open streams through llmgate and the baseline
#   bash bench/run.sh soak     # 2 minutes of mixed load, RSS and threads every 5 s
#   bash bench/run.sh syscalls # system calls per request and per stream (perf)
#   bash bench/run.sh all      # full, memory, soak, syscalls
#
# Environment: BENCH_ROUNDS, BENCH_DURATION, BENCH_WARMUP (phase shape),
# BENCH_STREAMS (memory mode), BENCH_SOAK (soak length), BENCH_PORT_BASE
# (default 18400; ports BASE+1..BASE+9 are used), BENCH_CPU_PROXY and
# BENCH_CPU_LOAD (default 0 and 1), NGINX (path of an nginx binary),
# BENCH_OUT (directory for results; default a new temp directory).
#
# Every process this script starts is stopped by its PID on exit. All
# traffic goes to 127.0.0.1 and every phase is bounded in time.
set -euo pipefail

MODE=${1:-quick}
case $MODE in quick | full | memory | soak | syscalls | all) ;; *)
	echo "usage: bash bench/run.sh [quick|full|memory|soak|syscalls|all]" >&2
	exit 2
	;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/llmgate-bench.XXXXXX")
OUT=${BENCH_OUT:-$WORK}
mkdir -p "$OUT"
BIN=$WORK/bin
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

BASE=${BENCH_PORT_BASE:-18400}
P_UP1=$((BASE + 1)) P_UP2=$((BASE + 2)) P_GW=$((BASE + 3)) P_BL=$((BASE + 4)) P_NGX=$((BASE + 5))
P_SLOW1=$((BASE + 6)) P_SLOW2=$((BASE + 7)) P_MEM=$((BASE + 8)) P_TCP=$((BASE + 9))

CPU_PROXY=${BENCH_CPU_PROXY:-0}
CPU_LOAD=${BENCH_CPU_LOAD:-1}
NGINX_BIN=${NGINX:-$(command -v nginx || true)}

# The gateway's client key and the key it sends upstream (the fake upstream ignores it).
export LLMGATE_BENCH_KEY=bench-$RANDOM$RANDOM$RANDOM
export LOADGEN_KEY=$LLMGATE_BENCH_KEY
UPSTREAM_KEY=upstream-$RANDOM
# BENCH_PROFILE=1: give the gateway an admin key and take a CPU profile of it
# (GET /debug/pprof/profile) during one extra 50-connection phase.
PROFILE=${BENCH_PROFILE:-0}
export BENCH_ADMIN_KEY=admin-$RANDOM$RANDOM

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
info() { printf '{"kind":"info","text":"%s"}\n' "$*" >>"$RESULTS"; }

# ---------------------------------------------------------------- processes

PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	rm -rf "$BIN" # logs, configs and results stay
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: TERM, up to 5 s, then KILL. Only a live child of this shell
# is signalled, so a PID reused after its process ended is left alone.
stop_pid() {
	local pid=$1 i state ppid
	read -r state ppid < <(awk '{sub(/.*\) /, ""); print $1, $2}' "/proc/$pid/stat" 2>/dev/null) || return 0
	[ "$ppid" = "$$" ] || return 0
	if [ "$state" = Z ]; then # already ended: reap it
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

PINNED=1
if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
	PINNED=0
	log "taskset or a second CPU missing: processes are not pinned"
fi

# pin CPU CMD...: exec CMD on CPU (taskset execs, so $! is CMD's own PID).
pin() {
	local cpu=$1
	shift
	if [ "$PINNED" = 1 ]; then
		exec taskset -c "$cpu" "$@"
	fi
	exec "$@"
}

# start VAR CPU LOG CMD...: start CMD in the background; its PID goes to VAR.
# The subshell execs pin, which execs taskset, which execs CMD: one PID throughout.
start() {
	local var=$1 cpu=$2 out=$3
	shift 3
	(pin "$cpu" "$@") >"$out" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	printf -v "$var" '%s' "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID NAME: until PORT accepts, for 10 s at most, while PID lives.
wait_port() {
	local i
	for i in $(seq 100); do
		port_open "$1" && return 0
		kill -0 "$2" 2>/dev/null || {
			log "$3 exited during startup"
			return 1
		}
		sleep 0.1
	done
	log "$3 did not listen on :$1 within 10 s"
	return 1
}

require_free() {
	local p
	for p in "$@"; do
		if port_open "$p"; then
			log "port $p is in use; set BENCH_PORT_BASE to a free range"
			exit 1
		fi
	done
}

status_of() { awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^Threads:/{t=$2} END{print r+0, h+0, t+0}' "/proc/$1/status"; }
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# record_rss NAME PID: append the process's peak and current RSS.
record_rss() {
	local rss hwm threads
	read -r rss hwm threads < <(status_of "$2")
	printf '{"kind":"rss","target":"%s","hwm_kib":%s,"rss_kib":%s,"threads":%s}\n' "$1" "$hwm" "$rss" "$threads" >>"$RESULTS"
}

# ------------------------------------------------------------------- build

build() {
	log "building into $BIN"
	mkdir -p "$BIN"
	(cd "$ROOT" && go build -o "$BIN/" ./bench/cmd/upstream ./bench/cmd/loadgen ./bench/cmd/baseline ./bench/cmd/tcprelay ./bench/cmd/report &&
		go build -o "$BIN/llmgate" ./cmd/llmgate)
}

# gateway_config FILE LISTEN_PORT UP1 UP2 [admin]: auth on, two weighted
# backends, retries; an admin key (which opens pprof) with BENCH_PROFILE=1 or
# a fifth argument "admin".
gateway_config() {
	cat >"$1" <<EOF
listen: 127.0.0.1:$2
keys:
  - name: bench
    key: \${LLMGATE_BENCH_KEY}
backends:
  - name: up-a
    url: http://127.0.0.1:$3
    api_key: $UPSTREAM_KEY
    weight: 3
  - name: up-b
    url: http://127.0.0.1:$4
    api_key: $UPSTREAM_KEY
    weight: 1
retry:
  count: 2
  interval: 100ms
  first_fast_retry: true
EOF
	if [ "$PROFILE" = 1 ] || [ "${5:-}" = admin ]; then
		printf 'admin:\n  key: ${BENCH_ADMIN_KEY}\n' >>"$1"
	fi
	"$BIN/llmgate" validate -config "$1" >/dev/null
}

# nginx_config DIR LISTEN_PORT UP1 UP2: a plain keep-alive proxy, one process.
nginx_config() {
	mkdir -p "$1/tmp"
	cat >"$1/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/tmp/body;
  proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/fastcgi;
  uwsgi_temp_path $1/tmp/uwsgi;
  scgi_temp_path $1/tmp/scgi;
  upstream up {
    server 127.0.0.1:$3 weight=3;
    server 127.0.0.1:$4 weight=1;
    keepalive 256;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:$2 reuseport;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
}

# ---------------------------------------------------------- requests+streams

# loadgen ARGS...: one bounded loadgen run on the load CPU, its JSON to RESULTS.
loadgen() {
	(pin "$CPU_LOAD" timeout -k 5 300 "$BIN/loadgen" "$@") >>"$RESULTS" || log "loadgen $* failed"
}

# start_targets: the upstream and every proxy, each listening; fills TARGETS
# (direct first), ADDR and TPID (0 for direct) and UP_PID.
declare -a TARGETS
declare -A ADDR TPID
start_targets() {
	require_free "$P_UP1" "$P_UP2" "$P_GW" "$P_BL" "$P_NGX" "$P_TCP"
	local UP GW BL TCP NGX
	start UP "$CPU_LOAD" "$WORK/upstream.log" "$BIN/upstream" -listen "127.0.0.1:$P_UP1,127.0.0.1:$P_UP2" -events 21 -interval 10ms
	wait_port "$P_UP1" "$UP" upstream
	UP_PID=$UP
	gateway_config "$WORK/gateway.yaml" "$P_GW" "$P_UP1" "$P_UP2"
	start GW "$CPU_PROXY" /dev/null "$BIN/llmgate" serve -config "$WORK/gateway.yaml"
	start BL "$CPU_PROXY" "$WORK/baseline.log" "$BIN/baseline" -listen "127.0.0.1:$P_BL" -upstream "http://127.0.0.1:$P_UP1" -conns 256
	# The floor: bytes copied through a Go process, no HTTP (see bench/cmd/tcprelay).
	start TCP "$CPU_PROXY" "$WORK/tcprelay.log" "$BIN/tcprelay" -listen "127.0.0.1:$P_TCP" -upstream "127.0.0.1:$P_UP1"
	wait_port "$P_GW" "$GW" llmgate
	wait_port "$P_BL" "$BL" baseline
	wait_port "$P_TCP" "$TCP" tcprelay
	TARGETS=(direct llmgate baseline tcprelay)
	ADDR=([direct]=$P_UP1 [llmgate]=$P_GW [baseline]=$P_BL [tcprelay]=$P_TCP)
	TPID=([direct]=0 [llmgate]=$GW [baseline]=$BL [tcprelay]=$TCP)
	if [ -n "$NGINX_BIN" ]; then
		nginx_config "$WORK/nginx" "$P_NGX" "$P_UP1" "$P_UP2"
		start NGX "$CPU_PROXY" "$WORK/nginx/stderr.log" "$NGINX_BIN" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
		wait_port "$P_NGX" "$NGX" nginx
		TARGETS+=(nginx)
		ADDR[nginx]=$P_NGX
		TPID[nginx]=$NGX
		info "nginx: $("$NGINX_BIN" -v 2>&1)"
	else
		info "nginx: not installed, not measured"
	fi
	info "pinned: $([ "$PINNED" = 1 ] && echo "proxies on CPU $CPU_PROXY, upstream and load generator on CPU $CPU_LOAD" || echo no); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# stop_targets: stops what start_targets started.
stop_targets() {
	local t
	for t in "${TARGETS[@]}"; do
		[ "${TPID[$t]}" = 0 ] || stop_pid "${TPID[$t]}"
	done
	stop_pid "$UP_PID"
}

run_throughput() {
	local rounds=$1 dur=$2 warm=$3
	log "requests and streams: $rounds round(s), ${dur}s phases after ${warm}s warm-up"
	start_targets
	info "$rounds round(s) of ${dur}s phases after ${warm}s warm-up, targets alternating; medians over rounds"

	local phases=("c1 1" "c50 50" "c200 200" "s50 50")
	local r ph name conc i n=${#TARGETS[@]} t
	for r in $(seq "$rounds"); do
		for ph in "${phases[@]}"; do
			read -r name conc <<<"$ph"
			for i in $(seq 0 $((n - 1))); do
				t=${TARGETS[$(((i + r - 1) % n))]} # rotate who goes first each round
				local extra=(-c "$conc" -d "${dur}s" -warmup "${warm}s")
				[ "$t" = direct ] || extra+=(-pid "${TPID[$t]}")
				if [ "$name" = s50 ]; then
					extra+=(-stream -events 21)
				fi
				log "round $r $name $t"
				loadgen -addr "127.0.0.1:${ADDR[$t]}" -target "$t" -phase "$name" -round "$r" "${extra[@]}"
			done
		done
	done
	for t in "${TARGETS[@]}"; do
		[ "$t" = direct ] || record_rss "$t" "${TPID[$t]}"
	done
	if [ "$PROFILE" = 1 ]; then
		profile_gateway "${TPID[llmgate]}" "$P_GW" "$dur"
	fi
	record_rss upstream "$UP_PID"
	stop_targets
}

# ----------------------------------------------------------------- syscalls

# The system calls perf counts per unit of work (a tracepoint each).
SYSCALLS=(read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait futex nanosleep)

# run_syscalls DURATION: how many system calls and context switches each proxy
# makes per request (one connection) and per stream (50), counted by perf
# from the kernel's tracepoints while loadgen drives it. Needs perf and
# access to tracepoints (root, or perf_event_paranoid ≤ -1).
run_syscalls() {
	local dur=$1 ev="" s
	if ! command -v perf >/dev/null; then
		log "syscalls: perf is not installed (Debian: linux-perf); nothing measured"
		info "syscalls: perf not installed, not measured"
		return 0
	fi
	for s in "${SYSCALLS[@]}"; do ev+="syscalls:sys_enter_$s,"; done
	ev+="raw_syscalls:sys_enter,context-switches"
	if ! perf stat -x, -e "$ev" -o /dev/null -- true 2>"$WORK/perf-check.log"; then
		log "syscalls: perf cannot read the syscall tracepoints here ($(head -c 200 "$WORK/perf-check.log")); nothing measured"
		info "syscalls: perf cannot read tracepoints here, not measured"
		return 0
	fi
	log "syscalls: ${dur}s per target and phase"
	start_targets
	info "syscalls: counted by perf stat over ${dur}s windows inside each loadgen run (after a 1 s warm-up), divided by the requests or streams completed in them"
	local ph name conc t pid out perfout warm=1
	for ph in "c1 1" "s50 50"; do
		read -r name conc <<<"$ph"
		for t in "${TARGETS[@]}"; do
			[ "$t" != direct ] || continue
			pid=${TPID[$t]} out=$WORK/sys-$t-$name.json perfout=$WORK/sys-$t-$name.perf
			local extra=(-c "$conc" -d "$((dur + 1))s" -warmup "${warm}s" -pid "$pid")
			[ "$name" != s50 ] || extra+=(-stream -events 21)
			log "syscalls $name $t"
			local L
			start L "$CPU_LOAD" "$out" timeout -k 5 $((dur + 60)) "$BIN/loadgen" -addr "127.0.0.1:${ADDR[$t]}" -target "$t" -phase "$name" "${extra[@]}"
			sleep $((warm + 1))
			perf stat -x, -e "$ev" -p "$pid" -o "$perfout" -- sleep "$((dur - 1))" || log "perf stat on $t failed"
			wait "$L" 2>/dev/null || true
			# rate × window: the units of work completed while perf counted.
			awk -F, -v t="$t" -v ph="$name" -v win="$((dur - 1))" -v rate="$(sed -n 's/.*"rps":\([0-9.e+]*\).*/\1/p' "$out")" '
				$1 ~ /^[0-9.]+$/ { n = $3; sub(/^syscalls:sys_enter_/, "", n); sub(/^raw_syscalls:sys_enter$/, "all", n); c[n] = $1 }
				END {
					units = rate * win
					if (units <= 0) exit
					printf "{\"kind\":\"sys\",\"target\":\"%s\",\"phase\":\"%s\",\"units\":%.0f,\"calls\":{", t, ph, units
					sep = ""
					for (k in c) { printf "%s\"%s\":%.3f", sep, k, c[k] / units; sep = "," }
					printf "}}\n"
				}' "$perfout" >>"$RESULTS"
		done
	done
	stop_targets
}

# profile_gateway PID PORT SECONDS: CPU profile of llmgate under 50 connections.
profile_gateway() {
	local secs=${3%.*} L
	[ "$secs" -ge 5 ] || secs=5
	log "profiling llmgate for ${secs}s under 50 connections"
	start L "$CPU_LOAD" "$OUT/profile-load.jsonl" timeout -k 5 $((secs + 60)) "$BIN/loadgen" -addr "127.0.0.1:$2" \
		-c 50 -d "$((secs + 2))s" -warmup 1s -target llmgate -phase profile
	sleep 1.5
	if curl -sf -o "$OUT/llmgate-cpu.prof" -H "api-key: $BENCH_ADMIN_KEY" \
		"http://127.0.0.1:$2/debug/pprof/profile?seconds=$secs"; then
		go tool pprof -top -nodecount 25 "$BIN/llmgate" "$OUT/llmgate-cpu.prof" >"$OUT/llmgate-cpu-top.txt" 2>/dev/null || true
		log "profile: $OUT/llmgate-cpu.prof, top 25: $OUT/llmgate-cpu-top.txt"
	else
		log "no profile: this llmgate serves no /debug/pprof/ for the admin key"
	fi
	wait "$L" 2>/dev/null || true
}

# ------------------------------------------------------------------- memory

run_memory() {
	local want=$1 hold=$2 interval=$3
	require_free "$P_SLOW1" "$P_SLOW2" "$P_MEM"
	ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	local nofile n
	nofile=$(ulimit -n)
	# A proxy holds two descriptors per stream (client and upstream side).
	n=$(((nofile - 256) / 2))
	[ "$n" -lt "$want" ] || n=$want
	[ "$n" = "$want" ] || log "open-file limit $nofile: holding $n streams instead of $want"
	info "memory: $n streams (asked $want; open-file limit $nofile), upstream events every $interval, held ${hold}s"
	# Streams must outlast opening plus holding: 60 events.
	local SLOW
	start SLOW "$CPU_LOAD" "$WORK/slow-upstream.log" "$BIN/upstream" -listen "127.0.0.1:$P_SLOW1,127.0.0.1:$P_SLOW2" -events 60 -interval "$interval"
	wait_port "$P_SLOW1" "$SLOW" slow-upstream
	gateway_config "$WORK/gateway-mem.yaml" "$P_MEM" "$P_SLOW1" "$P_SLOW2"
	local t P
	for t in llmgate baseline; do
		if [ "$t" = llmgate ]; then
			start P "$CPU_PROXY" /dev/null "$BIN/llmgate" serve -config "$WORK/gateway-mem.yaml"
		else
			start P "$CPU_PROXY" "$WORK/baseline-mem.log" "$BIN/baseline" -listen "127.0.0.1:$P_MEM" -upstream "http://127.0.0.1:$P_SLOW1" -conns 256
		fi
		wait_port "$P_MEM" "$P" "$t"
		sleep 0.5
		log "memory: $n streams through $t"
		(pin "$CPU_LOAD" timeout -k 5 $((hold + 150)) "$BIN/loadgen" -mode hold -addr "127.0.0.1:$P_MEM" -n "$n" \
			-hold "${hold}s" -open-timeout 120s -pid "$P" -target "$t") >>"$RESULTS" || log "loadgen hold $t failed"
		stop_pid "$P"
	done
	stop_pid "$SLOW"
}

# --------------------------------------------------------------------- soak

run_soak() {
	local secs=$1 every=$2
	require_free "$P_UP1" "$P_UP2" "$P_GW"
	info "soak: ${secs}s of 50 request + 50 stream connections through llmgate, sampled every ${every}s"
	local UP GW L1 L2
	start UP "$CPU_LOAD" "$WORK/upstream-soak.log" "$BIN/upstream" -listen "127.0.0.1:$P_UP1,127.0.0.1:$P_UP2" -events 21 -interval 10ms
	wait_port "$P_UP1" "$UP" upstream
	# The soak's gateway has an admin key, so that its goroutines can be
	# counted (pprof); an admin key costs the request path nothing.
	gateway_config "$WORK/gateway.yaml" "$P_GW" "$P_UP1" "$P_UP2" admin
	start GW "$CPU_PROXY" /dev/null "$BIN/llmgate" serve -config "$WORK/gateway.yaml"
	wait_port "$P_GW" "$GW" llmgate
	start L1 "$CPU_LOAD" "$WORK/soak-requests.jsonl" timeout -k 5 $((secs + 60)) "$BIN/loadgen" -addr "127.0.0.1:$P_GW" \
		-c 50 -d "${secs}s" -warmup 0s -target llmgate -phase soak-c50
	start L2 "$CPU_LOAD" "$WORK/soak-streams.jsonl" timeout -k 5 $((secs + 60)) "$BIN/loadgen" -addr "127.0.0.1:$P_GW" \
		-c 50 -d "${secs}s" -warmup 0s -stream -events 21 -target llmgate -phase soak-s50
	local t0 now rss hwm threads ticks gor
	t0=$(date +%s.%N)
	while :; do
		read -r rss hwm threads < <(status_of "$GW")
		ticks=$(cpu_ticks "$GW")
		now=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
		gor=0
		# The gateway's pprof (behind the admin key) tells its goroutines.
		if curl -sf -o "$WORK/goroutines.txt" -H "api-key: $BENCH_ADMIN_KEY" \
			"http://127.0.0.1:$P_GW/debug/pprof/goroutine?debug=1"; then
			gor=$(awk 'NR == 1 {print $NF + 0}' "$WORK/goroutines.txt")
		else
			log "soak: could not count the gateway's goroutines (pprof)"
		fi
		printf '{"kind":"soak","target":"llmgate","t":%s,"rss_kib":%s,"hwm_kib":%s,"threads":%s,"goroutines":%s,"cpu_s":%s}\n' \
			"$now" "$rss" "$hwm" "$threads" "$gor" "$(awk -v t="$ticks" 'BEGIN{print t/100}')" >>"$RESULTS"
		awk -v n="$now" -v s="$secs" 'BEGIN{exit !(n >= s)}' && break
		sleep "$every"
	done
	wait "$L1" "$L2" 2>/dev/null || true
	# The soak's own load results go to the soak section, not the tables.
	sed 's/"kind":"[a-z]*"/"kind":"soakload"/' "$WORK/soak-requests.jsonl" "$WORK/soak-streams.jsonl" >>"$RESULTS"
	stop_pid "$GW"
	stop_pid "$UP"
}

# --------------------------------------------------------------------- main

build
info "mode $MODE; $(go version | cut -d' ' -f3-4); commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
case $MODE in
quick)
	run_throughput 1 "${BENCH_DURATION:-1}" "${BENCH_WARMUP:-0.5}"
	run_memory "${BENCH_STREAMS:-300}" 2 1s
	run_soak "${BENCH_SOAK:-8}" 2
	;;
full)
	run_throughput "${BENCH_ROUNDS:-3}" "${BENCH_DURATION:-10}" "${BENCH_WARMUP:-2}"
	;;
memory)
	run_memory "${BENCH_STREAMS:-10000}" 20 3s
	;;
soak)
	run_soak "${BENCH_SOAK:-120}" 5
	;;
syscalls)
	run_syscalls "${BENCH_DURATION:-6}"
	;;
all)
	run_throughput "${BENCH_ROUNDS:-3}" "${BENCH_DURATION:-10}" "${BENCH_WARMUP:-2}"
	run_memory "${BENCH_STREAMS:-10000}" 20 3s
	run_soak "${BENCH_SOAK:-120}" 5
	run_syscalls 6
	;;
esac

"$BIN/report" -in "$RESULTS" -title "llmgate benchmark ($MODE)" | tee "$OUT/report.md"
log "results: $RESULTS; report: $OUT/report.md"
