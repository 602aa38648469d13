#!/bin/bash
# moebench run --slurm on a real Slurm, not a mock (make test-slurm; .ci/run).
#
# Starts a single-node cluster on localhost from Debian's packages
# (slurmctld, slurmd, munge) with a configuration written into a temporary
# folder, then:
#   1. runs suites/ci.lua as a 3-task array and checks that the merged
#      database equals a local run in every deterministic metric (samples
#      that are not timings, cache_stats but stall_ns, generated tokens and
#      text), that each shard's run records where it ran (host, array job,
#      task), and that the model and trace were made once, by the prepare
#      job, not by the tasks;
#   2. runs a suite whose load fails in the prepare job (the array must be
#      cancelled, not left pending; the merge job reports three shards
#      without a database), resumes it with one experiment failing and one
#      task dying (the merge job merges the one ok shard, names the other
#      two, exits 1), and resumes again (only shards 2 and 3 run; then
#      every shard is merged, once);
#   3. checks --shard auto in a hand-written array whose indices start at 5;
#   4. checks that --slurm-resume refuses while the jobs are still queued
#      (submitted with --hold).
# Job states alone prove nothing (with the wrong plugins Slurm reports
# COMPLETED for jobs that ran nothing): every check reads what the jobs
# wrote. The daemons, and every job step, run in a PID namespace of their
# own (unshare --kill-child): cleanup kills its first process, and with it
# everything in it, even when a check fails.
#
#   tests/slurm/run.sh [MOEBENCH]     (root; about 20 s; KEEP=1 keeps the folder)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(realpath "${1:-${MOEBENCH:-$top/build/moebench}}")
die() { echo "test-slurm: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (slurmd starts the jobs as their user)"
for t in slurmctld slurmd munged mungekey sbatch squeue sinfo scancel unshare sqlite3; do
    command -v "$t" >/dev/null || die "no $t: run 'scripts/deps.sh slurm' (make test-slurm does)"
done
[ -x "$bin" ] || die "no moebench binary at $bin"

B=$(mktemp -d "${TMPDIR:-/tmp}/moebench-slurm.XXXXXX")
stack=""
fails=0
cleanup() {
    local rc=$?
    if [ -n "$stack" ]; then
        timeout 10 scancel --full --quiet --me 2>/dev/null || true
        # the namespace's first process dies, and with it every process in
        # it: munged, slurmctld, slurmd, slurmstepd and the jobs
        kill -KILL "$stack" 2>/dev/null || true
        wait "$stack" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ]; then
        for f in "$B"/log/*.log; do
            [ -f "$f" ] && { echo "--- $f (last lines)"; tail -n 15 "$f"; }
        done >&2
    fi
    if [ -n "${KEEP:-}" ]; then echo "kept $B" >&2; else rm -rf "$B"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check() { # DESCRIPTION COMMAND...: counts a failure, goes on
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what" >&2; fails=$((fails + 1)); fi
}
q() { sqlite3 -batch -noheader "$@"; }

# ---- the cluster ---------------------------------------------------------------
# A port nobody listens on (from /proc/net/tcp*: no ss or netstat needed).
free_port() {
    local used="" h p
    for h in $(awk 'NR > 1 && $4 == "0A" {split($2, a, ":"); print a[2]}' \
               /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
        used="$used $((16#$h)) "
    done
    for p in $(shuf -i 20000-40000 -n 50); do
        [[ $used == *" $p "* ]] || [ "$p" -eq "${1:-0}" ] || { echo "$p"; return; }
    done
    die "no free port"
}
start_cluster() {
    mkdir -p "$B"/{munge,state,spool,log}
    # munged refuses a socket whose folders are not open to all (mktemp -d: 0700)
    chmod 755 "$B" "$B/munge"
    mungekey -c -k "$B/munge/munge.key"
    local p1 p2
    p1=$(free_port)
    p2=$(free_port "$p1")
    cat > "$B/slurm.conf" <<CONF
ClusterName=moebenchtest
SlurmctldHost=localhost
SlurmctldPort=$p1
SlurmdPort=$p2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$B/munge/munge.socket
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool
SlurmctldPidFile=$B/slurmctld.pid
SlurmdPidFile=$B/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
# cgroup plugins report jobs COMPLETED here while running nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$B/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    # kill_invalid_depend is left out on purpose: moebench's own
    # --kill-on-invalid-dep must keep a failed prepare from hanging the array
    cat > "$B/stack.sh" <<STACK
#!/bin/bash
# PID 1 of the test's namespace: the daemons, then reap until killed.
munged -F --key-file=$B/munge/munge.key --socket=$B/munge/munge.socket \\
    --pid-file=$B/munge/munged.pid --seed-file=$B/munge/munged.seed >> $B/log/munged.log 2>&1 &
for i in \$(seq 100); do [ -S $B/munge/munge.socket ] && break; sleep 0.1; done
slurmctld -D -f $B/slurm.conf >> $B/log/slurmctld.out.log 2>&1 &
slurmd -D -N n1 -f $B/slurm.conf >> $B/log/slurmd.out.log 2>&1 &
while :; do wait; sleep 1; done
STACK
    chmod +x "$B/stack.sh"
    export SLURM_CONF=$B/slurm.conf
    unshare --pid --fork --mount-proc --kill-child "$B/stack.sh" &
    stack=$!
    local i
    for i in $(seq 100); do
        [ -S "$B/munge/munge.socket" ] && break
        sleep 0.1
    done
    [ -S "$B/munge/munge.socket" ] || die "munged did not start"
    for i in $(seq 300); do
        [ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ] && return
        kill -0 "$stack" 2>/dev/null || die "the daemons exited"
        sleep 0.1
    done
    die "the node is not idle after 30 s: $(sinfo -h -o '%T %E' 2>&1)"
}

# Waits until no job is queued or running (at most 300 s).
wait_jobs() {
    local i
    for i in $(seq 1500); do
        [ -z "$(squeue -h -o %i)" ] && return
        sleep 0.2
    done
    squeue >&2
    die "jobs still queued after 300 s"
}

# What jobcomp/filetxt recorded for job $1: its exit code (ExitCode=N:SIG),
# its state (JobState=...).
exit_of() {
    sed -n "s/^JobId=$1 .*ExitCode=\\([0-9]*\\):.*/\\1/p" "$B/log/jobcomp.txt" | tail -n 1
}
state_of() {
    sed -n "s/^JobId=$1 .*JobState=\\([A-Z_]*\\) .*/\\1/p" "$B/log/jobcomp.txt" | tail -n 1
}

start_cluster
echo "cluster up: $(sinfo -h -o '%N %T %c CPUs') (slurm $(sinfo -V | cut -d' ' -f2))"

# ---- 1. ci.lua as a 3-task array against a local run -----------------------------
mkdir "$B/work" "$B/local"
(cd "$B/local" && "$bin" run "$top/suites/ci.lua" --db "$B/local.db" -q > "$B/log/local.log" 2>&1) ||
    die "local run of ci.lua failed: $(tail -n 5 "$B/log/local.log")"
(cd "$B/work" && "$bin" run "$top/suites/ci.lua" --slurm --tasks 3 --db "$B/ci.db" \
    > "$B/log/submit-ci.log" 2>&1) || die "submit failed: $(cat "$B/log/submit-ci.log")"
wait_jobs
job=$B/ci.slurm/job.json
prep=$(q :memory: "select json_extract(readfile('$job'), '\$.submissions[0].prepare')")
arr=$(q :memory: "select json_extract(readfile('$job'), '\$.submissions[0].array')")
merge=$(q :memory: "select json_extract(readfile('$job'), '\$.submissions[0].merge')")
check "ci: the merge job exited 0" [ "$(exit_of "$merge")" = 0 ]
check "ci: three shard runs merged, all ok" \
    [ "$(q "$B/ci.db" "select count(*) from run where suite = 'ci' and status = 'ok'")" = 3 ]
check "ci: each shard records its host, array job and task" [ "$(q "$B/ci.db" "
    select count(*) from run r join machine m on m.id = r.machine_id
    where json_extract(r.cli, '\$.shard_n') = 3
      and json_extract(r.cli, '\$.slurm.array_task_id') = json_extract(r.cli, '\$.shard_i')
      and json_extract(r.cli, '\$.slurm.array_job_id') = $arr
      and json_extract(r.cli, '\$.slurm.node') = 'n1'
      and json_extract(r.cli, '\$.slurm.cluster') = 'moebenchtest'
      and json_extract(r.cli, '\$.slurm.job_id') > 0
      and m.hostname = '$(hostname)'")" = 3 ]

# Deterministic metrics: everything that is not a timing. Timing words are
# moebench regress's (harness/db/compare.c, hx_cmp_metric_class).
timing_words=" ms ns us s gbps wall cpu stall rss time latency flops bandwidth throughput "
deterministic() {
    local m w
    while read -r m; do
        for w in $(tr '_.[]-' '     ' <<<"$m"); do
            [[ $timing_words == *" $w "* ]] && continue 2
        done
        echo "'$m'"
    done | paste -sd,
}
det=$(q "$B/local.db" "select distinct metric from sample union select distinct metric from series" | deterministic)
has_key_metrics() {
    local m
    for m in hit_rate misses cache.hits cache.misses cache.bytes_demand generated_tokens; do
        [[ $det == *"'$m'"* ]] || return 1
    done
}
check "ci: the deterministic metrics include hit rates, misses, bytes, tokens" has_key_metrics
# every (label, metric, repetition) value, cache_stats row (less stall_ns)
# and output's tokens and text, local EXCEPT merged and merged EXCEPT local
rows() { # DB
    q "$1" "
    select e.label, 'sample', s.metric, s.rep, s.value from sample s
      join experiment e on e.id = s.experiment_id where s.metric in ($det)
    union all select e.label, 'series', s.metric, s.rep || ':' || s.idx, s.value from series s
      join experiment e on e.id = s.experiment_id where s.metric in ($det)
    union all select e.label, 'cache_stats', c.layer, c.rep, json_array(c.accesses, c.hits,
      c.misses, c.evictions, c.prefetch_issued, c.prefetch_useful, c.bytes_loaded,
      c.prefetch_wasted_bytes) from cache_stats c join experiment e on e.id = c.experiment_id
    union all select e.label, 'output', b.name, b.rep, json_array(
      json_extract(b.value, '\$.prompt_tokens'), json_extract(b.value, '\$.tokens'),
      json_extract(b.value, '\$.text')) from blob b join experiment e on e.id = b.experiment_id
      where json_extract(b.value, '\$.tokens') is not null
    union all select label, 'status', status, reps_done, kind from experiment
    order by 1, 2, 3, 4" | tee "$B/$(basename "$1").rows" | wc -l
}
nl=$(rows "$B/local.db")
nm=$(rows "$B/ci.db")
check "ci: local and merged hold the same $nl deterministic rows ($nm merged)" \
    cmp -s "$B/local.db.rows" "$B/ci.db.rows"
check "ci: ... and they are not few (samples, cache_stats, tokens)" [ "$nl" -gt 200 ]
check "ci: the prepare job made the model and the trace" \
    grep -q "models: writing models/tiny-olmoe-q8_0-loc0.5.gguf" "$B/ci.slurm/log/prepare.$prep.out"
check "ci: ... and no shard made any" bash -c "! grep -l 'models:' '$B'/ci.slurm/log/shard-*.out"
check "ci: a log per shard, each naming its run" \
    [ "$(grep -l 'stored in' "$B"/ci.slurm/log/shard-{1,2,3}."$arr".out | wc -l)" = 3 ]
status_all_ok() { [ "$("$bin" run --slurm-status "$B/ci.slurm" | grep -cE '^ +[123]  ok .* yes')" = 3 ]; }
check "ci: --slurm-status says three shards ok, merged" status_all_ok

# ---- 2. a failing prepare, failing shards, two resumes ------------------------------
cat > "$B/flaky.lua" <<'LUA'
local opts = suite { name = "flaky", description = "fails while flag files exist",
                     options = { flags = { default = "", help = "flag file prefix" } } }
local function flag(name) local f = io.open(opts.flags .. name) if f then f:close() end return f end
if flag(".load") and not opts.dry_run then error("load fails while " .. opts.flags .. ".load exists") end
for _, name in ipairs { "a", "b", "c" } do
  experiment { name = name, reps = 2, run = function()
    if name == "b" and flag(".b") then error("b fails while the flag exists") end
    if name == "c" and flag(".c") then os.exit(3) end -- the task dies mid-run
    return { value = #name, letter = name:byte() }
  end }
end
LUA
F=$B/flag
touch "$F.load" "$F.b" "$F.c"
(cd "$B/work" && "$bin" run "$B/flaky.lua" --slurm --db "$B/flaky.db" -D flags="$F" \
    --sbatch-args "--comment='moebench test'" > "$B/log/submit-flaky.log" 2>&1) ||
    die "submit failed: $(cat "$B/log/submit-flaky.log")"
wait_jobs # a pending array here means --kill-on-invalid-dep is missing
D=$B/flaky.slurm
sub() { q :memory: "select json_extract(readfile('$D/job.json'), '\$.submissions[$1].$2')"; }
check "flaky: three tasks (one per experiment), the prepare job fails (bad suite: 2)" \
    [ "$(exit_of "$(sub 0 prepare)")" = 2 ]
check "flaky: ... so Slurm cancelled the array (--kill-on-invalid-dep)" \
    [ "$(state_of "$(sub 0 array)")" = CANCELLED ]
check "flaky: ... the merge job still ran, exit 1" [ "$(exit_of "$(sub 0 merge)")" = 1 ]
check "flaky: ... and found no shard database" \
    [ "$(grep -c 'no database' "$D/log/merge.$(sub 0 merge).out")" = 3 ]
check "flaky: ... and points at the prepare job's log" \
    grep -q "its log says why: $D/log/prepare.$(sub 0 prepare).out" "$D/log/merge.$(sub 0 merge).out"
check "flaky: ... nothing merged" [ ! -e "$B/flaky.db" ]
rm "$F.load"
"$bin" run --slurm-resume "$D" > "$B/log/resume1.log" 2>&1 || die "resume: $(cat "$B/log/resume1.log")"
wait_jobs
m=$(sub 1 merge)
check "flaky: resume 1 ran shards 1-3 with the same sbatch options" \
    [ "$(sub 1 array_spec) $(sub 1 sbatch_args)" = "1-3 --comment='moebench test'" ]
check "flaky: resume 1: merge exit 1" [ "$(exit_of "$m")" = 1 ]
check "flaky: resume 1: shard 1 merged" [ "$(q "$B/flaky.db" "select group_concat(name) from experiment")" = a ]
check "flaky: resume 1: shard 2 failed, shard 3 unfinished, both named" \
    grep -qzE "2  failed .*3  unfinished .*--slurm-resume $D" "$D/log/merge.$m.out"
check "flaky: --slurm-status exits 1" bash -c "! '$bin' run --slurm-status '$D' > /dev/null"
dry_two() { "$bin" run --slurm-resume "$D" --dry-run | grep -q -- '--array=2-3 '; }
check "flaky: a dry-run resume would run shards 2-3 only" dry_two
rm "$F.b" "$F.c"
"$bin" run --slurm-resume "$D" > "$B/log/resume2.log" 2>&1 || die "resume: $(cat "$B/log/resume2.log")"
wait_jobs
check "flaky: resume 2 ran shards 2 and 3 only" [ "$(sub 2 array_spec)" = 2-3 ]
check "flaky: resume 2: merge exit 0" [ "$(exit_of "$(sub 2 merge)")" = 0 ]
check "flaky: every experiment merged once, ok, 2 repetitions" [ "$(q "$B/flaky.db" \
    "select group_concat(name || reps_done || status, ' ') from (select * from experiment order by name)")" = "a2ok b2ok c2ok" ]
check "flaky: shard 1 ran once, shards 2 and 3 twice (old databases kept aside)" \
    [ "$(ls "$D/failed" | grep -c '\.db$')" = 2 ]
nothing_left() { "$bin" run --slurm-resume "$D" | grep -q 'nothing to resubmit'; }
check "flaky: a third resume has nothing to do" nothing_left

# ---- 3. --shard auto in a hand-written array (indices 5-7) -------------------------
(cd "$B/work" && sbatch --parsable --array=5-7 --output="$B/log/auto-%a.log" --wrap \
    "exec $bin run $B/flaky.lua --shard auto --db $B/auto-\$SLURM_ARRAY_TASK_ID.db" > /dev/null)
wait_jobs
got=""
for t in 5 6 7; do
    got="$got $(q "$B/auto-$t.db" "select json_extract(cli, '\$.shard_i') || '/' ||
        json_extract(cli, '\$.shard_n') || ':' || (select group_concat(name) from experiment)
        from run" 2>/dev/null)"
done
check "--shard auto: tasks 5, 6, 7 ran shards 1/3, 2/3, 3/3" [ "$got" = " 1/3:a 2/3:b 3/3:c" ]

# ---- 4. no resume while the last submission's jobs are queued ---------------------
(cd "$B/work" && "$bin" run "$B/flaky.lua" --slurm --db "$B/held.db" --sbatch-args --hold \
    > "$B/log/submit-held.log" 2>&1) || die "submit failed: $(cat "$B/log/submit-held.log")"
refused() {
    "$bin" run --slurm-resume "$B/held.slurm" > /dev/null 2> "$B/log/held-resume.log"
    [ $? = 2 ] && grep -q "job .* of the last submission is still queued" "$B/log/held-resume.log"
}
check "held: --slurm-resume refuses while the jobs wait in the queue" refused
scancel --quiet --me
wait_jobs
check "held: cancelled before they ran: no shard database, nothing merged" \
    [ "$(ls "$B/held.slurm"/*.db 2>/dev/null | wc -l) $(test -e "$B/held.db"; echo $?)" = "0 1" ]

[ "$fails" -eq 0 ] || die "$fails checks failed (logs above; folder removed)"
echo "test-slurm: all checks passed"
