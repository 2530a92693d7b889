"""Makes tests/fixtures/tokenizer/: tiny BPE tokenizers trained with Hugging Face
`tokenizers`, one per pipeline variant, and cases.json with the ids and decodes
HF gives for a test corpus (multilingual, code, emoji, odd whitespace).

Run from the repo root with the reference venv:
  /work/main/.venv-ref/bin/python tools/make_tokenizer_fixtures.py
Recreate that venv with:
  python3 -m venv .venv-ref && .venv-ref/bin/pip install tokenizers==0.23.3
"""
import json
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

OUT = "tests/fixtures/tokenizer"

TRAIN = """The quick brown fox jumps over the lazy dog. Hello world, hello there!
def main(): return 42  # the answer
Über naïve café — ünïcödé façade. Привет мир. 日本語 中文 한국어 🦙🔥
numbers 12345 67890 3.14 and more numbers 2024-01-01, can't won't I'm you're
""" * 3

CORPUS = [
    "Hello world", " Hello world", "Hello  world!", "", " ", "   ", "\t", "\n", "\n\n\n", " \n \t x",
    "The quick brown fox jumps over the lazy dog.", "HELLO World hElLo", "can't won't I'm they'll",
    "def main():\n    return 42  # the answer", "for(i=0;i<10;i++){x+=i;}", "a,b;c:d!e?f", "1234567890 3.14 2024-01-01",
    "Über naïve café — façade", "e\u0301 \u212b \ufb01 \u2460 \uff21", "İstanbul ΣΑΣ ß", "Привет, мир!", "日本語のテキスト",
    "中文测试", "한국어", "🦙🔥👍🏽 👨‍👩‍👧‍👦", "unseen ŋ ʒ ჯ ꙮ chars", "zero\u200bwidth\u00a0nbsp\u3000ideo",
    "<s>hello</s>", "a <s> b </s> c", "x<|sep|>y", "word<mask>word and <mask> alone", " <|sep|> spaced ",
    "hellohellohellohello" * 5, "  trailing  ", "a\u2028b\u0085c",
]


def trained_bpe(byte_level, vocab_size):
    tok = Tokenizer(BPE(unk_token=None if byte_level else "<unk>"))
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        alphabet = []
    trainer = BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, special_tokens=["<unk>", "<s>", "</s>"],
                         show_progress=False)
    tok.train_from_iterator([TRAIN], trainer)
    return json.loads(tok.to_str())


def with_bytes(model_json):
    """The trained model with <0xXX> tokens and byte_fallback (SentencePiece style)."""
    vocab = dict(model_json["model"]["vocab"])
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["model"]["merges"]]
    return BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)


def specials(tok):
    tok.add_special_tokens([AddedToken("<s>", special=True, normalized=False),
                            AddedToken("</s>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("<|sep|>", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("<mask>", single_word=True, normalized=True)])


def spm_like(bpe_json, normalizer, pre, decoder, post=True):
    tok = Tokenizer(with_bytes(bpe_json))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoder
    specials(tok)
    if post:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", 1)])
    return tok


def byte_level(bpe_json, pre, normalizer=None):
    tok = Tokenizer.from_str(json.dumps(bpe_json))
    tok.pre_tokenizer = pre
    tok.normalizer = normalizer
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                              processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])])
    specials(tok)
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    bl = trained_bpe(True, 330)
    sp = trained_bpe(False, 160)
    spm_dec = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                 decoders.Strip(" ", 1, 0)])
    meta_dec = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="first")])
    gpt2_re = Regex(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")
    llama3_re = Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    variants = {
        "bytelevel": byte_level(bl, pre_tokenizers.ByteLevel(add_prefix_space=False)),
        "bytelevel_prefix": byte_level(bl, pre_tokenizers.ByteLevel(add_prefix_space=True)),
        "llama3_split": byte_level(bl, pre_tokenizers.Sequence([pre_tokenizers.Split(llama3_re, "isolated"),
                                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])),
        "digits_bytelevel": byte_level(bl, pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                                    pre_tokenizers.ByteLevel(add_prefix_space=False)]),
                                       normalizers.NFC()),
        "spm": spm_like(sp, normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]),
                        None, spm_dec),
        "metaspace": spm_like(sp, normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()]),
                              pre_tokenizers.Metaspace(prepend_scheme="first"), meta_dec),
        "metaspace_always": spm_like(sp, normalizers.NFD(), pre_tokenizers.Metaspace(prepend_scheme="always", split=False),
                                     decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="always")])),
        "split_behaviors": spm_like(sp, normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex(r"\d+"), "#")]),
                                    pre_tokenizers.Sequence([pre_tokenizers.Split(",", "removed"),
                                                             pre_tokenizers.Split(Regex(r"[aeiou]"), "merged_with_previous"),
                                                             pre_tokenizers.Split(Regex(r"[.!?]+"), "merged_with_next"),
                                                             pre_tokenizers.Split(Regex(r"o+"), "contiguous"),
                                                             pre_tokenizers.Split(Regex(r"\s+"), "isolated", invert=True),
                                                             pre_tokenizers.Metaspace(prepend_scheme="never")]),
                                    meta_dec),
        "punct_ws": spm_like(sp, normalizers.NFKD(), pre_tokenizers.Sequence([pre_tokenizers.Punctuation(),
                                                                              pre_tokenizers.Whitespace()]),
                             decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()]), post=False),
        "wssplit_digits": spm_like(sp, None, pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                                      pre_tokenizers.Digits(individual_digits=False),
                                                                      pre_tokenizers.Punctuation("contiguous")]),
                                   None, post=False),
        "gpt2_split": byte_level(bl, pre_tokenizers.Sequence([pre_tokenizers.Split(gpt2_re, "isolated"),
                                                              pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])),
    }
    # merges written as [a, b] pairs in one file, "a b" strings in the others
    cases = {}
    for name, tok in variants.items():
        j = json.loads(tok.to_str())
        if name == "bytelevel":
            j["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in j["model"]["merges"]]
        else:
            j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
        if name == "llama3_split":
            j["model"]["ignore_merges"] = True
        with open(f"{OUT}/{name}.json", "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
        tok = Tokenizer.from_file(f"{OUT}/{name}.json")
        cases[name] = [{"text": t, "ids": tok.encode(t).ids,
                        "decoded": tok.decode(tok.encode(t).ids, skip_special_tokens=False),
                        "decoded_skip": tok.decode(tok.encode(t).ids, skip_special_tokens=True)} for t in CORPUS]
    with open(f"{OUT}/cases.json", "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
