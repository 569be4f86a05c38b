"""The ``roboil`` command line. User mistakes print one line and exit with code 2 (no traceback)."""

from __future__ import annotations

import threading

from .errors import catch_interrupts

if threading.current_thread() is threading.main_thread():  # a Ctrl-C from here on ends in one line, in main()
    catch_interrupts(raise_them=False)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import difflib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from . import __version__  # noqa: E402
from .errors import RoboilError, interrupted, one_line, write_failure  # noqa: E402
from .keys import ACTION  # noqa: E402
from .specs import ArrayLayout  # noqa: E402

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a GL backend


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # before Python 3.13 argparse took "-1/2" for an option ("expected one argument"): what 3.13 reads as a
        # value, a dash then a digit, is one here too (its --shard then gets a one-line range error)
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def _check_value(self, action, value):  # argparse's check of a choice (and of a subcommand's name)
        if action.choices is not None and value not in action.choices:
            if close := difflib.get_close_matches(value, list(action.choices), n=1):
                raise argparse.ArgumentError(action, f"invalid choice: {value!r}; did you mean {close[0]!r}?")
        super()._check_value(action, value)

    def error(self, message):  # one line, exit code 2, like every other user error
        command = self.prog.removeprefix("roboil").strip()  # the line starts with "roboil: error:" already
        raise RoboilError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def cmd_plugins(args) -> int:
    from .plugins import registry

    reg = registry()
    if args.verbose:
        from .describe import describe

        print("\n".join(describe(reg)))
    for plugin in reg.plugins if not args.verbose else ():
        registers = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(plugin.registers.items()))
        hooks_only = "(lifecycle hooks only)" if plugin.lifecycle_hooks else "(registers nothing)"
        print(f"{plugin.name} {plugin.version}  {registers or hooks_only}")
    for problem in reg.problems:
        print(f"problem: {problem}")
    return 0


def cmd_plugin(args) -> int:
    from .scaffold import new_plugin, plugin_names

    path = new_plugin(args.name, args.out)
    names = plugin_names(args.name)
    print(f"created {path}: plugin '{names['name']}' with task '{names['task']}' and algorithm '{names['algorithm']}'")
    print(f"next: pip install -e {path} && pytest {path}")
    return 0


def cmd_record(args) -> int:
    from .config import parse_overrides
    from .record import record

    overrides = parse_overrides(args.overrides)
    if not_mappings := [k for k in ("obs", "device", "labeler") if not isinstance(overrides.get(k, {}), dict)]:
        key = not_mappings[0]
        raise RoboilError(f"'{key}=...' names no parameter; write {key}.{'KIND.' if key == 'obs' else ''}PARAM=value")
    unknown = set(overrides) - {"obs", "device", "labeler"}
    if unknown:
        raise RoboilError(f"record takes obs.KIND.PARAM=value, device.PARAM=value and labeler.PARAM=value overrides, "
                          f"not '{sorted(unknown)[0]}'")
    summary = record(args.task, args.episodes, args.out, device=args.device, seed=args.seed, policy=args.policy,
                     labeler=args.labeler, operator=args.operator, obs_overrides=overrides.get("obs"),
                     device_params=overrides.get("device"), labeler_params=overrides.get("labeler"),
                     action_noise=args.action_noise, max_steps=args.max_steps, viewer=not args.no_viewer)
    print(json.dumps(summary))
    return 0


def cmd_replay(args) -> int:
    from .replay import replay

    report = replay(args.path, episodes=args.episode, video=args.video, stored_frames=args.stored_frames)
    for line in report["lines"]:
        print(line)
    return 0 if report["reproduced"] == report["replayed"] else 1


def cmd_store(args) -> int:
    from .codecs import coding
    from .store import EpisodeStore, StoreDamaged, copy_store, recoded_layouts

    if args.store_command == "view":
        from .store_view import view_store

        print(f"page: {view_store(args.path, args.out, episodes=args.episodes)}")
        return 0
    if args.store_command == "copy":
        if args.episode and args.drop_episode:
            raise RoboilError("--episode chooses the episodes to copy and --drop-episode the ones to leave out; "
                              "give one of them")
        copy, skipped = copy_store(args.path, args.out, skip_damaged=args.skip_damaged, episodes=args.episode,
                                   drop_episodes=args.drop_episode or ())
        left_out = f"; left out the damaged episodes {', '.join(map(str, skipped))}" if skipped else ""
        print(f"{copy.path}: {copy.n_episodes} episodes, {copy.n_steps} steps{left_out}")
        return 0
    if args.store_command == "drop-actions":
        if ACTION not in EpisodeStore.open(args.path).features:
            raise RoboilError(f"store '{args.path}' holds observations only already (it has no array '{ACTION}'); "
                              "train on it as it is")
        copy, _ = copy_store(args.path, args.out, [ACTION])
        print(f"{copy.path}: {copy.n_episodes} episodes, {copy.n_steps} steps, observations only")
        return 0
    if args.store_command == "recode":
        if args.codec == "lossless" and args.quality is not None:
            raise RoboilError("--quality is for the lossy codecs; drop it for --codec lossless")
        if args.quality is not None and not 1 <= args.quality <= 100:
            raise RoboilError(f"--quality must be an integer from 1 to 100, got {args.quality}")
        quality = ArrayLayout.quality if args.quality is None else args.quality  # the store's default
        source = EpisodeStore.open(args.path)  # copy_store checks its health
        layouts = recoded_layouts(source, args.codec, quality)
        copy, _ = copy_store(args.path, args.out, layouts=layouts)
        before, after = source.info()["bytes_on_disk"], EpisodeStore.open(copy.path).info()["bytes_on_disk"]
        print(f"{copy.path}: {copy.n_episodes} episodes, {', '.join(layouts)} as {coding(args.codec, quality)}; "
              f"{before / 2**20:.1f} MB -> {after / 2**20:.1f} MB on disk ({after / before:.2f}x)")
        return 0
    if args.store_command == "check" and args.repair:
        report = EpisodeStore.repair(args.path)
        for line in report.lines():
            print(line)
        return 0 if report.healthy else 1
    try:
        store = EpisodeStore.open(args.path)
    except StoreDamaged as damaged:
        if args.store_command != "check":
            raise
        print(f"problem: {damaged}")  # what to do, too: the store cannot be opened to say more
        print(f"{args.path}: BROKEN")
        return 1
    if args.store_command == "info":
        problems = store.check(deep=False)  # a count of 0 episodes may only mean the ends cannot be read
        print(json.dumps({**store.info(), **({"problems": problems} if problems else {})}, indent=2, default=str))
        return 1 if problems else 0
    problems = store.check(deep=not args.quick)
    for note in getattr(store, "notes", []):
        print(f"note: {note}")
    for problem in problems:
        print(f"problem: {problem}")
    size = f"{store.n_episodes} episodes, {store.n_steps} steps"
    if problems:
        print(f"{args.path}: BROKEN ({size})")
    elif args.quick:  # most damage inside a chunk shows only when it is decoded
        print(f"{args.path}: OK by the quick check ({size}; without --quick every episode is decoded and checked)")
    else:
        print(f"{args.path}: OK ({size})")
    return 0 if not problems else 1


def cmd_export(args) -> int:
    for option, given, format_ in (("--fps", args.fps is not None, "lerobot"),
                                   ("--no-next-obs", args.no_next_obs, "robomimic")):
        if given and args.to != format_:
            raise RoboilError(f"{option} is for --to {format_}, not --to {args.to}; drop it")
    if args.to == "zarr2":
        from .interop.zarr2 import export_zarr2

        summary = export_zarr2(args.path, args.out)
    elif args.to == "lerobot":
        from .interop.lerobot import export_lerobot

        summary = export_lerobot(args.path, args.out, fps=args.fps)
    else:
        from .interop.robomimic import export_robomimic

        summary = export_robomimic(args.path, args.out, next_obs=not args.no_next_obs)
    print(summary["line"])
    return 0


def cmd_import(args) -> int:
    from .interop.robomimic import import_robomimic

    keys = [k.strip() for k in args.obs_keys.split(",") if k.strip()] if args.obs_keys is not None else None
    if keys is not None and not keys:
        raise RoboilError("--obs-keys names no observation; give a comma-separated list, e.g. --obs-keys a,b")
    if args.source_format == "lerobot":
        from .interop.lerobot import import_lerobot

        summary = import_lerobot(args.path, args.out, obs_keys=keys)
    else:
        summary = import_robomimic(args.path, args.out, obs_keys=keys)
    print(summary["line"])
    return 0


def cmd_train(args) -> int:
    from .config import load_config
    from .distributed import launched_ranks
    from .train import train

    config = load_config(args.config, args.overrides)
    checkpoint = train(config, args.out)
    if launched_ranks().main:
        print(f"checkpoint: {checkpoint}")
    return 0


def shard_spec(text: str) -> tuple[int, int]:
    """``--shard K/N`` as (K, N); evaluate checks the range."""
    k, _, n = text.partition("/")
    try:
        return int(k), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not K/N, e.g. 0/4") from None


def cmd_eval(args) -> int:
    from .evaluate import evaluate

    from .config import parse_overrides

    overrides = parse_overrides(args.overrides)
    if unknown := sorted(set(overrides) - {"executor"}):
        raise RoboilError(f"eval takes executor.PARAM=value overrides, not '{unknown[0]}'")
    if not isinstance(overrides.get("executor", {}), dict):
        raise RoboilError(f"executor={overrides['executor']} names no parameter; write --executor "
                          f"{overrides['executor']}, or executor.PARAM=value")
    named = overrides.get("executor", {}).get("name")
    if args.executor and named is not None and named != args.executor:
        raise RoboilError(f"--executor {args.executor} and executor.name={named} name two executors; give one")
    executor = {**({"name": args.executor} if args.executor else {}), **overrides.get("executor", {})}
    report = evaluate(args.run_dir, episodes=args.episodes, envs=args.envs, seed=args.seed, video=args.video,
                      out_dir=args.out, max_steps=args.max_steps, device=args.torch_device, executor=executor or None,
                      shard=args.shard)
    if report is None:  # a shard whose partners have not all run; evaluate said so
        return 0
    lo, hi = report["success_ci95"]
    extra = "".join(f", {k} {v:.3f}" for k, v in report.items() if k.startswith("mean_") and k != "mean_return")
    print(f"{report['task']}: success {report['success_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}) over "
          f"{report['n_episodes']} episodes, mean return {report['mean_return']:.2f}{extra}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="roboil", description="plugin-based robot imitation learning")
    parser.add_argument("--version", action="version", version=f"roboil {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    plugins = sub.add_parser("plugins", help="list plugins and what they register")
    plugins.add_argument("--verbose", action="store_true",
                         help="also each part's parameters (types, defaults) and each task's arrays, action space, "
                         "episode length and success rule")
    plugins.set_defaults(run=cmd_plugins)

    plugin = sub.add_parser("plugin", help="tools for plugin authors")
    plugin_sub = plugin.add_subparsers(dest="plugin_command", required=True, parser_class=ArgumentParser)
    new = plugin_sub.add_parser("new", help="write a new plugin package: a task, an algorithm, a config and tests")
    new.add_argument("name", help="the plugin's name (its entry point): lowercase letters, digits, '-' or '_'")
    new.add_argument("--out", default=None, help="the package directory to create (default: ./NAME)")
    new.set_defaults(run=cmd_plugin)

    rec = sub.add_parser("record", help="record demonstrations into an episode store (a person, the task's "
                         "expert, a replay or a policy drives)")
    rec.add_argument("--task", required=True)
    rec.add_argument("--device", default=None,
                     help="who drives: scripted (the task's expert; the default without --policy), replay, or an "
                     "input device a person holds: keyboard, gamepad, spacemouse, ... (see `roboil plugins`)")
    rec.add_argument("--policy", default=None, metavar="RUN_DIR",
                     help="a trained policy drives; with an input --device the person takes over and hands back")
    rec.add_argument("--labeler", default=None,
                     help="whose action is recorded, e.g. scripted for DAgger labels (default: whoever drives)")
    rec.add_argument("--episodes", type=int, default=None,
                     help="episodes to save, after any the store holds (needed unless a person drives: then "
                          "until they quit)")
    rec.add_argument("--out", required=True, help="episode store path (created, or appended to)")
    rec.add_argument("--operator", default=None, help="who records, kept with each episode (default: $USER)")
    rec.add_argument("--seed", type=int, default=0, help="the store's episode i is seeded with SEED+i")
    rec.add_argument("--action-noise", type=float, default=0.0,
                     help="execute actions with Gaussian noise (its standard deviation a fraction of each action's "
                     "half-range, 0 to 1), record them clean")
    rec.add_argument("--max-steps", type=int, default=None, help="take length limit (default: the task's own)")
    rec.add_argument("--no-viewer", action="store_true", help="no window, even when a person drives")
    rec.add_argument("overrides", nargs="*", default=[],
                     help="obs.KIND.PARAM=value (observations), device.PARAM=value and labeler.PARAM=value (devices)")
    rec.set_defaults(run=cmd_record)

    rep = sub.add_parser("replay", help="re-simulate stored episodes from their start states and actions")
    rep.add_argument("path", help="episode store")
    rep.add_argument("--episode", type=int, action="append", default=None,
                     help="episode index (repeat for several; default: all)")
    rep.add_argument("--video", default=None, metavar="FILE",
                     help="write the replay as an H.264 mp4 (one episode), or with --stored-frames the stored frames")
    rep.add_argument("--stored-frames", action="store_true",
                     help="with --video: the frames stored in the episode (its first camera), not a re-simulation")
    rep.set_defaults(run=cmd_replay)

    store = sub.add_parser("store", help="inspect or copy an episode store")
    store_sub = store.add_subparsers(dest="store_command", required=True, parser_class=ArgumentParser)
    for name, text in (("info", "summarize a store"), ("check", "verify a store's integrity")):
        p = store_sub.add_parser(name, help=text)
        p.add_argument("path")
        p.set_defaults(run=cmd_store)
        if name == "check":
            p.add_argument("--quick", action="store_true",
                           help="structure, chunk files and the last episode's checksums only (no full decode)")
            p.add_argument("--repair", action="store_true",
                           help="trim a torn tail and damaged last episodes (every episode before them is kept)")
    copy = store_sub.add_parser("copy", help="copy a store's episodes, each verified against its checksums")
    copy.add_argument("path")
    copy.add_argument("--out", required=True, help="the new store (the source is not changed)")
    copy.add_argument("--skip-damaged", action="store_true",
                      help="leave out the episodes that differ from their checksums (and say which) instead of "
                           "refusing the copy")
    copy.add_argument("--episode", type=int, action="append", default=None, metavar="N",
                      help="copy only episode N (repeat for several; default: all)")
    copy.add_argument("--drop-episode", type=int, action="append", default=None, metavar="N",
                      help="leave episode N out (repeat for several): how a store loses its bad demonstrations")
    copy.set_defaults(run=cmd_store)
    drop = store_sub.add_parser("drop-actions", help="copy a store without its actions (observation-only "
                                "demonstrations, for algorithms that learn from states alone)")
    drop.add_argument("path")
    drop.add_argument("--out", required=True, help="the new store (the source is not changed)")
    drop.set_defaults(run=cmd_store)
    recode = store_sub.add_parser("recode", help="copy a store with its camera arrays in another codec (h264 takes "
                                  "the least disk; frames of a lossy store are decoded and encoded again)")
    recode.add_argument("path")
    recode.add_argument("--codec", required=True, help="lossless, jpeg, jpegxl, avif or h264 (the last four need "
                        "pip install roboil[codecs])")
    recode.add_argument("--quality", type=int, help=f"1..100 for the lossy codecs (default {ArrayLayout.quality}; "
                        "h264 at 65 errs less than LeRobot's videos, in about a quarter of lossless's bytes)")
    recode.add_argument("--out", required=True, help="the new store (the source is not changed)")
    recode.set_defaults(run=cmd_store)
    view = store_sub.add_parser("view", help="write a static HTML page to look at a store: its summary, every "
                                "episode's row (filter by success), camera videos and plots of the first episodes")
    view.add_argument("path")
    view.add_argument("--out", default=None, help="the page's directory (default: STORE's sibling NAME_view/)")
    view.add_argument("--episodes", type=int, default=20, metavar="N",
                      help="the first N episodes get videos and plots (default 20; the table lists all)")
    view.set_defaults(run=cmd_store)

    ex = sub.add_parser("export", help="write an episode store in another tool's format (robomimic HDF5, a "
                        "LeRobot v3.0 dataset, or zarr format 2 for diffusion_policy's ReplayBuffer)")
    ex.add_argument("--to", required=True, choices=["robomimic", "zarr2", "lerobot"])
    ex.add_argument("path", help="episode store")
    ex.add_argument("out", metavar="OUT", help="the new file (robomimic: FILE.hdf5) or directory (zarr2, lerobot)")
    ex.add_argument("--no-next-obs", action="store_true",
                    help="robomimic: leave out next_obs (half the size; train robomimic with "
                    "train.hdf5_load_next_obs=false then)")
    ex.add_argument("--fps", type=float, default=None,
                    help="lerobot: the frame rate the dataset declares (default: the store's fps)")
    ex.set_defaults(run=cmd_export)

    im = sub.add_parser("import", help="make an episode store from another tool's dataset (robomimic HDF5, or a "
                        "LeRobot v3.0 dataset)")
    im.add_argument("--from", dest="source_format", required=True, choices=["robomimic", "lerobot"])
    im.add_argument("path", metavar="FILE", help="the robomimic .hdf5 file, or the LeRobot (v3.0) dataset directory")
    im.add_argument("out", metavar="STORE", help="the new episode store")
    im.add_argument("--obs-keys", default=None, metavar="A,B",
                    help="only these observations (default: all in the file)")
    im.set_defaults(run=cmd_import)

    tr = sub.add_parser("train", help="train a policy from a config", epilog=(
        "Checkpoints go to OUT/checkpoints/step_N every train.checkpoint_every steps and at the last step; all "
        "of them are kept with their weights, and only the newest keeps the optimizer and random states "
        "(training_state.pt) that resuming needs. Several GPUs or machines: launch the same command with "
        "torchrun (see docs/training.md)."))
    tr.add_argument("config")
    tr.add_argument("overrides", nargs="*", default=[], help="dotted key=value overrides, e.g. train.steps=1000")
    tr.add_argument("--out", required=True, help="run directory (resumed if it holds checkpoints)")
    tr.set_defaults(run=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a trained policy in simulation")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=None, help="default: the run's eval.episodes (50)")
    ev.add_argument("--envs", type=int, default=None, help="parallel environments (default: the run's eval.envs)")
    ev.add_argument("--seed", type=int, default=None, help="episode i is seeded SEED+i (default: eval.seed)")
    ev.add_argument("--video", action="store_true", help="film the first eval.video_episodes episodes (and a "
                    "failure and a success if those hold none) as H.264 videos in the report")
    ev.add_argument("--out", default=None, help="report directory (default RUN_DIR/eval)")
    ev.add_argument("--max-steps", type=int, default=None, help="episode length (default: the task's own)")
    ev.add_argument("--executor", default=None,
                    help="how chunks become actions: queue, ensemble, ... (default: the run's eval.executor)")
    ev.add_argument("--torch-device", default="cpu", help="where the policy runs: cpu, cuda, cuda:1, ...")
    ev.add_argument("--shard", type=shard_spec, default=None, metavar="K/N",
                    help="play episodes i with i %% N == K into a partial file in the report directory; the last "
                    "shard to finish writes eval.json from all N (under torchrun, the processes are the shards)")
    ev.add_argument("overrides", nargs="*", default=[], help="executor.PARAM=value, e.g. executor.coefficient=0.05")
    ev.set_defaults(run=cmd_eval)
    for commands in (sub, plugin_sub, store_sub):  # a missing one is named by its choices, not by its dest
        commands.metavar = "{" + ",".join(commands.choices) + "}"
    return parser


def main(argv: list[str] | None = None) -> int:
    args, terminate_handler = None, signal.getsignal(signal.SIGTERM)
    try:
        catch_interrupts(raise_them=True)
        signal.signal(signal.SIGTERM, _terminate_as_interrupted)
        if interrupted():  # while this module was imported
            raise KeyboardInterrupt
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):
            parser.print_help()
            return 2
        args, extra = parser.parse_known_args(argv)
        # overrides may also follow the options (argparse stops collecting positionals at --out)
        if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        elif extra:  # named with the command's own help
            words = [args.command, getattr(args, "store_command", None) or getattr(args, "plugin_command", None)]
            raise RoboilError(f"unrecognized arguments: {' '.join(extra)} (see roboil "
                              f"{' '.join(word for word in words if word)} --help)")
        code = args.run(args)
        sys.stdout.flush()  # a reader that left (`| head`) shows here, not at exit
        if interrupted():  # swallowed on the way (see catch_interrupts): the command may not have done it all
            raise KeyboardInterrupt
        return code
    except RoboilError as exc:
        if _out_of_memory(exc):  # raised in a plugin's own loop, and wrapped naming the plugin
            return _error(_memory_advice(args, exc.__cause__ or exc))
        from .plugins import PluginError

        out = getattr(args, "out", None) or getattr(args, "run_dir", None)
        if isinstance(exc, PluginError) and out and (problem := write_failure(exc.__cause__, out)):
            return _error(problem)  # a plugin's own loop saving a checkpoint onto a full disk, say
        return _error(str(exc), exc)
    except KeyboardInterrupt:
        print("roboil: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `roboil store info ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        out = getattr(args, "out", None) or getattr(args, "run_dir", None)
        problem = write_failure(exc, out) if out else None
        if problem is None and _out_of_memory(exc):
            problem = _memory_advice(args, exc)
        if problem is None:
            raise
        return _error(problem)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # for code that called main() in-process
        signal.signal(signal.SIGTERM, terminate_handler)


def _terminate_as_interrupted(signum, frame) -> None:
    """SIGTERM (`kill`, `timeout`, a cluster scheduler's preemption, `docker stop`) stops a command as Ctrl-C
    does, through whatever handles SIGINT at that moment: a training saves the step it is at first. Only the
    first counts: a scheduler and torchrun may each send one, and a second Ctrl-C would stop it unsaved."""
    if interrupted():
        return
    with contextlib.suppress(OSError, RuntimeError):  # stderr gone (a pipe's reader killed too): stop all the same
        from tqdm import tqdm  # a progress bar may be on screen: the line goes above it

        tqdm.write("roboil: terminated (SIGTERM): stopping as on Ctrl-C", file=sys.stderr)
    signal.raise_signal(signal.SIGINT)


def _out_of_memory(exc: BaseException | None) -> bool:
    """A GPU's memory, or the CPU allocator's, ran out, here or in what this exception was raised from (the
    kernel may kill the process instead: nothing to say then)."""
    torch = sys.modules.get("torch")  # not loaded: not torch's error
    while exc is not None:
        if isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)) or (
                isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)):
            return True
        exc = exc.__cause__
    return False


def _memory_advice(args, exc: BaseException) -> str:
    fix = {"train": "use a smaller train.batch_size or model (checkpoints saved before are kept)",
           "eval": "use fewer --envs, or a smaller model"}.get(getattr(args, "command", None),
                                                             "free memory (close other programs) and run it again")
    return f"out of memory ({one_line(exc)[:200]}); {fix}"


def _error(message: str, exc: BaseException | None = None) -> int:
    """One line on stderr; exit 2 for a user's mistake. A plugin's bug (plugins.PluginError: its code raised while
    roboil called it) exits 1, and with ROBOIL_DEBUG=1 its traceback follows the line."""
    details = getattr(exc, "details", None)
    if details and os.environ.get("ROBOIL_DEBUG"):
        print(f"roboil: error: {message}\n{details.rstrip()}", file=sys.stderr)
    else:
        print(f"roboil: error: {message}{'; set ROBOIL_DEBUG=1 for the traceback' if details else ''}", file=sys.stderr)
    return getattr(exc, "exit_code", 2)


def entry() -> None:
    """The console script: exit with main()'s code. After an interrupt the code is made exact with os._exit: a
    KeyboardInterrupt that lands while a C extension is being imported can leave the interpreter marked so that
    it ends itself by SIGINT whatever the code (1 in 6 interrupts 0.4-0.6 s into `record`). The command's
    cleanup has run by then."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
