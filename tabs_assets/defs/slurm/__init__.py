"""The Slurm executor: a run's computing steps as Slurm jobs, a study's shards as one job array.

Dagster has no Slurm executor, so this is one built the way dagster-docker and dagster-k8s build
theirs: Dagster's StepDelegatingExecutor plans the run in the run's process and asks a step
handler to launch each step; here the handler submits it with ``sbatch`` as ``dagster api
execute_step`` (the command those executors run in a container; through job_entry.py, which exits
quietly when Slurm ends the job). The job writes its events
straight to the Dagster instance, which the nodes must reach (SQLite in .dagster_home/ on the
shared filesystem, or Postgres), so the UI shows its logs, materializations and failures like any
step's. submitit (which pickles a Python callable per job) and dagster-slurm (Dagster Pipes over
SSH, one asset body as one script) would each need a second way of running a step; the command
Dagster already has for running one step elsewhere needs no pickling and no second code path.

- Where a step runs (``placement``): a per-config or study asset whose result is in the store
  (its checks, reported by its own step, are stored with it) and the study's planning and
  recording steps run in the run's own process, as ``execute_step`` would, without a job: a
  cache hit never queues.
- A study's shards are submitted together as one job array (``--array=0-N%concurrency``) when
  the first of them is launched; each task runs its shard's members in-process as always.
- Training steps and study shards ask for ``training_gpus`` GPUs (``--gres``), others for none.
- Every ``HEALTH_CHECK_S`` the executor asks ``squeue`` (then ``scontrol`` for finished jobs) about
  the jobs of unfinished steps: a job cancelled, timed out or lost with its node fails its step
  with the job id, Slurm's state and reason and the end of the job's log. Terminating the run
  ``scancel``s its jobs. Results are written atomically and the executor frees a failed step's
  pool slot, so a rerun reuses everything stored and waits for nothing.
"""
