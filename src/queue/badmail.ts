/**
 * badmail/: what could not be delivered, as IIS kept it, for an admin to read and resubmit.
 *
 *   NAME.BAD  the message. For a queued message the failed envelope is written on top as
 *             `X-Sender:` / `X-Receiver:` lines (the IIS / .NET pickup format), so copying the file
 *             into pickup/ resends it to exactly the recipients that failed, from the original sender.
 *   NAME.BDR  plain text with CRLF line ends (opens in Notepad): the reason, written by the caller.
 *
 * Both files and the folder are fsynced before the promise resolves. A name already taken gets a
 * numeric suffix (NAME-2.BAD) instead of overwriting an earlier failure.
 */
import { access, createReadStream } from 'node:fs';
import { link } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import path from 'node:path';
import type { SpoolPaths } from './paths.ts';
import { streamToFileSynced, writeFileSynced, unlinkIfExists, type DirectorySyncer } from './durable.ts';

const exists = async (p: string) => promisify(access)(p).then(() => true, () => false);

/** Turns any text into CRLF line ends (for Notepad). */
export function toCrlf(text: string): string {
  return text.replace(/\r\n|\r|\n/g, '\r\n').replace(/(\r\n)?$/, '\r\n');
}

/** A file name safe in badmail/: no folders, no odd characters. */
export function badmailBaseName(originalName: string): string {
  const base = path.basename(originalName).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '_');
  return base || 'unnamed';
}


export interface BadmailWrite {
  /** Base name (queue id, or the pickup file's name). */
  name: string;
  /** Message content: a Buffer, or a file to copy (streamed, not read into memory), only its first `size` octets when given (a queue file). */
  content: Buffer | { file: string; size?: number };
  /** When given, X-Sender / X-Receiver lines are written above the message. */
  envelope?: { mailFrom: string; recipients: string[] };
  /** The .BDR text (any line ends; written with CRLF). */
  reason: string;
}

/**
 * Writes NAME.BAD + NAME.BDR durably; returns the name used. Both are written and fsynced in tmp/
 * first and then linked into badmail/ (.BDR first), so a .BAD that an admin (or a script) sees in
 * badmail/ is always whole and has its reason beside it: copying one back into pickup/ never picks
 * up half a message. A link fails when the name is taken, so two failures never overwrite each other.
 */
export async function writeBadmail(paths: SpoolPaths, syncer: DirectorySyncer, item: BadmailWrite): Promise<string> {
  const base = badmailBaseName(item.name);
  const unique = `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const tmpBad = path.join(paths.folder('tmp'), `badmail-${unique}.BAD`);
  const tmpBdr = path.join(paths.folder('tmp'), `badmail-${unique}.BDR`);
  const head = item.envelope
    ? Buffer.from(`X-Sender: ${item.envelope.mailFrom || '<>'}\r\n${item.envelope.recipients.map((r) => `X-Receiver: ${r}\r\n`).join('')}`)
    : Buffer.alloc(0);
  const content = item.content;
  async function* bytes() {
    if (head.length) yield head;
    if (Buffer.isBuffer(content)) yield content;
    else if (content.size !== 0) for await (const chunk of createReadStream(content.file, content.size === undefined ? {} : { start: 0, end: content.size - 1 })) yield chunk as Buffer;
  }
  try {
    await Promise.all([streamToFileSynced(tmpBad, Readable.from(bytes())), writeFileSynced(tmpBdr, toCrlf(item.reason))]);
    const name = await linkUnderFreeName(paths, base, tmpBad, tmpBdr);
    await syncer.sync(paths.folder('badmail'));
    return name;
  } finally {
    await unlinkIfExists(tmpBad).catch(() => undefined);
    await unlinkIfExists(tmpBdr).catch(() => undefined);
  }
}

/** Links the pair into badmail/ as BASE, BASE-2, BASE-3, … whichever is free first. */
async function linkUnderFreeName(paths: SpoolPaths, base: string, bad: string, bdr: string): Promise<string> {
  for (let n = 1; n < 10_000; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    if (await exists(paths.badmail(name, '.BAD'))) continue;
    try {
      await link(bdr, paths.badmail(name, '.BDR'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    try {
      await link(bad, paths.badmail(name, '.BAD'));
      return name;
    } catch (e) {
      await unlinkIfExists(paths.badmail(name, '.BDR')).catch(() => undefined);
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  throw new Error(`badmail/ has no free name for ${base}`);
}
