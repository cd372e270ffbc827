# Shared by the bench/ scripts (sourced, not run): best-of-N wall-clock timing that waits
# for an idle machine before each run. Needs N (runs) and log (file for the commands' output).
#
# On a shared machine other processes' CPU use distorts the timings, so before every timed
# run wait (up to IDLE_WAIT seconds, default 60; 0 disables) until the CPUs have been idle
# (< 15% busy) for half a second. Runs that had to start anyway are counted and reported.
IDLE_WAIT="${IDLE_WAIT:-60}"
contended=0
cpu_busy_pct() { # CPU busy % over the last 0.5 s, all CPUs (Linux /proc/stat)
    local a b busy total
    read -ra a </proc/stat
    sleep 0.5
    read -ra b </proc/stat
    busy=$(((b[1] + b[2] + b[3] + b[6] + b[7]) - (a[1] + a[2] + a[3] + a[6] + a[7])))
    total=$((busy + b[4] - a[4] + b[5] - a[5]))
    echo $((total > 0 ? 100 * busy / total : 0))
}
wait_idle() {
    [ "$IDLE_WAIT" -gt 0 ] && [ -r /proc/stat ] || return 0
    local deadline=$((SECONDS + IDLE_WAIT))
    while [ "$(cpu_busy_pct)" -ge 15 ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            contended=$((contended + 1))
            return 0
        fi
    done
}

# best_of CMD...: runs CMD N times and sets BEST to the shortest wall time in seconds.
best_of() {
    local best="" t0 t1 dt i
    for ((i = 0; i < N; i++)); do
        wait_idle
        t0=$(date +%s.%N)
        if ! "$@" >>"$log" 2>&1; then
            echo "command failed: $*" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        t1=$(date +%s.%N)
        dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        if [ -z "$best" ] || awk -v a="$dt" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$dt
        fi
    done
    BEST=$best
}

