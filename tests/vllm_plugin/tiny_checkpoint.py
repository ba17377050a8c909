"""Tiny DeepSeek-OCR and DeepSeek-OCR-2 checkpoints for engine tests: real architecture, random weights.

`make_tiny_checkpoint(path)` writes what vLLM needs to serve `DeepseekOCRForCausalLM` with
`--load-format dummy` (weights are drawn at random, so no weight file is written or
downloaded):

* `config.json`: the structure of `deepseek-ai/DeepSeek-OCR`'s config (SAM ViT-B and CLIP-L
  vision towers at their real size, the linear projector, the DeepSeek-V2 MoE language
  model) with a small language model (hidden 64, 2 layers, 4 routed experts).
* a byte-level BPE tokenizer trained here with `tokenizers` (no download), saved as a
  `LlamaTokenizerFast` like the real one, with the real special tokens at the real ids:
  BOS 0, EOS 1, pad 2, `<image>` 128815 ... `</td>` 128822.
  The language model keeps the real `vocab_size` 129280: vLLM 0.32's DeepSeek-OCR looks up
  the text embedding of every prompt id, `<image>` (128815) included, before it scatters
  the vision embeddings over those positions (it does not declare out-of-vocabulary
  multimodal ids), so a smaller vocabulary crashes the engine on the first image request
  ("IndexError: index out of range"). The trained BPE has 1024 ids; the rest of the
  129280 ids are filler tokens (`<unused_N>`), so every id the random model samples
  decodes to some text.
* `generation_config.json` with the real BOS/EOS.

Generating it takes well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
IMAGE = "<image>"

#: the real DeepSeek-OCR special tokens and ids
SPECIAL_TOKENS: dict[str, int] = {
    BOS: 0,
    EOS: 1,
    PAD: 2,
    IMAGE: 128815,
    "<|ref|>": 128816,
    "<|/ref|>": 128817,
    "<|det|>": 128818,
    "<|/det|>": 128819,
    "<|grounding|>": 128820,
    "<td>": 128821,
    "</td>": 128822,
}

#: size of the trained byte-level BPE vocabulary (ids 0..TEXT_VOCAB_SIZE-1, specials included)
TEXT_VOCAB_SIZE = 1024
#: the model's vocabulary (the real one); the tokenizer defines every id below it
VOCAB_SIZE = 129280

#: a small language model in DeepSeek-OCR's real config (docs/vllm-engine-notes.md); the vision
#: side keeps its real size
LANGUAGE_CONFIG: dict[str, object] = {
    "architectures": ["DeepseekV2ForCausalLM"],
    "bos_token_id": 0,
    "eos_token_id": 1,
    "first_k_dense_replace": 1,
    "hidden_size": 64,
    "intermediate_size": 128,
    "kv_lora_rank": None,
    "lm_head": True,
    "max_position_embeddings": 8192,
    "moe_intermediate_size": 32,
    "n_group": 1,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "num_attention_heads": 2,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "q_lora_rank": None,
    "qk_nope_head_dim": 0,
    "qk_rope_head_dim": 0,
    "rm_head": False,
    "topk_group": 1,
    "topk_method": "greedy",
    "torch_dtype": "bfloat16",
    "use_mla": False,
    "v_head_dim": 0,
    "vocab_size": VOCAB_SIZE,
}

#: DeepSeek-OCR's real language model (its config.json), for full-size runs with dummy weights
FULL_LANGUAGE_CONFIG: dict[str, object] = {
    **LANGUAGE_CONFIG,
    "hidden_size": 1280, "intermediate_size": 6848, "moe_intermediate_size": 896,
    "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
    "num_hidden_layers": 12, "num_attention_heads": 10, "num_key_value_heads": 10,
}

VISION_CONFIG: dict[str, object] = {
    "image_size": 1024,
    "mlp_ratio": 3.7362,
    "model_name": "deeplip_b_l",
    "model_type": "vision",
    "width": {
        "clip-l-14-224": {"heads": 16, "image_size": 224, "layers": 24, "patch_size": 14,
                          "width": 1024},
        "sam_vit_b": {"downsample_channels": [512, 1024], "global_attn_indexes": [2, 5, 8, 11],
                      "heads": 12, "layers": 12, "width": 768},
    },
}

# Training text for the BPE merges: OCR-ish English, markdown and HTML table pieces.
_CORPUS = [
    "Free OCR.", "OCR this image.", "Convert the document to markdown.",
    "Parse the figure.", "Describe this image in detail.", "Locate the title in the image.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "# Title\n\n## Section\n\nSome text, with numbers 1.5 and 42%; (a) [b] {c}.",
    "<table><tr><td>cell</td><td>value</td></tr></table>",
    "Invoice Total: $1,234.56 Date: 2024-01-31 Page 1 of 2",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "image caption figure table equation header footer page number text sub title",
]


#: per family: (architecture, projector input width). DeepSeek-OCR's projector takes CLIP-L's
#: and SAM's features side by side (1024 + 1024); DeepSeek-OCR-2's takes the output of its
#: Qwen2-0.5B "decoder as encoder" (896), which vLLM builds at its real size.
ARCHITECTURES: dict[str, tuple[str, int]] = {
    "deepseek-ocr": ("DeepseekOCRForCausalLM", 2048),
    "deepseek-ocr-2": ("DeepseekOCR2ForCausalLM", 896),
}


def config_dict(full_size: bool = False, family: str = "deepseek-ocr") -> dict[str, object]:
    """config.json: DeepSeek-OCR's layout, language keys repeated at the top level as upstream."""
    language = FULL_LANGUAGE_CONFIG if full_size else LANGUAGE_CONFIG
    top_level_language = {k: v for k, v in language.items() if k != "architectures"}
    architecture, projector_input = ARCHITECTURES[family]
    return {
        "_name_or_path": f"tiny-{family}",
        "architectures": [architecture],
        "model_type": "deepseek_vl_v2",
        "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head",
        "tile_tag": "2D",
        "torch_dtype": "bfloat16",
        "language_config": dict(language),
        "projector_config": {"input_dim": projector_input, "model_type": "mlp_projector",
                             "n_embed": language["hidden_size"],
                             "projector_type": "linear"},
        "vision_config": VISION_CONFIG,
        **top_level_language,
    }


def _train_tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TEXT_VOCAB_SIZE,
        special_tokens=[BOS, EOS, PAD],  # ids 0, 1, 2
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    # Repeat with variations so the trainer finds enough merges to fill the vocabulary.
    corpus = [f"{line} {i} {line.lower()} {line.upper()}" for i in range(50) for line in _CORPUS]
    tok.train_from_iterator(corpus, trainer)
    data = json.loads(tok.to_str())

    vocab: dict[str, int] = data["model"]["vocab"]
    # Fill every other id below VOCAB_SIZE with an unused token, so that each id the model
    # can sample decodes.
    used = set(vocab.values()) | set(SPECIAL_TOKENS.values())
    for i in range(VOCAB_SIZE):
        if i not in used:
            vocab[f"<unused_{i}>"] = i
    # The other special tokens at their real ids (the gap between is never used).
    added = [t for t in data["added_tokens"] if t["content"] in (BOS, EOS, PAD)]
    for content, idx in SPECIAL_TOKENS.items():
        vocab[content] = idx
        if content not in (BOS, EOS, PAD):
            added.append({"id": idx, "content": content, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True})
    data["added_tokens"] = sorted(added, key=lambda t: t["id"])
    data["model"]["vocab"] = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    return json.dumps(data, ensure_ascii=False)


def make_tiny_checkpoint(path: str | Path, full_size: bool = False,
                         family: str = "deepseek-ocr") -> Path:
    """Write the checkpoint files into `path` (created if missing) and return it.

    `family` "deepseek-ocr-2" writes a DeepSeek-OCR-2 checkpoint (`DeepseekOCR2ForCausalLM`:
    SAM ViT-B and the Qwen2 vision encoder at real size, the same small language model and
    tokenizer).
    `full_size` writes the real DeepSeek-OCR dimensions (for GPU throughput checks with
    `--load-format dummy`); the tokenizer is the small test one either way.
    """
    from tokenizers import Tokenizer

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config_dict(full_size, family), indent=2), encoding="utf-8")
    (out / "generation_config.json").write_text(
        json.dumps({"_from_model_config": True, "bos_token_id": 0, "eos_token_id": 1}),
        encoding="utf-8")

    tokenizer_json = _train_tokenizer_json()
    Tokenizer.from_str(tokenizer_json)  # fail here, not inside vLLM, if it does not load
    (out / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    added_decoder = {
        str(idx): {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                   "single_word": False, "special": True}
        for content, idx in SPECIAL_TOKENS.items()
    }
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizerFast",
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 8192,
        "added_tokens_decoder": added_decoder,
    }, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}, ensure_ascii=False),
        encoding="utf-8")
    return out


if __name__ == "__main__":
    import sys

    print(make_tiny_checkpoint(sys.argv[1] if len(sys.argv) > 1 else "tiny-deepseek-ocr"))
