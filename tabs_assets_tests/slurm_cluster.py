"""A real one-node Slurm cluster for tests and benchmarks: munged, slurmctld and slurmd started
by hand (no systemd) with every file in one folder, on free loopback ports, always stopped.

Needs the Debian packages `slurm-wlm` and `munge` (`.ci/run` installs them). The node is this
machine (Slurm requires the node name to be `hostname -s`), with every core, its memory and
``gpus`` placeholder GPUs: Slurm counts and allocates them (one training per GPU) but sets no
CUDA_VISIBLE_DEVICES. Without accounting storage `sacct` does not work; `scontrol show job`
keeps finished jobs for MinJobAge seconds.
"""

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tabs_assets_tests.services import Services, free_port, service_env, services, wait_until

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
PARTITION = "debug"


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None]


@dataclass(frozen=True)
class SlurmCluster:
    folder: Path
    conf: Path
    services: Services

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs: SLURM_CONF (sbatch, squeue, scancel, scontrol)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str) -> str:
        completed = subprocess.run(
            args, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30
        )
        assert completed.returncode == 0, f"{' '.join(args)}: {completed.stderr}"
        return completed.stdout


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024  # leave some for the daemons
    raise RuntimeError("no MemTotal in /proc/meminfo")


def slurm_conf(folder: Path, munge_socket: Path, gpus: int) -> str:
    node = socket.gethostname().split(".")[0]
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    return f"""\
ClusterName=tabs
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2048
MpiDefault=none
ReturnToService=2
MinJobAge=600
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_memory_mb()}{gres} \
State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@contextmanager
def slurm_cluster(folder: Path, gpus: int = 1) -> Iterator[SlurmCluster]:
    """munged, slurmctld and slurmd with their config, state and logs under ``folder``."""
    for sub in ("state", "spool", "munge", "logs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "munge", 0o700)
    key, munge_socket = folder / "munge" / "munge.key", folder / "munge" / "munge.socket"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}", "--force"], check=True)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, munge_socket, gpus))
    gpu_files = [folder / f"gpu{i}" for i in range(gpus)]
    for path in gpu_files:
        path.touch()
    node = socket.gethostname().split(".")[0]
    (folder / "gres.conf").write_text(
        "".join(f"NodeName={node} Name=gpu File={path}\n" for path in gpu_files)
    )
    env = service_env({"SLURM_CONF": str(conf)})
    with services(folder / "logs", env) as stack:
        munge = [
            "munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={munge_socket}",
            f"--pid-file={folder / 'munge' / 'munged.pid'}",
            f"--log-file={folder / 'munge' / 'munged.log'}",
            f"--seed-file={folder / 'munge' / 'munged.seed'}",
        ]
        stack.start("munged", munge)
        wait_until(munge_socket.exists, 30, "munged", stack.logs)
        stack.start("slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        stack.start("slurmd", ["slurmd", "-D", "-f", str(conf)])
        cluster = SlurmCluster(folder, conf, stack)
        wait_until(
            lambda: cluster.run("sinfo", "-h", "-o", "%T").strip() == "idle",
            60,
            "the Slurm node to be idle",
            lambda: stack.logs() + (folder / "slurmctld.log").read_text(errors="replace")[-3000:],
        )
        try:
            yield cluster
        finally:
            # Jobs outlive slurmd (slurmstepd runs them): cancel them while it can.
            jobs = cluster.run("squeue", "-h", "-o", "%i").split()
            if jobs:
                cluster.run("scancel", *jobs)
                wait_until(lambda: not cluster.run("squeue", "-h").strip(), 30, "jobs to end")
