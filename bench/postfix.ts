/**
 * A private Postfix instance configured as a relay, for the side-by-side runs (`npm run bench`,
 * `npm run soak -- --peers smarthost,postfix`). Its own config, queue and log under one folder; it
 * listens on 127.0.0.1:PORT and relays everything to one loopback upstream (relayhost). Postfix
 * fsyncs a message before its 250, as smarthost does. Needs Debian's postfix package and root
 * (master starts as root and drops to the postfix user).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface PostfixInstance {
  /** The folder given: conf/, queue/, data/, log/ under it. */
  base: string;
  conf: string;
  queue: string;
}

/**
 * Writes main.cf and master.cf for a relay listening on 127.0.0.1:port that sends everything to
 * 127.0.0.1:upstreamPort. `extraMain` lines are appended to main.cf (they win over the defaults above them).
 */
export function writePostfixConfig(dir: string, port: number, upstreamPort: number, extraMain: string[] = [], smtpdProcesses = 1100): PostfixInstance {
  const base = path.join(dir, 'postfix');
  const conf = path.join(base, 'conf');
  const queue = path.join(base, 'queue');
  for (const d of [conf, queue, path.join(base, 'data'), path.join(base, 'log')]) mkdirSync(d, { recursive: true });
  chmodSync(base, 0o755);
  chmodSync(dir, 0o755);
  // postsuper, run by `postfix start` as the postfix user, writes its warnings (files a kill left
  // half-made) to the log file itself: it must be able to open it
  writeFileSync(path.join(base, 'log', 'postfix.log'), '', { flag: 'a' });
  spawnSync('chown', ['postfix', path.join(base, 'data'), path.join(base, 'log', 'postfix.log')]);
  writeFileSync(path.join(conf, 'main.cf'), `compatibility_level = 3.6
queue_directory = ${queue}
data_directory = ${base}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = ${base}
maillog_file = ${base}/log/postfix.log
myhostname = relay-postfix.bench.test
mydomain = bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:local delivery disabled
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:${upstreamPort}
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
${extraMain.join('\n')}
`);
  writeFileSync(path.join(conf, 'master.cf'), `127.0.0.1:${port} inet n - n - ${smtpdProcesses} smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`);
  return { base, conf, queue };
}

/** `postfix -c CONF start` (returns once master runs); throws with Postfix's own message. */
export function startPostfix(p: PostfixInstance): void {
  const r = spawnSync('postfix', ['-c', p.conf, 'start'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`postfix start failed: ${r.stderr || r.stdout}`);
}

export function stopPostfix(p: PostfixInstance): void {
  spawnSync('postfix', ['-c', p.conf, 'stop']);
}

/** The running master's pid (from its pid file), or 0. */
export function postfixMaster(p: PostfixInstance): number {
  try {
    return Number(readFileSync(path.join(p.queue, 'pid', 'master.pid'), 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/** All descendants of pid (inclusive), from /proc. */
export function processTree(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { out.push(p); for (const k of kids.get(p) ?? []) walk(k); };
  walk(root);
  return out;
}

/** Alive: in /proc and not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Pids of the processes in process group `pgid`, from /proc. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

/**
 * SIGKILLs master and every process under it in one instant, as an OOM kill or a crash of the whole
 * service would: master is a session leader (setsid) and its children stay in its process group,
 * so one kill(-pgid) reaches them all at once. (Listing the tree from /proc first took milliseconds
 * on a busy machine, during which the children went on delivering and replying: a gentler kill than
 * the one smarthost gets.) Anything left under master (none expected) is killed next. Resolves when
 * none is alive any more.
 */
export async function killPostfix(p: PostfixInstance): Promise<void> {
  const master = postfixMaster(p);
  if (!master || !alive(master)) return;
  try { process.kill(-master, 'SIGKILL'); } catch { /* gone */ }
  for (const pid of processTree(master)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  const end = Date.now() + 10_000;
  while (groupMembers(master).length && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

/**
 * Messages in Postfix's queue. `ready`: committed (for incoming/, the owner-execute bit Postfix sets
 * once the file is complete, before the 250); `incomplete`: files in incoming/ a kill cut before
 * that (no 250 was given for them; Postfix ignores them and removes them later). `corrupt`: corrupt/.
 */
export function postfixQueue(p: PostfixInstance, folders = ['maildrop', 'incoming', 'active', 'deferred', 'hold']): { ready: number; incomplete: number; corrupt: number } {
  const files = (dir: string): string[] => {
    try {
      return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
    } catch {
      return [];
    }
  };
  let ready = 0;
  let incomplete = 0;
  for (const f of folders) {
    for (const file of files(path.join(p.queue, f))) {
      if (f !== 'incoming') ready++;
      else {
        try {
          if (statSync(file).mode & 0o100) ready++;
          else incomplete++;
        } catch { /* gone meanwhile */ }
      }
    }
  }
  return { ready, incomplete, corrupt: files(path.join(p.queue, 'corrupt')).length };
}

