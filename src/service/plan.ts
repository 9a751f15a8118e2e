/**
 * A service install, uninstall or status is first a plan: the folders and files it would write and
 * the commands it would run, in order. `--dry-run` prints the plan; `applyPlan` carries it out.
 * Making the plan first keeps the two honest: what is printed is exactly what is done.
 *
 * Commands go through an injected runner and paths through an optional root prefix, so tests carry
 * out a real install into a temporary folder and record the commands instead of running them.
 */
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { seaAsset } from './launcher.ts';

export type Step =
  | { kind: 'mkdir'; path: string; mode: number; why: string }
  | { kind: 'write'; path: string; mode: number; content: string; why: string }
  /** `from` is a file, or sea:NAME for a file embedded in the single executable. */
  | { kind: 'copy'; path: string; mode: number; from: string; why: string }
  | { kind: 'remove'; path: string; why: string }
  | { kind: 'run'; argv: string[]; why: string; mayFail?: boolean };

/** A copy source naming a file embedded in the single executable. */
export const SEA_PREFIX = 'sea:';

export interface ServicePlan {
  platform: 'linux' | 'win32';
  action: 'install' | 'uninstall';
  steps: Step[];
  /** Things the admin should know (kept files, where logs go); printed after the steps. */
  notes: string[];
  /** Reasons the plan must not be carried out (e.g. the binary is where the sandbox hides it). */
  problems: string[];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}
export type Runner = (argv: string[]) => Promise<RunResult>;

/** Runs a command, capturing its output (a service manager's answers are short). */
export const spawnRunner: Runner = (argv) =>
  new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err) => resolve({ code: 127, stdout, stderr: `${argv[0]}: ${err.message}` }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });

/** A command line as a person would type it: POSIX shell quoting, or Windows' (CommandLineToArgvW). */
export function shellLine(argv: string[], platform: ServicePlan['platform'] = 'linux'): string {
  if (platform === 'win32') return argv.map(windowsArg).join(' ');
  return argv.map((a) => (/^[\w@%+=:,./\\-]+$/.test(a) ? a : `"${a.replace(/(["\\$`])/g, '\\$1')}"`)).join(' ');
}

/** One Windows command-line argument (CommandLineToArgvW rules: quoted when it has spaces or quotes). */
export function windowsArg(arg: string): string {
  if (arg && !/[\s"]/.test(arg)) return arg;
  return `"${arg.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\+)$/, '$1$1')}"`;
}

/** The dry-run text: every folder, every file in full, every command, in the order they happen. */
export function describePlan(plan: ServicePlan): string {
  const out: string[] = [`# smarthost service ${plan.action} (${plan.platform}) — dry run: nothing is changed`, ''];
  let n = 0;
  for (const s of plan.steps) {
    n++;
    // Windows files get their access from the folder's ACL, not a mode.
    const mode = 'mode' in s && plan.platform === 'linux' ? ` (mode ${s.mode.toString(8).padStart(4, '0')})` : '';
    switch (s.kind) {
      case 'mkdir':
        out.push(`${n}. create folder ${s.path}${mode} — ${s.why}`);
        break;
      case 'write':
        out.push(`${n}. write ${s.path}${mode} — ${s.why}`, `----- ${s.path} -----`, s.content.replace(/\n$/, ''), `----- end of ${s.path} -----`);
        break;
      case 'copy':
        out.push(`${n}. copy ${s.from.startsWith(SEA_PREFIX) ? `${s.from.slice(SEA_PREFIX.length)} (embedded in this executable)` : s.from} to ${s.path}${mode} — ${s.why}`);
        break;
      case 'remove':
        out.push(`${n}. remove ${s.path} — ${s.why}`);
        break;
      case 'run':
        out.push(`${n}. run: ${shellLine(s.argv, plan.platform)} — ${s.why}`);
        break;
    }
  }
  for (const p of plan.problems) out.push('', `PROBLEM: ${p}`);
  if (plan.notes.length) out.push('', ...plan.notes.map((t) => `Note: ${t}`));
  return `${out.join('\n')}\n`;
}

export interface ApplyOptions {
  runner: Runner;
  /** Prefix for every file path (tests); commands are passed to the runner unchanged. */
  root?: string;
  /** One line per step as it is done. */
  progress?: (line: string) => void;
}

/** Carries out a plan in order; stops at the first failing step (a failed command names itself). */
export async function applyPlan(plan: ServicePlan, { runner, root = '', progress = () => {} }: ApplyOptions): Promise<void> {
  if (plan.problems.length) throw new Error(plan.problems.join('\n'));
  const at = (p: string) => (root ? path.join(root, p) : p);
  for (const s of plan.steps) {
    switch (s.kind) {
      case 'mkdir':
        mkdirSync(at(s.path), { recursive: true, mode: s.mode });
        chmodSync(at(s.path), s.mode); // mkdir's mode is filtered by the umask
        progress(`created ${s.path}`);
        break;
      case 'write':
        mkdirSync(path.dirname(at(s.path)), { recursive: true });
        writeFileSync(at(s.path), s.content, { mode: s.mode });
        chmodSync(at(s.path), s.mode);
        progress(`wrote ${s.path}`);
        break;
      case 'copy':
        if (s.from.startsWith(SEA_PREFIX)) {
          const asset = seaAsset(s.from.slice(SEA_PREFIX.length));
          if (!asset) throw new Error(`${s.from.slice(SEA_PREFIX.length)} is not embedded in this executable`);
          writeFileSync(at(s.path), asset);
        } else {
          copyFileSync(s.from, at(s.path));
        }
        chmodSync(at(s.path), s.mode);
        progress(`copied ${s.path}`);
        break;
      case 'remove':
        rmSync(at(s.path), { force: true });
        progress(`removed ${s.path}`);
        break;
      case 'run': {
        const r = await runner(s.argv);
        if (r.code !== 0 && !s.mayFail) {
          throw new Error(`${shellLine(s.argv)} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim() || 'no output'}`);
        }
        progress(`ran ${shellLine(s.argv)}${r.code !== 0 ? ` (exit ${r.code}, ignored: ${s.why})` : ''}`);
        break;
      }
    }
  }
}
