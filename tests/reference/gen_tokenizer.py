#!/usr/bin/python3
"""Reference ids for tests/test_tokenizer.c: a re-implementation of open_clip's SimpleTokenizer
(daclip-uir da-clip/src/open_clip/tokenizer.py) run on the official CLIP vocabulary.

Needs Debian's python3-regex (for \\p{L} / \\p{N}); uses python3-ftfy when installed. Without ftfy the
basic_clean step skips ftfy.fix_text, exactly like the C tokenizer (none of the cases below is changed
by ftfy except where noted in the fixture header).

    /usr/bin/python3 tests/reference/gen_tokenizer.py [VOCAB] > tests/fixtures/tokenizer_cases.txt

Fixture format: '#' lines are comments (the text's repr); every case is one line
    <UTF-8 text as hex> TAB <77-token ids, trailing zero padding dropped> TAB <decode(ids) as hex>
"""
import gzip
import html
import sys

import regex

try:
    import ftfy
except ImportError:
    ftfy = None

VOCAB = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/clip/bpe_simple_vocab_16e6.txt.gz"


def byte_table():
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


class Reference:
    def __init__(self, path):
        self.byte_encoder = byte_table()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        lines = gzip.open(path).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<start_of_text>", "<end_of_text>"]
        self.encoder = {s: i for i, s in enumerate(vocab)}
        self.decoder = {i: s for s, i in self.encoder.items()}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {"<start_of_text>": "<start_of_text>", "<end_of_text>": "<end_of_text>"}
        self.pattern = regex.compile(r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"
                                     r"|[^\s\p{L}\p{N}]+", regex.IGNORECASE)

    def bpe(self, piece):
        if piece in self.cache:
            return self.cache[piece]
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[piece] = " ".join(word)
        return self.cache[piece]

    def encode(self, text):
        if ftfy is not None:
            text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for piece in regex.findall(self.pattern, text):
            piece = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids += [self.encoder[s] for s in self.bpe(piece).split(" ")]
        return ids

    def tokenize(self, text, context=77):
        ids = [49406] + self.encode(text) + [49407]
        if len(ids) > context:
            ids = ids[:context]
            ids[-1] = 49407
        return ids

    def decode(self, ids):
        text = "".join(self.decoder[i] for i in ids)
        data = bytearray(self.byte_decoder[c] for c in text)
        return data.decode("utf-8", errors="replace").replace("</w>", " ")


CASES = [
    # reference §7.5
    "a photo of a cat", "motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy", "raindrop", "rainy",
    "shadowed", "snowy", "uncompleted",
    # punctuation
    "Hello, world!", "what?!... really", "a--b", "(parentheses) [brackets] {braces}", "email@example.com",
    "#hashtag @user", "100% sure", "$3.50 price", "A low-light photo of a cat: low-light",
    # digits and other numbers
    "12345", "in 2023 there were 3 cats", "½ ² Ⅷ ٣ ૭",
    # contractions
    "it's", "don't", "we're", "they've", "I'm", "you'll", "he'd", "IT'S LOUD", "'tis", "rock'n'roll", "''s",
    "it'S", "o'ſ",
    # accented and non-Latin letters
    "café crème brûlée", "niño año", "Straße STRASSE", "Ærøskøbing", "İstanbul", "e\u0301 decomposed",
    "ΟΔΟΣ καλημέρα ΣΑΣ", "Σ", "ΑΣ. ΑΣ'Β", "Привет, мир! ЁЛКА", "日本語のテキスト", "中文 字符", "한국어",
    "ι\u0345x", "ǅungla ǈ",
    # emoji and symbols
    "a cat 🐱 with a hat 🎩", "👍🏽 ok", "★☆ © ™",
    # html entities
    "fish &amp; chips", "&lt;b&gt;bold&lt;/b&gt;", "it&#39;s", "&amp;amp;", "&amp;lt;x", "&AMP &ampx &amp",
    "&notit; &notin; &copy2023 &#x41;&#65 &#0; &#128; &#xD800; &#99999999999; &bogus; &#; &#x;",
    "&#x110000; &#1; &#X6a; &#13;a &NotEqualTilde;",
    # whitespace
    "  lots   of \t\n whitespace  ", "\u3000ideographic\u00a0nbsp\u2003em\u2028", "\x1cfile sep\x1f inside\x1ddone",
    "", "   ",
    # special tokens written in the text
    "<start_of_text>hello<end_of_text>", "<START_OF_TEXT> x", "!<start_of_text>",
    # long inputs
    "a photo of a cat " * 30, "supercalifragilisticexpialidocious", "aaaaaaaaaaaaaaaa", "!!!!!!!!",
    "x" * 100,
]


def main():
    ref = Reference(VOCAB)
    out = sys.stdout
    out.write("# generated by tests/reference/gen_tokenizer.py (ftfy: %s)\n" %
              (ftfy.__version__ if ftfy else "not installed, fix_text skipped as in C"))
    for text in CASES:
        ids = ref.tokenize(text)
        out.write("# %r\n" % text if len(text) < 120 else "# %r...\n" % text[:100])
        out.write("%s\t%s\t%s\n" % (text.encode("utf-8").hex(), " ".join(map(str, ids)),
                                    ref.decode(ref.tokenize(text, 10 ** 6)).encode("utf-8").hex()))


main()
