"""Reference token ids and prompt offsets for tests/unit/test_data_encode.c.

Builds a tokenizer folder (the committed fixture tests/fixtures/tokenizer/spm.json plus a
tokenizer_config.json with a chat template) and encodes records the way mlx-lm's dataset
classes do with transformers: TextDataset (encode + EOS), ChatDataset and
CompletionsDataset (apply_chat_template, offsets for mask_prompt).

Recreate the venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install transformers tokenizers jinja2
Run from the repo root: .venv-ref/bin/python tools/make_encode_fixtures.py
"""
import json
import os
import shutil

from transformers import AutoTokenizer

OUT = "tests/fixtures/encode"
TEMPLATE = ("{% for m in messages %}{% if m.role == 'system' %}<s>[SYS] {{ m.content }}\n"
            "{% else %}[{{ m.role }}] {{ m.content }}{% if m.role == 'assistant' %}</s>{% endif %}\n{% endif %}"
            "{% endfor %}{% if tools %}[tools] {{ tools | length }}\n{% endif %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")

os.makedirs(OUT, exist_ok=True)
shutil.copy("tests/fixtures/tokenizer/spm.json", os.path.join(OUT, "tokenizer.json"))
with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
    json.dump({"bos_token": "<s>", "eos_token": "</s>", "chat_template": TEMPLATE,
               "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=1)
tok = AutoTokenizer.from_pretrained(OUT)


def chat_ids(messages, tools=None, gen=False):
    out = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=gen, tokenize=True)
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


cases = []
for text in ["Hello world", "a b c", "The quick brown fox </s>"]:
    ids = tok.encode(text)
    if ids[-1] != tok.eos_token_id:
        ids.append(tok.eos_token_id)
    cases.append({"format": "text", "record": {"text": text}, "mask_prompt": False, "ids": ids, "offset": 0})
convs = [
    [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one"},
     {"role": "assistant", "content": "two"}, {"role": "user", "content": "three"},
     {"role": "assistant", "content": "four"}],
    [{"role": "user", "content": "ends with user"}],
]
for msgs in convs:
    for mask in (False, True):
        for tools in (None, [{"type": "function", "function": {"name": "f"}}]):
            ids = chat_ids(msgs, tools)
            off = 0
            if mask and len(msgs) > 1:  # a lone message is all trained (transformers refuses an empty chat)
                off = len(chat_ids(msgs[:-1], tools, gen=msgs[-1]["role"] == "assistant"))
            rec = {"messages": msgs}
            if tools:
                rec["tools"] = tools
            cases.append({"format": "chat", "record": rec, "mask_prompt": mask, "ids": ids, "offset": off})
for p, c in [("What is 2+2?", "4"), ("Say hi", "hi hi")]:
    msgs = [{"role": "user", "content": p}, {"role": "assistant", "content": c}]
    for mask in (False, True):
        ids = chat_ids(msgs)
        off = len(chat_ids(msgs[:-1], gen=True)) if mask else 0
        cases.append({"format": "completions", "record": {"prompt": p, "completion": c}, "mask_prompt": mask,
                      "ids": ids, "offset": off})
with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump(cases, f, indent=1)
print(f"wrote {len(cases)} cases to {OUT}/cases.json")
