"""Running the workflow on whole-node GPU clusters (ALCF Polaris, PBS Pro).

* `hyperinr.cluster.polaris`: the Polaris queues and which one accepts a request (queue,
  walltime, rerunnable), one home for their limits; the polaris profile's submit script uses it.
* `hyperinr.cluster.gpus`: a node's GPU slots; a process takes free ones (a lock per GPU) and
  sets CUDA_VISIBLE_DEVICES, so jobs packed onto one node never share a GPU.
* `hyperinr.cluster.allocation`: the polaris-allocation profile's launcher: Snakemake runs
  inside one PBS job and starts each job on a node of $PBS_NODEFILE through mpiexec.

Everything here uses the standard library only: it runs in Snakemake's submit commands and at
the start of every stage, before torch touches CUDA.
"""
