"""Self-critical sequence training: fine-tune a captioner on its own sampled captions, rewarded by CIDEr-D.

Rennie, Marcheret, Mroueh, Ross and Goel (2017), "Self-critical Sequence Training for Image
Captioning", CVPR; with the baseline of Luo (2020), "A Better Variant of Self-Critical Sequence
Training": for each image draw K captions from the model, reward each with its CIDEr-D against the
image's reference captions (optionally plus a weighted METEOR, ``scst_meteor_weight``), and use the
mean reward of the other K - 1 samples as the baseline:

    loss = - sum_k sum_t (r_k - mean_{j != k} r_j) log p(w_kt) / (number of sampled words)

CIDEr-D is pycocoevalcap's own scorer (``CiderScorer``: n-grams up to 4, sigma 6, clipping), with the
document frequencies of the whole training corpus instead of the batch's, as in the usual SCST
implementations. The reward uses the dataset's tokens (no Java tokenizer in the training loop).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict

import numpy as np
import torch

from pixloom.data.captions import END_ID, PAD_ID, START_ID
from pixloom.errors import PixloomError
from pixloom.models.captioning.decoding import _ban


class CiderDReward:
    """CIDEr-D of sampled captions against the references of training images (by image index), plus
    ``meteor_weight`` x METEOR (pycocoevalcap's METEOR 1.5, a Java process kept open) when > 0."""

    def __init__(self, references: list[list[list[str]]], meteor_weight: float = 0.0):
        from pycocoevalcap.cider.cider_scorer import cook_refs

        if not references:
            raise PixloomError("self-critical training needs reference captions")
        self.references = [[" ".join(t) for t in per_image] for per_image in references]
        self.cooked = [cook_refs(refs) for refs in self.references]
        self.meteor_weight = meteor_weight
        self._meteor = None
        self.log_images = math.log(float(len(self.cooked)))
        corpus = _corpus_cider_scorer()(defaultdict(float), self.log_images)
        corpus.crefs = self.cooked
        corpus.compute_doc_freq()  # pycocoevalcap's own count: in how many images each n-gram occurs
        self.document_frequency = corpus.document_frequency

    def __call__(self, image_indices: list[int], captions: list[list[str]]) -> np.ndarray:
        """One CIDEr-D value per caption (pycocoevalcap's scale, about 0 to 10)."""
        from pycocoevalcap.cider.cider_scorer import cook_test

        scorer = _corpus_cider_scorer()(self.document_frequency, self.log_images)
        scorer.crefs = [self.cooked[i] for i in image_indices]
        scorer.ctest = [cook_test(" ".join(words)) for words in captions]
        reward = np.asarray(scorer.compute_cider(), dtype=np.float64)
        if self.meteor_weight > 0:
            reward = reward + self.meteor_weight * self.meteor(image_indices, captions)
        return reward

    def meteor(self, image_indices: list[int], captions: list[list[str]]) -> np.ndarray:
        """METEOR of each caption against its image's references."""
        if self._meteor is None:
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        references = {k: self.references[i] for k, i in enumerate(image_indices)}
        candidates = {k: [" ".join(words) or "a"] for k, words in enumerate(captions)}
        _, per_caption = self._meteor.compute_score(references, candidates)
        return np.asarray(per_caption, dtype=np.float64)


@functools.cache
def _corpus_cider_scorer():
    from pycocoevalcap.cider.cider_scorer import CiderScorer

    class CorpusCiderScorer(CiderScorer):
        """pycocoevalcap's scorer with fixed corpus statistics (its compute_cider would otherwise set
        ``ref_len`` from the batch size)."""

        def __init__(self, document_frequency, log_images):
            super().__init__(n=4, sigma=6.0)
            self.document_frequency = document_frequency
            self._log_images = log_images

        ref_len = property(lambda self: self._log_images, lambda self, value: None)

    return CorpusCiderScorer


def sample_captions(decoder, features: dict[str, torch.Tensor], samples: int, max_len: int = 20):
    """Draw ``samples`` captions per image from the decoder, keeping the graph.

    Returns word ids (B * samples, T) (``<end>`` then ``<pad>`` after a caption ends), the
    log-probability of each drawn word (B * samples, T) and the mask of the words that count
    (every word up to and including ``<end>``). Rows k * samples .. (k + 1) * samples - 1 belong to image k.
    """
    features = {k: v.repeat_interleave(samples, 0) for k, v in features.items()}
    state = decoder.init_decoder(features)
    n = next(iter(state.values())).shape[0]
    device = next(iter(state.values())).device
    word = torch.full((n,), START_ID, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    words, log_probs, masks = [], [], []
    for t in range(max_len):
        step_log_probs, state, _ = decoder.decode_step(word, state)
        # the policy is the distribution over the allowed words: renormalise after the ban, or the
        # gradient drifts probability onto never-sampled banned tokens (<unk>, <pad>) until nothing is left
        step_log_probs = _ban(step_log_probs, allow_unk=False, first_step=t == 0).log_softmax(-1)
        word = torch.multinomial(step_log_probs.detach().exp(), 1)[:, 0]
        masks.append(~done)
        words.append(torch.where(done, torch.full_like(word, PAD_ID), word))
        log_probs.append(step_log_probs.gather(1, word[:, None])[:, 0])
        done = done | (word == END_ID)
        if bool(done.all()):
            break
    return torch.stack(words, 1), torch.stack(log_probs, 1), torch.stack(masks, 1)


def self_critical_loss(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The SCST loss of one batch (``image_index`` says which training image each row shows)."""
    reward_fn = model.reward
    if reward_fn is None or "image_index" not in batch:
        raise PixloomError("self-critical training needs the training captions' reward (model.reward) "
                           "and batches with 'image_index'")
    k = model.config.scst_samples
    if k < 2:
        raise PixloomError(f"scst_samples must be at least 2 (the baseline is the other samples' mean), got {k}")
    feats = model.batch_features(batch)
    words, log_probs, mask = sample_captions(model, feats, k, model.config.max_words)
    captions = [model.vocab.decode_ids(row) for row in words.tolist()]  # stops at <end>, drops <pad>
    owners = batch["image_index"].repeat_interleave(k).tolist()
    rewards = torch.as_tensor(reward_fn(owners, captions), dtype=torch.float32, device=log_probs.device).view(-1, k)
    baseline = (rewards.sum(1, keepdim=True) - rewards) / (k - 1)  # mean of the other samples
    advantage = (rewards - baseline).view(-1, 1)
    mask = mask.float()
    loss = -(advantage * log_probs * mask).sum() / mask.sum()
    return {"loss": loss, "reward": rewards.mean().detach(),
            "sample_words": (mask.sum(1).mean() - 1).detach()}  # words per sampled caption, <end> not counted
