/**
 * Crash recovery, run once when the relay opens its spool, before anything else touches it.
 *
 * - tmp/: half-received messages (the client never heard 250) and half-written moves → deleted.
 * - <id>.eml.locked: a move cut half-way. If the message's new file made it into a folder the move
 *   was committed → the locked (old) file is deleted; otherwise → unlocked where it is.
 * - incoming/: a queue file whose envelope (queue-file.ts) or message CRC-32 does not check out was
 *   cut before its syncs finished (no 250 was given) → deleted.
 * - elsewhere, a queue file whose envelope does not check out is damaged → badmail with the reason,
 *   never dropped silently.
 * - active/: messages being delivered when the relay stopped → back to incoming/ (due now), marked
 *   possibleDuplicate because the upstream may have taken them already; except those delivered.log
 *   names (settled: delivered, or failed with their NDR), which are removed. Recipients the log
 *   names as taken by an upstream are marked delivered (a message with none left pending is
 *   removed). The log is then emptied.
 * - incoming/: a queue file still marked "no 250 yet" (acknowledge.ts): with moveAsideUnanswered
 *   (same kernel boot as the last start) its client never heard 250 and sends it again → badmail/
 *   with the reason, logged and reported; otherwise (power loss, reboot, the setting off) → kept,
 *   its mark cleared (it proves nothing now and must not count after a later crash).
 * - A spool from before one file per message (<id>.eml + <id>.json) is converted (convertLegacy).
 * Every folder touched is fsynced before the relay starts.
 */
import { chmod, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import type { Logger } from '../core/logger.ts';
import { QUEUE_STATES, QUEUE_FILE_EXT, LEGACY_ENVELOPE_EXT, LOCKED_SUFFIX, DELIVERED_LOG, type QueueFolder, type SpoolPaths } from './paths.ts';
import { SPARE_PREFIX, unlinkIfExists, type DirectorySyncer } from './durable.ts';
import { parseRecord, type QueueRecord } from './record.ts';
import { crc32OfPrefix, readQueueFile, rewriteQueueFile } from './queue-file.ts';
import { writeBadmail } from './badmail.ts';
import { QUEUE_FILE_MODE, UNANSWERED_BIT } from './acknowledge.ts';

export interface RecoveryReport {
  droppedPartial: number;
  requeuedActive: number;
  /** Messages in active/ already settled (named in delivered.log, or all their recipients taken upstream): removed, not delivered again. */
  removedDelivered: number;
  /** Recipients of messages in active/ that delivered.log names as taken by an upstream: marked delivered. */
  recipientsTaken: number;
  /** Messages removed because an upstream had taken all their pending recipients (their 'delivered' event may not have been sent before the stop). */
  takenIds: string[];
  /** Moves cut half-way, finished or undone. */
  movedStragglers: number;
  toBadmail: number;
  /** Messages converted from the two-file layout. */
  converted: number;
  /** Messages set aside in badmail/ because their client never heard 250 (moveAsideUnanswered). */
  unanswered: Array<{ id: string; mailFrom: string; recipients: string[]; reason: string }>;
  /** Marks "no 250 yet" cleared on files kept (another boot, or moveAsideUnanswered off). */
  marksCleared: number;
}

export interface RecoveryOptions {
  /**
   * The kernel has not restarted since the relay last started (same boot id) and
   * queue.keepUnacknowledged is off: a file in incoming/ still marked "no 250 yet" was never
   * answered, and goes to badmail/ instead of being delivered (acknowledge.ts).
   */
  moveAsideUnanswered?: boolean;
}

const ext = (name: string, suffix: string) => (name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined);

export async function recoverSpool(paths: SpoolPaths, syncer: DirectorySyncer, logger: Logger, options: RecoveryOptions = {}): Promise<RecoveryReport> {
  const report: RecoveryReport = { droppedPartial: 0, requeuedActive: 0, removedDelivered: 0, recipientsTaken: 0, takenIds: [], movedStragglers: 0, toBadmail: 0, converted: 0, unanswered: [], marksCleared: 0 };
  for (const name of await readdir(paths.folder('tmp'))) {
    // spares (made ahead, or delivered files kept for reuse) are no lost message
    if ((await unlinkIfExists(`${paths.folder('tmp')}/${name}`)) && !name.startsWith(SPARE_PREFIX)) report.droppedPartial++;
  }

  const files = new Map<string, QueueFolder[]>();
  const locks: Array<{ state: QueueFolder; id: string }> = [];
  const legacy: Array<{ state: QueueFolder; id: string }> = [];
  for (const state of QUEUE_STATES) {
    for (const name of await readdir(paths.folder(state))) {
      const file = `${paths.folder(state)}/${name}`;
      let id: string | undefined;
      if ((id = ext(name, QUEUE_FILE_EXT + LOCKED_SUFFIX))) locks.push({ state, id });
      else if ((id = ext(name, QUEUE_FILE_EXT))) files.set(id, [...(files.get(id) ?? []), state]);
      else if ((id = ext(name, LEGACY_ENVELOPE_EXT + LOCKED_SUFFIX))) {
        await rename(file, `${paths.folder(state)}/${id}${LEGACY_ENVELOPE_EXT}`);
        legacy.push({ state, id });
      } else if ((id = ext(name, LEGACY_ENVELOPE_EXT))) legacy.push({ state, id });
      else if (name.endsWith('.tmp')) await unlinkIfExists(file);
    }
  }

  for (const { state, id } of locks) {
    const locked = paths.queueFile(state, id) + LOCKED_SUFFIX;
    if (files.has(id)) await unlinkIfExists(locked);
    else {
      await rename(locked, paths.queueFile(state, id));
      files.set(id, [state]);
    }
    report.movedStragglers++;
  }

  for (const item of legacy) await convertLegacy(paths, syncer, files, item, report);

  const records = new Map<string, { state: QueueFolder; record: QueueRecord }>();
  for (const [id, states] of files) {
    for (const state of states) {
      const file = paths.queueFile(state, id);
      try {
        const { record } = await readQueueFile(file, id);
        if (state === 'incoming' && record.crc32 !== undefined && (await crc32OfPrefix(file, record.envelope.size)) !== record.crc32) {
          throw new Error('the message does not match its checksum');
        }
        const seen = records.get(id);
        if (seen) {
          // not made by any move (a move locks the old file); keep the one written last
          const newer = (await stat(file)).mtimeMs >= (await stat(paths.queueFile(seen.state, id))).mtimeMs;
          const dropped = newer ? seen.state : state;
          logger.warn({ id, kept: newer ? state : seen.state, dropped }, 'a message was in two folders; the older copy is removed');
          await unlinkIfExists(paths.queueFile(dropped, id));
          if (!newer) continue;
        }
        records.set(id, { state, record });
      } catch (e) {
        if (state === 'incoming') {
          // renamed in before its syncs finished: no 250 was given for it
          await unlinkIfExists(file);
          report.droppedPartial++;
          continue;
        }
        await moveAside(paths, syncer, logger, file, id, state, e as Error);
        report.toBadmail++;
      }
    }
  }

  for (const [id, { state, record }] of records) {
    if (state !== 'incoming') continue;
    const file = paths.queueFile('incoming', id);
    const marked = await stat(file).then((st) => (st.mode & UNANSWERED_BIT) !== 0, () => false);
    if (!marked) continue;
    if (!options.moveAsideUnanswered) {
      await chmod(file, QUEUE_FILE_MODE);
      report.marksCleared++;
      continue;
    }
    const { mailFrom, recipients } = record.envelope;
    const reason = `Not acknowledged: the relay stopped after storing message ${id} but before its 250 reached the client (${record.envelope.client.address || 'unknown address'}), which therefore still holds it and sends it again; it was not delivered, to avoid a second copy. Resend this file (copy it into pickup/) only if the message does not arrive.`;
    try {
      await writeBadmail(paths, syncer, { name: id, content: { file, size: record.envelope.size }, envelope: { mailFrom, recipients }, reason: `${reason}\nFrom: ${mailFrom || '<>'}\nTo: ${recipients.join(', ')}\nReceived: ${record.envelope.receivedAt}` });
      await unlinkIfExists(file);
      records.delete(id);
      report.unanswered.push({ id, mailFrom, recipients, reason: 'not acknowledged: the relay stopped before its 250 reached the client, who sends it again' });
      logger.warn({ id, from: mailFrom, to: recipients, client: record.envelope.client.address }, `message ${id} set aside in badmail/: the relay stopped before its 250 reached the client, which sends it again`);
    } catch (e) {
      // kept and delivered: at worst a second copy, never a loss
      logger.error({ err: e, id }, 'could not set aside a message its client was not told about; it is delivered');
      await chmod(file, QUEUE_FILE_MODE).catch(() => undefined);
    }
  }

  const deliveredLog = `${paths.root}/${DELIVERED_LOG}`;
  const { settled, taken, lines } = readDeliveredLog(await readFile(deliveredLog, 'utf8').catch(() => ''));
  for (const [id, { state, record }] of records) {
    if (state !== 'active') continue;
    // recipients an upstream took just before the crash (noted by the transport): never sent again
    const tookThese = taken.get(id);
    let noted = 0;
    for (const r of record.recipients) {
      if (r.state !== 'pending' || !tookThese?.has(r.address)) continue;
      r.state = 'delivered';
      r.attempts++;
      noted++;
    }
    if (noted) report.recipientsTaken += noted;
    if (settled.has(id) || (noted > 0 && !record.recipients.some((r) => r.state === 'pending'))) {
      await unlinkIfExists(paths.queueFile('active', id));
      report.removedDelivered++;
      if (!settled.has(id)) {
        report.takenIds.push(id);
        logger.info({ id, recipients: [...tookThese ?? []] }, 'delivered just before an unclean stop (noted by the delivery thread): removed from active/, not sent again');
      }
      continue;
    }
    try {
      record.possibleDuplicate = true;
      record.nextAttemptAt = 0;
      await rewrite(paths, paths.queueFile('active', id), 'incoming', record);
      await unlinkIfExists(paths.queueFile('active', id));
      report.requeuedActive++;
    } catch (e) {
      logger.error({ err: e, id }, 'could not put an interrupted delivery back in line');
    }
  }

  for (const state of QUEUE_STATES) await syncer.sync(paths.folder(state));
  // after the folder syncs: the removals above are durable, the log has served
  if (lines > 0) await writeFile(deliveredLog, '');
  if (report.droppedPartial || report.requeuedActive || report.removedDelivered || report.recipientsTaken || report.movedStragglers || report.toBadmail || report.converted || report.unanswered.length || report.marksCleared) {
    const { takenIds: _ids, unanswered, ...counts } = report;
    logger.warn({ ...counts, setAsideUnacknowledged: unanswered.length }, 'spool recovered after an unclean stop');
  }
  return report;
}

/**
 * delivered.log's two kinds of line: "ID" (the message was settled: every recipient delivered, or
 * failed with its .BAD/.BDR and report written; spool.ts markDelivered) and "ID<TAB>recipient" (an
 * upstream took that recipient; written by the transport the moment it read the reply,
 * handoff-journal.ts). A line cut by the crash names nothing that matches.
 */
export function readDeliveredLog(text: string): { settled: Set<string>; taken: Map<string, Set<string>>; lines: number } {
  const settled = new Set<string>();
  const taken = new Map<string, Set<string>>();
  let lines = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    lines++;
    const tab = line.indexOf('\t');
    if (tab < 0) settled.add(line);
    else {
      const id = line.slice(0, tab);
      let set = taken.get(id);
      if (!set) taken.set(id, (set = new Set()));
      set.add(line.slice(tab + 1));
    }
  }
  return { settled, taken, lines };
}

/**
 * A damaged queue file goes to badmail/ with the reason. One that cannot even be copied (a folder
 * in its place, unreadable) is renamed there as found, beside a .BDR saying so; if even that fails
 * it is left where it is and logged: recovery never stops on one file.
 */
async function moveAside(paths: SpoolPaths, syncer: DirectorySyncer, logger: Logger, file: string, id: string, state: QueueFolder, why: Error): Promise<void> {
  const reason = `Recovered at start: the queue file of ${id} in ${state}/ is damaged (${why.message}).`;
  try {
    await writeBadmail(paths, syncer, { name: id, content: { file }, reason: `${reason}\nIts sender and recipients may be unreadable; the .BAD file is the whole queue file as found.\nTo send it again, keep only the message, add X-Sender: and X-Receiver: lines at the top, and copy it into pickup/.` });
    await unlinkIfExists(file);
  } catch (copyError) {
    const aside = `${paths.folder('badmail')}/${id}.damaged`;
    try {
      await rename(file, aside);
      await writeBadmail(paths, syncer, { name: id, content: Buffer.alloc(0), reason: `${reason}\nIt could not be copied (${(copyError as Error).message}); it was moved as found to badmail/${id}.damaged.` });
      logger.warn({ id, file, aside }, 'an unreadable queue file was moved aside');
    } catch (moveError) {
      logger.error({ id, file, err: (moveError as Error).message }, 'a damaged queue file could not be moved aside; it is left where it is and ignored');
    }
  }
}

/** Writes `from`'s message with `record` as a new queue file in `to` (through tmp/, fsynced). */
function rewrite(paths: SpoolPaths, from: string, to: QueueFolder, record: QueueRecord): Promise<void> {
  return rewriteQueueFile(from, paths.queueFile(to, record.id), paths.folder('tmp'), record);
}

/**
 * A message in the earlier two-file layout (<id>.json beside <id>.eml) becomes one queue file. Safe to
 * repeat after a crash: a .eml that already checks out as a queue file only loses its .json.
 */
async function convertLegacy(paths: SpoolPaths, syncer: DirectorySyncer, files: Map<string, QueueFolder[]>, { state, id }: { state: QueueFolder; id: string }, report: RecoveryReport): Promise<void> {
  const json = `${paths.folder(state)}/${id}${LEGACY_ENVELOPE_EXT}`;
  const message = paths.queueFile(state, id);
  const where = files.get(id) ?? [];
  if (where.length && !where.includes(state)) {
    // a state change cut between its two renames: the message file is elsewhere
    await rename(paths.queueFile(where[0], id), message);
    files.set(id, [state]);
  }
  if (!files.has(id)) {
    if (state === 'incoming') report.droppedPartial++;
    else {
      await writeBadmail(paths, syncer, { name: id, content: Buffer.from(await readFile(json, 'utf8')), reason: `Recovered at start: the message file of ${id} is missing; only its envelope (the .BAD file here) survived. The message cannot be sent again.` });
      report.toBadmail++;
    }
    await unlinkIfExists(json);
    return;
  }
  if (await readQueueFile(message, id).then(() => true, () => false)) {
    await unlinkIfExists(json);
    return;
  }
  try {
    const record = parseRecord(await readFile(json, 'utf8'), json);
    const { size } = await stat(message);
    if (size !== record.envelope.size || (record.crc32 !== undefined && (await crc32OfPrefix(message, size)) !== record.crc32)) {
      throw new Error('the message file does not have the size and checksum its envelope records');
    }
    await rewrite(paths, message, state, record);
    report.converted++;
  } catch (e) {
    if (state !== 'incoming') {
      await writeBadmail(paths, syncer, { name: id, content: { file: message }, reason: `Recovered at start: ${id} could not be converted to the current queue format (${(e as Error).message}). The .BAD file is the message; add X-Sender: and X-Receiver: lines at the top and copy it into pickup/ to send it again.` });
      report.toBadmail++;
    } else report.droppedPartial++;
    await unlinkIfExists(message);
    files.delete(id);
  }
  await unlinkIfExists(json);
}
