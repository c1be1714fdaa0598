"""The task layer: pixloom's Python API, plain arguments in, tensors, dicts and files out.

The command line (:mod:`pixloom.cli`) and the web app are thin layers over these functions; they
are re-exported at the top of the package (``pixloom.train``, ``pixloom.sample``, ...).
"""

from pixloom.tasks.captioning import build_ensemble, caption
from pixloom.tasks.catalog import list_datasets, list_models, list_shipped
from pixloom.tasks.common import load_model
from pixloom.tasks.demo import run_demo
from pixloom.tasks.evaluation import evaluate
from pixloom.tasks.generation import canvas, complete, interpolate, reconstruct, sample
from pixloom.tasks.comparison import compare
from pixloom.tasks.sample_quality import sample_metrics
from pixloom.tasks.superres import upscale
from pixloom.tasks.training import parse_options, train

__all__ = ["build_ensemble", "canvas", "caption", "compare", "complete", "evaluate", "interpolate", "list_datasets",
           "list_models", "list_shipped", "load_model", "parse_options", "reconstruct", "run_demo", "sample", "sample_metrics",
           "train", "upscale"]
