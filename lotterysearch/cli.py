"""``lotterysearch`` command line. Every error a user can cause prints one line and exits 2."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from lotterysearch.errors import LotterySearchError


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
    """The MLP spec a mask of layers fc1..fcL implies: widths from the weight shapes [out, in]."""
    shapes = list(mask.shapes.values())
    return "mlp:" + "-".join(str(w) for w in [shapes[0][1], *(s[0] for s in shapes)])


def cmd_prune(args: argparse.Namespace) -> None:
    from lotterysearch.data import check_dataset_name, load_dataset
    from lotterysearch.models import build_model
    from lotterysearch.pruning import prune

    model = build_model(args.model, args.seed)
    check_dataset_name(args.dataset)
    data = (
        load_dataset(args.dataset, args.seed, data_dir=args.data_dir)
        if args.pruner in ("snip", "imp")
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
    from lotterysearch.config import TrainingConfig
    from lotterysearch.data import load_dataset
    from lotterysearch.masks import Mask
    from lotterysearch.models import build_model, input_width
    from lotterysearch.training import train

    mask = Mask.load(args.mask) if args.mask else None
    spec = args.model or (spec_from_mask(mask) if mask is not None else None)
    if spec is None:
        from lotterysearch.errors import ConfigError

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
    from lotterysearch.canon import canon_report

    print(canon_report(args.masks))


def _workspace(args: argparse.Namespace) -> str:
    import os

    return args.workspace or os.environ.get("LOTTERYSEARCH_WORKSPACE") or "workspace"


def cmd_search(args: argparse.Namespace) -> None:
    import os

    from lotterysearch import api, report
    from lotterysearch.config import load_config
    from lotterysearch.errors import ConfigError
    from lotterysearch.store import Store

    address = args.address or os.environ.get("RAY_ADDRESS") or None
    local = True if args.local else None
    if args.resume:
        workspace = args.workspace or os.environ.get("LOTTERYSEARCH_WORKSPACE")
        workspace = workspace or (load_config(args.config).workspace if args.config else "workspace")
        run = api.open_run(workspace, args.resume, local=local, address=address)
        api.check_resumable(run.store, run.id)
        print(f"resuming run {run.id} after generation {run.generation} in {workspace}", flush=True)
    else:
        if not args.config:
            raise ConfigError("search needs a CONFIG file (or --resume RUN)")
        cfg = load_config(args.config)
        workspace = args.workspace or os.environ.get("LOTTERYSEARCH_WORKSPACE") or cfg.workspace
        run = api.create_run(cfg, workspace, local=local, address=address)
        print(
            f"run {run.id} in {workspace}: {cfg.model} on {cfg.dataset}, "
            f"population {cfg.ga.population}, {cfg.ga.generations} generations",
            flush=True,
        )
    if threading.current_thread() is threading.main_thread():  # after ray.init, which sets its own
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    counter = None
    if sys.stderr.isatty():  # a transient within-generation counter; logs get only the generation lines

        def counter(res, done: int, total: int) -> None:  # noqa: ANN001 - EvalResult
            print(
                f"\r  training {done}/{total}", end="" if done < total else "\r", file=sys.stderr, flush=True
            )

    with run:
        try:
            run.optimize(progress=lambda r: print(r.line(), flush=True), on_evaluation=counter)
        except KeyboardInterrupt:
            print(
                f"interrupted; resume with: lotterysearch search --resume {run.id} --workspace {workspace}",
                file=sys.stderr,
            )
            raise
    with Store.open(workspace) as store:
        print(report.format_front(store, run.id, "table"))
    print(
        f"front: lotterysearch front {run.id} --workspace {workspace} [--plot front.png] [--html front.html]"
    )


def cmd_runs(args: argparse.Namespace) -> None:
    from lotterysearch import report
    from lotterysearch.store import Store

    with Store.open(_workspace(args)) as store:
        print(report.format_runs(store, args.format))


def cmd_front(args: argparse.Namespace) -> None:
    from lotterysearch import report
    from lotterysearch.store import Store

    with Store.open(_workspace(args)) as store:
        print(report.format_front(store, args.run, args.format, all=args.all))
        if args.plot:
            print(f"wrote {report.plot_front(store, args.run, args.plot)}", file=sys.stderr)
        if args.html:
            print(f"wrote {report.html_front(store, args.run, args.html)}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> None:
    from lotterysearch import report
    from lotterysearch.store import Store

    with Store.open(_workspace(args)) as store:
        print(f"saved {report.export_mask(store, args.run, args.id, args.out)}")


def cmd_stability(args: argparse.Namespace) -> None:
    import torch

    from lotterysearch.stability import stability_command

    torch.set_num_threads(args.threads)  # small networks: one thread each is fastest, and fair under load
    stability_command(args.config, args.out)


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


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
    q.add_argument("--iterations", type=int, default=None, help="pruning iterations (synflow: 100)")
    q.add_argument(
        "--scope", default=None, help="global or layerwise (default: the pruner's own; imp: layerwise)"
    )
    q.add_argument("--rounding", default="round", help="round (exact) or reference (the authors' code)")
    q.add_argument("--seed", type=int, default=0)
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
    t.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    t.add_argument("--data-seed", type=int, default=0, help="validation split")
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
    s.add_argument("--workspace", **ws)
    s.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)"
    )
    s.add_argument(
        "--resume", default=None, metavar="RUN", help="continue a stopped run from its last generation"
    )
    s.add_argument(
        "--local",
        action="store_true",
        help='train in this process, without Ray (config: evaluator = "local")',
    )
    s.set_defaults(func=cmd_search)

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
    f.set_defaults(func=cmd_front)

    e = sub.add_parser("export", help="write one individual's mask as .npz (accepted by train)")
    e.add_argument("run", metavar="RUN")
    e.add_argument("id", type=int, metavar="ID")
    e.add_argument("--workspace", **ws)
    e.add_argument("--out", required=True, metavar="MASK.npz")
    e.set_defaults(func=cmd_export)

    st = sub.add_parser(
        "stability", help="do masks from different initializations agree? (report, metrics, plots)"
    )
    st.add_argument("config", metavar="CONFIG.toml")
    st.add_argument("--out", required=True, metavar="DIR")
    st.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    st.set_defaults(func=cmd_stability)
    return p


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # `ray job stop` and `kill` end a search as 'interrupted', resumable


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except LotterySearchError as e:
        print(f"lotterysearch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lotterysearch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
