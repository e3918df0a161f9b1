import { Template } from '@huggingface/jinja';
import type { TextTokenizer } from './tokenizer.js';

/** One chat turn. `content` is text; other keys (tool calls, names) are passed to the template as they are. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

/** Options of {@link ChatTemplate.render}. */
export interface RenderOptions {
  /** Append the prompt that starts an assistant turn (HF's `add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /** More variables for the template (e.g. `tools`, `date_string`). */
  extra?: Record<string, unknown>;
}

/** Token ids of a conversation and which of them carry loss. */
export interface ChatTokens {
  ids: number[];
  /** 1 where the token belongs to an assistant turn (loss is taken on it), 0 elsewhere. */
  trainable: number[];
}

/**
 * A Jinja chat template (the `chat_template` of `tokenizer_config.json`) rendered by
 * `@huggingface/jinja` with the globals Hugging Face transformers gives it: `messages`,
 * `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception` (and anything in `extra`).
 * Blocks are trimmed as transformers does (`trim_blocks`, `lstrip_blocks`).
 */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    /** The template text. */
    readonly source: string,
    private readonly tokens: { bosToken?: string | null; eosToken?: string | null } = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new Error(`ChatTemplate: cannot parse the template: ${(e as Error).message}`);
    }
  }

  /** The template of a tokenizer (its `chatTemplate`), with its BOS/EOS token strings. */
  static fromTokenizer(tok: TextTokenizer & { chatTemplate?: string | null }, source?: string): ChatTemplate {
    const s = source ?? tok.chatTemplate;
    if (!s) throw new Error('ChatTemplate.fromTokenizer: the tokenizer has no chat_template and none was given');
    return new ChatTemplate(s, { bosToken: tok.bosToken, eosToken: tok.eosToken });
  }

  /** The conversation as text, exactly as the template specifies. Errors raised by the template (`raise_exception`) are thrown. */
  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    return this.template.render({
      ...opts.extra,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: this.tokens.bosToken ?? '',
      eos_token: this.tokens.eosToken ?? '',
    });
  }

  /**
   * Ids of the rendered conversation and a mask that is 1 on assistant turns only. The text is cut
   * where each assistant turn starts (the render of the turns before it with the generation
   * prompt) and ends (the render including it); each piece is tokenized on its own, so ids equal
   * `tokenizer.encode(render(messages))` whenever the cuts fall on pre-token boundaries, which
   * they do for templates that close turns with special tokens (ChatML, Llama).
   */
  tokenize(
    tokenizer: TextTokenizer,
    messages: readonly ChatMessage[],
    opts: { extra?: Record<string, unknown> } = {},
  ): ChatTokens {
    const full = this.render(messages, { extra: opts.extra });
    const pieces: Array<[string, 0 | 1]> = [];
    let at = 0;
    for (let i = 0; i < messages.length; i++) {
      if ((messages[i] as ChatMessage).role !== 'assistant') continue;
      const before = this.render(messages.slice(0, i), { addGenerationPrompt: true, extra: opts.extra });
      const through = this.render(messages.slice(0, i + 1), { extra: opts.extra });
      if (!through.startsWith(before) || !full.startsWith(through) || before.length < at) {
        throw new Error(
          `ChatTemplate.tokenize: the template does not render message ${i} (assistant) as an extension of the messages before it; cannot locate the assistant turn`,
        );
      }
      pieces.push([full.slice(at, before.length), 0], [full.slice(before.length, through.length), 1]);
      at = through.length;
    }
    pieces.push([full.slice(at), 0]);
    const ids: number[] = [];
    const trainable: number[] = [];
    for (const [text, t] of pieces) {
      if (text.length === 0) continue;
      for (const id of tokenizer.encode(text)) {
        ids.push(id);
        trainable.push(t);
      }
    }
    return { ids, trainable };
  }
}
