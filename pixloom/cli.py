"""The ``pixloom`` command line: parse, call the Python API (:mod:`pixloom.tasks`), print.

Every user error (unknown name, missing or corrupt file, a bad value, an unwritable output) ends
with a one-line message on stderr and exit code 2; there are no tracebacks for bad input. Library
errors name arguments; here they are worded with the flags (``--keep-rows`` for ``known_rows``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from pixloom.errors import PixloomError, render

# Library argument names whose flag is not simply --name-with-dashes.
FLAGS = {"n": "-n", "keep_rows": "--keep-rows", "known_rows": "--keep-rows", "options": "--set", "images": "IMAGE",
         "model": "MODEL", "runs": "RUN", "first": "--pair", "second": "--pair", "dtype": "--float16/--int8",
         "progress": "--quiet", "label": "--label"}


def flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def say(text: str) -> str:
    """A message of the library worded for the command line (arguments as flags)."""
    return render(text, flag)


def printable(text: str) -> str:
    """One line: control characters (a newline, ``\x1e``, ...) from user input are shown escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


# -- argument types: bad values are one-line usage errors ---------------------------------------------
def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def decay(text: str) -> float:
    value = nonnegative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), e.g. 0.999; got {text}")
    return value


def epochs(text: str) -> float:
    """--epochs: passes over the training set; a whole number stays an int (train_config.json says 2)."""
    value = positive_float(text)
    return int(value) if value.is_integer() else value


def seed(text: str) -> int:
    value = _integer(text)
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63 - 1, got {value}")
    return value


class HelpFormatter(argparse.HelpFormatter):
    """Shows "(default: X)" after an option's help when it has a real default not already named."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (default is not None and default is not False and default != argparse.SUPPRESS and action.option_strings
                and "default" not in text):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``pixloom COMMAND: error: ... (see pixloom COMMAND --help)``."""

    def error(self, message: str):
        self.exit(2, printable(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def _print_json(obj) -> None:
    print(json.dumps(obj, sort_keys=False, allow_nan=False))


# -- commands -------------------------------------------------------------------------------------------
def cmd_models(args) -> int:
    from pixloom.tasks import list_models, list_shipped

    models = list_models()
    width = max(len(m["name"]) for m in models)
    for m in models:
        print(f"{m['name']:<{width}}  {m['summary']}  [{', '.join(m['capabilities'])}]")
    shipped = list_shipped()
    if shipped:
        print("\nshipped (pretrained) models:")
        width = max(len(s["name"]) for s in shipped)
        for s in shipped:
            detail = "".join(f", {k} {v}" for k, v in s.items() if k not in ("name", "model"))
            print(f"  {s['name']:<{width}}  a {s['model']} model{detail}")
    return 0


def cmd_datasets(args) -> int:
    from pixloom.tasks import list_datasets

    rows = list_datasets()
    width = max(len(d["name"]) for d in rows)
    for d in rows:
        print(f"{d['name']:<{width}}  {d['kind']:<8}  {d['summary']}")
    return 0


def cmd_train(args) -> int:
    from pixloom.tasks import parse_options, train

    options = parse_options(args.model, args.set) if args.set else None
    result = train(args.model, args.data, args.out, options=options, conditional=True if args.conditional else None,
                   init=args.init, resume=args.resume, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   warmup_steps=args.warmup_steps, grad_clip=args.grad_clip, weight_decay=args.weight_decay,
                   optimizer=args.optimizer, ema=args.ema, seed=args.seed, limit_train=args.limit_train,
                   limit_valid=args.limit_valid, dp_epsilon=args.dp_epsilon, dp_delta=args.dp_delta,
                   dp_max_grad_norm=args.dp_max_grad_norm, max_minutes=args.max_minutes, max_steps=args.max_steps,
                   device=args.device, data_dir=args.data_dir, cache_dir=args.cache_dir, progress=not args.quiet,
                   command=" ".join(["pixloom"] + [str(a) for a in args.argv]))
    if result.get("process", 0) == 0:
        for warning in result["warnings"]:
            print(printable(f"pixloom: warning: {say(warning)}"), file=sys.stderr)
        print(result["summary_line"])
    return 0


def cmd_sample(args) -> int:
    from pixloom.tasks import sample

    if not args.out and not args.steps_out:
        raise PixloomError("sample needs --out PATH (.png grid or .npz) or --steps-out PATH.gif (draw)")
    sample(args.run, n=args.n, temperature=args.temperature, label=args.label, seed=args.seed, out=args.out,
           nrow=args.nrow, steps_out=args.steps_out, batch_size=args.batch_size, device=args.device,
           progress=not args.quiet)
    if args.out:
        print(f"wrote {args.n} samples to {args.out}")
    if args.steps_out:
        print(f"wrote the canvas of {args.n} pictures step by step to {args.steps_out} (and a .png strip beside it)")
    return 0


def cmd_complete(args) -> int:
    from pixloom.tasks import complete

    complete(args.run, args.image, known_rows=args.keep_rows, n=args.n, temperature=args.temperature,
             label=args.label, seed=args.seed, out=args.out, device=args.device)
    print(f"wrote occluded input, {args.n} completions and the original to {args.out}")
    return 0


def cmd_eval(args) -> int:
    from pixloom.tasks import evaluate

    result = evaluate(args.run, args.data, split=args.split, data_dir=args.data_dir, limit=args.limit,
                      batch_size=args.batch_size, iw_samples=args.iw_samples, seed=args.seed, beam=args.beam,
                      length_penalty=args.length_penalty, captions_out=args.captions_out,
                      cache_dir=args.cache_dir, scale=args.scale, per_image=args.per_image,
                      samples=args.sample_metrics, classifier=args.classifier, device=args.device,
                      progress=not args.quiet)
    _print_json(result)  # the figures first: a failed write of --captions-out does not lose them
    if "failed" in result:
        print(printable(f"pixloom: error: {result['failed']}"), file=sys.stderr)
        return 2
    return 0


def cmd_reconstruct(args) -> int:
    from pixloom.tasks import reconstruct

    reconstruct(args.run, data=args.data, split=args.split, n=args.n, data_dir=args.data_dir, out=args.out,
                device=args.device)
    print(f"wrote {args.n} {args.split} images (top row) and their reconstructions (bottom row) to {args.out}")
    return 0


def cmd_interpolate(args) -> int:
    from pixloom.tasks import interpolate, load_model
    from pixloom.tasks.generation import dataset_images

    first, second = args.pair
    model = load_model(args.run, args.device)
    images = dataset_images(model, args.data, args.split, max(first, second) + 1, args.data_dir)
    interpolate(model, images[first], images[second], steps=args.steps, out=args.out)
    print(f"wrote image {first} | {args.steps} decoded steps through the latent space | image {second} to {args.out}")
    return 0


def cmd_caption(args) -> int:
    from pixloom.tasks import caption

    captions = caption(args.run, args.images, beam=args.beam, max_len=args.max_len,
                       length_penalty=args.length_penalty, allow_unk=args.allow_unk,
                       attention_map=args.attention_map, device=args.device)
    for path, text in zip(args.images, captions):
        print(text if len(args.images) == 1 else f"{path}\t{text}")
    if args.attention_map:
        print(f"wrote the attention maps to {args.attention_map}" + (" (-1, -2, ... per image)"
                                                                    if len(args.images) > 1 else ""), file=sys.stderr)
    return 0


def cmd_upscale(args) -> int:
    from pixloom.tasks import upscale

    pictures = upscale(args.run, args.images, out=args.out, scale=args.scale, n=args.n, seed=args.seed,
                       device=args.device, progress=not args.quiet)
    if isinstance(pictures, list):
        sizes = ", ".join(f"{p.shape[2]}x{p.shape[1]}" for p in pictures[:3]) + (" ..." if len(pictures) > 3 else "")
        print(f"wrote {len(pictures)} upscaled picture(s) ({sizes}) to {args.out}")
    else:
        print(f"wrote {pictures.shape[1]} high-resolution draws of each of {pictures.shape[0]} digit(s) to {args.out}")
    return 0


def cmd_compare(args) -> int:
    from pixloom.tasks import compare

    result = compare(args.runs, data=args.data, out=args.out, n=args.n, seeds=tuple(args.seeds),
                     classifier=args.classifier, data_dir=args.data_dir, nll_limit=args.nll_limit,
                     progress=not args.quiet)
    print(f"wrote the comparison of {len(args.runs)} generator(s) to {result['report']} and {result['html']}")
    return 0


def cmd_serve(args) -> int:
    from pixloom.serve.server import serve

    serve(args.models, host=args.host, port=args.port, workers=args.workers, max_waiting=args.max_waiting,
          report=args.report, device=args.device)
    return 0


def cmd_ensemble(args) -> int:
    from pixloom.tasks import build_ensemble

    ensemble = build_ensemble(args.runs, args.out, length_penalty=args.length_penalty,
                              dtype="int8" if args.int8 else "float16" if args.float16 else None, force=args.force)
    print(f"wrote an ensemble of {len(args.runs)} captioners ({ensemble.num_parameters():,} parameters) to {args.out}")
    return 0


def cmd_demo(args) -> int:
    from pixloom.tasks import run_demo

    run_demo(args.out, steps=args.steps, minutes=args.minutes, seed=args.seed, quiet=args.quiet, threads=args.threads)
    return 0


# -- parser ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from pixloom.tasks import list_datasets, list_models
    from pixloom.tasks.training import SETTINGS

    data_help = "data set: " + " | ".join(d["name"] for d in list_datasets()) + " (pixloom datasets)"
    formatter = HelpFormatter
    parser = Parser(prog="pixloom", description="Recurrent networks that generate and describe images.",
                    formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=formatter)
        p.set_defaults(func=func)
        return p

    def device(p, default="cpu"):
        p.add_argument("--device", default=default, help="auto | cpu | cuda | cuda:N")

    add("models", cmd_models, "list the models (with what each can do) and the shipped models")
    add("datasets", cmd_datasets, "list the data sets")

    p = add("train", cmd_train, "train a model; the run directory holds the best model, logs and checkpoints")
    p.add_argument("model", metavar="MODEL", nargs="?", help="(may be left out with --resume) one of: " + ", ".join(m["name"] for m in list_models() if "trainable" in m["capabilities"]))
    p.add_argument("--data", help=data_help + "; with --resume: the run's own")
    p.add_argument("--data-dir", help="local data root (default: $PIXLOOM_DATA or ~/.cache/pixloom)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly, with its own settings (only --epochs, the budgets, "
                        "--device and the data and cache folders may change; changes are recorded in the run)")
    p.add_argument("--init", metavar="RUN", help="start a new run (its own schedule, batch size, optimizer) from the "
                   "weights of a saved model, e.g. a captioner's self-critical fine-tuning with --set scst_samples=5")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model option, e.g. --set hidden_size=256")
    p.add_argument("--conditional", action="store_true", help="condition on class labels")
    defaults = {k: f" (default: {v})" for k, v in SETTINGS.items()}
    p.add_argument("--epochs", type=epochs, help="passes over the training set; a fraction (0.5) ends the schedule "
                   "inside an epoch" + defaults["epochs"])
    p.add_argument("--batch-size", type=positive_int, help="images (or caption pairs) per step" + defaults["batch_size"])
    p.add_argument("--lr", type=positive_float, help="peak learning rate" + defaults["lr"])
    p.add_argument("--warmup-steps", type=count_int, help="linear warm-up, then one cosine over --epochs"
                   + defaults["warmup_steps"])
    p.add_argument("--grad-clip", type=nonnegative_float, help="max gradient norm (0 = off)" + defaults["grad_clip"])
    p.add_argument("--weight-decay", type=nonnegative_float, help="decoupled weight decay (AdamW); 0 = plain Adam"
                   + defaults["weight_decay"])
    p.add_argument("--optimizer", choices=["adam", "rmsprop"], help="adam, or rmsprop (the PixelRNN paper's)"
                   + defaults["optimizer"])
    p.add_argument("--ema", type=decay, metavar="DECAY", help="validate and save a moving average of the weights "
                   "(e.g. 0.999; 0 = off)" + defaults["ema"])
    p.add_argument("--seed", type=seed, help="seed of the initial weights and the data order" + defaults["seed"])
    p.add_argument("--limit-train", type=positive_int, help="use only the first N training items")
    p.add_argument("--limit-valid", type=positive_int, help="use only the first N validation items")
    p.add_argument("--max-minutes", type=positive_float, help="stop with a checkpoint after this much training")
    p.add_argument("--max-steps", type=positive_int, help="stop with a checkpoint after this many steps in all")
    p.add_argument("--dp-epsilon", type=positive_float, help="train with differential privacy (DP-SGD, Opacus) until "
                   "this epsilon is spent (needs the privacy extra)")
    p.add_argument("--dp-delta", type=positive_float, help="the delta of the private run's guarantee (default: 1e-5)")
    p.add_argument("--dp-max-grad-norm", type=positive_float,
                   help="each example's gradient is clipped to this norm (default: 1.0)")
    p.add_argument("--cache-dir", help="captioning: encoder feature cache (default: <data root>/features)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    device(p, "auto")

    p = add("sample", cmd_sample, "draw new images from a model")
    p.add_argument("run", help="run directory or shipped model name")
    p.add_argument("-n", type=positive_int, default=64, help="how many images")
    p.add_argument("--out", help="picture of the grid (.png/.jpg; at most 1,024 images) or .npz with every image")
    p.add_argument("--steps-out", help="draw: animated GIF of the canvas over the T steps (+ a PNG strip beside it)")
    p.add_argument("--seed", type=seed, default=None, help="seed of the draws (default: random)")
    p.add_argument("--temperature", type=nonnegative_float, default=1.0,
                   help="1 = the model's distribution; lower is sharper; 0 = the most likely value of each pixel")
    p.add_argument("--label", type=count_int, default=None, help="class to draw (class-conditional models)")
    p.add_argument("--nrow", type=positive_int, default=None, help="images per row of the grid (default: up to 8)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="images drawn at a time (bounds memory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    device(p)

    p = add("complete", cmd_complete, "keep the top rows of an image and sample the rest (autoregressive models)")
    p.add_argument("run", help="run directory or shipped model name")
    p.add_argument("--image", required=True, help="PNG/JPEG of the model's size (e.g. 28x28 for MNIST models)")
    p.add_argument("--keep-rows", type=count_int, required=True, help="rows kept from the top of the image")
    p.add_argument("-n", type=positive_int, default=8, help="completions of the image")
    p.add_argument("--out", required=True, help="picture: occluded input | completions | original")
    p.add_argument("--seed", type=seed, default=None, help="seed of the draws (default: random)")
    p.add_argument("--temperature", type=nonnegative_float, default=1.0, help="as for sample")
    p.add_argument("--label", type=count_int, default=None, help="class of the image (class-conditional models)")
    device(p)

    p = add("eval", cmd_eval, "score a model on a data split; prints one JSON object")
    p.add_argument("run", help="run directory or shipped model name")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--data-dir", help="local data root (default: $PIXLOOM_DATA or ~/.cache/pixloom)")
    p.add_argument("--split", default="valid", choices=["train", "valid", "dev", "test"], help="which split")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N items")
    p.add_argument("--iw-samples", type=positive_int, default=None,
                   help="latent-variable models: importance samples of the IWAE estimate (default: the model's, 100)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the latent draws (latent-variable models)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per forward pass")
    p.add_argument("--beam", type=positive_int, default=3, help="captioning: beam size (1 = greedy)")
    p.add_argument("--length-penalty", type=nonnegative_float, default=None,
                   help="captioning: GNMT length penalty alpha (0 = none; default: the model's own)")
    p.add_argument("--captions-out", help="captioning: also write the generated captions to this JSON file")
    p.add_argument("--scale", type=positive_int, default=None,
                   help="super-resolution: the scale to score (must be the model's; default: the model's)")
    p.add_argument("--per-image", action="store_true", help="super-resolution: also each picture's figures")
    p.add_argument("--sample-metrics", type=count_int, default=2000, metavar="N",
                   help="generators: also the sample-quality figures (FD, KID, precision, recall, class coverage) of "
                        "N samples; 0 = only the likelihood")
    p.add_argument("--classifier", default="mnist-classifier", help="generators: the classifier whose features the "
                   "sample figures use")
    p.add_argument("--cache-dir", help="captioning: encoder feature cache (default: <data root>/features)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    device(p)

    p = add("reconstruct", cmd_reconstruct, "encode data images and decode them (latent-variable models)")
    p.add_argument("run", help="run directory or shipped model name")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--data-dir", help="local data root (default: $PIXLOOM_DATA or ~/.cache/pixloom)")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"], help="which split")
    p.add_argument("-n", type=positive_int, default=16, help="how many images (the first n of the split)")
    p.add_argument("--out", required=True, help="picture: originals on the top row, reconstructions below")
    device(p)

    p = add("interpolate", cmd_interpolate, "decode a straight line between two data images in latent space")
    p.add_argument("run", help="run directory or shipped model name")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--data-dir", help="local data root (default: $PIXLOOM_DATA or ~/.cache/pixloom)")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"], help="which split")
    p.add_argument("--pair", type=count_int, nargs=2, default=[0, 1], metavar=("I", "J"),
                   help="indices of the two images")
    p.add_argument("--steps", type=positive_int, default=10, help="decoded points on the line (at least 2)")
    p.add_argument("--out", required=True, help="picture strip: image I | decoded steps | image J")
    device(p)

    p = add("caption", cmd_caption, "describe photos in words (captioning models); one caption per photo")
    p.add_argument("run", help="run directory or shipped model name, e.g. flickr8k-captioner")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG files of any size and mode")
    p.add_argument("--beam", type=positive_int, default=3, help="beam size (1 = greedy)")
    p.add_argument("--max-len", type=positive_int, default=20, help="at most this many words")
    p.add_argument("--length-penalty", type=nonnegative_float, default=None,
                   help="GNMT length penalty alpha (0 = none; default: the model's own)")
    p.add_argument("--allow-unk", action="store_true", help="let captions contain <unk>")
    p.add_argument("--attention-map", help="PNG of the attention per word over the photo (show-attend-tell)")
    device(p)

    p = add("upscale", cmd_upscale, "upscale pictures with a super-resolution model (compare: bicubic)")
    p.add_argument("run", help="run directory or shipped model name, e.g. photo-sr-x2")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="pictures of any size, colour or grey")
    p.add_argument("--out", required=True, help="with one picture: the output file; with several: a folder (each "
                   "output keeps its input's file name)")
    p.add_argument("--scale", type=positive_int, default=None, help="the scale (must be the model's; default: the model's)")
    p.add_argument("-n", type=positive_int, default=8, help="digit models: high-resolution draws per input")
    p.add_argument("--seed", type=seed, default=None, help="digit models: seed of the draws (default: random)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    device(p)

    p = add("compare", cmd_compare, "compare generators on one data set: NLL, FD, KID, precision, recall, coverage")
    p.add_argument("runs", nargs="+", metavar="RUN", help="generators: run directories or shipped model names")
    p.add_argument("--data", default="binarized-mnist", help=data_help)
    p.add_argument("--data-dir", help="local data root (default: $PIXLOOM_DATA or ~/.cache/pixloom)")
    p.add_argument("--out", required=True, help="report.md (and report.html beside it, with sample grids)")
    p.add_argument("-n", type=positive_int, default=10000, help="samples per model and seed (and real test images)")
    p.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2], help="seeds of the samples (the spread)")
    p.add_argument("--classifier", default="mnist-classifier", help="the classifier whose features the metrics use")
    p.add_argument("--nll-limit", type=count_int, default=1000,
                   help="score the likelihood on the first N test images (0 = skip)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("serve", cmd_serve, "a local web app: sample, complete, watch DRAW, caption, upscale (needs the serve extra)")
    p.add_argument("--models", nargs="+", metavar="NAME_OR_RUN", help="models to serve (default: every shipped model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (another than 127.0.0.1 warns: no login)")
    p.add_argument("--port", type=count_int, default=8000, help="port to listen on")
    p.add_argument("--workers", type=positive_int, default=1, help="requests computed at once")
    p.add_argument("--max-waiting", type=positive_int, default=8, help="requests that may wait; more are answered busy")
    p.add_argument("--report", help="a pixloom compare report (.md) for the Compare panel")
    device(p)

    p = add("ensemble", cmd_ensemble, "join trained captioners into one model that averages their word probabilities")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories of captioners sharing vocabulary and encoder")
    p.add_argument("--out", required=True, help="directory of the ensemble (use it like any run with caption/eval)")
    p.add_argument("--float16", action="store_true", help="store the weights in float16 (half the size)")
    p.add_argument("--int8", action="store_true", help="store large matrices as int8 with per-row scales (a quarter)")
    p.add_argument("--force", action="store_true", help="replace a model already in --out")
    p.add_argument("--length-penalty", type=nonnegative_float, default=None,
                   help="the ensemble's default GNMT length penalty for caption/eval (chosen on dev)")

    p = add("demo", cmd_demo, "train a small model on the embedded MNIST sample and draw pictures (no download)")
    p.add_argument("--out", default="pixloom-demo", help="folder for the pictures, metrics and the trained model")
    p.add_argument("--steps", type=positive_int, default=1400, help="training steps (about a minute on 2 idle cores)")
    p.add_argument("--minutes", type=positive_float, default=10.0, help="cap on the training time")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads (default: $OMP_NUM_THREADS, else the cores not busy with other work)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the weights, the data order and the draws")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is not None:
        argv = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in argv]
    try:
        args = parser.parse_args(argv)  # a bad flag or value: one line, exit 2
        args.argv = list(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): return the code, as for every other outcome
        return exit_.code if isinstance(exit_.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except PixloomError as exc:
        print(printable(f"pixloom: error: {exc.worded(flag)}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixloom: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`pixloom models | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 141
    except OSError as exc:  # the one place an OS error (permission, no space, missing folder) becomes one line
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(printable(f"pixloom: error: cannot read or write{where}: {exc.strerror or exc}"), file=sys.stderr)
        return 2
    except MemoryError:
        print("pixloom: error: out of memory: ask for less (fewer images, a smaller --batch-size)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
