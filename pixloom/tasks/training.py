"""``pixloom.train``: train any trainable model (image generators and captioners alike) into a run
directory, start from a saved model's weights (``init``), or continue a run exactly (``resume``).

A run directory is a saved model (the best on validation) plus ``train_config.json`` (every setting
of the run), ``train_log.csv``, ``metrics.csv``, ``loss.png`` and ``checkpoints/``. A resumed run takes
every setting from ``train_config.json``; an argument that contradicts a saved setting is refused,
except what may change from one start of the run to the next: the schedule's horizon (``epochs``;
the cosine then stretches or shrinks from the current step), the budgets (``max_minutes``,
``max_steps``) and the places (``device``, ``data_dir``, ``cache_dir``). Each change is recorded in
``train_config.json`` under ``"resumed"`` and said on stderr. The run directory is locked while a
process trains in it (:mod:`pixloom.training.lock`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pixloom.data.registry import dataset_kind, load_dataset
from pixloom.errors import ArgumentError, PixloomError
from pixloom.io import read_json
from pixloom.models.base import config_from_dict, parse_set_options, with_weights_of
from pixloom.models.capabilities import Classifier, Trainable
from pixloom.models.captioning.base import CaptionDecoder
from pixloom.models.gan.base import GAN
from pixloom.models.image import IMAGE_FIELDS
from pixloom.models.superres.base import PhotoSuperResolver
from pixloom.models.registry import get_model_class
from pixloom.tasks.common import check_number, check_positive_int, check_seed, ensure_writable_dir, load_model
from pixloom.training import distributed
from pixloom.training.allocator import tune_malloc_for_training
from pixloom.training.checkpoint import latest_checkpoint, refuse_existing_run
from pixloom.training.lock import RunLock
from pixloom.training.trainer import OPTIMIZERS, Trainer, TrainConfig, pick_device

# The settings of a run and their defaults; a resumed run takes them from train_config.json.
SETTINGS = {"epochs": 10, "batch_size": 64, "lr": 1e-3, "warmup_steps": 100, "grad_clip": 1.0, "weight_decay": 0.0,
            "optimizer": "adam", "ema": 0.0, "seed": 0, "limit_train": None, "limit_valid": None,
            "options": {}, "conditional": False, "init": None,
            "dp_epsilon": None, "dp_delta": None, "dp_max_grad_norm": None}
# What may change when a run is resumed (recorded under "resumed" in train_config.json).
RESUME_OVERRIDES = ("epochs", "max_minutes", "max_steps", "device", "data_dir", "cache_dir")


def parse_options(model: str, pairs: list[str] | None) -> dict:
    """``["hidden_size=64", "cell=gru"]`` -> typed model options for ``model`` (one-line errors)."""
    return parse_set_options(get_model_class(model).config_class, pairs)


def _check_settings(s: dict) -> None:
    """One-line errors for settings out of range, before any data is read."""
    if isinstance(s["epochs"], bool) or not isinstance(s["epochs"], (int, float)) or not (
            math.isfinite(s["epochs"]) and s["epochs"] > 0):
        raise ArgumentError("epochs", f"must be a positive number, got {s['epochs']!r}")
    check_positive_int(s["batch_size"], "batch_size")
    check_number(s["lr"], "lr", above=0)
    check_positive_int(s["warmup_steps"], "warmup_steps", least=0)
    check_number(s["grad_clip"], "grad_clip", least=0)
    check_number(s["weight_decay"], "weight_decay", least=0)
    if s["optimizer"] not in OPTIMIZERS:
        raise ArgumentError("optimizer", f"must be {' or '.join(OPTIMIZERS)}, got {s['optimizer']!r}")
    check_number(s["ema"], "ema", least=0)
    if s["ema"] >= 1:
        raise ArgumentError("ema", f"must be below 1 (a decay such as 0.999; 0 = off), got {s['ema']}")
    check_seed(s["seed"])
    for name in ("limit_train", "limit_valid"):
        if s[name] is not None:
            check_positive_int(s[name], name)
    if not isinstance(s["options"], dict):
        raise ArgumentError("options", f"must be a dict of model options, got {type(s['options']).__name__}")
    if s["dp_epsilon"] is None and (s["dp_delta"] is not None or s["dp_max_grad_norm"] is not None):
        raise ArgumentError("dp_epsilon", "is needed: dp_delta and dp_max_grad_norm set a private run's budget")
    if s["dp_epsilon"] is not None:
        check_number(s["dp_epsilon"], "dp_epsilon", above=0)
        if s["dp_delta"] is not None:
            check_number(s["dp_delta"], "dp_delta", above=0)
            if s["dp_delta"] >= 1:
                raise ArgumentError("dp_delta", f"must be below 1, got {s['dp_delta']}")
        if s["dp_max_grad_norm"] is not None:
            check_number(s["dp_max_grad_norm"], "dp_max_grad_norm", above=0)


def _check_budgets(max_minutes, max_steps) -> None:
    if max_minutes is not None:
        check_number(max_minutes, "max_minutes", above=0)
    if max_steps is not None:
        check_positive_int(max_steps, "max_steps")


def _saved_settings(saved: dict) -> dict:
    """The settings of a run from its train_config.json (older runs: from its TrainConfig)."""
    if "settings" in saved:
        return dict(saved["settings"])
    train = saved.get("train", {})
    settings = {k: train[k] for k in ("epochs", "batch_size", "lr", "warmup_steps", "grad_clip", "weight_decay",
                                      "optimizer", "seed") if k in train}
    if "ema_decay" in train:
        settings["ema"] = train["ema_decay"]
    return settings


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-12)
    return a == b


def train(model: str | None = None, data: str | None = None, out=None, *, options: dict | None = None,
          conditional: bool | None = None, init=None, resume: bool = False,
          epochs: float | None = None, batch_size: int | None = None, lr: float | None = None,
          warmup_steps: int | None = None, grad_clip: float | None = None, weight_decay: float | None = None,
          optimizer: str | None = None, ema: float | None = None, seed: int | None = None,
          limit_train: int | None = None, limit_valid: int | None = None,
          dp_epsilon: float | None = None, dp_delta: float | None = None, dp_max_grad_norm: float | None = None,
          max_minutes: float | None = None, max_steps: int | None = None, device: str = "auto",
          data_dir=None, cache_dir=None, progress: bool = True, command: str | None = None) -> dict:
    """Train ``model`` (a name from ``pixloom.list_models()``) on ``data`` into the run directory ``out``.

    ``options`` are model options (``{"hidden_size": 128, "cell": "gru"}``); ``conditional`` conditions
    an image model on class labels; ``init`` starts from the weights of a saved model (a new run with
    its own schedule); ``resume`` continues the run in ``out`` exactly (``model`` may then be left out).
    The learning rate warms up for
    ``warmup_steps``, then follows one cosine over ``epochs`` (a fraction ends inside an epoch);
    ``max_minutes`` and ``max_steps`` stop early with a checkpoint. ``dp_epsilon`` trains with
    differential privacy (DP-SGD through Opacus; :mod:`pixloom.training.private`) until that epsilon is
    spent at ``dp_delta`` (default 1e-5), clipping each example's gradient to ``dp_max_grad_norm``
    (default 1.0). Returns a summary dict: ``run``,
    ``global_step``, ``train_seconds``, ``stopped_early``, ``best`` (the figure that picked the
    saved model), ``warnings``."""
    if out is None or str(out) == "":
        raise ArgumentError("out", "is required: the run directory")
    if not isinstance(resume, bool):
        raise ArgumentError("resume", f"must be true or false, got {resume!r}")
    if init is not None and resume:
        raise ArgumentError("init", "starts a new run and resume continues one: give only one of them")
    if model is None:
        if not resume:
            raise ArgumentError("model", "is required: one of pixloom.list_models()")
        saved = read_json(Path(out) / "train_config.json") if (Path(out) / "train_config.json").is_file() else None
        if not isinstance(saved, dict) or not isinstance(saved.get("model"), str):
            raise ArgumentError("resume", f"{out} holds no run to continue (no train_config.json)")
        model = saved["model"]
    model_cls = get_model_class(model)
    if not issubclass(model_cls, Trainable):
        raise PixloomError(f"{model} is not trained directly ({model_cls.summary}); see `pixloom ensemble`")
    out = Path(out)
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup_steps": warmup_steps,
             "grad_clip": grad_clip, "weight_decay": weight_decay, "optimizer": optimizer, "ema": ema, "seed": seed,
             "limit_train": limit_train, "limit_valid": limit_valid, "options": options, "conditional": conditional,
             "init": None if init is None else str(init), "dp_epsilon": dp_epsilon, "dp_delta": dp_delta,
             "dp_max_grad_norm": dp_max_grad_norm}
    given = {k: v for k, v in given.items() if v is not None and not (k == "options" and v == {})}
    _check_budgets(max_minutes, max_steps)
    tune_malloc_for_training()
    world = distributed.start(device)
    try:
        if world.is_main:
            ensure_writable_dir(out.parent if str(out.parent) else Path("."), "out")
            created = not out.exists()
            try:
                with RunLock(out):
                    summary = _train_locked(model, model_cls, data, out, given, resume, max_minutes, max_steps,
                                            device, data_dir, cache_dir, progress, command, world)
            except BaseException:
                _remove_if_untouched(out, created)
                raise
        else:
            summary = _train_locked(model, model_cls, data, out, given, resume, max_minutes, max_steps, device,
                                    data_dir, cache_dir, progress, command, world)
    except BaseException:
        distributed.stop(finished=False)
        raise
    distributed.stop()
    return summary


def private_trainer(model, trainer_class, extras: dict, settings: dict):
    """The trainer of a private run, after refusing what DP-SGD cannot train correctly."""
    from pixloom.training.private import PrivateTrainer

    if trainer_class is not Trainer:
        raise PixloomError(f"{model.name} cannot be trained privately: its training step (two networks) is not "
                           "DP-SGD's; private training covers models with one loss")
    if isinstance(model, CaptionDecoder) or isinstance(model, PhotoSuperResolver):
        raise PixloomError(f"{model.name} cannot be trained privately here: its training items (caption pairs, "
                           "photo patches) are not one per person, so a per-item guarantee would overstate it")
    if type(model).after_training is not Trainable.after_training:
        raise PixloomError(f"{model.name} cannot be trained privately: it fits part of itself to the training data "
                           "after training (not privately)")
    extras["privacy"] = {"epsilon": settings["dp_epsilon"], "delta": settings["dp_delta"],
                         "max_grad_norm": settings["dp_max_grad_norm"]}
    return PrivateTrainer


def _remove_if_untouched(out: Path, created: bool) -> None:
    """After a refusal, leave no empty run directory behind (only the lock file was written)."""
    if created and out.is_dir() and {p.name for p in out.iterdir()} <= {".lock"}:
        (out / ".lock").unlink(missing_ok=True)
        try:
            out.rmdir()
        except OSError:
            pass


def _train_locked(model_name, model_cls, data, out: Path, given: dict, resume: bool, max_minutes, max_steps, device,
                  data_dir, cache_dir, progress, command, world) -> dict:
    notes: list[str] = []
    resumed_record = None
    ckpt = None
    if resume:
        if not (out / "train_config.json").is_file():
            raise ArgumentError("resume", f"{out} holds no run to continue (no train_config.json)")
        saved = read_json(out / "train_config.json")
        if not isinstance(saved, dict) or saved.get("model") != model_name:
            got = saved.get("model") if isinstance(saved, dict) else None
            raise ArgumentError("resume", f"{out} holds a '{got}' run, not '{model_name}'")
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise ArgumentError("resume", f"no checkpoint in {out}")
        settings = {**SETTINGS, **_saved_settings(saved)}
        changed = {}
        if "epochs" in given and not _same(settings["epochs"], given["epochs"]):  # a new horizon: documented
            changed["epochs"] = given["epochs"]
            settings["epochs"] = given["epochs"]
        for key, value in given.items():
            if key in settings and not _same(settings[key], value):
                raise ArgumentError(key, f"is {value!r} but the run in {out} was started with {settings[key]!r}; a "
                                    f"resumed run keeps its settings (start a new run from its weights with init)")
        if data is not None and data != saved.get("data"):
            raise ArgumentError("data", f"is {data!r} but the run in {out} trains on {saved.get('data')!r}")
        data = saved.get("data")
        data_dir = data_dir if data_dir is not None else saved.get("data_dir")
        before = saved.get("budgets", {})
        now = {"max_minutes": max_minutes, "max_steps": max_steps, "device": device,
               "data_dir": None if data_dir is None else str(data_dir), "cache_dir": cache_dir}
        changed.update({k: v for k, v in now.items() if v is not None and v != before.get(k)})
        resumed_record = {"command": command or "pixloom.train(...)"}
        if changed:
            resumed_record["overrides"] = changed
            notes.append("resumed with " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    else:
        settings = {**SETTINGS, **given}
        refuse_existing_run(out)
        saved = {}
    _check_settings(settings)
    if not data:
        raise ArgumentError("data", "is required: a data set name (see pixloom.list_datasets())")
    captioner = issubclass(model_cls, CaptionDecoder)
    photo_sr = issubclass(model_cls, PhotoSuperResolver)
    kind = "photos" if photo_sr and (data == "flickr8k" or data.startswith("folder:")) else dataset_kind(data)
    if photo_sr and kind != "photos":
        raise ArgumentError("data", f"{model_name} trains on photos: folder:PATH or flickr8k, not {data!r}")
    if captioner and kind != "captions":
        raise ArgumentError("data", f"'{data}' holds images without captions; {model_name} trains on captioned "
                            "data (flickr8k, flickr8k-karpathy, flickr30k, coco, synthetic)")
    if not captioner and not photo_sr and kind != "images":
        raise ArgumentError("data", f"'{data}' holds captioned photos; {model_name} trains on images")
    config = TrainConfig(
        epochs=int(settings["epochs"]) if float(settings["epochs"]).is_integer() else settings["epochs"],
        batch_size=settings["batch_size"], lr=settings["lr"], warmup_steps=settings["warmup_steps"],
        grad_clip=settings["grad_clip"], weight_decay=settings["weight_decay"], optimizer=settings["optimizer"],
        ema_decay=settings["ema"], seed=settings["seed"], max_minutes=max_minutes, max_steps=max_steps,
        device=device, progress=progress)
    prepare = _prepare_captioner if captioner else _prepare_superres if photo_sr else _prepare_image_model
    model, train_data, valid_data, extras = prepare(model_cls, data, settings, ckpt, data_dir, cache_dir, progress,
                                                    config)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    total = math.ceil(steps_per_epoch * config.epochs)
    if resume and isinstance(saved.get("train"), dict) and "warmup_steps" in saved["train"]:
        config = dataclasses.replace(config, warmup_steps=saved["train"]["warmup_steps"])  # as the run had it
    elif config.warmup_steps >= total:
        shorter = max(0, total // 10)
        notes.append(f"warmup_steps {config.warmup_steps} is as long as the whole schedule ({total} steps); "
                     f"warming up for {shorter} steps instead")
        config = dataclasses.replace(config, warmup_steps=shorter)
    info = {"model": model_name, "data": data, "data_dir": None if data_dir is None else str(data_dir),
            "settings": {k: settings[k] for k in SETTINGS},
            "command": saved.get("command") if resume else command or "pixloom.train(...)",
            "n_parameters": model.num_parameters(), **extras.pop("info", {}),
            "budgets": {"max_minutes": max_minutes, "max_steps": max_steps, "device": device,
                        "data_dir": None if data_dir is None else str(data_dir), "cache_dir": cache_dir}}
    if resume:
        info["resumed"] = saved.get("resumed", []) + [resumed_record]
    trainer_class = extras.pop("trainer", Trainer)
    if settings["dp_epsilon"] is not None:
        trainer_class = private_trainer(model, trainer_class, extras, settings)
    trainer = trainer_class(model, train_data, valid_data, config, out, run_info=info, **extras)
    if world.is_main:
        for note in notes:
            print(f"pixloom: note: {note}", file=sys.stderr)
        processes = f" in {world.size} processes" if world.distributed else ""
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = f", {trained:,} of them trained" if trained < model.num_parameters() else ""
        print(f"{'resuming' if resume else 'training'} {model_name} ({model.num_parameters():,} parameters{frozen}) "
              f"on {data}: {len(train_data):,} train / {len(valid_data):,} valid{processes} -> {out}", file=sys.stderr)
    summary = trainer.fit(resume=resume)
    result = {"run": str(out), "process": world.rank, "model": model_name, "data": data, **summary, "best": trainer.describe_best(),
              "stop_reason": trainer.stop_reason if summary["stopped_early"] else None,
              "warnings": list(trainer.warnings), "summary_line": trainer.summary_line(summary)}
    if world.is_main and (out / "config.json").is_file():
        best = model_cls.from_pretrained(out, map_location=trainer.device)
        note = best.after_training(train_data)
        if note:
            best.save_pretrained(out)
            print(note, file=sys.stderr)
    return result


def _prepare_image_model(model_cls, data, settings, ckpt, data_dir, cache_dir, progress, config):
    train_data = load_dataset(data, "train", data_dir=data_dir).subset(settings["limit_train"])
    valid_data = load_dataset(data, "valid", data_dir=data_dir).subset(settings["limit_valid"])
    options = settings["options"]
    if ckpt is not None:
        model = model_cls.from_pretrained(ckpt)
    elif settings["init"]:
        model = _initialised_from(model_cls, settings["init"], train_data, options, settings["conditional"])
    else:
        model_config = image_model_config(model_cls, train_data, options, settings["conditional"])
        torch.manual_seed(settings["seed"])
        model = model_cls(model_config)
    extras = {"selection": ("accuracy", "max")} if isinstance(model, Classifier) else {}
    if isinstance(model, GAN):
        extras = gan_extras(model, valid_data)
    return model, train_data, valid_data, extras


def gan_extras(model, valid_data) -> dict:
    """A GAN trains with the GAN step; each validation scores 1,000 samples of fixed noise with the
    monitor classifier: their Fréchet distance to 1,000 validation images (which picks the best model)
    and the share of the most frequent class, with a warning when it passes ``collapse_share``."""
    from pixloom.training.gan import GANTrainer

    extras = {"trainer": GANTrainer, "selection": None}
    name = model.config.monitor
    if not name:
        return extras
    try:
        from pixloom.tasks.sample_quality import load_classifier

        classifier = load_classifier(name)
    except PixloomError as exc:
        print(f"pixloom: note: no mode-collapse monitor ({exc}); the latest model is kept", file=sys.stderr)
        return extras
    if classifier.image_shape != model.image_shape:
        print(f"pixloom: note: the monitor {name} reads {classifier.image_shape} images, not "
              f"{model.image_shape}: no monitor; the latest model is kept", file=sys.stderr)
        return extras
    from pixloom.metrics.sample_quality import (FeatureNetwork, class_shares, coverage_figures, frechet_distance,
                                                to_unit_floats)

    network = FeatureNetwork(classifier)
    real = to_unit_floats(valid_data.images[:1000], valid_data.levels)
    share_limit = model.config.collapse_share

    def score(current, _valid) -> dict[str, float]:
        fake = current.intensities(1000, generator=torch.Generator(device=current.device).manual_seed(1234),
                                   label=torch.arange(1000) % current.config.num_classes
                                   if current.config.num_classes else None).cpu()
        coverage = coverage_figures(class_shares(classifier, fake, classifier.config.num_classes))
        if coverage["max_class_share"] > share_limit:
            top = int(np.argmax(coverage["class_shares"]))
            print(f"pixloom: warning: mode collapse? class {top} takes {coverage['max_class_share']:.0%} of 1,000 "
                  f"samples (more than collapse_share {share_limit:g})", file=sys.stderr)
        return {"fd": frechet_distance(network, real, fake), "max_class_share": coverage["max_class_share"],
                "class_entropy": coverage["class_entropy"]}

    return {**extras, "scorer": score, "selection": ("fd", "min")}


def image_model_config(model_cls, dataset, options: dict, conditional: bool):
    """A model config whose image fields (channels, size, levels, classes) follow the data set."""
    fields = {f.name for f in dataclasses.fields(model_cls.config_class)}
    c, h, w = dataset.image_shape
    from_data = {"channels": c, "height": h, "width": w, "levels": dataset.levels}
    if issubclass(model_cls, Classifier):  # a classifier's classes are the data's
        if not dataset.num_classes:
            raise ArgumentError("data", f"{model_cls.name} trains on labelled data; '{dataset.name}' has no labels")
        from_data["num_classes"] = dataset.num_classes
    elif conditional:
        if not dataset.num_classes:
            raise ArgumentError("conditional", f"needs labelled data; '{dataset.name}' has no labels")
        from_data["num_classes"] = dataset.num_classes
    values = {k: v for k, v in from_data.items() if k in fields}
    for key in ("levels", "channels", "height", "width"):
        if key in options and key in values and options[key] != values[key]:
            raise ArgumentError("options", f"{key}={options[key]} contradicts the data ({key} = {values[key]})")
    values.update(options)
    return config_from_dict(model_cls.config_class, values)


def _initialised_from(model_cls, source, dataset, options: dict, conditional: bool):
    """A new run that starts from the weights of a saved model; the data must have its shape."""
    start = load_model(source)
    if type(start) is not model_cls:
        raise ArgumentError("init", f"{source} holds a {start.name} model, not a {model_cls.name} model")
    fits = image_model_config(model_cls, dataset, {}, conditional or bool(getattr(start.config, "num_classes", 0)))
    for key in IMAGE_FIELDS:
        saved, wanted = getattr(start.config, key, None), getattr(fits, key, None)
        if saved != wanted:
            raise ArgumentError("init", f"{source} was trained with {key} = {saved}, the data has {wanted}")
    return with_weights_of(start, options, source)


def _resumed_or_initialised(model_cls, settings, ckpt):
    """The model of a resumed run (its checkpoint), or of a run started from a saved model's weights
    (``init``, with the run's options), or None for a new model."""
    if ckpt is not None:
        return model_cls.from_pretrained(ckpt)
    if settings["init"]:
        start = load_model(settings["init"])
        if type(start) is not model_cls:
            raise ArgumentError("init", f"{settings['init']} holds a {start.name} model, not a {model_cls.name} model")
        return with_weights_of(start, settings["options"], settings["init"])
    return None


def _prepare_superres(model_cls, data, settings, ckpt, data_dir, cache_dir, progress, config):
    from pixloom.data.patches import PatchDataset, load_luma, photo_paths

    model = _resumed_or_initialised(model_cls, settings, ckpt)
    if model is None:
        torch.manual_seed(settings["seed"])
        model = model_cls(config_from_dict(model_cls.config_class, settings["options"]))
    c = model.config
    size = c.patch_size * c.scale
    started = time.perf_counter()
    train_photos = load_luma(photo_paths(data, "train", data_dir)[:settings["limit_train"]], c.prescale, size)
    valid_photos = load_luma(photo_paths(data, "valid", data_dir)[:settings["limit_valid"]], c.prescale, size)
    train_data = PatchDataset(train_photos, c.scale, c.patch_size, c.patches_per_photo, train=True, name=data)
    valid_data = PatchDataset(valid_photos, c.scale, c.patch_size, train=False, name=data)
    info = {"train_photos": len(train_photos), "valid_photos": len(valid_photos),
            "read_seconds": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads()}
    return model, train_data, valid_data, {"info": info, "selection": ("psnr", "max")}


def _prepare_captioner(model_cls, data, settings, ckpt, data_dir, cache_dir, progress, config):
    from pixloom.data.captions import CaptionPairs, Vocabulary
    from pixloom.metrics.captions import require_caption_metrics
    from pixloom.tasks.captioning import bleu_scorer, data_sources

    options = settings["options"]
    model = _resumed_or_initialised(model_cls, settings, ckpt)
    defaults = model.config if model is not None else config_from_dict(model_cls.config_class, options)
    size = defaults.small_cnn_image_size
    train_set = load_dataset(data, "train", data_dir, image_size=size).subset(settings["limit_train"])
    valid_set = load_dataset(data, "dev", data_dir, image_size=size).subset(settings["limit_valid"])
    for note in train_set.notes + valid_set.notes:
        print(f"note: {note}", file=sys.stderr)
    if model is None:
        vocab = Vocabulary.build(train_set.all_tokens(), min_count=defaults.min_count)
        torch.manual_seed(settings["seed"])
        model = model_cls(config_from_dict(model_cls.config_class, {**options, "vocab_size": len(vocab)}))
        model.set_vocab(vocab)
    model = model.to(pick_device(config.device))
    self_critical = model.config.scst_samples > 0
    mirror = model.config.mirror_augment if not self_critical else 0.0
    started = time.perf_counter()
    train_sources, mirrored = data_sources(model, train_set, cache_dir, progress, mirrored=mirror > 0)
    valid_sources, _ = data_sources(model, valid_set, cache_dir, progress)
    feature_seconds = time.perf_counter() - started
    if self_critical:
        from pixloom.models.captioning.scst import CiderDReward

        require_caption_metrics()
        model.reward = CiderDReward(train_set.tokens, meteor_weight=model.config.scst_meteor_weight)
    train_data = CaptionPairs(train_set, model.vocab, train_sources, model.config.max_words,
                              one_per_image=self_critical, mirror_augment=mirror, mirrored=mirrored)
    valid_data = CaptionPairs(valid_set, model.vocab, valid_sources, model.config.max_words)
    beam = model.config.select_beam
    extras = {"info": {"vocab_size": len(model.vocab), "train_images": len(train_set), "train_pairs": len(train_data),
                       "valid_images": len(valid_set), "feature_seconds": round(feature_seconds, 1),
                       "threads": torch.get_num_threads()}}
    if beam:
        extras.update(scorer=bleu_scorer(beam), selection=("bleu4", "max"))
    return model, train_data, valid_data, extras

