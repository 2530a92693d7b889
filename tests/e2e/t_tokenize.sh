# ctune tokenize on committed fixture tokenizers (ids recorded from Hugging Face
# tokenizers by tools/make_tokenizer_fixtures.py, see tests/fixtures/tokenizer/cases.json).
TOKFIX=tests/fixtures/tokenizer
expect_out "tokenize spm ids" "1 66 127 98 94 37 29" "$CTUNE" tokenize --tokenizer $TOKFIX/spm.json --text "Hello world"
expect_out "tokenize bytelevel ids (eos template)" "298 285 282 324 2" "$CTUNE" tokenize --tokenizer $TOKFIX/bytelevel.json --text "Hello world"
expect_out "tokenize --no-special" "66 127 98 94 37 29" "$CTUNE" tokenize --tokenizer $TOKFIX/spm.json --text "Hello world" --no-special
expect_out "tokenize added tokens" "67 223 1 223 68 223 2 277 2" "$CTUNE" tokenize --tokenizer $TOKFIX/bytelevel.json --text "a <s> b </s> c"
expect_out "tokenize --json" '{"ids":[1,66,127,98,94,37,29],"tokens":["<s>","▁","Hello","▁w","or","l","d"],"text":"Hello world"}' "$CTUNE" tokenize --tokenizer $TOKFIX/spm.json --text "Hello world" --json
expect_out "tokenize --decode" "<s> Hello world" "$CTUNE" tokenize --tokenizer $TOKFIX/spm.json --decode "1,66,127,98,94,37,29"
expect_out "tokenize --decode --no-special" "a   b   c" "$CTUNE" tokenize --tokenizer $TOKFIX/spm.json --decode "1 66 26 66 1 66 66 27 66 2 66 66 28" --no-special
expect_out "tokenize --decode --json" '"text":"Hello world</s>"' "$CTUNE" tokenize --tokenizer $TOKFIX/bytelevel.json --decode 298,285,282,324,2 --json
mkdir -p "$TMP/tokmodel"
cp $TOKFIX/spm.json "$TMP/tokmodel/tokenizer.json"
printf 'one\ntwo words\n' > "$TMP/tok_lines.txt"
expect_out "tokenize --model dir" "1 66 127 98 94 37 29" "$CTUNE" tokenize --model "$TMP/tokmodel" --text "Hello world"
expect_out "tokenize --file --lines" "1 85 48 40 98 94 29 44" "$CTUNE" tokenize --model "$TMP/tokmodel" --file "$TMP/tok_lines.txt" --lines
printf 'bad \xff byte' > "$TMP/tok_bad.txt"
expect_fail "tokenize invalid UTF-8" "not valid UTF-8 at byte 4" "$CTUNE" tokenize --model "$TMP/tokmodel" --file "$TMP/tok_bad.txt"
echo '[{"role": "user", "content": "hi"}]' > "$TMP/tok_chat.json"
expect_fail "tokenize --chat without jinja" "chat templates not available in this build" "$CTUNE" tokenize --model "$TMP/tokmodel" --chat "$TMP/tok_chat.json"
expect_fail "tokenize missing tokenizer" "no-such-model" "$CTUNE" tokenize --model "$TMP/no-such-model" --text x
expect_fail "tokenize needs one input" "exactly one of --text" "$CTUNE" tokenize --model "$TMP/tokmodel"
expect_fail "tokenize bad ids" "not a list of ids" "$CTUNE" tokenize --model "$TMP/tokmodel" --decode "1,x"
expect_out "tokenize help" "usage: ctune tokenize" "$CTUNE" tokenize --help
