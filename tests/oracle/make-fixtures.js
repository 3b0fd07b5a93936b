'use strict'
// Writes the tokenizer.json-only fixtures of the tokenizer tests (tests/NativeMi.Tests/fixtures/tokenizers/):
// small vocabularies in the layout of real model families, learned here from the first lines of the packaged
// corpus plus a few multilingual lines, and serialised by Hugging Face's tokenizers library itself (each
// definition is loaded with Tokenizer.fromString and written back with save, so the files are what the library
// writes). Deterministic: running it again gives the same files.
//
//   llama2-spm   SentencePiece-style BPE with byte fallback as Llama 2 has it: Prepend + Replace normalizer, no
//                pre-tokenizer, fuse_unk, <unk> <s> </s> and the 256 <0xXX> byte tokens; tokenizer_config.json sets
//                add_bos_token and add_eos_token (transformers then adds </s> too, whatever the template says).
//   mistral-spm  the same vocabulary behind a Metaspace pre-tokenizer (prepend_scheme "first", split false), as
//                Mistral's and newer Llama 2 conversions have it; add_bos_token only.
//   llama3-bpe   byte-level BPE with Llama 3's split regex (digits in threes), ignore_merges, and the
//                Sequence[ByteLevel, TemplateProcessing <|begin_of_text|> $A] post-processor.
//   qwen2-bpe    byte-level BPE with Qwen2's split regex (single digits), an NFC normalizer, a ByteLevel
//                post-processor (no BOS) and chat tokens as special added tokens.
//   wordpiece    WordPiece in tokenizer.json: cased BertNormalizer (strip_accents null), BertPreTokenizer,
//                [CLS] $A [SEP]; tokenizer_config.json adds one more special token ([NEW]) that is not in it.
//   unigram-spm  Unigram (T5 / XLM-R style) with Metaspace and byte fallback, over the llama2-spm pieces.
//   gpt2-bpe     the gpt2-tiny fixture's vocabulary as a tokenizer.json (ByteLevel with GPT-2's split pattern).
// and lines.json, the hand-picked lines every tokenizer test encodes besides corpus lines.
//
// usage: node make-fixtures.js   (from tests/oracle, after npm ci)

const fs = require('node:fs')
const path = require('node:path')
const hf = require('tokenizers')

const ROOT = path.resolve(__dirname, '..', '..')
const OUT = path.join(ROOT, 'tests', 'NativeMi.Tests', 'fixtures', 'tokenizers')

// The hand-picked lines every tokenizer test encodes (beside corpus lines), written to fixtures/tokenizers/lines.json.
const LINES = [
  // plain text, punctuation, case, contractions
  'Hello world!', 'The quick brown fox jumps over the lazy dog.', "It's don't we'll I'M they'RE you'Ve she'd",
  'Hello,world!!! ...? --- ;;', '"quoted" «guillemets» „low“ \'single\' ‹angle›', '@user #hashtag `code` {braces} [brackets] (parens)',
  'UPPER lower MiXeD CamelCaseWord snake_case kebab-case',
  // accents and combining marks
  'Café naïve façade Ångström Øresund São Paulo œuvre résumé coöperate', 'Zürich Straße ÆØÅ æøå Ÿ ÿ Ç ç Ñ ñ',
  'e\u0301 a\u0308 n\u0303 o\u0302 decomposed accents', 'Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d lgo text',
  'a\u0300\u0301\u0302\u0303\u0304 stacked marks', 'İstanbul ß ẞ ǅ ﬁ ﬂ ligatures Ⅻ', 'Vietnamese: Tiếng Việt có dấu',
  // CJK and other scripts
  '中文字符和标点。日本語のテキスト、한국어 텍스트', '𠀀𠀁 CJK extension B and 𪚥', 'ＡＢＣ１２３ fullwidth ｶﾀｶﾅ halfwidth',
  '漢字かなカナ交じり文', '「括弧」『二重』【隅付き】', 'Ελληνικά Русский עברית العربية हिन्दी ไทย ქართული',
  // emoji
  '😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇯🇵', 'hi😀there emoji👍🏽inside', 'keycap 1️⃣ #️⃣ and ©️ ®️ ™', '🧑🏿‍💻 👩🏻‍🔬 🫠 🪿',
  // math and currency
  'a+b=c', 'x<y>z and a|b^c~d', '€5 £3 ¥7 $9.99 ₹100 ₿0.1 ¢50', '∑ ∫ √ ≤ ≥ ≠ ± × ÷ ∞ ∂ ∇ ∈ ∉ ⊂ ∀ ∃', '2³ x² ½ ¼ ① ⅷ ⁴⁵',
  'E = mc^2 and f(x) = x^2 + 2x + 1', '100% > 50% && 3 <= 4 || !done', 'price: $1,234.56 (≈ €1.100)',
  // digits
  '1234567 12 123 1234 0.5 3.14159 1,000,000', '١٢٣ ٤٥٦ ०१२ ๑๒๓ Arabic-Indic and other digits', 'phone +1-555-0100, ISBN 978-3-16-148410-0',
  // whitespace: tabs, repeated spaces, newlines
  'a\tb\t\tc', '  leading  and   repeated   spaces  ', 'trailing tab\t', 'tabs\tand\nnewlines\rmixed', '\r\nwindows newline\r\n',
  'line one\nline two\n\nline four', '   ', ' ', '', '\n', '\t',
  // zero-width, control, NBSP and other spaces
  'zero\u200bwidth space', 'joiner\u200dnon\u200cjoiner', 'bom\ufeffhere', 'bell\u0007 esc\u001b del\u007f nul\u0000 end',
  'soft\u00adhyphen', 'rtl\u200fmark lrm\u200e', 'line\u2028sep para\u2029sep', '\u0085next line', 'non\u00a0breaking\u00a0space',
  'narrow\u202fnbsp and ideographic\u3000space', 'en\u2002em\u2003thin\u2009hair\u200a spaces', 'word\u2060joiner',
  '\ue000 private \u0378 unassigned', 'replacement \ufffd char', 'c1\u0080\u009f controls',
  // URLs and e-mail
  'https://example.com/path?q=1&r=a+b#frag', 'www.foo-bar.org/~user/index.html', 'mailto:user@example.com',
  'see http://localhost:8080/api/v1/items?id=42&sort=desc|asc', 'ftp://files.example.org/pub/file_name-v2.tar.gz',
  // long words (WordPiece gives up above 100 characters)
  'a'.repeat(120), 'supercalifragilistic'.repeat(6), 'x'.repeat(100), 'y'.repeat(101), 'ab'.repeat(50) + 'c',
  'ä'.repeat(101), 'é'.repeat(100), '😀'.repeat(60), 'pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(3),
  // special-token spellings
  '[MASK] [CLS] [sep] [SEP] [UNK] [PAD]', '<|endoftext|> and <|endoftext|>', '<s> </s> <mask> <unk> <pad>', 'a <mask> b',
  '<|begin_of_text|>hello<|end_of_text|>', '<|im_start|>user\nhi<|im_end|>', '[NEW] token', 'not<s>special</s>here',
  // mixed
  'naïve\u00a0café 😀+😀=😀', 'Mixed 中文 and English, 日本 and 1234.',
]

const EXTRA = [
  'Café au lait, naïve façade, résumé and Ångström in São Paulo.',
  'Zürich ist schön; Straße und Öl.',
  '中文字符和标点。日本語のテキスト、한국어 텍스트.',
  'Ελληνικά και Русский язык, עברית, العربية.',
  'Prices: €5, £3, $9.99 and 100% of 1,000,000 units.',
  'x + y = z, a < b > c, p | q ^ r ~ s.',
  'Visit https://example.com/path?q=1&r=2 for more.',
  'It\'s what they\'re saying: we\'ll see, I\'m sure you\'ve heard, he\'d know.',
  'The years 1999, 2024 and 31415926 are numbers.',
  'Tabs\tand  double  spaces\nand new lines.',
]

function trainingLines() {
  const corpus = fs.readFileSync(path.join(ROOT, 'data', 'wordnet-examples.txt'), 'utf8').split('\n').filter((l) => l.length > 0)
  const lines = corpus.slice(0, 3000)
  for (let i = 0; i < 20; i++) lines.push(...EXTRA)
  return lines
}

// Plain BPE: repeatedly merge the most frequent adjacent pair (ties: the lexicographically smallest pair).
function learnMerges(wordCounts, count) {
  const words = [...wordCounts.entries()].map(([symbols, n]) => ({ s: symbols.slice(), n }))
  const merges = []
  for (let k = 0; k < count; k++) {
    const pairs = new Map()
    for (const w of words) for (let i = 0; i + 1 < w.s.length; i++) {
      const key = w.s[i] + '\u0000' + w.s[i + 1]
      pairs.set(key, (pairs.get(key) || 0) + w.n)
    }
    let best = null, bestCount = 1
    for (const [key, n] of pairs) if (n > bestCount || (n === bestCount && best !== null && key < best)) { best = key; bestCount = n }
    if (best === null) break
    const [a, b] = best.split('\u0000')
    merges.push([a, b])
    for (const w of words) {
      const out = []
      for (let i = 0; i < w.s.length; i++) {
        if (i + 1 < w.s.length && w.s[i] === a && w.s[i + 1] === b) { out.push(a + b); i++ } else out.push(w.s[i])
      }
      w.s = out
    }
  }
  return merges
}

function countWords(pieces) {
  const counts = new Map()
  const keys = new Map()
  for (const piece of pieces) {
    const symbols = Array.from(piece)
    const key = symbols.join('\u0001')
    if (!keys.has(key)) keys.set(key, symbols)
    const s = keys.get(key)
    counts.set(s, (counts.get(s) || 0) + 1)
  }
  return counts
}

function preTokenizer(definition) {
  const tok = hf.Tokenizer.fromString(JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: definition.normalizer ?? null,
    pre_tokenizer: definition.pre_tokenizer, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
  }))
  const normalizer = tok.getNormalizer(), pre = tok.getPreTokenizer()
  return (text) => pre.preTokenizeString(normalizer ? normalizer.normalizeString(text) : text).map((p) => p[0])
}

function added(id, content, special = true) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special }
}

function template(single, specials) {
  const pieces = (names) => names.map((n) => n === '$A' ? { Sequence: { id: 'A', type_id: 0 } }
    : n === '$B' ? { Sequence: { id: 'B', type_id: 1 } } : { SpecialToken: { id: n, type_id: n.endsWith(':1') ? 1 : 0 } })
  const special_tokens = {}
  for (const [name, id] of specials) special_tokens[name] = { id: name, ids: [id], tokens: [name] }
  return { type: 'TemplateProcessing', single: pieces(single), pair: pieces([...single, '$B']), special_tokens }
}

function save(name, definition, config) {
  const folder = path.join(OUT, name)
  fs.mkdirSync(folder, { recursive: true })
  const tok = hf.Tokenizer.fromString(JSON.stringify(definition))
  tok.save(path.join(folder, 'tokenizer.json'), true)
  const configPath = path.join(folder, 'tokenizer_config.json')
  if (config) fs.writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n')
  else fs.rmSync(configPath, { force: true })
  console.log(`${name}: ${tok.getVocabSize(true)} ids`)
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

function byteLevelModel(lines, normalizer, splitPattern, mergeCount, ignoreMerges) {
  const pre = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: splitPattern }, behavior: 'Isolated', invert: false }, BYTE_LEVEL] }
  const split = preTokenizer({ normalizer, pre_tokenizer: pre })
  const merges = learnMerges(countWords(lines.flatMap(split)), mergeCount)
  const vocab = {}
  for (const c of hf.byteLevelAlphabet().sort()) vocab[c] = Object.keys(vocab).length
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length
  return { pre, model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, ignore_merges: ignoreMerges, vocab, merges } }
}

function llama3(lines) {
  const { pre, model } = byteLevelModel(lines, null, LLAMA3_SPLIT, 700, true)
  const n = Object.keys(model.vocab).length
  const specials = ['<|begin_of_text|>', '<|end_of_text|>', '<|reserved_special_token_0|>', '<|eot_id|>']
  save('llama3-bpe', {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.map((s, i) => added(n + i, s)),
    normalizer: null, pre_tokenizer: pre,
    post_processor: { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      template(['<|begin_of_text|>', '$A'], [['<|begin_of_text|>', n]]),
    ] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model,
  }, { bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>', tokenizer_class: 'PreTrainedTokenizerFast', model_max_length: 131072 })
}

function qwen2(lines) {
  const normalizer = { type: 'NFC' }
  const { pre, model } = byteLevelModel(lines, normalizer, QWEN2_SPLIT, 700, false)
  const n = Object.keys(model.vocab).length
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
  save('qwen2-bpe', {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.map((s, i) => added(n + i, s)),
    normalizer, pre_tokenizer: pre,
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model,
  }, { add_prefix_space: false, bos_token: null, eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', unk_token: null,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'], tokenizer_class: 'Qwen2Tokenizer', errors: 'replace' })
}

// SentencePiece-style pieces: "▁" before the sentence and for every space, pieces start at each "▁".
function spmModel(lines) {
  const pieces = []
  const charCounts = new Map()
  for (const line of lines) {
    const normalized = '\u2581' + line.replace(/ /g, '\u2581')
    for (const c of Array.from(normalized)) charCounts.set(c, (charCounts.get(c) || 0) + 1)
    pieces.push(...normalized.split(/(?=\u2581)/u).filter((p) => p.length > 0))
  }
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2 }
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = Object.keys(vocab).length
  // Characters seen at least five times get a piece; the rest fall back to their UTF-8 bytes.
  const chars = [...charCounts.entries()].filter(([, n]) => n >= 5).sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).map(([c]) => c)
  for (const c of chars) vocab[c] = Object.keys(vocab).length
  const known = new Set(chars)
  const words = countWords(pieces.filter((p) => Array.from(p).every((c) => known.has(c))))
  const merges = learnMerges(words, 700)
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length
  return { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges }
}

function spm(lines) {
  const model = spmModel(lines)
  const specialTokens = [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')]
  const config = (addEos) => ({ add_bos_token: true, add_eos_token: addEos, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>',
    pad_token: null, legacy: addEos, tokenizer_class: 'LlamaTokenizer', model_max_length: 4096 })
  save('llama2-spm', {
    version: '1.0', truncation: null, padding: null, added_tokens: specialTokens,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: template(['<s>', '$A'], [['<s>', 1]]),
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model,
  }, config(true))
  save('mistral-spm', {
    version: '1.0', truncation: null, padding: null, added_tokens: specialTokens,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
    post_processor: template(['<s>', '$A'], [['<s>', 1]]),
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
    model,
  }, config(false))
}

function wordpiece(lines) {
  const normalizer = { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: false }
  const split = preTokenizer({ normalizer, pre_tokenizer: { type: 'BertPreTokenizer' } })
  const wordCounts = new Map(), chars = new Set(), suffixes = new Map()
  for (const word of lines.flatMap(split)) {
    wordCounts.set(word, (wordCounts.get(word) || 0) + 1)
    const symbols = Array.from(word)
    for (const c of symbols) chars.add(c)
    for (const k of [2, 3, 4]) if (symbols.length > k + 1) {
      const s = symbols.slice(-k).join('')
      suffixes.set(s, (suffixes.get(s) || 0) + 1)
    }
  }
  const vocab = {}
  for (const t of ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']) vocab[t] = Object.keys(vocab).length
  for (const c of [...chars].sort()) { vocab[c] = Object.keys(vocab).length; vocab['##' + c] = Object.keys(vocab).length }
  const top = (map, n) => [...map.entries()].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).slice(0, n).map(([w]) => w)
  for (const w of top(wordCounts, 1200)) if (!(w in vocab)) vocab[w] = Object.keys(vocab).length
  for (const s of top(suffixes, 300)) if (!('##' + s in vocab)) vocab['##' + s] = Object.keys(vocab).length
  save('wordpiece', {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => added(vocab[t], t)),
    normalizer, pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: template(['[CLS]', '$A', '[SEP]'], [['[CLS]', vocab['[CLS]']], ['[SEP]', vocab['[SEP]']]]),
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  }, { additional_special_tokens: ['[NEW]'], tokenizer_class: 'BertTokenizer' })
}

// GPT-2 in tokenizer.json form: the gpt2-tiny fixture's vocab.json + merges.txt behind ByteLevel with GPT-2's own split pattern.
async function gpt2() {
  const fixture = path.join(ROOT, 'tests', 'NativeMi.Tests', 'fixtures', 'gpt2-tiny')
  const model = await hf.BPE.fromFile(path.join(fixture, 'vocab.json'), path.join(fixture, 'merges.txt'), { continuingSubwordPrefix: '', endOfWordSuffix: '', fuseUnk: false })
  const tok = new hf.Tokenizer(model)
  tok.setPreTokenizer(hf.byteLevelPreTokenizer(false, true))
  tok.setPostProcessor(hf.byteLevelProcessing(true))
  tok.addSpecialTokens(['<|endoftext|>'])
  const file = path.join(OUT, 'gpt2-bpe.tmp.json')
  tok.save(file, false)
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'))
  fs.rmSync(file)
  saved.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }
  save('gpt2-bpe', saved, null)
}

// Unigram (as T5 and XLM-R use it): the llama2-spm pieces with scores by length, Metaspace, byte fallback.
function unigram(lines) {
  const bpe = spmModel(lines)
  const vocab = Object.keys(bpe.vocab).map((piece, i) => [piece, i < 3 ? 0 : piece.startsWith('<0x') ? -20 : -10 + Math.min(9, Array.from(piece).length) - i / 10000])
  save('unigram-spm', {
    version: '1.0', truncation: null, padding: null, added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
    post_processor: template(['$A', '</s>'], [['</s>', 2]]),
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 0, vocab, byte_fallback: true },
  }, { eos_token: '</s>', unk_token: '<unk>', tokenizer_class: 'T5Tokenizer' })
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true })
  fs.writeFileSync(path.join(OUT, 'lines.json'), JSON.stringify(LINES, null, 1) + '\n')
  const lines = trainingLines()
  llama3(lines)
  qwen2(lines)
  spm(lines)
  wordpiece(lines)
  unigram(lines)
  await gpt2()
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1) })
