"""``mvd tune``: tune a model's TVM kernels with MetaSchedule and store the records that ``mvd compile`` applies.

Records go to ``$MVD_CACHE/tvm-tuning/<profile+target>/<model>-<size>/`` unless ``--db DIR`` is given (then pass
the same folder to ``mvd compile --tuning-db``). Each input size needs its own tuning. Host profiles measure here;
aarch64 profiles measure on the device through a TVM RPC tracker (``--rpc-tracker``/``--rpc-key``; how to start
the device's server: ``targets/tvm_rpc.py``). A second run into the same folder continues from its records.
Budget: TopFormer-T at 512x512 has 60 kernels; ~400 trials took ~17 min on 2 cores and gave 18x over untuned.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilevit_deploy.checkpoints import resolve_checkpoint
from mobilevit_deploy.compile import ARCHES
from mobilevit_deploy.errors import DeployError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mobilevit_deploy.targets.cpu_profiles import PROFILE_NAMES
    from mobilevit_deploy.targets.tvm_tuning import COST_MODELS, STRATEGIES

    p = sub.add_parser("tune", help="tune TVM kernels (MetaSchedule) and store records for `mvd compile`",
                       description=__doc__)
    p.add_argument("model", help="a name from `mvd models`")
    p.add_argument("--target", default="tvm", help="tvm (the only target with kernels to tune)")
    p.add_argument("--arch", default="host", help=f"one of: {', '.join(ARCHES)} (default host)")
    p.add_argument("--cpu", help=f"CPU profile: {', '.join(PROFILE_NAMES)} (default: host, or cortex-a76 for aarch64)")
    p.add_argument("--trials", type=_positive, default=1000, help="measurements in all (default 1000)")
    p.add_argument("--db", type=Path, help="records folder (default: the records store under $MVD_CACHE)")
    p.add_argument("--input-size", type=_positive, help="square input side (default: the model's)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="TVM RPC tracker that knows the device")
    p.add_argument("--rpc-key", metavar="KEY", help="the device key its RPC server registered with")
    p.add_argument("--num-cores", type=_positive,
                   help="threads the kernels are tuned for (default: this machine's for host, 4 for aarch64)")
    p.add_argument("--strategy", choices=STRATEGIES, default="evolutionary", help="search (default evolutionary)")
    p.add_argument("--cost-model", choices=COST_MODELS, default="xgb", help="candidate ranking (default xgb)")
    p.add_argument("--checkpoint", type=Path, help="checkpoint (.pth); weights do not change the records")
    p.add_argument("--random-weights", action="store_true", help="ignore the shipped demo checkpoint")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mobilevit_deploy.targets.tvm_rpc import RpcTracker
    from mobilevit_deploy.tune import tune_model

    rpc = None
    if args.rpc_tracker or args.rpc_key:
        if not args.rpc_tracker:
            raise DeployError("--rpc-key needs --rpc-tracker HOST:PORT",
                              hint="the tracker the device's RPC server registered with (see targets/tvm_rpc.py)")
        rpc = RpcTracker.parse(args.rpc_tracker, args.rpc_key)
    checkpoint, note = resolve_checkpoint(args.model, args.checkpoint, args.random_weights)
    if note:
        print(f"[tune] {note}")
    result = tune_model(args.model, args.target, args.arch, cpu=args.cpu, trials=args.trials, db=args.db,
                        input_size=args.input_size, rpc=rpc, checkpoint=checkpoint, strategy=args.strategy,
                        cost_model=args.cost_model, num_cores=args.num_cores,
                        log=lambda msg: print(f"[tune] {msg}", flush=True))
    estimate = f"{result.estimated_ms:.3f} ms" if result.estimated_ms is not None else "n/a"
    print(f"\nrecords    {result.db_dir}")
    print(f"kernels    {result.tasks_tuned}/{result.tasks} tuned, {result.trials} trials "
          f"({result.build_errors} build and {result.run_errors} run failures), measured {result.measured_on}")
    print(f"wall time  {result.wall_seconds:.0f} s")
    print(f"estimate   {estimate} per inference (sum of the best kernel times, as MetaSchedule counts)")
    db_flag = f" --tuning-db {args.db}" if args.db else ""
    size = f" --input-size {args.input_size}" if args.input_size else ""
    print(f"next       mvd compile {args.model} --target tvm --arch {args.arch} --cpu {result.profile}{size}{db_flag} "
          "-o OUT")
    return 0
