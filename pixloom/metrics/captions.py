"""Caption metrics through the official COCO caption evaluation code (pycocoevalcap).

BLEU-1..4 (Papineni et al. 2002), METEOR 1.5 (Denkowski and Lavie 2014), ROUGE-L (Lin 2004) and
CIDEr-D as in the COCO server (Vedantam et al. 2015), after the PTB tokenizer of Stanford CoreNLP;
nothing is re-implemented here. The tokenizer and METEOR are Java programs run by pycocoevalcap,
so a JDK (``java`` on PATH) is needed. SPICE (Anderson et al. 2016) is computed only when its
Stanford CoreNLP models are already in pycocoevalcap's ``spice/lib`` (pixloom never downloads them);
otherwise it is skipped with a note. Scores are on pycocoevalcap's scale (BLEU, METEOR, ROUGE-L in
[0, 1]; CIDEr usually in [0, ~1.5]).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pixloom.errors import CAPTION_EXTRA, PixloomError

METRIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")


def require_caption_metrics() -> None:
    """One-line errors when pycocoevalcap or Java is missing."""
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError:
        raise PixloomError(f"caption metrics need pycocoevalcap: {CAPTION_EXTRA}") from None
    if shutil.which("java") is None:
        raise PixloomError("caption metrics need Java (pycocoevalcap runs the PTB tokenizer and METEOR "
                           "on it): install a JDK, e.g. apt-get install default-jre-headless")


def spice_available() -> bool:
    try:
        import pycocoevalcap.spice as spice_pkg
    except ImportError:
        return False
    lib = Path(spice_pkg.__file__).parent / "lib"
    return (lib / "stanford-corenlp-3.6.0.jar").is_file() and (lib / "stanford-corenlp-3.6.0-models.jar").is_file()


def score_captions(references: dict[str, list[str]], candidates: dict[str, str], spice: bool = True) -> dict:
    """Corpus scores of ``candidates`` (image id -> caption) against ``references`` (id -> captions).

    Returns ``{"bleu1", ..., "bleu4", "meteor", "rouge_l", "cider"[, "spice"], "n_images", "notes"}``.
    """
    require_caption_metrics()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ids = [i for i in candidates if i in references]
    if not ids:
        raise PixloomError("no captions to score")
    keys = {i: str(n) for n, i in enumerate(ids)}  # pycocoevalcap sorts keys; plain ids keep it simple
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({keys[i]: [{"caption": c} for c in references[i]] for i in ids})
    res = tokenizer.tokenize({keys[i]: [{"caption": candidates[i] or "a"}] for i in ids})
    result: dict = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        result[f"bleu{n + 1}"] = float(bleu[n])
    meteor = Meteor()
    result["meteor"] = float(meteor.compute_score(gts, res)[0])
    del meteor  # its __del__ stops the METEOR Java process
    result["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    result["cider"] = float(Cider().compute_score(gts, res)[0])
    notes = []
    if spice and spice_available():
        from pycocoevalcap.spice.spice import Spice

        result["spice"] = float(Spice().compute_score(gts, res)[0])
    elif spice:
        notes.append("SPICE skipped: its Stanford CoreNLP 3.6.0 models are not in pycocoevalcap/spice/lib")
    result["n_images"] = len(ids)
    result["notes"] = notes
    return result



def corpus_bleu4(tokens: list[list[list[str]]], captions: list[str]) -> float | None:
    """Corpus BLEU-4 of ``captions`` (one per image) against each image's reference ``tokens``, by
    pycocoevalcap's BLEU on the data set's own tokens (no Java): the figure that picks a captioner's
    best epoch. None when pycocoevalcap is not installed."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
    except ImportError:
        return None
    references = {str(i): [" ".join(t) for t in per_image] or ["a"] for i, per_image in enumerate(tokens)}
    candidates = {str(i): [c or "a"] for i, c in enumerate(captions)}
    bleu, _ = Bleu(4).compute_score(references, candidates, verbose=0)
    return float(bleu[3])
