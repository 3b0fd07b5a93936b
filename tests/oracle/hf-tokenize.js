'use strict'
// The tokenizer oracle of the C# tests: Hugging Face's own tokenizers library (its Rust core, through the
// Node bindings) encodes every line of a JSON array of strings with the tokenizer of a model folder, built
// the way transformers' fast tokenizers build it:
//   - tokenizer.json when the folder has one (truncation and padding off, as transformers leaves them
//     when a call asks for neither); tokenizer_config.json's add_bos_token / add_eos_token then rebuild the
//     post-processor the way LlamaTokenizerFast.update_post_processor does;
//   - vocab.txt: what transformers' BertConverter makes (BertNormalizer honouring do_lower_case,
//     strip_accents and tokenize_chinese_chars; BertPreTokenizer; WordPiece; [CLS] $A [SEP]);
//   - vocab.json + merges.txt: GPT2Converter or RobertaConverter (ByteLevel with add_prefix_space; BPE;
//     the add_bos_token template or RobertaProcessing), chosen by tokenizer_class, else by config.json's
//     model_type.
// The folder's special tokens (tokenizer_config.json's *_token fields, additional_special_tokens and
// added_tokens_decoder) become special added tokens, as PreTrainedTokenizerFast.__init__ adds them.
// This builds the tokenizers from the library's model classes, not from the JSON the C# code writes, so
// the two constructions are independent.
//
// usage: node hf-tokenize.js FOLDER TEXTS.json > RESULT.json
// RESULT: { version, vocab_size, added_tokens: [{id, content, special}], results: [{ids, ids_with_special, special_mask}] }
// ids: add_special_tokens=false; ids_with_special: add_special_tokens=true; special_mask: what the library
// marks as added by the post-processor.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const hf = require('tokenizers')

function readJson(file) {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null
}

function content(token) {
  return token == null ? null : typeof token === 'string' ? token : token.content
}

// transformers' *_token attributes of the tokenizer class (in SPECIAL_TOKENS_ATTRIBUTES order), with the class's defaults.
const NAMED = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask']
function specialTokens(config, defaults) {
  const named = {}
  for (const key of NAMED) {
    const value = key + '_token' in config ? content(config[key + '_token']) : defaults[key]
    if (value != null) named[key] = value
  }
  return named
}

// Special tokens as transformers adds them to the backend (PreTrainedTokenizerFast.__init__): added_tokens_decoder
// first (by id), then every named or additional special token the tokenizer does not have yet.
function flags(t, special) {
  return {
    singleWord: Boolean(t.single_word), leftStrip: Boolean(t.lstrip), rightStrip: Boolean(t.rstrip),
    normalized: t.normalized ?? !special,
  }
}

function addFolderTokens(tok, config, named, options = {}) {
  const seen = new Set(addedTokens(tok).map((t) => t.content))
  const added = []
  const decoder = config.added_tokens_decoder || {}
  const additional = (config.additional_special_tokens || [])
  const special = new Set([...Object.values(named), ...additional.map(content)])
  for (const id of Object.keys(decoder).map(Number).sort((a, b) => a - b)) {
    const t = decoder[String(id)]
    if (seen.has(t.content)) continue
    const isSpecial = Boolean(t.special) || special.has(t.content)
    added.push(new hf.AddedToken(t.content, isSpecial, flags(t, isSpecial)))
    seen.add(t.content)
  }
  const fields = Object.keys(named).map((key) => [named[key], config[key + '_token']])
  for (const [value, raw] of [...fields, ...additional.map((t) => [content(t), t])]) {
    if (seen.has(value)) continue
    seen.add(value)
    const given = raw != null && typeof raw === 'object' ? flags(raw, true) : options[value] || {}
    added.push(new hf.AddedToken(value, true, given))
  }
  if (added.length > 0) tok.addAddedTokens(added)
}

function requireId(tok, token, folder) {
  const id = tok.tokenToId(token)
  if (id == null) throw new Error(`${folder}: special token ${JSON.stringify(token)} has no id`)
  return id
}

const LLAMA_CLASSES = /^(Llama|CodeLlama|Gemma)Tokenizer(Fast)?$/

async function load(folder) {
  const config = readJson(path.join(folder, 'tokenizer_config.json')) || {}
  const modelConfig = readJson(path.join(folder, 'config.json')) || {}
  const tokenizerJson = path.join(folder, 'tokenizer.json')
  if (fs.existsSync(tokenizerJson)) {
    const tok = hf.Tokenizer.fromFile(tokenizerJson)
    tok.disableTruncation()
    tok.disablePadding()
    addFolderTokens(tok, config, specialTokens(config, {}))
    const llama = LLAMA_CLASSES.test(config.tokenizer_class || '')
    if (llama || 'add_bos_token' in config || 'add_eos_token' in config) {
      const addBos = config.add_bos_token ?? llama
      const addEos = config.add_eos_token ?? false
      const bos = content(config.bos_token), eos = content(config.eos_token)
      const single = [], specials = []
      if (addBos) { single.push(`${bos}:0`); specials.push([bos, requireId(tok, bos, folder)]) }
      single.push('$A:0')
      if (addEos) { single.push(`${eos}:0`); if (!specials.some((s) => s[0] === eos)) specials.push([eos, requireId(tok, eos, folder)]) }
      const pair = [...single]
      if (addBos) pair.push(`${bos}:1`)
      pair.push('$B:1')
      if (addEos) pair.push(`${eos}:1`)
      tok.setPostProcessor(hf.templateProcessing(single.join(' '), pair.join(' '), specials))
    }
    return tok
  }
  if (fs.existsSync(path.join(folder, 'vocab.txt'))) {
    const named = specialTokens(config, { unk: '[UNK]', sep: '[SEP]', pad: '[PAD]', cls: '[CLS]', mask: '[MASK]' })
    const model = await hf.WordPiece.fromFile(path.join(folder, 'vocab.txt'), { unkToken: named.unk })
    const tok = new hf.Tokenizer(model)
    const lowercase = config.do_lower_case ?? true
    tok.setNormalizer(hf.bertNormalizer({
      cleanText: true,
      handleChineseChars: config.tokenize_chinese_chars ?? true,
      // BertNormalizer's strip_accents = None follows lowercase; the binding takes only true or false.
      stripAccents: config.strip_accents ?? lowercase,
      lowercase,
    }))
    tok.setPreTokenizer(hf.bertPreTokenizer())
    addFolderTokens(tok, config, named)
    const cls = named.cls, sep = named.sep
    tok.setPostProcessor(hf.templateProcessing(`${cls}:0 $A:0 ${sep}:0`, `${cls}:0 $A:0 ${sep}:0 $B:1 ${sep}:1`,
      [[cls, requireId(tok, cls, folder)], [sep, requireId(tok, sep, folder)]]))
    tok.setDecoder(hf.wordPieceDecoder('##'))
    return tok
  }
  const vocab = path.join(folder, 'vocab.json'), merges = path.join(folder, 'merges.txt')
  if (fs.existsSync(vocab) && fs.existsSync(merges)) {
    const cls = config.tokenizer_class || ''
    const roberta = /^Roberta/.test(cls) ? true : /^GPT2/.test(cls) ? false : modelConfig.model_type !== 'gpt2'
    const model = await hf.BPE.fromFile(vocab, merges, { continuingSubwordPrefix: '', endOfWordSuffix: '', fuseUnk: false })
    const tok = new hf.Tokenizer(model)
    const addPrefixSpace = config.add_prefix_space ?? false
    tok.setPreTokenizer(hf.byteLevelPreTokenizer(addPrefixSpace, true))
    if (roberta) {
      const named = specialTokens(config, { bos: '<s>', eos: '</s>', sep: '</s>', cls: '<s>', unk: '<unk>', pad: '<pad>', mask: '<mask>' })
      addFolderTokens(tok, config, named, { [named.mask]: { leftStrip: true, rightStrip: false, normalized: false } })
      tok.setPostProcessor(hf.robertaProcessing([named.sep, requireId(tok, named.sep, folder)],
        [named.cls, requireId(tok, named.cls, folder)], true, addPrefixSpace))
    } else {
      const named = specialTokens(config, { bos: '<|endoftext|>', eos: '<|endoftext|>', unk: '<|endoftext|>', pad: null })
      addFolderTokens(tok, config, named)
      if (config.add_bos_token) {
        const bos = named.bos
        tok.setPostProcessor(hf.templateProcessing(`${bos}:0 $A:0`, `${bos}:0 $A:0 $B:1`, [[bos, requireId(tok, bos, folder)]]))
      } else {
        tok.setPostProcessor(hf.byteLevelProcessing(false))
      }
    }
    return tok
  }
  throw new Error(`${folder}: no tokenizer.json, vocab.txt, or vocab.json with merges.txt`)
}

function addedTokens(tok) {
  const file = path.join(os.tmpdir(), `hf-oracle-${process.pid}-${Date.now()}.json`)
  try {
    tok.save(file, false)
    return JSON.parse(fs.readFileSync(file, 'utf8')).added_tokens.map((t) => ({ id: t.id, content: t.content, special: t.special }))
  } finally {
    fs.rmSync(file, { force: true })
  }
}

async function main() {
  const [folder, input] = process.argv.slice(2)
  if (!folder || !input) throw new Error('usage: node hf-tokenize.js FOLDER TEXTS.json')
  const tok = await load(folder)
  const texts = JSON.parse(fs.readFileSync(input, 'utf8'))
  const results = []
  for (let start = 0; start < texts.length; start += 2000) {
    const chunk = texts.slice(start, start + 2000)
    const plain = await tok.encodeBatch(chunk, { addSpecialTokens: false })
    const full = await tok.encodeBatch(chunk, { addSpecialTokens: true })
    for (let i = 0; i < chunk.length; i++) {
      results.push({ ids: plain[i].getIds(), ids_with_special: full[i].getIds(), special_mask: full[i].getSpecialTokensMask() })
    }
  }
  const output = {
    version: require('tokenizers/package.json').version,
    vocab_size: tok.getVocabSize(true),
    added_tokens: addedTokens(tok),
    results,
  }
  process.stdout.write(JSON.stringify(output))
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e))
  process.exit(1)
})
