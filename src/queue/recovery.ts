/**
 * Crash recovery, run once when the relay opens its spool, before anything else touches it.
 *
 * - tmp/: half-received messages (the client never heard 250) → deleted.
 * - incoming/: a message whose envelope file does not parse, or whose message file does not have the
 *   recorded size and CRC-32, was cut before its syncs finished (no 250 was given) → deleted.
 * - *.tmp beside envelope files: interrupted in-place rewrites → deleted (the old file is intact).
 * - *.json.locked: a move cut half-way → unlocked where it is (its message file is re-united below).
 * - a message file whose envelope file sits in another folder (a state change cut between its two
 *   renames) → moved beside its envelope file.
 * - a message file with no envelope file anywhere: in incoming/ it is an enqueue cut before its commit
 *   (no 250 was given) → deleted; elsewhere → badmail with the reason, never dropped silently.
 * - an envelope file with no message file: in incoming/ an enqueue cut before its syncs finished (no
 *   250) → deleted; elsewhere the content is lost → the envelope goes to badmail so the admin sees
 *   who lost what.
 * - active/: messages being delivered when the relay stopped → back to incoming/ (due now), marked
 *   possibleDuplicate because the upstream may have taken them already.
 * Every folder touched is fsynced before the relay starts.
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { Logger } from '../core/logger.ts';
import { QUEUE_STATES, ENVELOPE_EXT, MESSAGE_EXT, LOCKED_SUFFIX, type QueueFolder, type SpoolPaths } from './paths.ts';
import { replaceFileNow, unlinkIfExists, type DirectorySyncer } from './durable.ts';
import { parseRecord, serializeRecord } from './record.ts';
import { writeBadmail } from './badmail.ts';

export interface RecoveryReport {
  droppedPartial: number;
  requeuedActive: number;
  movedStragglers: number;
  toBadmail: number;
}

/** The envelope file parses and the message file has the recorded size and CRC-32. */
async function committedWhole(paths: SpoolPaths, id: string): Promise<boolean> {
  try {
    const rec = parseRecord(await readFile(paths.envelope('incoming', id), 'utf8'), id);
    if (rec.crc32 === undefined) return true;
    let size = 0;
    let crc = 0;
    for await (const chunk of createReadStream(paths.message('incoming', id))) {
      size += (chunk as Buffer).length;
      crc = crc32(chunk as Buffer, crc);
    }
    return size === rec.envelope.size && crc === rec.crc32;
  } catch {
    return false;
  }
}

export async function recoverSpool(paths: SpoolPaths, syncer: DirectorySyncer, logger: Logger): Promise<RecoveryReport> {
  const report: RecoveryReport = { droppedPartial: 0, requeuedActive: 0, movedStragglers: 0, toBadmail: 0 };
  for (const name of await readdir(paths.folder('tmp'))) {
    if (await unlinkIfExists(`${paths.folder('tmp')}/${name}`)) report.droppedPartial++;
  }

  const envelopes = new Map<string, QueueFolder>();
  const messages = new Map<string, QueueFolder[]>();
  for (const state of QUEUE_STATES) {
    for (let name of await readdir(paths.folder(state))) {
      if (name.endsWith(LOCKED_SUFFIX)) {
        // a move cut half-way: the envelope file is whole (rewritten atomically); unlock it where it is
        const plain = name.slice(0, -LOCKED_SUFFIX.length);
        await rename(`${paths.folder(state)}/${name}`, `${paths.folder(state)}/${plain}`);
        name = plain;
      }
      if (name.endsWith('.tmp')) await unlinkIfExists(`${paths.folder(state)}/${name}`);
      else if (name.endsWith(ENVELOPE_EXT)) envelopes.set(name.slice(0, -ENVELOPE_EXT.length), state);
      else if (name.endsWith(MESSAGE_EXT)) {
        const id = name.slice(0, -MESSAGE_EXT.length);
        messages.set(id, [...(messages.get(id) ?? []), state]);
      }
    }
  }

  for (const [id, states] of messages) {
    const home = envelopes.get(id);
    for (const state of states) {
      if (state === home) continue;
      if (home && !states.includes(home)) {
        await rename(paths.message(state, id), paths.message(home, id));
        report.movedStragglers++;
        states.push(home);
      } else if (home) {
        await unlinkIfExists(paths.message(state, id));
      } else if (state === 'incoming') {
        await unlinkIfExists(paths.message(state, id));
        report.droppedPartial++;
      } else {
        await writeBadmail(paths, syncer, { name: id, content: { file: paths.message(state, id) }, reason: 'Recovered at start: this message file had no envelope file, so its sender and recipients are unknown.\nCopy it into pickup/ after adding X-Sender: and X-Receiver: lines at the top to send it again.' });
        await unlinkIfExists(paths.message(state, id));
        report.toBadmail++;
      }
    }
  }

  for (const [id, state] of envelopes) {
    if (messages.get(id)?.length) continue;
    const file = paths.envelope(state, id);
    if (state === 'incoming') {
      // an enqueue cut before its syncs finished (both files are renamed in side by side): no 250 was given
      await unlinkIfExists(file);
      envelopes.delete(id);
      report.droppedPartial++;
      continue;
    }
    const text = await readFile(file, 'utf8');
    await writeBadmail(paths, syncer, { name: id, content: Buffer.from(text), reason: `Recovered at start: the message file of ${id} is missing; only its envelope (the .BAD file here) survived. The message cannot be sent again.` });
    await unlinkIfExists(file);
    envelopes.delete(id);
    report.toBadmail++;
  }

  // incoming/: the last enqueues before a crash may have been renamed in before their syncs finished
  // (no 250 was given for those); keep only messages whose envelope parses and whose content is whole.
  for (const [id, state] of envelopes) {
    if (state !== 'incoming') continue;
    if (await committedWhole(paths, id)) continue;
    await unlinkIfExists(paths.envelope('incoming', id));
    await unlinkIfExists(paths.message('incoming', id));
    envelopes.delete(id);
    report.droppedPartial++;
  }

  for (const [id, state] of envelopes) {
    if (state !== 'active') continue;
    const file = paths.envelope('active', id);
    try {
      const rec = parseRecord(await readFile(file, 'utf8'), file);
      rec.possibleDuplicate = true;
      rec.nextAttemptAt = 0;
      await replaceFileNow(file, serializeRecord(rec));
      await rename(file, paths.envelope('incoming', id));
      await rename(paths.message('active', id), paths.message('incoming', id));
      report.requeuedActive++;
    } catch (e) {
      logger.error({ err: e, id }, 'could not put an interrupted delivery back in line');
    }
  }

  for (const state of QUEUE_STATES) await syncer.sync(paths.folder(state));
  if (report.droppedPartial || report.requeuedActive || report.movedStragglers || report.toBadmail) {
    logger.warn(report, 'spool recovered after an unclean stop');
  }
  return report;
}
