/**
 * "Committed but not yet answered": telling, after a crash, a message whose 250 never left from one
 * whose 250 did (docs/reliability.md, "Client resends").
 *
 * A message from an SMTP client is committed (fsynced, file and folder) before its 250, so a relay
 * killed in between leaves a queued copy the client never heard about: the client sends it again and
 * the upstream gets two. To tell those apart, the queue file of such a message is written with the
 * owner-execute bit set (UNANSWERED_MODE: "no 250 yet") and the spool clears it (fchmod, no fsync)
 * just before the listener writes the 250. Every other queue file (pickup, reports, the CLI, any
 * move or rewrite, files of older versions) has the bit clear, so a file is treated as unanswered
 * only on positive evidence.
 *
 * The bit is trusted only when the kernel has not restarted since it was written: then the page
 * cache (where the fchmod went, without fsync) is intact and the bit is exactly what the process did
 * before it died. The spool records the kernel's boot id in the mailroot at each start; recovery
 * compares it. A power loss or reboot gives a new boot id and every file is kept (its bit may be a
 * state the disk had not caught up with), the bit cleared. Without a boot id (not Linux) no file is
 * ever marked.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** The bit that tells them apart (owner execute: meaningless for a mail file). */
export const UNANSWERED_BIT = 0o100;
/**
 * Mode of a queue file (tmp/ spares included) whose message was answered or needs no answer: 0o640
 * as the process's umask leaves it (a service with UMask=0077 gets 0o600), since fchmod, unlike a
 * create, does not apply the umask. Read once at load (reading the umask is racy only against
 * another thread changing it).
 */
export const QUEUE_FILE_MODE = 0o640 & ~process.umask();
/** Mode of a queue file whose SMTP client has not been sent its 250 yet. */
export const UNANSWERED_MODE = QUEUE_FILE_MODE | UNANSWERED_BIT;

/** Where the spool keeps the boot id of the kernel it last started under. */
export const BOOT_ID_FILE = 'boot-id';

const KERNEL_BOOT_ID = '/proc/sys/kernel/random/boot_id';

/**
 * This kernel's boot id (random per boot), or undefined where there is none (not Linux). Asked only
 * on Linux: under wine a Windows build reads the host's /proc through its Z: drive, and there the
 * mode bits (fchmod) it would rely on do not exist (Node answers ENOENT).
 */
export async function currentBootId(source = KERNEL_BOOT_ID, platform: NodeJS.Platform = process.platform): Promise<string | undefined> {
  if (platform !== 'linux') return undefined;
  const text = await readFile(source, 'utf8').catch(() => undefined);
  const id = text?.trim();
  return id && /^[0-9a-f-]{16,64}$/i.test(id) ? id : undefined;
}

/**
 * Reads the boot id saved by the last start and saves the current one. `sameBoot` is true only when
 * both are known and equal: the relay died, the kernel did not. No fsync: after a power loss the
 * file can only hold an older boot's id, which never equals the new one.
 */
export async function swapBootId(root: string, current: string | undefined): Promise<{ sameBoot: boolean }> {
  const file = path.join(root, BOOT_ID_FILE);
  const saved = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (current !== undefined) await writeFile(file, `${current}\n`, { mode: 0o640 });
  return { sameBoot: current !== undefined && saved === current };
}
