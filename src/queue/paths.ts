/**
 * Spool layout: every queue state is a folder under the mailroot, named here and only here.
 *
 *   tmp/       files being written; never a committed message (dropped on start)
 *   incoming/  accepted and fsynced, due now
 *   active/    being delivered by this process (put back in line on start)
 *   deferred/  waiting for their next attempt (nextAttemptAt in the envelope record)
 *   hold/      parked by an admin or because the upstream route is broken
 *   badmail/   <id>.BAD (the message, resubmittable through pickup/) + <id>.BDR (the reason, plain text)
 *   pickup/    message files dropped by applications (read by src/pickup)
 *
 * A message is one file, <id>.eml: the message exactly as it will be sent, followed by its envelope
 * record (queue-file.ts). The folder holding it is the message's state. Delivery claims a message by
 * renaming its file into active/. Other moves first lock the file where it is (<id>.eml.locked, so
 * another process's claim fails harmlessly), write the new file (same message, new record) into tmp/,
 * fsync it, rename it into its new folder (the commit), then remove the locked one. Recovery resolves
 * moves cut half-way (queue-file.ts, recovery.ts).
 */
import path from 'node:path';

/** States a committed message can be in (a folder each). */
export const QUEUE_STATES = ['incoming', 'active', 'deferred', 'hold'] as const;
export type QueueFolder = (typeof QUEUE_STATES)[number];

/** All folders the spool creates under the mailroot. */
export const SPOOL_FOLDERS = ['tmp', ...QUEUE_STATES, 'badmail', 'pickup'] as const;
export type SpoolFolder = (typeof SPOOL_FOLDERS)[number];

export const QUEUE_FILE_EXT = '.eml';
/** Before one file per message: the envelope beside the message (converted by recovery). */
export const LEGACY_ENVELOPE_EXT = '.json';
/** A queue file being moved by one process (the relay or the CLI); others leave it alone. */
export const LOCKED_SUFFIX = '.locked';

/** One line per settled message's id (spool.ts markDelivered), and `ID<TAB>recipient` per recipient an upstream took (transports/handoff-journal.ts); read by recovery.ts. */
export const DELIVERED_LOG = 'delivered.log';

/** Builds every spool path from one mailroot. */
export interface SpoolPaths {
  root: string;
  folder(name: SpoolFolder): string;
  /** The queue file <id>.eml in a folder. */
  queueFile(state: SpoolFolder, id: string): string;
  badmail(name: string, ext: '.BAD' | '.BDR'): string;
}

export function spoolPaths(mailroot: string): SpoolPaths {
  const root = path.resolve(mailroot);
  // Joined once: a message's file name is built several times on its way (commit, claim, settle),
  // and path.join normalises on every call: 6 of the ~120 KB the event loop allocated per 1 KB
  // message (V8's sampling heap profiler, 4,000 messages at 50 sessions).
  const folders = new Map<SpoolFolder, string>(SPOOL_FOLDERS.map((name) => [name, path.join(root, name)]));
  const folder = (name: SpoolFolder) => folders.get(name) ?? path.join(root, name);
  return {
    root,
    folder,
    queueFile: (state, id) => folder(state) + path.sep + id + QUEUE_FILE_EXT,
    badmail: (name, ext) => path.join(folder('badmail'), name + ext),
  };
}
