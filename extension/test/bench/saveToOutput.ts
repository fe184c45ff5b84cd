/**
 * `make bench`: save → first output line, one file changed, backend warm. The extension's own
 * client modules (sync.ts, launch.ts, transport.ts) against a real daemon; no VS Code window,
 * so the terminal's rendering is not included. Prints one JSON line.
 */

import { ChildProcess } from "node:child_process";
import { readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { startDaemon, waitForConnection } from "../../src/node/daemon";
import { LaunchSpec, runRequest } from "../../src/node/launch";
import { Bodies, ReplyType, RequestType } from "../../src/node/protocol";
import { newRunId } from "../../src/node/startRun";
import { Requester, WorkspaceSync, scan } from "../../src/node/sync";
import { Transport } from "../../src/node/transport";
import { PYTHON, REPO, tempTree } from "../helpers";

const SAVES = Number(process.env.HOTSWAP_BENCH_SAVES ?? 30);
const OTHER_FILES = Number(process.env.HOTSWAP_BENCH_FILES ?? 200);
const NOTE = "client modules of the extension, terminal rendering excluded";

/** The script run on save: it prints a line at once, then does a little more. */
function entryText(edit: number): string {
  return `import sys\n\nprint("edit ${edit}", flush=True)\nprint("done", file=sys.stderr)\n`;
}

/** A workspace with the entry and ~200 other files in packages, so the scan has work to do. */
function workspaceFiles(): Record<string, string> {
  const files: Record<string, string> = {
    "pyproject.toml": '[project]\nname = "bench"\nversion = "0"\n',
    ".gitignore": "outputs/\n*.log\n",
    "main.py": entryText(0),
    "README.md": "# bench\n" + "A line of documentation.\n".repeat(40),
    "outputs/run.log": "ignored\n",
  };
  for (let i = 0; i < OTHER_FILES; i++) {
    const body = Array.from({ length: 60 }, (_, j) => `def f${j}(x):\n    return x * ${i} + ${j}\n`).join("\n");
    files[`pkg${Math.floor(i / 25)}/mod${i % 25}.py`] = `"""Module ${i}."""\n\n${body}`;
  }
  return files;
}

/** Times every request sync.ts makes through it (the same transport underneath). */
class TimedRequester implements Requester {
  readonly log: Array<{ type: string; ms: number; body: unknown }> = [];

  constructor(readonly transport: Transport) {}

  async request<R extends RequestType>(type: R, body: Bodies[R], timeoutMs?: number): Promise<Bodies[ReplyType<R>]> {
    const started = performance.now();
    const reply = await this.transport.request(type, body, timeoutMs);
    this.log.push({ type, ms: performance.now() - started, body: reply });
    return reply;
  }
}

/** When each run's first event of each kind arrived (stream events can overtake the reply). */
class Arrivals {
  readonly at = new Map<string, number>();
  readonly firstOutput = new Map<string, string>();
  private readonly waiters = new Set<() => void>();

  constructor(transport: Transport) {
    transport.on("run_started", (body) => this.mark(`${body.run_id}:started`));
    transport.on("stream", (body) => {
      if (body.run_id !== null && this.mark(`${body.run_id}:stream`)) {
        this.firstOutput.set(body.run_id, Buffer.from(body.data).toString("utf8"));
      }
    });
    transport.on("run_finished", (body) => this.mark(`${body.run_id}:finished`));
  }

  /** When `runId`'s first event of this kind arrived, once it has. */
  until(runId: string, kind: "stream" | "finished", timeoutMs = 60_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`run ${runId}: no ${kind} within ${timeoutMs / 1000}s`));
      }, timeoutMs);
      const check = (): void => {
        const at = this.at.get(`${runId}:${kind}`);
        if (at !== undefined) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(at);
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Record the first arrival of `key`; whether this was it. */
  private mark(key: string): boolean {
    if (this.at.has(key)) {
      return false;
    }
    this.at.set(key, performance.now());
    this.waiters.forEach((check) => check());
    return true;
  }
}

/** The debounce rerunOnSave.ts adds after a save (that module needs vscode: read its source). */
function debounceMs(): number {
  const source = readFileSync(path.join(REPO, "extension", "src", "vscode", "rerunOnSave.ts"), "utf8");
  const found = /export const DEBOUNCE_MS = (\d+);/.exec(source);
  if (found === null) {
    throw new Error("rerunOnSave.ts no longer says `export const DEBOUNCE_MS = <ms>;`: update the bench");
  }
  return Number(found[1]);
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  return sorted[low] + (sorted[Math.min(low + 1, sorted.length - 1)] - sorted[low]) * (at - low);
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

interface Sample {
  total: number;
  sync: number;
  syncRequest: number;
  daemonSync: number;
  run: number;
  started: number;
}

/** One save: write the entry, then what RunController.request does (sync, then `run`). */
async function save(edit: number, root: string, spec: LaunchSpec, sync: WorkspaceSync, timed: TimedRequester, arrivals: Arrivals): Promise<Sample> {
  timed.log.length = 0;
  const saved = performance.now();
  writeFileSync(spec.entry, entryText(edit));
  const synced = await sync.sync();
  const syncedAt = performance.now();
  const reply = await timed.transport.request("run", runRequest(spec, synced.state, process.env, newRunId()));
  const repliedAt = performance.now();
  const firstOutput = await arrivals.until(reply.run_id, "stream");
  await arrivals.until(reply.run_id, "finished");
  const text = arrivals.firstOutput.get(reply.run_id) ?? "";
  if (!text.startsWith(`edit ${edit}\n`) || (edit > 0 && synced.sent.join() !== "main.py")) {
    throw new Error(`save ${edit}: sent ${JSON.stringify(synced.sent)}, first output ${JSON.stringify(text)} (root ${root})`);
  }
  const syncRequests = timed.log.filter((r) => r.type === "sync");
  return {
    total: firstOutput - saved,
    sync: syncedAt - saved,
    syncRequest: syncRequests.reduce((n, r) => n + r.ms, 0),
    daemonSync: syncRequests.reduce((n, r) => n + (r.body as Bodies["sync_reply"]).elapsed_ms, 0),
    run: repliedAt - syncedAt,
    started: (arrivals.at.get(`${reply.run_id}:started`) ?? NaN) - saved,
  };
}

function killGroup(child: ChildProcess | undefined): void {
  if (child?.pid !== undefined) {
    try {
      process.kill(-child.pid, "SIGKILL"); // the daemon and its runner worker share the group
    } catch {
      // already gone
    }
  }
}

async function bench(root: string, daemon: ChildProcess): Promise<Record<string, unknown>> {
  const transport = new Transport(await waitForConnection(root, daemon));
  try {
    const { sync_policy: policy } = await transport.hello("hotswap-bench");
    const timed = new TimedRequester(transport);
    const sync = new WorkspaceSync(timed, root, policy);
    const arrivals = new Arrivals(transport);
    const spec: LaunchSpec = { root, entry: path.join(root, "main.py"), args: [], cwd: root, env: {}, debug: false, justMyCode: true };
    await save(-1, root, spec, sync, timed, arrivals); // warm-up: the first sync sends the manifest, the worker starts
    const samples: Sample[] = [];
    for (let edit = 1; edit <= SAVES; edit++) {
      samples.push(await save(edit, root, spec, sync, timed, arrivals));
    }
    const scans: number[] = [];
    const entries = (await scan(root, policy)).files;
    for (let i = 0; i < SAVES; i++) {
      const started = performance.now();
      await scan(root, policy, entries);
      scans.push(performance.now() - started);
    }
    const median = (pick: (s: Sample) => number): number => round(quantile(samples.map(pick), 0.5));
    const debounce = debounceMs();
    return {
      bench: "save_to_first_output",
      note: NOTE,
      saves: SAVES,
      files: entries.size,
      median_ms: median((s) => s.total),
      p90_ms: round(quantile(samples.map((s) => s.total), 0.9)),
      debounce_ms: debounce,
      user_visible_median_ms: round(debounce + quantile(samples.map((s) => s.total), 0.5)),
      breakdown_median_ms: {
        scan: round(quantile(scans, 0.5)),
        sync: median((s) => s.sync),
        sync_request: median((s) => s.syncRequest),
        daemon_sync: median((s) => s.daemonSync),
        run_request: median((s) => s.run),
        run_started: median((s) => s.started),
      },
    };
  } finally {
    transport.close();
  }
}

async function main(): Promise<void> {
  const root = realpathSync(tempTree(workspaceFiles(), "hotswap-bench-save-"));
  let daemon: ChildProcess | undefined;
  try {
    daemon = startDaemon(PYTHON, root, { ...process.env, HF_HUB_OFFLINE: "1" });
    console.log(JSON.stringify(await bench(root, daemon)));
  } finally {
    killGroup(daemon);
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
