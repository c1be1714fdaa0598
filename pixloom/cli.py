"""The ``pixloom`` command line.

Every user error (unknown name, missing or corrupt file, wrong image size) ends with a one-line
message on stderr and exit code 2; there are no tracebacks for bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from pixloom.errors import PixloomError

DATA_HELP = ("mnist | binarized-mnist | binarized-mnist-dynamic | fashion-mnist | cifar10 | sample | sample-binarized"
             " | folder:PATH")


# -- shared helpers -----------------------------------------------------------------------------
def _epochs(text: str) -> float:
    """--epochs: a number of passes (the Trainer refuses one that is not positive); a whole number
    stays an int, so train_config.json says 2, not 2.0."""
    value = float(text)  # argparse turns a ValueError into its usage error
    return int(value) if value.is_integer() else value


def _load_model(run: str, device: str = "cpu"):
    from pixloom.models.base import load_pretrained
    from pixloom.train.trainer import pick_device

    return load_pretrained(run, map_location=pick_device(device))


def _parse_sets(model_cls, pairs: list[str]) -> dict:
    from pixloom.models.base import parse_set_options

    return parse_set_options(model_cls.config_class, pairs)


def build_image_model_config(model_cls, dataset, overrides: dict, conditional: bool):
    """Model config whose image fields (channels, size, levels, classes) follow the data set."""
    from pixloom.models.base import config_from_dict

    fields = {f.name for f in dataclasses.fields(model_cls.config_class)}
    c, h, w = dataset.image_shape
    from_data = {"channels": c, "height": h, "width": w, "levels": dataset.levels}
    if conditional:
        if not dataset.num_classes:
            raise PixloomError(f"--conditional needs labelled data; '{dataset.name}' has no labels")
        from_data["num_classes"] = dataset.num_classes
    values = {k: v for k, v in from_data.items() if k in fields}
    for key in ("levels", "channels", "height", "width"):
        if key in overrides and key in values and overrides[key] != values[key]:
            raise PixloomError(f"--set {key}={overrides[key]} contradicts the data ({key} = {values[key]})")
    values.update(overrides)
    return config_from_dict(model_cls.config_class, values)


def _initialised_from(model_cls, source: str, dataset, overrides: dict, conditional: bool):
    """``train --init RUN``: a new run that starts from the weights of a saved model (fine-tuning
    with a new schedule, batch size or optimizer); the data must have the shape it was trained on."""
    from pixloom.models.base import with_weights_of

    start = model_cls.from_pretrained(source)
    fits_data = build_image_model_config(model_cls, dataset, {}, conditional or bool(getattr(start.config, "num_classes", 0)))
    for key in ("channels", "height", "width", "levels", "num_classes"):
        saved, wanted = getattr(start.config, key, None), getattr(fits_data, key, None)
        if saved != wanted:
            raise PixloomError(f"--init {source}: it was trained with {key} = {saved}, the data has {wanted}")
    return with_weights_of(start, overrides, source)


def _image_generator(run: str, device: str = "cpu"):
    from pixloom.models.image_model import ImageGenerator

    model = _load_model(run, device)
    if not isinstance(model, ImageGenerator):
        raise PixloomError(f"'{run}' is a {model.name} model, which does not generate images")
    return model


def _generator(seed: int | None, device) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def read_image_file(path: str, model) -> torch.Tensor:
    """An image file -> uint8 levels (1, C, H, W) for ``model``; one-line errors for bad files."""
    from pixloom.data.images import read_rgb

    rgb = torch.from_numpy(read_rgb(path)).permute(2, 0, 1)  # (3, H, W)
    if model.config.channels == 1 and bool((rgb == rgb[:1]).all()):
        rgb = rgb[:1]  # a grey picture (stored as grey or as RGB)
    images = rgb.unsqueeze(0).contiguous()
    if tuple(images.shape[1:]) != model.image_shape:
        model.check_images(images)  # raises the size / channel message
    levels = model.config.levels
    if levels == 2:
        images = (images >= 128).to(torch.uint8)
    elif levels != 256:
        images = (images.float() * (levels - 1) / 255.0).round().to(torch.uint8)
    return images


def completion_figure(model, image: torch.Tensor, known: torch.Tensor, completions: torch.Tensor,
                      path: str) -> Path:
    """One row per input image: occluded input | completions | original (as in PixelRNN's Fig. 1)."""
    from pixloom.viz import occluded, save_grid, to_unit

    levels = model.config.levels
    rows = []
    for k in range(image.shape[0]):
        rows.append(occluded(image[k:k + 1], known, levels))
        rows.append(to_unit(completions[k], levels))
        rows.append(to_unit(image[k:k + 1], levels))
    per_row = completions.shape[1] + 2
    return save_grid(torch.cat(rows), levels, path, nrow=per_row, scale=3)


def _data_images(model, data_name: str, split: str, data_dir: str | None, n: int) -> torch.Tensor:
    """The first ``n`` images of a data split as uint8 levels on the model's device, checked against the model."""
    from pixloom.data import load_dataset

    data = load_dataset(data_name, split, data_dir=data_dir)
    if len(data) < n:
        raise PixloomError(f"{data_name} ({split}) holds {len(data)} images, fewer than the {n} asked for")
    model.check_images(data.images[:1])
    if data.levels != model.config.levels:
        raise PixloomError(f"the model was trained on {model.config.levels}-level pixels "
                           f"but {data_name} has {data.levels}")
    return data.images[:n].to(model.device)


def _latent_model(run: str, device: str, method: str):
    model = _image_generator(run, device)
    if not hasattr(model, method):
        raise PixloomError(f"{model.name} cannot {method} images (it has no latent space); "
                           "use seq-autoencoder, recurrent-vae or draw")
    return model


def canvas_figures(canvases: torch.Tensor, gif_path: str, nrow: int, frame_ms: int = 80) -> tuple[Path, Path]:
    """Canvases (n, T, C, H, W) in [0, 1] -> an animated GIF at ``gif_path`` (frame t: the n pictures
    after step t) and a PNG strip beside it (same name, .png): one row per picture (at most 8), one
    column per step (at most 16 evenly spaced steps, always the last)."""
    import io

    from pixloom.io import atomic_write_bytes
    from pixloom.viz import save_png, to_pil_grid

    gif = Path(gif_path)
    if gif.suffix.lower() != ".gif":
        raise PixloomError(f"--steps-out writes an animated GIF; give a path ending in .gif, got {gif_path}")
    n, steps = canvases.shape[:2]
    frames = [to_pil_grid(canvases[:, t], 2, nrow=nrow, scale=2) for t in range(steps)]
    buffer = io.BytesIO()
    durations = [frame_ms] * (steps - 1) + [1500]  # hold the finished picture
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    atomic_write_bytes(gif, buffer.getvalue())
    columns = torch.linspace(0, steps - 1, min(steps, 16)).round().long().unique()
    shown = canvases[: min(n, 8)][:, columns]  # (rows, columns, C, H, W)
    strip = save_png(to_pil_grid(shown.flatten(0, 1), 2, nrow=len(columns), scale=2), gif.with_suffix(".png"))
    return gif, strip


def _print_json(obj) -> None:
    print(json.dumps(obj, sort_keys=False))


# -- commands -------------------------------------------------------------------------------------
def cmd_models(args) -> int:
    from pixloom.models import MODELS
    from pixloom.models.base import shipped_models

    width = max(len(n) for n in MODELS)
    for name in sorted(MODELS):
        print(f"{name:<{width}}  {MODELS[name].summary}")
    shipped = shipped_models()
    if shipped:
        print("\nshipped (pretrained) models: " + ", ".join(shipped))
    return 0


def cmd_train(args) -> int:
    """``pixloom train``; under ``torchrun`` each process runs this and trains a share of each batch."""
    from pixloom.train import distributed
    from pixloom.train.allocator import tune_malloc_for_training

    tune_malloc_for_training()
    world = distributed.start(args.device)
    try:
        code = _train(args, world)
    except BaseException:
        distributed.stop(finished=False)
        raise
    distributed.stop()
    return code


def _train(args, world) -> int:
    from pixloom.data import load_dataset
    from pixloom.models import get_model_class
    from pixloom.train.checkpoint import refuse_existing_run, resumable_run
    from pixloom.train.trainer import Trainer, TrainConfig

    out = Path(args.out)
    model_cls = get_model_class(args.model)
    if args.init and args.resume:
        raise PixloomError("--init starts a new run and --resume continues one: give only one of them")
    if getattr(model_cls, "is_captioner", False):  # image captioning: pixloom.models.captioning.base
        return model_cls.train_from_cli(args)
    data_name = args.data
    ckpt = None
    if args.resume:
        saved, ckpt = resumable_run(out, args.model)
        data_name = data_name or saved.get("data")
    else:
        refuse_existing_run(out)  # before any data is read (Trainer.fit checks again)
    if not data_name:
        raise PixloomError("--data is required (" + DATA_HELP + ")")
    train_data = load_dataset(data_name, "train", data_dir=args.data_dir).subset(args.limit_train)
    valid_data = load_dataset(data_name, "valid", data_dir=args.data_dir).subset(args.limit_valid)
    if ckpt is not None:
        model = model_cls.from_pretrained(ckpt)
    elif args.init:
        model = _initialised_from(model_cls, args.init, train_data, _parse_sets(model_cls, args.set), args.conditional)
    else:
        config = build_image_model_config(model_cls, train_data, _parse_sets(model_cls, args.set), args.conditional)
        torch.manual_seed(args.seed)
        model = model_cls(config)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, grad_clip=args.grad_clip,
        max_minutes=args.max_minutes, max_steps=args.max_steps, seed=args.seed, device=args.device, progress=not args.quiet,
        warmup_steps=args.warmup_steps, weight_decay=getattr(args, "weight_decay", 0.0),
        optimizer=getattr(args, "optimizer", "adam"),
        ema_decay=getattr(args, "ema", 0.0),
    )
    info = {"model": args.model, "data": data_name, "command": " ".join(["pixloom"] + sys.argv[1:]),
            "n_parameters": model.num_parameters()}
    trainer = Trainer(model, train_data, valid_data, train_config, out, run_info=info)  # checks the options first
    if world.is_main:
        processes = f" in {world.size} processes" if world.distributed else ""
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = f", {trained:,} of them trained" if trained < model.num_parameters() else ""
        print(f"training {args.model} ({model.num_parameters():,} parameters{frozen}) on {data_name}: "
              f"{len(train_data):,} train / {len(valid_data):,} valid images{processes} -> {out}", file=sys.stderr)
    summary = trainer.fit(resume=args.resume)
    if not world.is_main:
        return 0
    print(trainer.summary_line(summary))
    if hasattr(model_cls, "after_training") and (out / "config.json").is_file():
        # Post-training step of the model kept in the run directory (e.g. a latent density fit).
        best = model_cls.from_pretrained(out, map_location=trainer.device)
        note = best.after_training(train_data)
        best.save_pretrained(out)
        if note:
            print(note, file=sys.stderr)
    return 0


def cmd_sample(args) -> int:
    from pixloom.viz import save_grid

    model = _image_generator(args.run, args.device)
    if args.n < 1:
        raise PixloomError("-n must be at least 1")
    if not args.out and not args.steps_out:
        raise PixloomError("sample needs --out PATH.png (or --steps-out PATH.gif for a model that draws in steps)")
    if args.steps_out and not hasattr(model, "canvas_steps"):
        raise PixloomError(f"--steps-out needs a model that draws in steps (draw); {model.name} does not")
    generator = _generator(args.seed, model.device)
    label = None
    if args.label is not None:
        label = torch.tensor([args.label])
    if args.out:
        images = model.sample(args.n, temperature=args.temperature, label=label, generator=generator)
        path = save_grid(images, model.config.levels, args.out, nrow=args.nrow or min(8, args.n), scale=3)
        print(f"wrote {args.n} samples to {path}")
    if args.steps_out:
        canvases = model.canvas_steps(args.n, generator=generator)  # (n, T, C, H, W)
        gif, strip = canvas_figures(canvases, args.steps_out, nrow=args.nrow or min(8, args.n))
        print(f"wrote the canvas over {canvases.shape[1]} steps of {args.n} pictures to {gif} and {strip}")
    return 0


def cmd_complete(args) -> int:
    from pixloom.models.image_model import known_rows_mask

    model = _image_generator(args.run, args.device)
    if not hasattr(model, "complete"):
        raise PixloomError(f"{model.name} cannot complete images")
    image = read_image_file(args.image, model).to(model.device)
    known = known_rows_mask(model.image_shape, args.keep_rows)
    if args.n < 1:
        raise PixloomError("-n must be at least 1")
    generator = _generator(args.seed, model.device)
    batch = image.expand(args.n, *model.image_shape)
    label = None if args.label is None else torch.tensor([args.label])
    completions = model.complete(batch, known_rows=args.keep_rows, temperature=args.temperature, label=label,
                                 generator=generator)
    path = completion_figure(model, image, known, completions.unsqueeze(0), args.out)
    print(f"wrote occluded input, {args.n} completions and the original to {path}")
    return 0


def cmd_eval(args) -> int:
    from pixloom.data import load_dataset
    from pixloom.metrics.likelihood import evaluate_likelihood
    from pixloom.models.captioning.workflows import is_captioner_run

    if is_captioner_run(args.run):  # COCO caption metrics instead of likelihood
        _print_json(_load_model(args.run, args.device).evaluate_from_cli(args))
        return 0
    model = _image_generator(args.run, args.device)
    data = load_dataset(args.data, args.split, data_dir=args.data_dir).subset(args.limit)
    if data.levels != model.config.levels:
        raise PixloomError(f"the model was trained on {model.config.levels}-level pixels but {args.data} has "
                           f"{data.levels}-level pixels")
    model.check_images(data.images[:1])
    if not getattr(model, "has_likelihood", True):  # e.g. seq-autoencoder: reconstruction figures
        from pixloom.metrics.likelihood import evaluate_loss_figures

        if args.iw_samples is not None:
            raise PixloomError(f"{model.name} has no likelihood, so --iw-samples does not apply")
        result = evaluate_loss_figures(model, data, batch_size=args.batch_size, progress=not args.quiet)
        _print_json({"model": model.name, "run": str(args.run), "data": args.data, "split": args.split, **result})
        return 0
    options = {}
    if args.iw_samples is not None:
        options["iw_samples"] = args.iw_samples
    torch.manual_seed(args.seed)  # the IWAE estimate and ELBO draw latents: the same seed, the same figure
    started = time.perf_counter()
    result = evaluate_likelihood(model, data, batch_size=args.batch_size, progress=not args.quiet, **options)
    result = {"model": model.name, "run": str(args.run), "data": args.data, "split": args.split, **result,
              "seed": args.seed, "seconds": round(time.perf_counter() - started, 2)}
    _print_json(result)
    return 0


def cmd_reconstruct(args) -> int:
    from pixloom.viz import save_grid, to_unit

    model = _latent_model(args.run, args.device, "reconstruct")
    if args.n < 1:
        raise PixloomError("-n must be at least 1")
    images = _data_images(model, args.data, args.split, args.data_dir, args.n)
    levels = model.config.levels
    rows = torch.cat([to_unit(images, levels), to_unit(model.reconstruct(images), levels)])
    path = save_grid(rows, levels, args.out, nrow=args.n, scale=3)
    print(f"wrote {args.n} {args.split} images (top row) and their reconstructions (bottom row) to {path}")
    return 0


def cmd_interpolate(args) -> int:
    from pixloom.viz import save_grid, to_unit

    model = _latent_model(args.run, args.device, "interpolate")
    first, second = args.pair
    if min(first, second) < 0:
        raise PixloomError("--pair takes two image indices >= 0")
    images = _data_images(model, args.data, args.split, args.data_dir, max(first, second) + 1)
    a, b = images[first], images[second]
    levels = model.config.levels
    path_images = model.interpolate(a, b, steps=args.steps)  # (steps, C, H, W) in [0, 1]
    strip = torch.cat([to_unit(a[None], levels), to_unit(path_images, levels), to_unit(b[None], levels)])
    path = save_grid(strip, levels, args.out, nrow=len(strip), scale=3)
    print(f"wrote image {first} | {args.steps} decoded steps through the latent space | image {second} to {path}")
    return 0


def cmd_caption(args) -> int:
    from pixloom.models.captioning.workflows import caption_from_cli

    return caption_from_cli(args)


def cmd_ensemble(args) -> int:
    from pixloom.models.base import load_pretrained
    from pixloom.models.captioning.base import Captioner
    from pixloom.models.captioning.ensemble import CaptionEnsemble

    members = [load_pretrained(run) for run in args.runs]
    for run, model in zip(args.runs, members):
        if not isinstance(model, Captioner) or isinstance(model, CaptionEnsemble):
            raise PixloomError(f"'{run}' is a {model.name} model; only trained captioners can be joined")
    ensemble = CaptionEnsemble.from_members(members)
    if args.length_penalty is not None:
        if args.length_penalty < 0:
            raise PixloomError(f"--length-penalty must be at least 0, got {args.length_penalty}")
        ensemble.config.length_penalty = args.length_penalty
    out = Path(args.out)
    if (out / "config.json").exists() and not args.force:
        raise PixloomError(f"{out} already holds a model; pass --force to replace it")
    ensemble.save_pretrained(out, dtype=torch.int8 if args.int8 else torch.float16 if args.float16 else None)
    print(f"wrote an ensemble of {len(members)} captioners ({ensemble.num_parameters():,} parameters) to {out}")
    return 0


def cmd_demo(args) -> int:
    from pixloom.demo import run_demo
    from pixloom.train.allocator import tune_malloc_for_training

    tune_malloc_for_training()
    run_demo(Path(args.out), minutes=args.minutes, seed=args.seed, quiet=args.quiet)
    return 0


# -- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixloom", description="Recurrent networks that generate and describe images.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("models", cmd_models, "list the models, one line each")

    p = add("train", cmd_train, "train a model; the run directory holds the best model, logs and checkpoints")
    p.add_argument("model")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--data-dir", help="local data root (default: $PIXLOOM_DATA or ~/.cache/pixloom)")
    p.add_argument("--epochs", type=_epochs, default=10,
                   help="passes over the training set; a fraction (0.5) ends the schedule inside an epoch")
    p.add_argument("--max-minutes", type=float, default=None, help="stop with a checkpoint after this much training")
    p.add_argument("--max-steps", type=int, default=None, help="stop with a checkpoint after this many steps in all")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 = off)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay (AdamW); 0 = plain Adam")
    p.add_argument("--optimizer", default="adam", help="adam | rmsprop (the PixelRNN paper's)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and save a moving average of the weights (e.g. 0.999); 0 = off")
    p.add_argument("--conditional", action="store_true", help="condition on class labels")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model option, e.g. --set hidden_size=256")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--limit-valid", type=int, default=None, help="use only the first N validation images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--init", metavar="RUN", help="start a new run (new schedule, batch size, optimizer) from the "
                   "weights of a saved model, e.g. a captioner's self-critical fine-tuning with --set scst_samples=5")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cache-dir", help="captioning: encoder feature cache (default: <data root>/features)")

    p = add("sample", cmd_sample, "draw new images from a model")
    p.add_argument("run", help="run directory or shipped model name")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--out", help="PNG grid of the samples")
    p.add_argument("--steps-out", help="draw: animated GIF of the canvas over the T steps (+ a PNG strip beside it)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--label", type=int, default=None, help="class to draw (class-conditional models)")
    p.add_argument("--nrow", type=int, default=None)
    p.add_argument("--device", default="cpu")

    p = add("complete", cmd_complete, "keep the top rows of an image and sample the rest")
    p.add_argument("run")
    p.add_argument("--image", required=True)
    p.add_argument("--keep-rows", type=int, required=True)
    p.add_argument("-n", type=int, default=8)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--label", type=int, default=None)
    p.add_argument("--device", default="cpu")

    p = add("eval", cmd_eval, "likelihood of a data split; prints one JSON object")
    p.add_argument("run")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--data-dir")
    p.add_argument("--split", default="valid", choices=["train", "valid", "dev", "test"])
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--beam", type=int, default=3, help="captioning: beam size (1 = greedy)")
    p.add_argument("--length-penalty", type=float, default=None,
                   help="captioning: GNMT length penalty alpha (0 = none; default: the model's own)")
    p.add_argument("--cache-dir", help="captioning: encoder feature cache (default: <data root>/features)")
    p.add_argument("--captions-out", help="captioning: also write the generated captions to this JSON file")
    p.add_argument("--iw-samples", type=int, default=None, help="importance samples (latent-variable models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (latent-variable models)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")

    p = add("reconstruct", cmd_reconstruct, "encode data images and decode them (latent-variable models)")
    p.add_argument("run")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--data-dir")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    p.add_argument("-n", type=int, default=16, help="how many images (the first n of the split)")
    p.add_argument("--out", required=True, help="PNG: originals on the top row, reconstructions below")
    p.add_argument("--device", default="cpu")

    p = add("interpolate", cmd_interpolate, "decode a straight line between two data images in latent space")
    p.add_argument("run")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--data-dir")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    p.add_argument("--pair", type=int, nargs=2, default=[0, 1], metavar=("I", "J"), help="indices of the two images")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", required=True, help="PNG strip: image I | decoded steps | image J")
    p.add_argument("--device", default="cpu")

    p = add("caption", cmd_caption, "describe images in words (captioning models); one caption per image")
    p.add_argument("run", help="run directory or shipped model name, e.g. flickr8k-captioner")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG files of any size and mode")
    p.add_argument("--beam", type=int, default=3, help="beam size (1 = greedy)")
    p.add_argument("--max-len", type=int, default=20, help="at most this many words")
    p.add_argument("--length-penalty", type=float, default=None,
                   help="GNMT length penalty alpha (0 = none; default: the model's own)")
    p.add_argument("--allow-unk", action="store_true", help="let captions contain <unk>")
    p.add_argument("--attention-map", help="PNG of the attention per word over the image (show-attend-tell)")
    p.add_argument("--device", default="cpu")

    p = add("ensemble", cmd_ensemble, "join trained captioners into one model that averages their word probabilities")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories of captioners sharing vocabulary and encoder")
    p.add_argument("--out", required=True, help="directory of the ensemble (use it like any run with caption/eval)")
    p.add_argument("--float16", action="store_true", help="store the weights in float16 (half the size)")
    p.add_argument("--int8", action="store_true", help="store large matrices as int8 with per-row scales (a quarter)")
    p.add_argument("--force", action="store_true", help="replace a model already in --out")
    p.add_argument("--length-penalty", type=float, default=None,
                   help="the ensemble's default GNMT length penalty for caption/eval (chosen on dev)")

    p = add("demo", cmd_demo, "train a small model on the embedded MNIST sample and draw pictures (no download)")
    p.add_argument("--out", default="pixloom-demo")
    p.add_argument("--minutes", type=float, default=1.0, help="training budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits with 2 and a one-line usage error
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "seed", None) is not None and not 0 <= args.seed < 2**63:  # torch's generators take 64 bits
            raise PixloomError(f"--seed must be an integer from 0 to 2**63 - 1, not {args.seed}")
        return args.func(args)
    except PixloomError as exc:
        print(f"pixloom: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixloom: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`pixloom models | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
