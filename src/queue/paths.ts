/**
 * Spool layout: every queue state is a folder under the mailroot, named here and only here.
 *
 *   tmp/       files being written; never a committed message (dropped on start)
 *   incoming/  accepted and fsynced, due now
 *   active/    being delivered by this process (put back in line on start)
 *   deferred/  waiting for their next attempt (nextAttemptAt in the envelope file)
 *   hold/      parked by an admin or because the upstream route is broken
 *   badmail/   <id>.BAD (the message, resubmittable through pickup/) + <id>.BDR (the reason, plain text)
 *   pickup/    message files dropped by applications (read by src/pickup)
 *
 * A message is two files with the same queue id: <id>.eml (the raw message) and <id>.json (envelope
 * and per-recipient state). The envelope file is the commit record: the folder holding <id>.json is the
 * message's state. Delivery claims a message by renaming its envelope file into active/ (the commit
 * point), then the message file follows. Other moves first lock the envelope file (<id>.json.locked,
 * so another process's claim fails harmlessly), move the message file, then rename the envelope file
 * into its new folder (the commit). Recovery unlocks and puts any message file beside its envelope.
 */
import path from 'node:path';

/** States a committed message can be in (a folder each). */
export const QUEUE_STATES = ['incoming', 'active', 'deferred', 'hold'] as const;
export type QueueFolder = (typeof QUEUE_STATES)[number];

/** All folders the spool creates under the mailroot. */
export const SPOOL_FOLDERS = ['tmp', ...QUEUE_STATES, 'badmail', 'pickup'] as const;
export type SpoolFolder = (typeof SPOOL_FOLDERS)[number];

export const MESSAGE_EXT = '.eml';
export const ENVELOPE_EXT = '.json';
/** An envelope file being rewritten by one process (the relay or the CLI); others leave it alone. */
export const LOCKED_SUFFIX = '.locked';

/** Builds every spool path from one mailroot. */
export interface SpoolPaths {
  root: string;
  folder(name: SpoolFolder): string;
  message(state: SpoolFolder, id: string): string;
  envelope(state: SpoolFolder, id: string): string;
  badmail(name: string, ext: '.BAD' | '.BDR'): string;
}

export function spoolPaths(mailroot: string): SpoolPaths {
  const root = path.resolve(mailroot);
  const folder = (name: SpoolFolder) => path.join(root, name);
  return {
    root,
    folder,
    message: (state, id) => path.join(folder(state), id + MESSAGE_EXT),
    envelope: (state, id) => path.join(folder(state), id + ENVELOPE_EXT),
    badmail: (name, ext) => path.join(folder('badmail'), name + ext),
  };
}
