#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests: controller, compute daemon and
# accounting (slurmdbd over MariaDB), one fake GPU with 2 shards (gres.conf File=/dev/null).
#
#   tests/slurm/cluster.sh up STATE [--no-accounting]   # prints the SLURM_CONF to export
#   tests/slurm/cluster.sh down STATE
#
# Debian packages, installed when missing (root). `up` stops what an earlier `up` on the
# same STATE started, then starts afresh in a new STATE (state save, spool, database). Ports
# 16817-16819 and 13306 on 127.0.0.1, never the default SLURM ones. `down` stops only the
# daemons this script started (their pid files under STATE); a munged that was already
# running is used and left alone. Needs: root, apt-get (or the packages already there).
#
# /etc/slurm/slurm.conf becomes a link to STATE/slurm.conf while the cluster is up (removed
# by `down`): the SLURM executor's job-step plugin drops SLURM_CONF from the environment of
# the `srun` it runs inside each job, so a job finds its cluster only where real clusters
# keep the config. An /etc/slurm/slurm.conf that this script did not make is never touched.
set -euo pipefail

cmd="${1:?usage: cluster.sh up|down STATE [--no-accounting]}"
state="$(realpath -m "${2:?usage: cluster.sh up|down STATE}")"
accounting=1
[ "${3:-}" = "--no-accounting" ] && accounting=0
CLUSTER=scopeloss-ci
ACCOUNT=ci-account
PARTITION=ci
SBIN=/usr/sbin
ETC_CONF=/etc/slurm/slurm.conf

stop_ours() {
    # cancel this cluster's jobs (their step daemons would outlive slurmd), then SIGTERM each
    # daemon we started (newest first), wait for it to go, SIGKILL if it hangs.
    if [ -s "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
        SLURM_CONF="$state/slurm.conf" scancel --full --user "$(id -un)" 2>/dev/null || true
        sleep 1
    fi
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        local pidfile="$state/$name.pid"
        [ -s "$pidfile" ] || continue
        local pid; pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    if [ "$(readlink "$ETC_CONF" 2>/dev/null)" = "$state/slurm.conf" ]; then rm -f "$ETC_CONF"; fi
    # an earlier version of this script ran munged as root: give its log back to munge
    if [ -d /var/log/munge ] && id munge >/dev/null 2>&1; then
        chown -R munge:munge /var/log/munge 2>/dev/null || true
    fi
}

link_config() {
    if [ -L "$ETC_CONF" ] && [[ "$(readlink "$ETC_CONF")" == */slurm.conf ]] \
        && grep -q "^ClusterName=$CLUSTER\$" "$ETC_CONF" 2>/dev/null; then
        rm -f "$ETC_CONF"  # left by an earlier run of this script
    fi
    if [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
        echo "cluster.sh: $ETC_CONF exists and is not this script's; refusing to replace it" >&2
        exit 3
    fi
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -s "$state/slurm.conf" "$ETC_CONF"
}

install_packages() {
    local need=()
    [ -x $SBIN/slurmctld ] || need+=(slurmctld)
    [ -x $SBIN/slurmd ] || need+=(slurmd)
    command -v sbatch >/dev/null || need+=(slurm-client)
    [ -x $SBIN/munged ] || need+=(munge)
    if [ "$accounting" = 1 ]; then
        [ -x $SBIN/slurmdbd ] || need+=(slurmdbd)
        [ -x $SBIN/mariadbd ] || need+=(mariadb-server)
    fi
    [ ${#need[@]} -eq 0 ] && return
    echo "cluster.sh: apt-get install ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
    local limit="$1" what="$2"; shift 2
    for _ in $(seq $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "cluster.sh: $what did not come up in ${limit}s; logs in $state" >&2
    tail -n 20 "$state"/*.log >&2 || true
    return 1
}

start_munge() {
    # one munged serves the machine (its socket is fixed in libmunge): start it only if none runs
    if munge -n </dev/null >/dev/null 2>&1; then return; fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    # as the munge user, the way its service runs it: files munged writes (its log above all)
    # stay munge's, so a munged started the normal way later still runs ("Logfile is
    # insecure" otherwise)
    runuser -u munge -- $SBIN/munged --pid-file /run/munge/scopeloss-munged.pid \
        2>>"$state/munged.log"
    wait_for 10 munged munge -n
    cp /run/munge/scopeloss-munged.pid "$state/munged.pid"
}

start_database() {
    local db="$state/db"
    mariadb-install-db --user=root --datadir="$db" --auth-root-authentication-method=socket \
        --skip-test-db >"$state/mariadb-install.log" 2>&1
    $SBIN/mariadbd --user=root --datadir="$db" --socket="$state/mysql.sock" \
        --pid-file="$state/mariadbd.pid" --port=13306 --bind-address=127.0.0.1 \
        --skip-name-resolve --log-error="$state/mariadbd.log" 2>>"$state/mariadbd.log" &
    wait_for 60 mariadbd mariadb --socket="$state/mysql.sock" -e "select 1"
    mariadb --socket="$state/mysql.sock" -e "
        CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-ci';
        CREATE DATABASE slurm_acct_db;
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    cat > "$state/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=16819
SlurmUser=root
PidFile=$state/slurmdbd.pid
LogFile=$state/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=13306
StorageUser=slurm
StoragePass=slurm-ci
StorageLoc=slurm_acct_db
EOF
    chmod 0600 "$state/slurmdbd.conf"
    # slurmdbd reads the slurmdbd.conf beside $SLURM_CONF
    SLURM_CONF="$state/slurm.conf" $SBIN/slurmdbd
    wait_for 30 slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/16819"
}

write_config() {
    local node cpus mem
    node="$(hostname -s)"
    cpus="$(nproc)"
    mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    mkdir -p "$state/ctld" "$state/spool"
    {
        echo "ClusterName=$CLUSTER"
        echo "SlurmctldHost=$node(127.0.0.1)"
        echo "SlurmctldPort=16817"
        echo "SlurmdPort=16818"
        echo "SlurmUser=root"
        echo "AuthType=auth/munge"
        echo "StateSaveLocation=$state/ctld"
        echo "SlurmdSpoolDir=$state/spool"
        echo "SlurmctldPidFile=$state/slurmctld.pid"
        echo "SlurmdPidFile=$state/slurmd.pid"
        echo "SlurmctldLogFile=$state/slurmctld.log"
        echo "SlurmdLogFile=$state/slurmd.log"
        # no cgroups in a container: processes tracked by parentage, tasks not bound
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "JobAcctGatherType=jobacct_gather/linux"
        echo "MpiDefault=none"
        echo "ReturnToService=2"
        echo "SchedulerType=sched/backfill"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core"
        echo "GresTypes=gpu,shard"
        echo "KillWait=5"
        echo "AccountingStoreFlags=job_comment"  # sacct shows the executor's rule/wildcards comment
        echo "MinJobAge=600"
        if [ "$accounting" = 1 ]; then
            echo "AccountingStorageType=accounting_storage/slurmdbd"
            echo "AccountingStorageHost=127.0.0.1"
            echo "AccountingStoragePort=16819"
            echo "AccountingStorageTRES=gres/gpu,gres/shard"
        else
            echo "AccountingStorageType=accounting_storage/none"
        fi
        echo "NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1,shard:2 State=UNKNOWN"
        echo "PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP"
    } > "$state/slurm.conf"
    # a fake GPU: AutoDetect off, /dev/null as its device file; 2 shards of it
    cat > "$state/gres.conf" <<EOF
AutoDetect=off
NodeName=$node Name=gpu File=/dev/null
NodeName=$node Name=shard Count=2 File=/dev/null
EOF
}

up() {
    [ "$(id -u)" = 0 ] || { echo "cluster.sh: needs root" >&2; exit 77; }
    [ -d "$state" ] && stop_ours
    rm -rf "$state"
    mkdir -p "$state"
    install_packages
    write_config
    link_config
    export SLURM_CONF="$state/slurm.conf"
    start_munge
    [ "$accounting" = 1 ] && start_database
    $SBIN/slurmctld -f "$SLURM_CONF"
    wait_for 30 slurmctld scontrol ping
    if [ "$accounting" = 1 ]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null
        sacctmgr -i add user "$(id -un)" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
    $SBIN/slurmd -f "$SLURM_CONF"
    wait_for 30 "node $(hostname -s) idle" bash -c "sinfo -h -o %t | grep -qx idle"
    echo "$SLURM_CONF"
}

case "$cmd" in
    up) up ;;
    down) [ -d "$state" ] && stop_ours; exit 0 ;;
    *) echo "usage: cluster.sh up|down STATE [--no-accounting]" >&2; exit 2 ;;
esac
