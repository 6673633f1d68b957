"""The transformers adapter on real tiny classifiers, built and saved with transformers itself (nothing downloaded)."""

import json
import shutil

import numpy as np
import pytest
import torch
import transformers  # always installed: sentence-transformers depends on it
from PIL import Image

from zoo2vec.errors import SkippedModel, ZooError
from zoo2vec.zoo.adapters import detect, load_model, read_card
from zoo2vec.zoo.blackbox import checked_predict

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "of", "in", "on", "team", "won", "match", "goal",
         "final", "market", "shares", "fell", "bank", "profit", "rate", "cell", "gene", "study", "space", "star",
         "found", "new", "old"]
NEWS = ["the team won the final", "shares fell in the market", "a new gene study found a cell",
        "bank profit rate", "a star in space", " ".join(["the old team won a match"] * 10)]  # last one is truncated
README = """---
license: apache-2.0
language: en
tags:
- text-classification
- tiny
datasets:
- ag_news
---
# tiny-news

A tiny BERT that sorts news headlines into sport, business and science.
"""


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {word: i for i, word in enumerate(WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                                 ("[SEP]", 3)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _labels(*names):
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def _tiny_bert(**extra):
    return transformers.BertConfig(vocab_size=len(WORDS), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, max_position_embeddings=32, **extra)


def _save(model, folder, preprocessor):
    model.eval().save_pretrained(folder)
    preprocessor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-news"
    model = transformers.BertForSequenceClassification(_tiny_bert(**_labels("sport", "business", "science")))
    tokenizer = _tokenizer()
    _save(model, folder, tokenizer)
    (folder / "README.md").write_text(README)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A ViT for 16x16 RGB images, its processor resizing to height/width."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-vit"
    config = transformers.ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                                    image_size=16, patch_size=4, num_channels=3, **_labels("cat", "dog", "bird"))
    processor = transformers.ViTImageProcessor(size={"height": 16, "width": 16})
    model = transformers.ViTForImageClassification(config)
    return _save(model, folder, processor), model, processor


@pytest.fixture(scope="module", params=["gray-processor", "rgb-processor"])
def gray_model(request, tmp_path_factory):
    """A one-channel ResNet whose processor resizes the shortest edge to 20 and crops 16x16: either normalising one
    channel, or (as a default processor would) three equal ones after converting to RGB."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / f"tiny-resnet-{request.param}"
    config = transformers.ResNetConfig(num_channels=1, embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1],
                                       layer_type="basic", **_labels(*"0123456789"))
    if request.param == "gray-processor":
        colour = {"image_mean": [0.5], "image_std": [0.25], "do_convert_rgb": False}
    else:
        colour = {"image_mean": [0.5] * 3, "image_std": [0.25] * 3, "do_convert_rgb": True}
    processor = transformers.BitImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16},
                                               do_center_crop=True, **colour)
    model = transformers.ResNetForImageClassification(config)
    return _save(model, folder, processor), model, processor


def _pictures(n, shape, seed=0):
    """n random 8-bit pictures as PIL images, and the same as zoo2vec hands them over: NCHW float32 in [0, 1]."""
    c, h, w = shape
    pixels = np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)
    pictures = [Image.fromarray(p[..., 0] if c == 1 else p) for p in pixels]
    return pictures, pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255


def _softmax(model, **inputs):
    with torch.no_grad():
        return model(**inputs).logits.softmax(dim=-1).numpy()


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / folder.name)


def test_text_classifier_card_is_read_from_its_files(text_model):
    folder, model, _ = text_model
    resolved = read_card(folder)
    card = resolved.card
    assert card.name == "tiny-news" and card.modality == "text"
    assert card.label_names == ("sport", "business", "science")
    assert card.input_shape is None
    # no tied or shared weights in a BERT classifier: the header counts exactly the module's parameters
    assert card.params == sum(p.numel() for p in model.parameters())
    assert card.license == "apache-2.0" and card.training_data == "ag_news"
    assert card.tags == ("bert", "text-classification", "tiny", "language:en")
    assert card.description == "A tiny BERT that sorts news headlines into sport, business and science."
    assert card.adapter == {"kind": "transformers", "architecture": "BertForSequenceClassification"}
    assert resolved.origin["label_names"] == "config.json id2label"
    assert resolved.origin["params"] == "model.safetensors header"
    assert resolved.origin["modality"] == "config.json architectures (BertForSequenceClassification)"
    assert resolved.origin["license"] == "README.md front matter (license)"
    assert resolved.origin["training_data"] == "README.md front matter (datasets)"
    assert resolved.origin["tags"] == "config.json model_type; README.md front matter (tags, language, pipeline_tag)"
    assert resolved.origin["name"] == "the folder's name"


def test_a_card_json_overrides_only_the_fields_it_names(text_model, tmp_path):
    folder = _copy(text_model[0], tmp_path)
    before = read_card(folder)
    (folder / "card.json").write_text(json.dumps({"license": "mit"}))
    after = read_card(folder)
    assert after.card.license == "mit" and after.origin["license"] == "card.json"
    assert {**after.card.to_dict(), "license": "apache-2.0"} == before.card.to_dict()
    assert {k: v for k, v in after.origin.items() if k != "license"} == \
           {k: v for k, v in before.origin.items() if k != "license"}


@pytest.mark.parametrize("batch_size", [None, 2])
def test_text_predictions_are_the_models_own(text_model, tmp_path, batch_size):
    folder, model, tokenizer = text_model
    if batch_size:  # several batches, each padded to its own longest text
        folder = _copy(folder, tmp_path)
        (folder / "card.json").write_text(json.dumps({"adapter": {"batch_size": batch_size}}))
    inputs = tokenizer(NEWS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    expected = _softmax(model, **inputs)
    assert inputs["input_ids"].shape[1] == 32  # the long text was cut to the model's 32 positions
    got = checked_predict(load_model(folder), NEWS)
    assert got.shape == (len(NEWS), 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_image_classifier_card(image_model):
    folder, model, _ = image_model
    resolved = read_card(folder)
    card = resolved.card
    assert card.modality == "image" and card.input_shape == (3, 16, 16)
    assert card.label_names == ("cat", "dog", "bird")
    assert card.params == sum(p.numel() for p in model.parameters())
    assert card.tags == ("vit",) and card.license == "unknown"
    assert resolved.origin["input_shape"] == "config.json num_channels, preprocessor_config.json size"
    assert resolved.origin["tags"] == "config.json model_type"


def test_image_predictions_are_the_processors_and_models_own(image_model):
    folder, model, processor = image_model
    pictures, x = _pictures(5, (3, 16, 16))
    expected = _softmax(model, **processor(pictures, return_tensors="pt"))
    np.testing.assert_allclose(checked_predict(load_model(folder), x), expected, atol=1e-5)


def test_grayscale_classifier(gray_model):
    folder, model, processor = gray_model
    resolved = read_card(folder)
    assert resolved.card.input_shape == (1, 16, 16)  # the crop, not the resize before it
    assert resolved.origin["input_shape"] == "config.json num_channels, preprocessor_config.json crop_size"
    pictures, x = _pictures(4, (1, 16, 16), seed=1)
    # what the processor makes of the gray pictures; a three-channel one makes three equal channels: the model
    # takes one
    pixel_values = processor(pictures, return_tensors="pt")["pixel_values"][:, :1]
    expected = _softmax(model, pixel_values=pixel_values)
    np.testing.assert_allclose(checked_predict(load_model(folder), x), expected, atol=1e-5)


def test_a_model_without_a_classification_head_is_skipped(tmp_path):
    folder = tmp_path / "tiny-encoder"
    transformers.BertModel(_tiny_bert()).save_pretrained(folder)
    with pytest.raises(SkippedModel, match=r"names BertModel.*ForSequenceClassification"):
        read_card(folder)
    (folder / "modules.json").write_text("[]")
    with pytest.raises(SkippedModel, match="sentence-transformers encoder"):
        read_card(folder)


def _config_only(folder, config, weights="pytorch_model.bin"):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / weights).write_bytes(b"")  # detection never reads .bin weights
    return folder


@pytest.mark.parametrize("config, message", [
    ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}, "names GPT2LMHeadModel, a gpt2 model without"),
    ({"model_type": "bert"}, "names no architectures"),
    ({"architectures": ["BertForSequenceClassification"], "model_type": "bert", "id2label": {"0": "score"}},
     "regression head"),
])
def test_other_transformers_models_are_skipped_saying_why(tmp_path, config, message):
    with pytest.raises(SkippedModel, match=message):
        read_card(_config_only(tmp_path / "m", config))


def test_an_audio_sequence_classifier_is_skipped(tmp_path):
    folder = _config_only(tmp_path / "m", {"architectures": ["Wav2Vec2ForSequenceClassification"],
                                           "model_type": "wav2vec2", **_labels("yes", "no")})
    (folder / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "Wav2Vec2FeatureExtractor"}))
    with pytest.raises(SkippedModel, match="classifies audio"):
        read_card(folder)


def test_default_label_names_are_left_out(tmp_path):
    folder = _config_only(tmp_path / "m", {"architectures": ["BertForSequenceClassification"], "model_type": "bert",
                                           "id2label": {"0": "LABEL_0", "1": "LABEL_1"}})
    found = detect(folder)
    assert "label_names" not in found.fields and found.fields["modality"] == "text"
    assert "params" not in found.fields  # a .bin has no header to count from without loading it


@pytest.mark.parametrize("files", [
    {"config.json": {"architectures": ["TFBertForSequenceClassification"], "model_type": "bert"},  # no torch weights
     "tf_model.h5": None},
    {"notes.txt": None},
])
def test_a_folder_in_no_known_format_lists_the_formats(tmp_path, files):
    folder = tmp_path / "m"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_text("" if content is None else json.dumps(content))
    with pytest.raises(ZooError, match=r"none of the formats(.|\n)*transformers: config.json with id2label") as err:
        read_card(folder)
    assert not isinstance(err.value, SkippedModel)


def test_an_image_classifier_without_its_processor_cannot_be_loaded(image_model, tmp_path):
    folder = _copy(image_model[0], tmp_path)
    (folder / "preprocessor_config.json").unlink()
    card = read_card(folder)
    assert card.card.input_shape == (3, 16, 16) and card.origin["input_shape"] == "config.json num_channels, image_size"
    with pytest.raises(ZooError, match="preprocessor_config.json"):
        load_model(folder)
