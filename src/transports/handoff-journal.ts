/**
 * The transport's side of the handoff journal (core/types.ts HandoffJournal): the recipients an
 * upstream took are noted the moment its reply is read, in the thread that read it, before the
 * outcome goes back to the delivery manager. That trip (another thread's event loop, the manager's
 * bookkeeping) is where a crash used to fall between "the upstream has it" and "the spool knows",
 * and the message was sent again after the restart. Postfix's smtp client likewise marks a recipient
 * done in the queue file itself, before it reports to its queue manager.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { HandoffJournal } from '../core/types.ts';

export class HandoffJournals {
  /** One descriptor per journal file (a relay has one: its spool's), opened for appending. */
  private fds = new Map<string, number>();

  /**
   * Appends one line per recipient in one write(2). Never throws: a note that cannot be written only
   * means a crash in the next instants sends the message again, as without the journal.
   */
  note(journal: HandoffJournal | undefined, recipients: string[], onError?: (err: unknown) => void): void {
    if (!journal) return;
    // an address never holds a line end (RFC 5321); one that did would only go unnoted
    const lines = recipients.filter((r) => !/[\r\n]/.test(r)).map((r) => `${journal.prefix}${r}\n`).join('');
    if (!lines) return;
    try {
      let fd = this.fds.get(journal.file);
      if (fd === undefined) {
        fd = openSync(journal.file, 'a', 0o600);
        this.fds.set(journal.file, fd);
      }
      writeSync(fd, lines);
    } catch (err) {
      onError?.(err);
    }
  }

  close(): void {
    for (const fd of this.fds.values()) {
      try {
        closeSync(fd);
      } catch { /* already closed */ }
    }
    this.fds.clear();
  }
}
