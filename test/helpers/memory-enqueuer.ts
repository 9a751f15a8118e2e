/**
 * A recording Enqueuer and Quarantine for listener and pickup tests: keeps every message in
 * memory, resolves only after the whole content stream ended (as the real spool resolves only
 * after fsync), and rejects when the stream errors or when told to fail.
 */
import type { Envelope, Enqueuer, Quarantine, QueueId } from '../../src/core/types.ts';

export interface StoredMessage {
  id: QueueId;
  envelope: Envelope;
  content: Buffer;
}

export class MemoryEnqueuer implements Enqueuer, Quarantine {
  messages: StoredMessage[] = [];
  quarantined: Array<{ name: string; reason: string; content: Buffer }> = [];
  /** When set, enqueue consumes the content and then rejects with this error. */
  failWith: Error | undefined;
  /** Milliseconds to wait after the content ended before resolving (a slow disk). */
  delayMs = 0;
  /** Stream errors seen (refused or aborted messages). */
  aborted = 0;
  private counter = 0;
  private waiters: Array<() => void> = [];

  async enqueue(envelope: Envelope, content: Buffer | NodeJS.ReadableStream, givenId?: QueueId): Promise<QueueId> {
    let data: Buffer;
    if (Buffer.isBuffer(content)) {
      data = content;
    } else {
      const chunks: Buffer[] = [];
      try {
        for await (const c of content as AsyncIterable<Buffer | string>) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
      } catch (err) {
        this.aborted++;
        throw err;
      }
      data = Buffer.concat(chunks);
    }
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failWith) throw this.failWith;
    // a caller-made id is kept, as the spool keeps it (the listener names it in the Received header)
    const id = givenId ?? `TEST${String(++this.counter).padStart(4, '0')}`;
    this.messages.push({ id, envelope: structuredClone(envelope), content: data });
    this.wake();
    return id;
  }

  async quarantine(content: Buffer, reason: string, originalName: string): Promise<void> {
    this.quarantined.push({ name: originalName, reason, content });
    this.wake();
  }

  /** Resolves once `n` messages (or quarantined files) have arrived, or rejects after ms. */
  async waitFor(n: number, ms = 5000, kind: 'messages' | 'quarantined' = 'messages'): Promise<void> {
    const end = Date.now() + ms;
    while (this[kind].length < n) {
      if (Date.now() > end) throw new Error(`expected ${n} ${kind}, got ${this[kind].length} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  private wake(): void {
    const w = this.waiters.splice(0);
    for (const f of w) f();
  }
}
