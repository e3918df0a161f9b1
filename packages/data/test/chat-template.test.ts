import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChatMessage, ChatTemplate, HfTokenizer } from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { fixtures } from './helpers.js';

const fx = JSON.parse(readFileSync(join(fixtures, 'chat-templates.json'), 'utf8')) as {
  templates: Record<string, string>;
  cases: Array<{
    template: string;
    conversation: string;
    context: {
      messages: ChatMessage[];
      add_generation_prompt: boolean;
      bos_token: string;
      eos_token: string;
      tools?: unknown;
    };
    rendered?: string;
    error?: string;
  }>;
};

describe('ChatTemplate renders as Python Jinja2 (HF settings) does', () => {
  it('matches every reference rendering exactly, and raises where the template raises', () => {
    expect(fx.cases.length).toBe(18);
    for (const c of fx.cases) {
      const t = new ChatTemplate(fx.templates[c.template] as string, {
        bosToken: c.context.bos_token,
        eosToken: c.context.eos_token,
      });
      const run = () =>
        t.render(c.context.messages, {
          addGenerationPrompt: c.context.add_generation_prompt,
          extra: c.context.tools ? { tools: c.context.tools } : {},
        });
      const label = `${c.template}/${c.conversation}/${c.context.add_generation_prompt}`;
      if (c.error !== undefined) expect(run, label).toThrow(c.error);
      else expect(run(), label).toBe(c.rendered);
    }
  });
});

describe('ChatTemplate.tokenize: loss only on assistant turns', () => {
  it('masks everything but the assistant turns, and ids equal tokenizing the whole render', async () => {
    const tok = await HfTokenizer.fromFile(join(fixtures, 'bpe-shakespeare'));
    const t = new ChatTemplate(fx.templates.chatml as string);
    const messages = fx.cases.find((c) => c.template === 'chatml' && c.conversation === 'multi')?.context
      .messages as ChatMessage[];
    const { ids, trainable } = t.tokenize(tok, messages);
    expect(ids).toEqual(tok.encode(t.render(messages)));
    // the trainable runs decode to exactly the assistant replies with their closing token
    const runs: string[] = [];
    let cur: number[] = [];
    trainable.forEach((m, i) => {
      if (m) cur.push(ids[i] as number);
      else if (cur.length) {
        runs.push(tok.decode(cur));
        cur = [];
      }
    });
    if (cur.length) runs.push(tok.decode(cur));
    const replies = messages.filter((m) => m.role === 'assistant').map((m) => `${m.content}<|im_end|>\n`);
    expect(runs).toEqual(replies);
  });
});
