"""``lotterysearch`` command line. Every error a user can cause prints one line and exits 2.

Each command imports what it uses inside its own function: torch and Ray take seconds to import, and the
light commands (``runs``, ``front``, ``--help``, a bad argument) should not wait for them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from lotterysearch.errors import ConfigError, LotterySearchError
from lotterysearch.readers import console, report
from lotterysearch.readers import frontier as frontier_view
from lotterysearch.runs import confirmation as confirm
from lotterysearch.settings import SEED_MAX, RunKind, TrainingConfig, check_limit
from lotterysearch.storage.store import Store


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _layer_table(mask) -> str:  # noqa: ANN001 - Mask
    eff = mask.effective()
    rows = [f"{'layer':<8}{'kept':>10}{'total':>10}{'density':>10}{'effective':>11}"]
    for name in mask:
        kept, total = int(mask[name].sum()), mask[name].numel()
        rows.append(
            f"{name:<8}{kept:>10}{total:>10}{kept / total:>10.4f}{int(eff[name].sum()) / total:>11.4f}"
        )
    rows.append(
        f"{'all':<8}{mask.kept():>10}{mask.total():>10}{mask.density():>10.4f}{eff.density():>11.4f}"
        f"   compression {mask.compression_ratio():.4g}x"
    )
    collapsed = mask.collapsed_layers()
    rows.append(f"layer collapse: {'yes (' + ', '.join(collapsed) + ')' if collapsed else 'no'}")
    return "\n".join(rows)


def spec_from_mask(mask) -> str:  # noqa: ANN001 - Mask
    """The MLP spec a mask of layers fc1..fcL implies: widths from the weight shapes [out, in]. A convnet's
    mask does not say where its pools are, so it needs ``--model``."""
    for name, shape in mask.shapes.items():
        if len(shape) != 2:
            raise ConfigError(
                f"the mask is a convnet's (layer '{name}' {list(shape)}): pass --model, e.g. --model conv2:32x32x3"
            )
    shapes = list(mask.shapes.values())
    return "mlp:" + "-".join(str(w) for w in [shapes[0][1], *(s[0] for s in shapes)])


def cmd_prune(args: argparse.Namespace) -> None:
    from lotterysearch.core.data import check_dataset_name, load_dataset
    from lotterysearch.core.models import build_model
    from lotterysearch.pruning.pruners import prune

    if args.iterations is not None:
        check_limit("iterations", args.iterations, "iterations", "--iterations")
    if args.out and os.path.isdir(args.out):  # before the pruning, not after it
        raise ConfigError(
            f"--out '{args.out}' is a directory; name a file, e.g. {os.path.join(args.out, 'mask.npz')}"
        )
    model = build_model(args.model, args.seed)
    check_dataset_name(args.dataset)
    data = (
        load_dataset(args.dataset, args.seed, data_dir=args.data_dir)
        if args.pruner in ("snip", "imp", "cs")
        else None
    )
    mask = prune(
        model,
        args.pruner,
        args.compression,
        iterations=args.iterations,
        scope=args.scope,
        data=data,
        seed=args.seed,
        rounding=args.rounding,
    )
    print(f"{args.pruner} on {args.model} (seed {args.seed}), target compression {args.compression:g}x")
    print(_layer_table(mask))
    if args.out:
        print(f"saved {mask.save(args.out)}")


def cmd_train(args: argparse.Namespace) -> None:
    from lotterysearch.core.data import load_dataset
    from lotterysearch.core.masks import Mask
    from lotterysearch.core.models import build_model, input_width
    from lotterysearch.training.trainer import train

    mask = Mask.load(args.mask) if args.mask else None
    spec = args.model or (spec_from_mask(mask) if mask is not None else None)
    if spec is None:
        raise ConfigError("train needs --mask or --model")
    data = load_dataset(args.dataset, args.data_seed, data_dir=args.data_dir)
    model = build_model(spec, args.seed)
    if mask is not None:
        mask.check_fits(model)
    data.check_input_width(spec, input_width(model))
    training = TrainingConfig(args.steps, args.optimizer, args.lr, args.batch_size)
    r = train(
        model,
        mask,
        data,
        training,
        mode=args.mode,
        seed=args.seed,
        evaluate_test=args.test,
    )
    density = f"density {mask.density():.4f} (effective {mask.effective_density():.4f})" if mask else "dense"
    print(f"{spec} on {args.dataset}, {density}, mode {args.mode}, {args.steps} steps")
    print(f"validation accuracy {r.val_accuracy:.4f}  loss {r.val_loss:.4f}")
    if args.test:
        print(f"test accuracy {r.test_accuracy:.4f}  loss {r.test_loss:.4f}")


def cmd_canon(args: argparse.Namespace) -> None:
    from lotterysearch.core.canon import canon_report

    print(canon_report(args.masks))


def _workspace(args: argparse.Namespace, default: str = "workspace") -> str:
    """--workspace, else $LOTTERYSEARCH_WORKSPACE, else ``default`` (a config's own, or ./workspace)."""
    return args.workspace or os.environ.get("LOTTERYSEARCH_WORKSPACE") or default


def _address(args: argparse.Namespace) -> str | None:
    return args.address or os.environ.get("RAY_ADDRESS") or None


def _new_run(
    args: argparse.Namespace, command: str, load: Callable[[str], Any], create: Callable[..., Any]
) -> tuple[Any, str, Any]:
    """(config, workspace, run) of a new run of the command's CONFIG, in the workspace ``_workspace`` names
    with the config's as its default."""
    if not args.config:
        raise ConfigError(f"{command} needs a CONFIG file (or --resume RUN)")
    cfg = load(args.config)
    workspace = _workspace(args, cfg.workspace)
    run = create(cfg, workspace, local=True if args.local else None, address=_address(args))
    return cfg, workspace, run


def _run_to_end(
    run,  # noqa: ANN001 - api.Run
    command: str,
    workspace: str,
    table: Callable[..., str],
    on_evaluation: Callable[..., None] | None = None,
) -> None:
    """Run ``run`` to its end, a line per step, then print ``table(store, run_id)``. SIGTERM and Ctrl-C end
    it 'interrupted', with the ``command`` that resumes it."""
    if threading.current_thread() is threading.main_thread():  # after ray.init, which sets its own
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    with run:
        try:
            run.optimize(progress=lambda r: console.say(r.line()), on_evaluation=on_evaluation)
        except KeyboardInterrupt:
            console.say(
                f"interrupted; resume with: lotterysearch {command} --resume {run.id} --workspace {workspace}",
                file=sys.stderr,
            )
            raise
    with Store.open(workspace) as store:
        print(table(store, run.id))
    print(
        f"front: lotterysearch front {run.id} --workspace {workspace} [--plot front.png] [--html front.html]"
    )


def cmd_search(args: argparse.Namespace) -> None:
    from lotterysearch import api

    address = _address(args)
    local = True if args.local else None
    if args.resume:
        workspace = _workspace(args, "")  # the config is read only when it names the workspace
        workspace = workspace or (api.load_config(args.config).workspace if args.config else "workspace")
        run = api.open_run(workspace, args.resume, local=local, address=address)
        if run.kind is not RunKind.SEARCH:
            run.close()
            what = "an IMP run" if run.kind is RunKind.IMP else f"a {run.kind.value.upper()} run"
            raise ConfigError(
                f"run '{run.id}' is {what}, not a search; resume it with: lotterysearch {run.kind.value}"
                f" --resume {run.id}"
            )
        api.check_resumable(run.store, run.id)
        console.say(f"resuming run {run.id} after generation {run.generation} in {workspace}")
    else:
        cfg, workspace, run = _new_run(args, "search", api.load_config, api.create_run)
        console.say(
            f"run {run.id} in {workspace}: {cfg.model} on {cfg.dataset}, "
            f"population {cfg.ga.population}, {cfg.ga.generations} generations"
        )
    console.say(_fitness_line(run))
    counter = None
    if sys.stderr.isatty():  # a transient within-generation counter; logs get only the generation lines

        def counter(res, done: int, total: int) -> None:  # noqa: ANN001 - EvalResult
            console.say(f"\r  training {done}/{total}", end="" if done < total else "\r", file=sys.stderr)

    _run_to_end(
        run, "search", workspace, lambda store, run_id: report.format_front(store, run_id, "table"), counter
    )


def _fitness_line(run) -> str:  # noqa: ANN001 - api.Run
    """What a progress line's accuracy is, and the dense network's under the same fitness (trained once
    here), so that a reader can tell a good mask from a toy's accuracy."""
    cfg = run.config
    f = cfg.fitness
    seeds = f.init_seeds[0] if len(f.init_seeds) == 1 else f"{len(f.init_seeds)} init seeds (mean)"
    init = f"init θ₀ = seed {seeds}" if f.mode == "ticket" else f"init seed {seeds}"
    dense = run.problem.dense_objectives()
    return (
        f"fitness: validation accuracy after {f.steps} training steps ({f.optimizer}, lr {f.lr:g}, batch"
        f" {f.batch_size}) from {init}; the dense network reaches {dense.accuracy:.4f} under it"
    )


def cmd_runs(args: argparse.Namespace) -> None:
    with Store.open(_workspace(args)) as store:
        print(report.format_runs(store, args.format))


def cmd_front(args: argparse.Namespace) -> None:
    if args.overlay and not args.plot:
        raise ConfigError("--overlay draws on the plot: give --plot FILE.png too")
    with Store.open(_workspace(args)) as store:
        print(report.format_front(store, args.run, args.format, all=args.all))
        if args.plot and args.overlay:
            _plot_with_overlay(args, store)
        elif args.plot:
            print(f"wrote {report.plot_front(store, args.run, args.plot)}", file=sys.stderr)
        if args.html:
            print(f"wrote {report.html_front(store, args.run, args.html)}", file=sys.stderr)


def cmd_frontier(args: argparse.Namespace) -> None:
    """Every method's confirmed ticket at each density against its total and critical-path steps."""
    if args.format not in ("table", "json"):
        raise ConfigError(f"--format must be table or json, got {args.format!r}")
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise ConfigError(f"--tolerance must be a share of the weights >= 0, got {args.tolerance:g}")
    targets = frontier_view.check_targets(args.density or [])
    protocol = confirm.load_protocol(args.protocol) if args.protocol else None
    with Store.open(_workspace(args)) as store:
        for rid in args.runs:
            store.run(rid)  # an unknown run is a one-line error before anything is read
        found = frontier_view.rows(frontier_view.tickets(store, targets, args.runs, protocol, args.tolerance))
    if not found:
        raise ConfigError(
            "no confirmed mask at or below those densities: confirm the runs first (lotterysearch confirm)"
        )
    print(frontier_view.as_json(found) if args.format == "json" else frontier_view.table(found))
    if args.plot:
        print(f"wrote {frontier_view.figure(found, args.plot, args.margin, args.reference)}")


def cmd_lineage(args: argparse.Namespace) -> None:
    """Per generation: distinct lineages, surviving founders and mean pairwise overlap of the population;
    then the ancestry of each front member (or of ID)."""
    from lotterysearch.evolution import diagnostics  # torch

    if args.format not in ("table", "json"):
        raise ConfigError(f"--format must be table or json, got {args.format!r}")
    with Store.open(_workspace(args)) as store:
        per_gen = diagnostics.run_diagnostics(store, args.run)
        trees = diagnostics.run_ancestries(store, args.run, None if args.id is None else [args.id])
    if args.format == "json":
        print(
            json.dumps(
                {
                    "generations": [diagnostics.as_dict(g) for g in per_gen],
                    "ancestry": {str(i): [diagnostics.as_dict(a) for a in t] for i, t in trees.items()},
                },
                indent=1,
            )
        )
        return
    if args.id is None:
        print("gen  size  lineages  founders  overlap (mean pairwise Jaccard of the population's masks)")
        for g in per_gen:
            print(f"{g.gen:>3}  {g.size:>4}  {g.lineages:>8}  {g.founders:>8}  {g.overlap:.4f}")
        print("lineage: the set of generation-0 individuals an individual descends from")
    for i, tree in trees.items():
        print(f"ancestry of {i}:")
        for a in tree:
            print("  " + a.line())


def _plot_with_overlay(args: argparse.Namespace, store) -> None:  # noqa: ANN001 - Store
    """``front RUN --plot P --overlay OTHER``: OTHER's points (from ``--overlay-workspace``, else this
    workspace) over RUN's front, and how many of them the front dominates."""
    with contextlib.ExitStack() as stack:
        other = store
        if args.overlay_workspace:
            other = stack.enter_context(Store.open(args.overlay_workspace))
        other.run(args.overlay)  # an unknown run is the store's one-line error, before any rendering
        path = report.plot_front(store, args.run, args.plot, overlay=(other, args.overlay))
        sets = report.overlay_sets(
            report.run_summary(store, args.run), report.run_summary(other, args.overlay)
        )
    print(f"wrote {path}", file=sys.stderr)
    print(
        f"overlay: {len(sets.dominated)} of {len(sets.other_points)} points of {args.overlay} lie below the"
        f" front of {args.run}",
        file=sys.stderr,
    )


def _drive_trajectories(
    args: argparse.Namespace,
    kind: RunKind,
    label: str,
    method: str,
    load: Callable[[str], Any],
    create: Callable[..., Any],
    not_this_kind: Callable[[Any], str],
    schedule: Callable[[Any], str],
) -> None:
    """The ``imp`` and ``cs`` commands: a new run of per-init trajectories (``method``, its rounds said by
    ``schedule(config)``), or with ``--resume`` the run opened, checked to be of ``kind`` (else the one-line
    ``not_this_kind(run)``), against --config where given, and resumable; then driven to its last round and
    its tickets printed."""
    from lotterysearch import api

    if args.resume:
        cfg = load(args.config) if args.config else None
        workspace = _workspace(args, cfg.workspace if cfg is not None else "workspace")
        run = api.open_run(workspace, args.resume, local=True if args.local else None, address=_address(args))
        try:
            if run.kind is not kind:
                raise ConfigError(not_this_kind(run))
            if cfg is not None:
                api.check_same_config(run, cfg, source=args.config)
            api.check_resumable(run.store, run.id)
        except BaseException:
            run.close()
            raise
        part = getattr(run.config, kind.value)
        console.say(
            f"resuming {label} run {run.id} in {workspace}: {len(run.imp_rounds())} of"
            f" {len(part.init_seeds) * (part.rounds + 1)} rounds committed"
        )
    else:
        cfg, workspace, run = _new_run(args, kind.value, load, create)
        part = getattr(cfg, kind.value)
        seeds = ", ".join(map(str, part.init_seeds))
        console.say(
            f"run {run.id} in {workspace}: {method} of {cfg.model} on {cfg.dataset}, {len(part.init_seeds)}"
            f" trajectories (init seeds {seeds}), {part.rounds} rounds{schedule(cfg)}"
        )
    _run_to_end(run, kind.value, workspace, report.format_imp_tickets)


def _not_imp(run: Any) -> str:
    what, command = ("a search", "search") if run.kind is RunKind.SEARCH else ("a CS run", "cs")
    return (
        f"run '{run.id}' is {what}, not an IMP run; resume it with: lotterysearch {command} --resume {run.id}"
    )


def _imp_schedule(cfg: Any) -> str:
    i = cfg.imp
    return f" pruning {i.rate:g} per round ({i.scope}), {cfg.training.steps - i.rewind_step} steps per round"


def cmd_imp(args: argparse.Namespace) -> None:
    from lotterysearch import api

    _drive_trajectories(
        args, RunKind.IMP, "IMP", "IMP", api.load_imp_config, api.create_imp_run, _not_imp, _imp_schedule
    )


def _not_cs(run: Any) -> str:
    return f"run '{run.id}' is not a CS run; resume it with: lotterysearch {run.kind.value} --resume {run.id}"


def _cs_schedule(cfg: Any) -> str:
    c = cfg.cs
    penalties = ", ".join(f"{p:g}" for p in c.penalty)
    return f", λ {penalties}, {cfg.training.steps - c.rewind_step} steps per ticket"


def cmd_cs(args: argparse.Namespace) -> None:
    from lotterysearch import api

    _drive_trajectories(
        args,
        RunKind.CS,
        "CS",
        "Continuous Sparsification",
        api.load_cs_config,
        api.create_cs_run,
        _not_cs,
        _cs_schedule,
    )


def cmd_export(args: argparse.Namespace) -> None:
    from lotterysearch.readers.export import export

    with Store.open(_workspace(args)) as store:
        done = export(
            store, args.run, args.id, args.out, args.format, weights=args.weights, protocol=args.protocol
        )
        print(done.line())


def cmd_bench(args: argparse.Namespace) -> None:
    from lotterysearch.readers.export import bench, describe_network, format_bench, ticket

    with Store.open(_workspace(args)) as store:
        t = ticket(store, args.run, args.id, args.weights)
    print(f"run {args.run} individual {args.id}: {t.spec}, {describe_network(t.model, t.mask)}")
    print(f"{args.threads} thread(s), best and median of {args.rounds} rounds; × masked: the dense masked")
    print(
        "network's best latency over this form's (× zeros: the dense one with its zeros stored)", flush=True
    )
    print(format_bench(bench(t.model, t.mask, args.batch, rounds=args.rounds, threads=args.threads)))


def cmd_dashboard(args: argparse.Namespace) -> None:
    try:
        from lotterysearch.readers.dashboard import serve
    except ImportError as e:
        raise ConfigError(
            f"the dashboard needs the 'dashboard' extra ({e.name} is missing): pip install 'lotterysearch[dashboard]'"
        ) from None
    serve(_workspace(args), args.host, args.port, args.token)


def cmd_confirm(args: argparse.Namespace) -> None:
    address = _address(args)
    seeds = confirm.DEFAULT_REINIT_SEEDS if args.reinit_seeds is None else args.reinit_seeds
    with Store.open(_workspace(args)) as store:
        plan = confirm.plan(
            store,
            args.run,
            ids=args.ids,
            front=args.front,
            origin=args.origin,
            protocol=args.protocol,
            reinit_seeds=seeds,
        )
        console.say(confirm.plan_line(plan))
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        try:
            confirm.run_plan(
                store,
                plan,
                local=True if args.local else None,
                address=address,
                on_result=lambda job, result: console.say(confirm.job_line(job, result)),
            )
        except KeyboardInterrupt:
            print(
                "interrupted; run the same command again to train what is left (finished trainings are stored)",
                file=sys.stderr,
            )
            raise
        print(report.format_confirmed(plan, confirm.plan_summaries(store, plan)))


def cmd_stability(args: argparse.Namespace) -> None:
    import torch

    from lotterysearch.runs.stability import given_masks_command, stability_command

    torch.set_num_threads(args.threads)  # small networks: one thread each is fastest, and fair under load
    if (args.config is None) == (args.masks is None):
        raise ConfigError("stability takes a CONFIG (a study) or --masks (your own masks), one of the two")
    if args.masks is not None:
        given_masks_command(args.masks, args.out, args.seed)
    elif args.out is None:
        raise ConfigError("stability CONFIG needs --out DIR for its report, metrics and plots")
    else:
        stability_command(args.config, args.out)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _integer(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], else argparse's one-line error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be in [{low}, {high}], got {value}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


_seed = _integer(0, SEED_MAX, "a seed")  # numpy refuses negative seeds; SQLite stores signed 64-bit
_individual_id = _integer(0, SEED_MAX, "an individual id")
_port = _integer(0, 65535, "a TCP port")  # 0: any free port
_threads = _integer(1, 1024, "a thread count")
_count = _integer(1, SEED_MAX, "a count")


def _individual_options(p: argparse.ArgumentParser, ws: dict[str, Any]) -> None:
    """RUN ID [--workspace]: one individual of a stored run (export, bench)."""
    p.add_argument("run", metavar="RUN")
    p.add_argument("id", type=_individual_id, metavar="ID")
    p.add_argument("--workspace", **ws)


def _run_options(p: argparse.ArgumentParser, ws: dict[str, Any], resume: str) -> None:
    """The options of a command that starts or resumes a run (search, imp): where, on what, from where."""
    p.add_argument("--workspace", **ws)
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)"
    )
    p.add_argument("--resume", default=None, metavar="RUN", help=resume)
    p.add_argument(
        "--local",
        action="store_true",
        help='train in this process, without Ray (config: evaluator = "local")',
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lotterysearch", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    q = sub.add_parser("prune", help="prune a freshly initialised network and save its mask")
    q.add_argument("--dataset", default="mnist1d")
    q.add_argument(
        "--data-dir", default=None, help="directory of the MNIST IDX files (or $LOTTERYSEARCH_DATA)"
    )
    q.add_argument("--model", default="mlp:40-100-100-10")
    q.add_argument("--pruner", default="synflow")
    q.add_argument(
        "--compression", type=_positive_float, default=100.0, help="rho = |theta| / |theta_pruned|"
    )
    q.add_argument("--iterations", type=_count, default=None, help="pruning iterations (synflow: 100)")
    q.add_argument(
        "--scope", default=None, help="global or layerwise (default: the pruner's own; imp: layerwise)"
    )
    q.add_argument("--rounding", default="round", help="round (exact) or reference (the authors' code)")
    q.add_argument("--seed", type=_seed, default=0)
    q.add_argument("--out", default=None, help="save the mask as .npz")
    q.set_defaults(func=cmd_prune)

    t = sub.add_parser("train", help="train a masked network and print its accuracy")
    t.add_argument("--mask", default=None, help=".npz mask (from prune or export)")
    t.add_argument("--model", default=None, help="model spec (default: implied by the mask)")
    t.add_argument("--dataset", default="mnist1d")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--steps", type=int, default=575)
    t.add_argument("--mode", default="forward", help="forward, gradient or straight_through")
    t.add_argument("--optimizer", default="adam")
    t.add_argument("--lr", type=float, default=1e-2)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--seed", type=_seed, default=0, help="initial weights and batch order")
    t.add_argument("--data-seed", type=_seed, default=0, help="validation split")
    t.add_argument("--test", action="store_true", help="also evaluate on the test split")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("canon", help="effective density, twins and class key of masks; are two isomorphic?")
    c.add_argument("masks", nargs="+", metavar="MASK.npz")
    c.set_defaults(func=cmd_canon)

    ws = {
        "default": None,
        "help": "workspace directory (default: $LOTTERYSEARCH_WORKSPACE, else the config's, else ./workspace)",
    }
    s = sub.add_parser("search", help="run (or resume) a genetic search for lottery tickets")
    s.add_argument("config", nargs="?", metavar="CONFIG.toml")
    _run_options(s, ws, "continue a stopped run from its last generation")
    s.set_defaults(func=cmd_search)

    for command, what, label, config_help, func in (
        (
            "imp",
            "iterative magnitude pruning with rewinding, per init seed",
            "IMP",
            'an IMP config (kind = "imp")',
            cmd_imp,
        ),
        (
            "cs",
            "Continuous Sparsification, a learned mask per round, per init seed",
            "CS",
            'a CS config (kind = "cs")',
            cmd_cs,
        ),
    ):
        m = sub.add_parser(command, help=f"run (or resume) {what}")
        m.add_argument("config", nargs="?", metavar="CONFIG.toml", help=config_help)
        _run_options(
            m,
            ws,
            f"continue a stopped {label} run after each trajectory's last committed round (CONFIG, if given,"
            " must be the run's own)",
        )
        m.set_defaults(func=func)

    r = sub.add_parser("runs", help="list the runs in a workspace")
    r.add_argument("--workspace", **ws)
    r.add_argument("--format", default="table", help="table or json")
    r.set_defaults(func=cmd_runs)

    f = sub.add_parser("front", help="the Pareto front of a run: table, json, csv, PNG plot, HTML page")
    f.add_argument("run", metavar="RUN")
    f.add_argument("--workspace", **ws)
    f.add_argument("--format", default="table", help="table, json or csv")
    f.add_argument("--all", action="store_true", help="every evaluated mask, with is_pareto")
    f.add_argument("--plot", default=None, metavar="FILE.png")
    f.add_argument("--html", default=None, metavar="FILE.html")
    f.add_argument(
        "--overlay",
        default=None,
        metavar="OTHER_RUN",
        help="draw OTHER_RUN's points over this run's front in the --plot (e.g. IMP tickets on a GA front)",
    )
    f.add_argument(
        "--overlay-workspace", default=None, metavar="DIR", help="OTHER_RUN's workspace (default: RUN's)"
    )
    f.set_defaults(func=cmd_front)

    fr = sub.add_parser(
        "frontier",
        help="every method's confirmed tickets at each density against total and critical-path steps",
    )
    fr.add_argument(
        "runs",
        metavar="RUN",
        nargs="*",
        help="runs to show (default: every run; runs sharing a name are one method)",
    )
    fr.add_argument(
        "--density", type=float, action="append", metavar="D", help="a density (share of the weights); repeat"
    )
    fr.add_argument(
        "--tolerance", type=float, default=0.0, help="count masks up to D + this share (default 0)"
    )
    fr.add_argument(
        "--protocol",
        default=None,
        help="the confirmations' protocol: a TOML [training] file (default: the latest)",
    )
    fr.add_argument("--plot", default=None, metavar="FILE.png", help="draw accuracy against both step counts")
    fr.add_argument(
        "--reference", default=None, metavar="METHOD", help="shade ±--margin points around it in the plot"
    )
    fr.add_argument("--margin", type=float, default=0.2, help="points (default 0.2)")
    fr.add_argument("--workspace", **ws)
    fr.add_argument("--format", default="table", help="table or json")
    fr.set_defaults(func=cmd_frontier)

    li = sub.add_parser(
        "lineage", help="is the search searching: lineages and overlap per generation, ancestry of the front"
    )
    li.add_argument("run", metavar="RUN")
    li.add_argument("id", metavar="ID", type=int, nargs="?", default=None, help="one individual's ancestry")
    li.add_argument("--workspace", **ws)
    li.add_argument("--format", default="table", help="table or json")
    li.set_defaults(func=cmd_lineage)

    e = sub.add_parser(
        "export", help="write one individual as a compacted model (TorchScript, torch.export, ONNX) or a mask"
    )
    _individual_options(e, ws)
    e.add_argument("--out", required=True, metavar="FILE", help=".npz mask, .pt, .pt2 or .onnx model")
    e.add_argument(
        "--format",
        default=None,
        help="mask, compact, sparse, program or onnx (default: from the suffix of --out, else mask)",
    )
    e.add_argument(
        "--weights", default="trained", help="trained (from the mask's own init) or init (θ₀, the ticket)"
    )
    e.add_argument(
        "--protocol",
        default=None,
        metavar="FILE.toml",
        help="the training of --weights trained: the file's [training] table (default: the run's)",
    )
    e.set_defaults(func=cmd_export)

    b = sub.add_parser(
        "bench", help="latency and memory of one individual's exported forms against its dense masked network"
    )
    _individual_options(b, ws)
    b.add_argument("--batch", type=int, nargs="+", default=[1, 256], metavar="N", help="batch sizes")
    b.add_argument("--rounds", type=int, default=7, help="timing rounds, the forms interleaved")
    b.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default 1)")
    b.add_argument("--weights", default="init", help="init (no training: latency does not depend on it)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("dashboard", help="a live read-only web view of a workspace: runs, fronts, masks")
    d.add_argument("--workspace", **ws)
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (not loopback: needs --token)")
    d.add_argument("--port", type=_port, default=8000)
    d.add_argument(
        "--token", default=None, help="required of every request (default: $LOTTERYSEARCH_DASHBOARD_TOKEN)"
    )
    d.set_defaults(func=cmd_dashboard)

    cf = sub.add_parser(
        "confirm", help="retrain a run's masks under a full protocol, from their own init and from fresh ones"
    )
    cf.add_argument("run", metavar="RUN")
    which = cf.add_mutually_exclusive_group()
    which.add_argument(
        "--front", action="store_true", help="the run's Pareto front (the default for a search run)"
    )
    which.add_argument("--ids", type=_individual_id, nargs="+", metavar="ID", help="these individuals")
    which.add_argument(
        "--origin",
        metavar="NAME",
        help="a pruner's seed masks (synflow), random, child, imp, or a pattern such as 'synflow:seed=0:*'",
    )
    cf.add_argument(
        "--protocol",
        metavar="FILE.toml",
        help="the full training: the file's [training] table, with eval_every (default for an IMP run: its own)",
    )
    cf.add_argument(
        "--reinit-seeds",
        type=_seed,
        nargs="+",
        default=None,
        metavar="SEED",
        help="fresh inits of the reinit control (default 1000 1001)",
    )
    cf.add_argument("--workspace", **ws)
    cf.add_argument("--local", action="store_true", help="train in this process, without Ray")
    cf.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (default: $RAY_ADDRESS, else the run's, else a local Ray)",
    )
    cf.set_defaults(func=cmd_confirm)

    st = sub.add_parser(
        "stability", help="do masks from different initializations agree? (report, metrics, plots)"
    )
    st.add_argument("config", metavar="CONFIG.toml", nargs="?", default=None)
    st.add_argument(
        "--masks",
        nargs="+",
        metavar="MASK.npz",
        default=None,
        help="compare your own masks (one per init) instead of running a study: overlap against chance and "
        "both shuffle nulls, live units, bootstrap over masks",
    )
    st.add_argument(
        "--seed", type=_seed, default=0, help="the shuffled nulls' and bootstrap's seed (--masks)"
    )
    st.add_argument("--out", default=None, metavar="DIR", help="where the report goes (needed with CONFIG)")
    st.add_argument("--threads", type=_threads, default=1, help="torch threads (default 1)")
    st.set_defaults(func=cmd_stability)
    return p


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # `ray job stop` and `kill` end a search as 'interrupted', resumable


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed its one line (or --help): the code, as for any error
        return e.code if isinstance(e.code, int) else 2
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except LotterySearchError as e:
        console.say(f"lotterysearch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        console.say("lotterysearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lotterysearch front RUN | head`: the reader has what it wanted
        if not console.reader_gone(sys.stdout):
            raise
        console.silence(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
