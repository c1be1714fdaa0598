"""Copy the best model of a run into the package as a shipped model.

    python tools/ship.py runs/mnist-pixelrnn mnist-pixelrnn [--float16 | --int8] [--notes notes.md]

Writes pixloom/pretrained/NAME/{config.json, model.safetensors (+ extra JSON files)} by loading the
run's model and saving it again (optionally in float16, or int8 matrices with per-row scales). A new
model gets a README.md with the training command from the run's train_config.json, its validation
curve and the notes given (measured figures); a model shipped before keeps its README (its recipe),
which you then update by hand, unless --new-readme is given.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from pixloom.models.registry import load_pretrained

    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("name")
    parser.add_argument("--float16", action="store_true")
    parser.add_argument("--int8", action="store_true", help="large matrices int8 with per-row scales, the rest float16")
    parser.add_argument("--notes", help="markdown file with the measured figures")
    parser.add_argument("--new-readme", action="store_true", help="replace an existing README.md too")
    args = parser.parse_args()
    run = Path(args.run)
    target = ROOT / "pixloom" / "pretrained" / args.name
    kept_readme = None
    if (target / "README.md").is_file() and not args.new_readme:
        kept_readme = (target / "README.md").read_text()
    if target.exists():
        shutil.rmtree(target)
    model = load_pretrained(run)
    model.save_pretrained(target, dtype=torch.int8 if args.int8 else torch.float16 if args.float16 else None)
    stored = (", large matrices stored as int8 with per-row scales, the rest float16" if args.int8
              else ", weights stored as float16" if args.float16 else "")
    lines = [f"# {args.name}", ""]
    config_path = run / "train_config.json"
    if config_path.exists():  # a trained run; an ensemble's members are described in the notes
        info = json.loads(config_path.read_text())
        lines += [f"A `{model.name}` model ({model.num_parameters():,} parameters{stored}), trained by pixloom's "
                  "own command:", "", "```", info.get("command", "?"), "```", ""]
    else:
        lines += [f"A `{model.name}` model ({model.num_parameters():,} parameters{stored}).", ""]
    if "privacy" in model.provenance:
        from pixloom.training.private import privacy_statement

        lines += [privacy_statement(model.provenance["privacy"]), ""]
    metrics = run / "metrics.csv"
    if metrics.exists():
        with metrics.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        keys = [k for k in rows[0] if k.startswith("valid_")]
        lines += ["Validation after each epoch (the model kept is the best on validation):", "",
                  "| epoch | minutes | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
        for r in rows:
            lines.append(f"| {float(r['epoch']):g} | {float(r['seconds']) / 60:.1f} | "
                         + " | ".join(f"{float(r[k]):.4f}" for k in keys) + " |")
        lines.append("")
    if args.notes:
        lines += [Path(args.notes).read_text().strip(), ""]
    if kept_readme is not None:
        (target / "README.md").write_text(kept_readme)
        print("kept the existing README.md: update its figures and recipe by hand")
    else:
        (target / "README.md").write_text("\n".join(lines))
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"shipped {run} as {target} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
